//! Loading torchvision-, timm- or pretrainedmodels-named weights (read by [`embedrank_data::weights`]) into a var store.

use std::collections::{BTreeSet, HashSet};

use embedrank_data::weights::{NamedTensor, TensorData};
use tch::nn::VarStore;
use tch::Tensor;

/// At most this many missing variables are named in the error.
const MISSING_SHOWN: usize = 5;

/// What [`load_pretrained`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Number of variables filled from the file.
    pub loaded: usize,
    /// Names of the file's tensors left out on purpose (classifiers: `fc.*`, `aux1.*`, `aux2.*`, timm's `head.*`, `last_linear.*`;
    /// `*.num_batches_tracked`), file order.
    pub skipped: Vec<String>,
}

/// Prefixes of the classifiers the embedding head replaces: torchvision's `fc` (and GoogLeNet's
/// auxiliary `aux1`, `aux2`), timm's `head`, pretrainedmodels' `last_linear` (BN-Inception).
const CLASSIFIERS: [&str; 5] = ["fc.", "aux1.", "aux2.", "head.", "last_linear."];

/// Whether a file tensor is ignored: a classifier ([`CLASSIFIERS`]) and batch-norm's step counters.
fn is_skipped(name: &str) -> bool {
    CLASSIFIERS.iter().any(|p| name.starts_with(p))
        || name == "num_batches_tracked"
        || name.ends_with(".num_batches_tracked")
}

/// Why pretrained weights do not fit the network (nothing was copied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A tensor of the file names no variable.
    #[error("weight `{name}` matches no variable of the model (looked for `{key}`)")]
    Unknown {
        /// The tensor's name in the file.
        name: String,
        /// The variable looked for.
        key: String,
    },
    /// A tensor appears twice.
    #[error("weight `{0}` appears twice in the file")]
    Duplicate(String),
    /// A tensor is not floating-point.
    #[error("weight `{name}` has dtype {dtype}; a floating-point one is expected")]
    NotFloat {
        /// The tensor's name.
        name: String,
        /// Its dtype.
        dtype: String,
    },
    /// A tensor's shape differs from its variable's.
    #[error("weight `{name}` has shape {file:?} but the model's `{key}` has shape {model:?}")]
    Shape {
        /// The tensor's name.
        name: String,
        /// Its shape in the file.
        file: Vec<usize>,
        /// The variable.
        key: String,
        /// The variable's shape.
        model: Vec<i64>,
    },
    /// Variables got no tensor.
    #[error("{count} variable(s) under `{prefix}` have no weight in the file: {}", shown.join(", "))]
    Missing {
        /// How many.
        count: usize,
        /// The prefix searched.
        prefix: String,
        /// The first few names (with `…` when more).
        shown: Vec<String>,
    },
}

/// Copies the `tensors` (torchvision's or timm's state-dict names) into `vs`'s variables named `prefix + name`.
///
/// Classifiers (`fc.*`, `aux1.*`, `aux2.*`, `head.*`, `last_linear.*`) and `*.num_batches_tracked` are skipped (and listed in the report). Every other tensor
/// must match a variable's name and shape and be floating-point, and every variable under `prefix`
/// must get a tensor; otherwise nothing is copied and the error names the offending tensors. The
/// copy (`copy_`, without gradient) keeps each variable's device, dtype and memory layout.
pub fn load_pretrained(vs: &mut VarStore, prefix: &str, tensors: &[NamedTensor]) -> Result<LoadReport, LoadError> {
    let vars = vs.variables();
    let mut skipped = Vec::new();
    let mut seen = HashSet::new();
    let mut pending = Vec::new();
    for t in tensors {
        if is_skipped(&t.name) {
            skipped.push(t.name.clone());
            continue;
        }
        let key = format!("{prefix}{}", t.name);
        let var = vars.get(&key).ok_or_else(|| LoadError::Unknown {
            name: t.name.clone(),
            key: key.clone(),
        })?;
        if !seen.insert(key.clone()) {
            return Err(LoadError::Duplicate(t.name.clone()));
        }
        let data = match (&t.data, t.dtype.is_float()) {
            (TensorData::F32(v), true) => v,
            _ => {
                return Err(LoadError::NotFloat {
                    name: t.name.clone(),
                    dtype: format!("{:?}", t.dtype),
                })
            }
        };
        let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
        if shape != var.size() {
            return Err(LoadError::Shape {
                name: t.name.clone(),
                file: t.shape.clone(),
                key,
                model: var.size(),
            });
        }
        pending.push((var, data, shape));
    }
    let missing: BTreeSet<&String> = vars
        .keys()
        .filter(|k| k.starts_with(prefix) && !seen.contains(*k))
        .collect();
    if !missing.is_empty() {
        let mut shown: Vec<String> = missing.iter().take(MISSING_SHOWN).map(|s| s.to_string()).collect();
        if missing.len() > MISSING_SHOWN {
            shown.push("…".into());
        }
        return Err(LoadError::Missing {
            count: missing.len(),
            prefix: prefix.to_string(),
            shown,
        });
    }
    let _guard = tch::no_grad_guard();
    for (var, data, shape) in &pending {
        let src = Tensor::from_slice(data)
            .reshape(shape.as_slice())
            .to_device(var.device())
            .to_kind(var.kind());
        var.shallow_clone().copy_(&src);
    }
    Ok(LoadReport {
        loaded: pending.len(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{ResNet, ResNetDepth};
    use embedrank_data::weights::DType;
    use tch::Device;

    const PREFIX: &str = "backbone.";

    fn resnet18() -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        ResNet::new(&(vs.root() / "backbone"), ResNetDepth::R18);
        vs
    }

    fn named(name: &str, t: &Tensor) -> NamedTensor {
        NamedTensor {
            name: name.to_string(),
            shape: t.size().iter().map(|&d| d as usize).collect(),
            dtype: DType::F32,
            data: TensorData::F32(Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()),
        }
    }

    /// The var store's variables under [`PREFIX`] as a torchvision-named state dict (sorted names).
    fn export(vs: &VarStore) -> Vec<NamedTensor> {
        let mut out: Vec<NamedTensor> = vs
            .variables()
            .iter()
            .filter_map(|(k, v)| Some(named(k.strip_prefix(PREFIX)?, v)))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    #[test]
    fn round_trip_copies_every_variable() {
        let (src, mut dst) = (resnet18(), resnet18());
        let mut tensors = export(&src);
        assert_eq!(
            tensors.len(),
            20 * 5,
            "20 convs (3 of them shortcuts), each with a batch-norm"
        );
        assert!(tensors.iter().any(|t| t.name == "layer2.0.downsample.1.running_var"));
        let counter = NamedTensor {
            name: "bn1.num_batches_tracked".into(),
            shape: vec![],
            dtype: DType::I64,
            data: TensorData::I64(vec![3]),
        };
        tensors.push(counter);
        tensors.push(named("fc.weight", &Tensor::zeros([10, 512], tch::kind::FLOAT_CPU)));
        let before = dst.variables();
        assert!(!before["backbone.conv1.weight"].equal(&src.variables()["backbone.conv1.weight"]));
        let report = load_pretrained(&mut dst, PREFIX, &tensors).unwrap();
        assert_eq!(report.loaded, tensors.len() - 2);
        assert_eq!(report.skipped, ["bn1.num_batches_tracked", "fc.weight"]);
        let (a, b) = (src.variables(), dst.variables());
        assert_eq!(a.len(), b.len());
        for (name, v) in &a {
            assert!(v.equal(&b[name]), "{name} differs");
        }
        // The variables were filled in place, not replaced.
        assert!(before["backbone.conv1.weight"].equal(&a["backbone.conv1.weight"]));
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let mut vs = resnet18();
        let mut tensors = export(&vs);
        let t = tensors.iter_mut().find(|t| t.name == "layer3.1.conv2.weight").unwrap();
        t.shape = vec![256, 256, 1, 9];
        let err = load_pretrained(&mut vs, PREFIX, &tensors).unwrap_err().to_string();
        assert!(
            err.contains("layer3.1.conv2.weight") && err.contains("[256, 256, 1, 9]"),
            "{err}"
        );
    }

    #[test]
    fn missing_tensor_is_an_error() {
        let mut vs = resnet18();
        let tensors: Vec<NamedTensor> = export(&vs)
            .into_iter()
            .filter(|t| !t.name.starts_with("layer4."))
            .collect();
        let err = load_pretrained(&mut vs, PREFIX, &tensors).unwrap_err().to_string();
        assert!(err.starts_with("25 variable(s) under `backbone.`"), "{err}");
        assert!(
            err.contains("backbone.layer4.0.bn1.bias") && err.ends_with(", …"),
            "{err}"
        );
    }

    #[test]
    fn unknown_tensor_is_an_error() {
        let mut vs = resnet18();
        let mut tensors = export(&vs);
        tensors.push(named(
            "layer5.0.conv1.weight",
            &Tensor::zeros([1], tch::kind::FLOAT_CPU),
        ));
        let err = load_pretrained(&mut vs, PREFIX, &tensors).unwrap_err().to_string();
        assert!(err.contains("`layer5.0.conv1.weight` matches no variable"), "{err}");
    }

    #[test]
    fn integer_tensor_is_an_error() {
        let mut vs = resnet18();
        let mut tensors = export(&vs);
        let t = tensors.iter_mut().find(|t| t.name == "bn1.running_mean").unwrap();
        t.dtype = DType::I64;
        t.data = TensorData::I64(vec![0; 64]);
        let err = load_pretrained(&mut vs, PREFIX, &tensors).unwrap_err().to_string();
        assert!(err.contains("`bn1.running_mean` has dtype I64"), "{err}");
    }
}
