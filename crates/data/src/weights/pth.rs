//! PyTorch `torch.save` files (`.pth`/`.pt`): a zip with `<name>/data.pkl` and `<name>/data/<key>`.
//!
//! The pickle is interpreted by the safe VM of [`super::pickle`]; each tensor it names is read
//! from its storage entry (little-endian, as `<name>/byteorder` must say if present) honouring the
//! storage offset and strides. The legacy pre-1.6 (non-zip) format is refused with an explanation.
//!
//! Nothing is inflated before its size is known: the pickle (a few kB for a ResNet) is read up to
//! [`MAX_PICKLE`] bytes; then the storages' sizes declared by the pickle are checked against the
//! sizes the zip declares and against the memory available ([`embedrank_core::memory::check`]),
//! and each storage is streamed with a cap at its declared size, so a small file whose entry
//! inflates to gigabytes is refused after reading no more than the tensors need.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use embedrank_core::memory;
use zip::ZipArchive;

use super::pickle::{self, PickleError, TensorRef};
use super::{gather, NamedTensor, Result, WeightsError};

/// Why the legacy (pre-1.6, non-zip) `torch.save` format is refused.
pub(crate) const LEGACY: &str = "legacy pre-1.6 torch.save format (a bare pickle, not a zip): re-save it \
     with a recent torch.save or convert it to .safetensors";

/// The largest `data.pkl` read: 256 MiB (a state dict's pickle holds names and shapes, not data).
pub const MAX_PICKLE: u64 = 256 << 20;

/// Reads every tensor of a `torch.save` zip file, in the pickle's order (nested dict keys joined by `.`).
pub fn load(path: &Path) -> Result<Vec<NamedTensor>> {
    let file = File::open(path).map_err(|io| WeightsError::Io {
        path: path.to_path_buf(),
        io,
    })?;
    load_from(file, path)
}

/// [`load`] from any seekable reader; `path` names the file in errors.
pub fn load_from(mut reader: impl Read + Seek, path: &Path) -> Result<Vec<NamedTensor>> {
    let format = |reason: String| WeightsError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let mut magic = [0u8; 4];
    let is_zip = reader.read_exact(&mut magic).is_ok() && magic == *b"PK\x03\x04";
    reader.rewind().map_err(|io| WeightsError::Io {
        path: path.to_path_buf(),
        io,
    })?;
    let mut zip = ZipArchive::new(reader).map_err(|e| {
        format(if is_zip {
            format!(
                "truncated or corrupt zip archive ({e}): the file may have been cut short; download or save it again"
            )
        } else {
            format!("not a torch.save zip archive ({e}); a file in the {LEGACY}")
        })
    })?;
    let pkl = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .map(str::to_string)
        .ok_or_else(|| format("no data.pkl in the archive".into()))?;
    let prefix = pkl.strip_suffix("data.pkl").unwrap_or("").to_string();
    if zip.index_for_name(&format!("{prefix}byteorder")).is_some() {
        let order = read_entry(&mut zip, &format!("{prefix}byteorder"), 64, path)?;
        if order.trim_ascii() != b"little" {
            return Err(format(format!(
                "byteorder `{}` (only little-endian files are read)",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let value = pickle::load(&read_entry(&mut zip, &pkl, MAX_PICKLE, path)?).map_err(|e| match e {
        PickleError::Unsafe(what) => WeightsError::Unsafe {
            path: path.to_path_buf(),
            what,
        },
        PickleError::Malformed(m) => format(format!("{pkl}: malformed pickle: {m}")),
    })?;
    let tensors = pickle::tensors(&value).map_err(|e| match e {
        PickleError::Unsafe(what) => WeightsError::Unsafe {
            path: path.to_path_buf(),
            what,
        },
        PickleError::Malformed(m) => format(format!("{pkl}: {m}")),
    })?;
    if tensors.is_empty() {
        return Err(format("the pickle holds no tensors".into()));
    }
    // Every storage's declared size, checked against its entry's before anything is inflated.
    let mut sizes: HashMap<&str, u64> = HashMap::new();
    let mut total = 0u64;
    for (name, t) in &tensors {
        let key = t.storage.key.as_str();
        if key.contains(['/', '\\']) || key.contains("..") {
            return Err(format(format!("tensor `{name}`: bad storage key `{key}`")));
        }
        let out = output_bytes(t).ok_or_else(|| format(format!("tensor `{name}`: shape {:?} overflows", t.shape)))?;
        total = total.saturating_add(out);
        if sizes.contains_key(key) {
            continue;
        }
        let want = (t.storage.numel as u64)
            .checked_mul(t.storage.dtype.size() as u64)
            .ok_or_else(|| format(format!("storage `{key}`: {} elements overflow", t.storage.numel)))?;
        let entry = format!("{prefix}data/{key}");
        let declared = zip
            .by_name(&entry)
            .map_err(|e| format(format!("archive entry `{entry}`: {e}")))?
            .size();
        if declared != want {
            return Err(format(format!(
                "storage `{key}`: its archive entry holds {declared} bytes, but the pickle declares {} {:?} \
                 elements ({want} bytes)",
                t.storage.numel, t.storage.dtype
            )));
        }
        sizes.insert(key, want);
        total = total.saturating_add(want);
    }
    memory::check(total, "loading its tensors").map_err(|e| format(e.to_string()))?;
    let mut storages: HashMap<&str, Vec<u8>> = HashMap::new();
    let mut out = Vec::with_capacity(tensors.len());
    for (name, t) in &tensors {
        let key = t.storage.key.as_str();
        if !storages.contains_key(key) {
            let bytes = read_storage(&mut zip, &format!("{prefix}data/{key}"), sizes[key], path)?;
            storages.insert(key, bytes);
        }
        let data = gather(t.storage.dtype, &storages[key], &t.shape, &t.stride, t.offset)
            .map_err(|e| format(format!("tensor `{name}`: {e}")))?;
        out.push(NamedTensor {
            name: name.clone(),
            shape: t.shape.clone(),
            dtype: t.storage.dtype,
            data,
        });
    }
    Ok(out)
}

/// Bytes of a tensor once gathered (`f32` for floats, `i64` for the rest).
fn output_bytes(t: &TensorRef) -> Option<u64> {
    let elem = if t.storage.dtype.is_float() { 4 } else { 8 };
    t.shape.iter().try_fold(elem, |a: u64, &d| a.checked_mul(d as u64))
}

/// The entry `name` inflated up to `limit + 1` bytes (so that one byte too many shows), refused
/// first if its header declares more than `declared_cap` bytes.
fn inflate<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    name: &str,
    declared_cap: u64,
    limit: u64,
    path: &Path,
) -> Result<Vec<u8>> {
    let format = |reason: String| WeightsError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let f = zip
        .by_name(name)
        .map_err(|e| format(format!("archive entry `{name}`: {e}")))?;
    if f.size() > declared_cap {
        return Err(format(format!(
            "archive entry `{name}` is {} bytes, more than the {declared_cap} allowed",
            f.size()
        )));
    }
    let mut buf = Vec::with_capacity(f.size().min(limit) as usize);
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format(format!("archive entry `{name}`: {e}")))?;
    Ok(buf)
}

/// The whole entry `name`, refused if it declares or inflates to more than `cap` bytes.
fn read_entry<R: Read + Seek>(zip: &mut ZipArchive<R>, name: &str, cap: u64, path: &Path) -> Result<Vec<u8>> {
    let buf = inflate(zip, name, cap, cap, path)?;
    if buf.len() as u64 > cap {
        return Err(WeightsError::Format {
            path: path.to_path_buf(),
            reason: format!("archive entry `{name}` inflates to more than the {cap} bytes allowed"),
        });
    }
    Ok(buf)
}

/// The storage entry `name`, whose declared size is `want`: inflating stops one byte past it.
fn read_storage<R: Read + Seek>(zip: &mut ZipArchive<R>, name: &str, want: u64, path: &Path) -> Result<Vec<u8>> {
    let buf = inflate(zip, name, u64::MAX, want, path)?;
    let reason = match (buf.len() as u64).cmp(&want) {
        std::cmp::Ordering::Equal => return Ok(buf),
        std::cmp::Ordering::Less => format!(
            "archive entry `{name}` ends after {} of its {want} bytes (truncated or corrupt)",
            buf.len()
        ),
        std::cmp::Ordering::Greater => {
            format!("archive entry `{name}` inflates past the {want} bytes it declares (corrupt, or a zip bomb)")
        }
    };
    Err(WeightsError::Format {
        path: path.to_path_buf(),
        reason,
    })
}
