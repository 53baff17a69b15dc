//! Reading trained weights (torchvision's ResNets, embedrank's own checkpoints) without running code.
//!
//! Two formats: `.safetensors` ([`safetensors`]) and PyTorch's `torch.save` zip files (`.pth`,
//! `.pt`; [`pth`]), whose pickle is interpreted by a minimal VM ([`pickle`]) that knows only the
//! opcodes and the handful of globals a state dict needs — any other opcode or global (e.g.
//! `os.system`) is refused with an error naming it and the file, and nothing is ever executed.
//! Both give a `Vec<`[`NamedTensor`]`>`: floating tensors as `f32`, integer and boolean ones as
//! `i64`, each contiguous in row-major order (strides and storage offsets already applied).

pub mod pickle;
mod pickle_value;
pub mod pth;
pub mod safetensors;

use std::io;
use std::path::{Path, PathBuf};

/// Why a weight file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read.
    #[error("weight file {path}: {io}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (part of the message, not a separate cause, so it is printed once).
        io: io::Error,
    },
    /// The file is not a well-formed weight file.
    #[error("weight file {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file's pickle asks for something outside the safe subset (an opcode or a global).
    #[error("weight file {path}: refused to load: {what} is not allowed in a weight file (only tensors, dicts and plain values are read; no code is run)")]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// The opcode or global refused.
        what: String,
    },
}

/// The result type of weight reading.
pub type Result<T> = std::result::Result<T, WeightsError>;

/// A tensor's element type in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit signed integer.
    I64,
    /// 32-bit signed integer.
    I32,
    /// 16-bit signed integer.
    I16,
    /// 8-bit signed integer.
    I8,
    /// 8-bit unsigned integer.
    U8,
    /// Boolean (one byte).
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Whether the type is a floating-point one (read as `f32`).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }
}

/// A tensor's elements, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// Floating-point tensors, converted to `f32`.
    F32(Vec<f32>),
    /// Integer and boolean tensors, converted to `i64`.
    I64(Vec<i64>),
}

/// One named tensor of a weight file.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// The state-dict key (`layer1.0.conv1.weight`).
    pub name: String,
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The element type in the file.
    pub dtype: DType,
    /// The elements, contiguous, row-major.
    pub data: TensorData,
}

impl NamedTensor {
    /// The elements as `f32` (integers converted), e.g. for `num_batches_tracked`.
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

/// Reads a weight file, choosing the format by its content (zip → `torch.save`, else safetensors;
/// a bare pickle is the legacy `torch.save` format, refused with an explanation).
pub fn load(path: &Path) -> Result<Vec<NamedTensor>> {
    let io_err = |io| WeightsError::Io {
        path: path.to_path_buf(),
        io,
    };
    // A safetensors file starts with its header's length (u64, little-endian), then `{`.
    let mut head = Vec::with_capacity(9);
    {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(io_err)?;
        f.take(9).read_to_end(&mut head).map_err(io_err)?;
    }
    if head.starts_with(b"PK\x03\x04") {
        pth::load(path)
    } else if head.first() == Some(&0x80) && head.get(8) != Some(&b'{') {
        Err(WeightsError::Format {
            path: path.to_path_buf(),
            reason: pth::LEGACY.into(),
        })
    } else {
        safetensors::load(path)
    }
}

/// The elements of a tensor of `shape` and `stride` (in elements) starting at element `offset`
/// of the little-endian `storage`, gathered into row-major order.
pub(crate) fn gather(
    dtype: DType,
    storage: &[u8],
    shape: &[usize],
    stride: &[usize],
    offset: usize,
) -> std::result::Result<TensorData, String> {
    if shape.len() != stride.len() {
        return Err(format!("shape {shape:?} and stride {stride:?} differ in length"));
    }
    let numel_storage = storage.len() / dtype.size();
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape overflows")?;
    if count > 0 {
        let last = shape
            .iter()
            .zip(stride)
            .try_fold(offset, |a, (&d, &s)| a.checked_add((d - 1).checked_mul(s)?))
            .ok_or("strides overflow")?;
        if last >= numel_storage {
            return Err(format!(
                "shape {shape:?}, stride {stride:?}, offset {offset} reach element {last} of a storage of {numel_storage}"
            ));
        }
    }
    let s = dtype.size();
    // Elements in row-major order: an odometer over the shape, `at` the storage index.
    macro_rules! read {
        ($t:ty, $conv:expr) => {{
            let mut out = Vec::with_capacity(count);
            let mut index = vec![0usize; shape.len()];
            let mut at = offset;
            for _ in 0..count {
                let b = &storage[at * s..at * s + s];
                out.push($conv(<$t>::from_le_bytes(b.try_into().expect("element bytes"))));
                // Wrapping steps: a dimension of size 1 may have any stride, even one that would
                // overflow; the true index is always back in range when it is used.
                for k in (0..shape.len()).rev() {
                    index[k] += 1;
                    at = at.wrapping_add(stride[k]);
                    if index[k] < shape[k] {
                        break;
                    }
                    at = at.wrapping_sub(stride[k].wrapping_mul(shape[k]));
                    index[k] = 0;
                }
            }
            out
        }};
    }
    Ok(match dtype {
        DType::F32 => TensorData::F32(read!(f32, |x| x)),
        DType::F64 => TensorData::F32(read!(f64, |x| x as f32)),
        DType::F16 => TensorData::F32(read!(u16, |x| half::f16::from_bits(x).to_f32())),
        DType::BF16 => TensorData::F32(read!(u16, |x| half::bf16::from_bits(x).to_f32())),
        DType::I64 => TensorData::I64(read!(i64, |x| x)),
        DType::I32 => TensorData::I64(read!(i32, i64::from)),
        DType::I16 => TensorData::I64(read!(i16, i64::from)),
        DType::I8 => TensorData::I64(read!(i8, i64::from)),
        DType::U8 | DType::Bool => TensorData::I64(read!(u8, i64::from)),
    })
}
