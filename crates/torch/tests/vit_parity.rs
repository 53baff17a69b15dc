//! Our ViT-S/16, DeiT-S/16 and ViT-B/16 against timm 1.0.22: the venv's Python
//! (`tests/oracle/make_vit_parity.py`) writes random timm models' state dicts (classifier `head`
//! included) as `.safetensors` (and `.pth` for ViT-S), inputs and the eval-mode features; we read
//! the weights with [`embedrank_data::weights::load`], load them by name with [`load_pretrained`]
//! and must reproduce the features within 1e-4: class-token and mean pooling, 224 px and 64 px
//! (position embedding resampled as timm's `dynamic_img_size`), and channels-last input.

mod oracle;

use std::path::Path;
use std::sync::OnceLock;

use embedrank_torch::config::VitPool;
use embedrank_torch::net::{load_pretrained, VisionTransformer, VitSize};
use embedrank_torch::tch::nn::{ModuleT, VarStore};
use embedrank_torch::tch::{self, Device};

/// Largest accepted |ours − timm| on any feature.
const TOL: f64 = 1e-4;

/// The fixtures, written once per test binary.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| oracle::run_script("make_vit_parity.py")).path()
}

/// Loads `file` into a fresh ViT of `size` and `pool`, runs it in eval mode on `input` (stored
/// channels-last with `nhwc`) and compares with `features`.
fn check(size: VitSize, pool: VitPool, file: &str, input: &str, features: &str, nhwc: bool) {
    let dir = fixtures();
    let tensors = embedrank_data::weights::load(&dir.join(file)).unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let net = VisionTransformer::new(&(vs.root() / "backbone"), size, pool, 3);
    let report = load_pretrained(&mut vs, "backbone.", &tensors).unwrap();
    assert_eq!(report.loaded, vs.variables().len());
    let mut skipped = report.skipped.clone();
    skipped.sort();
    assert_eq!(skipped, ["head.bias", "head.weight"]);
    oracle::assert_features(&net, dir, input, features, nhwc, TOL, "timm");
}

#[test]
fn vit_s16_safetensors_matches_timm() {
    check(
        VitSize::Small,
        VitPool::Token,
        "vit_s16.safetensors",
        "input.npy",
        "vit_s16_token.npy",
        false,
    );
}

#[test]
fn vit_s16_pth_matches_timm() {
    check(
        VitSize::Small,
        VitPool::Token,
        "vit_s16.pth",
        "input.npy",
        "vit_s16_token.npy",
        false,
    );
}

#[test]
fn vit_s16_channels_last_input_matches_timm() {
    check(
        VitSize::Small,
        VitPool::Token,
        "vit_s16.pth",
        "input.npy",
        "vit_s16_token.npy",
        true,
    );
}

#[test]
fn vit_s16_mean_pooling_matches_timm() {
    check(
        VitSize::Small,
        VitPool::Mean,
        "vit_s16.safetensors",
        "input.npy",
        "vit_s16_mean.npy",
        false,
    );
}

#[test]
fn vit_s16_at_64px_matches_timm_dynamic_img_size() {
    check(
        VitSize::Small,
        VitPool::Token,
        "vit_s16.safetensors",
        "input64.npy",
        "vit_s16_token64.npy",
        false,
    );
}

#[test]
fn deit_s16_matches_timm() {
    check(
        VitSize::Small,
        VitPool::Token,
        "deit_s16.safetensors",
        "input.npy",
        "deit_s16_token.npy",
        false,
    );
}

#[test]
fn vit_b16_matches_timm() {
    check(
        VitSize::Base,
        VitPool::Token,
        "vit_b16.safetensors",
        "input.npy",
        "vit_b16_token.npy",
        false,
    );
}

#[test]
fn a_wrong_weight_breaks_parity() {
    // The check can fail: ViT-S weights with one block's MLP perturbed.
    let dir = fixtures();
    let mut tensors = embedrank_data::weights::load(&dir.join("vit_s16.safetensors")).unwrap();
    let t = tensors.iter_mut().find(|t| t.name == "blocks.5.mlp.fc2.bias").unwrap();
    if let embedrank_data::weights::TensorData::F32(v) = &mut t.data {
        v[0] += 0.01;
    }
    let mut vs = VarStore::new(Device::Cpu);
    let net = VisionTransformer::new(&(vs.root() / "backbone"), VitSize::Small, VitPool::Token, 3);
    load_pretrained(&mut vs, "backbone.", &tensors).unwrap();
    let ours = tch::no_grad(|| net.forward_t(&oracle::npy(dir, "input.npy"), false));
    let diff = oracle::max_diff(&ours, &oracle::npy(dir, "vit_s16_token.npy"));
    assert!(diff > 10.0 * TOL, "a perturbed bias still matches (max diff {diff:e})");
}
