//! `.safetensors` weight files (a JSON header and raw little-endian tensors), via the `safetensors` crate.

use std::path::Path;

use ::safetensors::{Dtype, SafeTensors};

use super::{gather, DType, NamedTensor, Result, WeightsError};

/// Reads every tensor of a `.safetensors` file, sorted by name.
pub fn load(path: &Path) -> Result<Vec<NamedTensor>> {
    let bytes = std::fs::read(path).map_err(|io| WeightsError::Io {
        path: path.to_path_buf(),
        io,
    })?;
    parse(&bytes, path)
}

/// Reads every tensor of `.safetensors` bytes, sorted by name; `path` names the file in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Vec<NamedTensor>> {
    let format = |reason: String| WeightsError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let file = SafeTensors::deserialize(bytes).map_err(|e| format(format!("not a valid safetensors file: {e}")))?;
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
        .into_iter()
        .map(|(name, view)| {
            let dtype = dtype(view.dtype())
                .ok_or_else(|| format(format!("tensor `{name}`: unsupported dtype {:?}", view.dtype())))?;
            let shape = view.shape().to_vec();
            let stride = contiguous_strides(&shape);
            let data =
                gather(dtype, view.data(), &shape, &stride, 0).map_err(|e| format(format!("tensor `{name}`: {e}")))?;
            Ok(NamedTensor {
                name,
                shape,
                dtype,
                data,
            })
        })
        .collect()
}

fn dtype(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool,
        _ => return None,
    })
}

/// Row-major strides (in elements) of `shape`.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut stride = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        stride[k] = stride[k + 1] * shape[k + 1];
    }
    stride
}
