//! Our BN-Inception against Cadene's pretrainedmodels 0.7.4: the venv's Python
//! (`tests/oracle/make_bninception_parity.py`) writes its `BNInception`'s weights (`last_linear`
//! included, batch-norm statistics calibrated) as `.safetensors` and `.pth`, ImageNet-normalised
//! RGB inputs, the same inputs in its Caffe convention (BGR, 0–255, mean subtracted) and the
//! eval-mode features; we load the weights by name with [`load_pretrained`] (`last_linear`
//! skipped) and must reproduce the features within 1e-4, with our `transform_input` on the RGB
//! inputs and without it on the Caffe ones.

mod oracle;

use std::path::Path;
use std::sync::OnceLock;

use embedrank_torch::net::{load_pretrained, BnInception, LoadError};
use embedrank_torch::tch::nn::{ModuleT, VarStore};
use embedrank_torch::tch::{self, Device};

/// Largest accepted |ours − pretrainedmodels| on any feature.
const TOL: f64 = 1e-4;

/// Largest accepted |ours channels-last − reference NCHW| (oneDNN's NHWC kernels round differently).
const LAYOUT_TOL: f64 = 1e-3;

/// The fixtures, written once per test binary.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| oracle::run_script("make_bninception_parity.py"))
        .path()
}

/// Loads `file` into a fresh BN-Inception, runs it in eval mode on `input` and compares with `features`.
fn check(file: &str, transform_input: bool, input: &str, features: &str, nhwc: bool) {
    let dir = fixtures();
    let mut vs = VarStore::new(Device::Cpu);
    let net = BnInception::new(&(vs.root() / "backbone"), 3, transform_input);
    let report = oracle::load_all(&mut vs, &dir.join(file), nhwc);
    for name in [
        "last_linear.weight",
        "last_linear.bias",
        "inception_4e_double_3x3_2_bn.num_batches_tracked",
    ] {
        assert!(report.skipped.iter().any(|s| s == name), "{name} not skipped");
    }
    let tol = if nhwc { LAYOUT_TOL } else { TOL };
    let shape = oracle::assert_features(&net, dir, input, features, nhwc, tol, "pretrainedmodels");
    assert_eq!(shape[1], 1024);
}

#[test]
fn bninception_safetensors_matches_pretrainedmodels() {
    check("bninception.safetensors", true, "input.npy", "features.npy", false);
}

#[test]
fn bninception_pth_matches_pretrainedmodels() {
    check("bninception.pth", true, "input.npy", "features.npy", false);
}

#[test]
fn bninception_without_transform_input_matches_on_caffe_input() {
    check("bninception.pth", false, "input_raw.npy", "features.npy", false);
}

#[test]
fn bninception_channels_last_matches_pretrainedmodels() {
    check("bninception.safetensors", true, "input.npy", "features.npy", true);
}

#[test]
fn bninception_at_224px_matches_the_full_model_with_its_7x7_average_pool() {
    check(
        "bninception.safetensors",
        true,
        "input224.npy",
        "features224.npy",
        false,
    );
}

#[test]
fn transform_input_matters() {
    // Without the transform, the input of the first check gives other features: the flag is live.
    let dir = fixtures();
    let tensors = embedrank_data::weights::load(&dir.join("bninception.safetensors")).unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let net = BnInception::new(&(vs.root() / "backbone"), 3, false);
    load_pretrained(&mut vs, "backbone.", &tensors).unwrap();
    let ours = tch::no_grad(|| net.forward_t(&oracle::npy(dir, "input.npy"), false));
    let diff = oracle::max_diff(&ours, &oracle::npy(dir, "features.npy"));
    assert!(diff > 100.0 * TOL, "transform_input=false still matches ({diff:e})");
}

#[test]
fn a_misnamed_or_missing_weight_is_refused() {
    let dir = fixtures();
    let tensors = embedrank_data::weights::load(&dir.join("bninception.safetensors")).unwrap();
    let fresh = || {
        let vs = VarStore::new(Device::Cpu);
        BnInception::new(&(vs.root() / "backbone"), 3, true);
        vs
    };
    // torchvision's naming (`….bn.weight`) instead of pretrainedmodels' (`…_bn.weight`).
    let mut renamed = tensors.clone();
    let t = renamed
        .iter_mut()
        .find(|t| t.name == "inception_3a_1x1_bn.weight")
        .unwrap();
    t.name = "inception_3a_1x1.bn.weight".into();
    match load_pretrained(&mut fresh(), "backbone.", &renamed) {
        Err(LoadError::Unknown { name, .. }) => assert_eq!(name, "inception_3a_1x1.bn.weight"),
        other => panic!("a misnamed weight was not refused: {other:?}"),
    }
    let without: Vec<_> = tensors
        .iter()
        .filter(|t| t.name != "inception_5b_pool_proj.bias")
        .cloned()
        .collect();
    match load_pretrained(&mut fresh(), "backbone.", &without) {
        Err(LoadError::Missing { count, shown, .. }) => {
            assert_eq!(count, 1);
            assert_eq!(shown, ["backbone.inception_5b_pool_proj.bias"]);
        }
        other => panic!("a missing weight was not refused: {other:?}"),
    }
}
