//! Our ResNet-18/50 against torchvision 0.26: the venv's Python (`tests/oracle/make_resnet_parity.py`)
//! writes a torchvision model's weights (batch-norm statistics calibrated, so eval-mode features
//! are O(1)) as `.safetensors` and `.pth`, an input and the eval-mode features; we read the
//! weights with [`embedrank_data::weights::load`], load them with [`load_pretrained`] and must
//! reproduce the features within 1e-4, also with channels-last variables and input (compared
//! with torchvision run channels-last).

mod oracle;

use std::path::Path;
use std::sync::OnceLock;

use embedrank_torch::net::{channels_last, ResNet, ResNetDepth};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Tensor};

/// Largest accepted |ours − torchvision| on any feature, both in the same memory layout.
const TOL: f64 = 1e-4;

/// Largest accepted |ours channels-last − torchvision NCHW|: oneDNN's NHWC kernels round
/// differently (torchvision's own ResNet-50 moves by 1.5e-4 when switched to channels-last).
const LAYOUT_TOL: f64 = 1e-3;

/// The fixtures, written once per test binary.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| oracle::run_script("make_resnet_parity.py")).path()
}

fn npy(name: &str) -> Tensor {
    oracle::npy(fixtures(), name)
}

/// Loads `file` into a fresh ResNet of `depth` (variables stored NHWC with `nhwc`), runs it in
/// eval mode on the fixture input (NHWC too with `nhwc`) and checks it against torchvision's
/// features in the same layout; with `nhwc` also against the NCHW ones, within [`LAYOUT_TOL`].
fn check(depth: ResNetDepth, name: &str, file: &str, nhwc: bool) {
    let mut vs = VarStore::new(Device::Cpu);
    let net = ResNet::new(&(vs.root() / "backbone"), depth);
    let report = oracle::load_all(&mut vs, &fixtures().join(file), nhwc);
    assert!(report.skipped.iter().any(|s| s == "fc.weight"));
    assert!(report.skipped.iter().any(|s| s == "layer1.0.bn1.num_batches_tracked"));
    let mut input = npy("input.npy");
    if nhwc {
        input = channels_last(&input);
        let w = &vs.variables()["backbone.layer1.0.conv1.weight"];
        assert_eq!(
            w.stride()[1],
            1,
            "the copy lost the channels-last layout: {:?}",
            w.stride()
        );
    }
    let ours = tch::no_grad(|| net.forward_t(&input, false));
    assert_eq!(ours.size(), [2, net.out_features()]);
    let nchw = npy(&format!("{name}_features.npy"));
    let scale = nchw.abs().max().double_value(&[]);
    assert!(scale > 0.1, "the reference features are trivially small (max {scale})");
    let reference = if nhwc {
        npy(&format!("{name}_features_cl.npy"))
    } else {
        nchw.shallow_clone()
    };
    assert_eq!(ours.size(), reference.size());
    let max_diff = |r: &Tensor| oracle::max_diff(&ours, r);
    let diff = max_diff(&reference);
    let layout = if nhwc { " (channels-last)" } else { "" };
    eprintln!("{file}{layout}: max |ours - torchvision| = {diff:.3e} (max |ref| = {scale:.3})");
    assert!(
        diff <= TOL,
        "{file}{layout}: max |ours - torchvision| = {diff:e} > {TOL:e}"
    );
    if nhwc {
        let diff = max_diff(&nchw);
        eprintln!("{file}{layout}: max |ours - torchvision NCHW| = {diff:.3e}");
        assert!(
            diff <= LAYOUT_TOL,
            "{file}{layout}: max |ours - torchvision NCHW| = {diff:e} > {LAYOUT_TOL:e}"
        );
    }
}

#[test]
fn resnet18_safetensors_matches_torchvision() {
    check(ResNetDepth::R18, "resnet18", "resnet18.safetensors", false);
}

#[test]
fn resnet18_pth_matches_torchvision() {
    check(ResNetDepth::R18, "resnet18", "resnet18.pth", false);
}

#[test]
fn resnet18_channels_last_matches_torchvision() {
    check(ResNetDepth::R18, "resnet18", "resnet18.safetensors", true);
}

#[test]
fn resnet50_safetensors_matches_torchvision() {
    check(ResNetDepth::R50, "resnet50", "resnet50.safetensors", false);
}

#[test]
fn resnet50_pth_matches_torchvision() {
    check(ResNetDepth::R50, "resnet50", "resnet50.pth", false);
}

#[test]
fn resnet50_channels_last_matches_torchvision() {
    check(ResNetDepth::R50, "resnet50", "resnet50.pth", true);
}
