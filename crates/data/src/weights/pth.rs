//! PyTorch `torch.save` files (`.pth`/`.pt`): a zip with `<name>/data.pkl` and `<name>/data/<key>`.
//!
//! The pickle is interpreted by the safe VM of [`super::pickle`]; each tensor it names is read
//! from its storage entry (little-endian, as `<name>/byteorder` must say if present) honouring the
//! storage offset and strides. The legacy pre-1.6 (non-zip) format is refused with an explanation.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use zip::ZipArchive;

use super::pickle::{self, PickleError};
use super::{gather, NamedTensor, Result, WeightsError};

/// Why the legacy (pre-1.6, non-zip) `torch.save` format is refused.
pub(crate) const LEGACY: &str = "legacy pre-1.6 torch.save format (a bare pickle, not a zip): re-save it \
     with a recent torch.save or convert it to .safetensors";

/// Refuse zip entries larger than this (a defence against zip bombs): 16 GiB.
const MAX_ENTRY: u64 = 1 << 34;

/// Reads every tensor of a `torch.save` zip file, in the pickle's order (nested dict keys joined by `.`).
pub fn load(path: &Path) -> Result<Vec<NamedTensor>> {
    let format = |reason: String| WeightsError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut zip = ZipArchive::new(file)
        .map_err(|e| format(format!("not a torch.save zip archive ({e}); a file in the {LEGACY}")))?;
    let pkl = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .map(str::to_string)
        .ok_or_else(|| format("no data.pkl in the archive".into()))?;
    let prefix = pkl.strip_suffix("data.pkl").unwrap_or("").to_string();
    let mut entry = |name: &str| -> Result<Vec<u8>> {
        let mut f = zip
            .by_name(name)
            .map_err(|e| format(format!("archive entry `{name}`: {e}")))?;
        if f.size() > MAX_ENTRY {
            return Err(format(format!("archive entry `{name}` is {} bytes", f.size())));
        }
        let mut buf = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut buf)
            .map_err(|e| format(format!("archive entry `{name}`: {e}")))?;
        Ok(buf)
    };
    if let Ok(order) = entry(&format!("{prefix}byteorder")) {
        if order.trim_ascii() != b"little" {
            return Err(format(format!(
                "byteorder `{}` (only little-endian files are read)",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let value = pickle::load(&entry(&pkl)?).map_err(|e| match e {
        PickleError::Unsafe(what) => WeightsError::Unsafe {
            path: path.to_path_buf(),
            what,
        },
        PickleError::Malformed(m) => format(format!("{pkl}: malformed pickle: {m}")),
    })?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = Vec::new();
    for (name, t) in pickle::tensors(&value) {
        let key = &t.storage.key;
        if !storages.contains_key(key) {
            if key.contains(['/', '\\']) || key.contains("..") {
                return Err(format(format!("tensor `{name}`: bad storage key `{key}`")));
            }
            let bytes = entry(&format!("{prefix}data/{key}"))?;
            let want = t.storage.numel.checked_mul(t.storage.dtype.size());
            if want.is_none_or(|w| bytes.len() < w) {
                return Err(format(format!(
                    "storage `{key}` holds {} bytes, fewer than {} {:?} elements",
                    bytes.len(),
                    t.storage.numel,
                    t.storage.dtype
                )));
            }
            storages.insert(key.clone(), bytes);
        }
        let data = gather(t.storage.dtype, &storages[key], &t.shape, &t.stride, t.offset)
            .map_err(|e| format(format!("tensor `{name}`: {e}")))?;
        out.push(NamedTensor {
            name,
            shape: t.shape,
            dtype: t.storage.dtype,
            data,
        });
    }
    if out.is_empty() {
        return Err(format("the pickle holds no tensors".into()));
    }
    Ok(out)
}
