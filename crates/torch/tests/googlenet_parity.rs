//! Our GoogLeNet against torchvision 0.26: the venv's Python (`tests/oracle/make_googlenet_parity.py`)
//! writes a torchvision GoogLeNet's weights (auxiliary heads and `fc` included, batch-norm
//! statistics calibrated) as `.safetensors` and `.pth`, inputs and the eval-mode features with and
//! without `transform_input`; we load the weights by name with [`load_pretrained`] (the auxiliary
//! heads and `fc` skipped) and must reproduce the features within 1e-4.

mod oracle;

use std::path::Path;
use std::sync::OnceLock;

use embedrank_torch::net::{load_pretrained, GoogLeNet};
use embedrank_torch::tch::nn::{ModuleT, VarStore};
use embedrank_torch::tch::{self, Device};

/// Largest accepted |ours − torchvision| on any feature.
const TOL: f64 = 1e-4;

/// Largest accepted |ours channels-last − torchvision NCHW| (oneDNN's NHWC kernels round differently).
const LAYOUT_TOL: f64 = 1e-3;

/// The fixtures, written once per test binary.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| oracle::run_script("make_googlenet_parity.py"))
        .path()
}

/// Loads `file` into a fresh GoogLeNet, runs it in eval mode on `input` and compares with `features`.
fn check(file: &str, transform_input: bool, input: &str, features: &str, nhwc: bool) {
    let dir = fixtures();
    let mut vs = VarStore::new(Device::Cpu);
    let net = GoogLeNet::new(&(vs.root() / "backbone"), 3, transform_input);
    let report = oracle::load_all(&mut vs, &dir.join(file), nhwc);
    for name in [
        "fc.weight",
        "aux1.fc2.bias",
        "aux2.conv.conv.weight",
        "inception4a.branch1.bn.num_batches_tracked",
    ] {
        assert!(report.skipped.iter().any(|s| s == name), "{name} not skipped");
    }
    let tol = if nhwc { LAYOUT_TOL } else { TOL };
    let shape = oracle::assert_features(&net, dir, input, features, nhwc, tol, "torchvision");
    assert_eq!(shape, [2, 1024]);
}

#[test]
fn googlenet_safetensors_matches_torchvision() {
    check(
        "googlenet.safetensors",
        true,
        "input.npy",
        "googlenet_features.npy",
        false,
    );
}

#[test]
fn googlenet_pth_matches_torchvision() {
    check("googlenet.pth", true, "input.npy", "googlenet_features.npy", false);
}

#[test]
fn googlenet_without_transform_input_matches_torchvision() {
    check(
        "googlenet.pth",
        false,
        "input_raw.npy",
        "googlenet_features_raw.npy",
        false,
    );
}

#[test]
fn googlenet_channels_last_matches_torchvision() {
    check(
        "googlenet.safetensors",
        true,
        "input.npy",
        "googlenet_features.npy",
        true,
    );
}

#[test]
fn transform_input_matters() {
    // Without the transform, the input of the first check gives other features: the flag is live.
    let dir = fixtures();
    let tensors = embedrank_data::weights::load(&dir.join("googlenet.safetensors")).unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let net = GoogLeNet::new(&(vs.root() / "backbone"), 3, false);
    load_pretrained(&mut vs, "backbone.", &tensors).unwrap();
    let ours = tch::no_grad(|| net.forward_t(&oracle::npy(dir, "input.npy"), false));
    let diff = oracle::max_diff(&ours, &oracle::npy(dir, "googlenet_features.npy"));
    assert!(diff > 100.0 * TOL, "transform_input=false still matches ({diff:e})");
}
