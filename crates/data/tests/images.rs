//! Decoding real JPEG/PNG files, the transforms against torchvision (run from the venv on the
//! same files), and the loader: order, determinism across worker counts, skipping and strict mode.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{image, run_python};
use embedrank_data::image::{decode_file, transform, Augment, CropBox, Pipeline, SampleRng, Transform};
use embedrank_data::loader::{Loader, LoaderConfig, LoaderError};
use embedrank_data::npy;

#[test]
fn decodes_png_exactly_and_jpeg_closely_in_every_colour_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (png, jpg) = (dir.path().join("a.png"), dir.path().join("a.jpg"));
    image(&png, 37, 23, 5);
    image(&jpg, 37, 23, 5);
    let want = image::open(&png).unwrap().into_rgb8();
    let got = decode_file(&png).unwrap();
    assert_eq!((got.width, got.height), (37, 23));
    assert_eq!(got.pixels, want.into_raw());
    let j = decode_file(&jpg).unwrap();
    assert_eq!((j.width, j.height, j.pixels.len()), (37, 23, 37 * 23 * 3));
    let mean_err: f64 = j
        .pixels
        .iter()
        .zip(&got.pixels)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .sum::<f64>()
        / j.pixels.len() as f64;
    assert!(mean_err < 12.0, "JPEG far from the original: {mean_err}");
    // Grey and RGBA files become RGB.
    let grey = dir.path().join("g.png");
    image::GrayImage::from_fn(4, 3, |x, y| image::Luma([(x * 40 + y) as u8]))
        .save(&grey)
        .unwrap();
    let g = decode_file(&grey).unwrap();
    assert_eq!(&g.pixels[3 * 5..3 * 6], &[41, 41, 41]); // pixel (1, 1)
    let rgba = dir.path().join("c.png");
    image::RgbaImage::from_pixel(2, 2, image::Rgba([9, 8, 7, 100]))
        .save(&rgba)
        .unwrap();
    assert_eq!(decode_file(&rgba).unwrap().pixels, [9, 8, 7].repeat(4));
}

#[test]
fn undecodable_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jpg");
    image(&good, 64, 48, 1);
    let bytes = fs::read(&good).unwrap();
    let cases: [(&str, &[u8]); 3] = [
        ("text.jpg", b"not an image at all"),
        ("cut.jpg", &bytes[..20]),
        ("empty.png", b""),
    ];
    for (name, content) in cases {
        let p = dir.path().join(name);
        fs::write(&p, content).unwrap();
        let err = decode_file(&p).unwrap_err().to_string();
        assert!(err.contains(name), "{err}");
    }
    assert!(decode_file(&dir.path().join("missing.jpg"))
        .unwrap_err()
        .to_string()
        .contains("missing.jpg"));
}

/// torchvision on the same PNGs: the test transform, and resized_crop (+ flip) for given boxes.
const TORCHVISION: &str = r#"
import json, sys
import numpy as np, torch
from PIL import Image
import torchvision.transforms as T
import torchvision.transforms.functional as F
out, files, boxes = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
norm = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
test = T.Compose([T.Resize(256), T.CenterCrop(224)])
rows = [norm(test(Image.open(f).convert("RGB"))).numpy().ravel() for f in files]
np.save(out + "/test.npy", np.stack(rows).astype(np.float32))
rows = []
for f, (top, left, h, w, flip) in zip(files, boxes):
    img = F.resized_crop(Image.open(f).convert("RGB"), top, left, h, w, [224, 224])
    rows.append(norm(F.hflip(img) if flip else img).numpy().ravel())
np.save(out + "/train.npy", np.stack(rows).astype(np.float32))
"#;

fn close(ours: &[f32], theirs: &[f32], what: &str) {
    assert_eq!(ours.len(), theirs.len());
    let diffs: Vec<f32> = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).collect();
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    let max = diffs.iter().cloned().fold(0.0, f32::max);
    // One 8-bit level is 1/255/0.225 ≈ 0.0174 after normalisation: allow rounding differences.
    assert!(mean < 0.01 && max < 0.07, "{what}: mean |diff| {mean}, max {max}");
}

#[test]
fn transforms_match_torchvision_on_the_same_images() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [(500, 375), (300, 451), (256, 256), (640, 97)];
    let files: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| {
            let p = dir.path().join(format!("{i}.png"));
            image(&p, w, h, i as u32 + 3);
            p
        })
        .collect();
    // Random-resized-crop boxes drawn by our sampler, replayed in torchvision.
    let train = Transform::paper_train();
    let plans: Vec<(CropBox, bool)> = files
        .iter()
        .zip(sizes)
        .enumerate()
        .map(|(i, (_, (w, h)))| {
            let plan = train.draw(w, h, &mut SampleRng::for_sample(7, 0, 0, i as u64));
            (plan.crop, plan.flip)
        })
        .collect();
    let json_files = serde_json::to_string(&files.iter().map(|f| f.to_str().unwrap()).collect::<Vec<_>>()).unwrap();
    let boxes: Vec<String> = plans
        .iter()
        .map(|(b, f)| format!("[{}, {}, {}, {}, {f}]", b.top, b.left, b.height, b.width))
        .collect();
    run_python(
        TORCHVISION,
        &[
            dir.path().to_str().unwrap(),
            &json_files,
            &format!("[{}]", boxes.join(","))
                .replace("true", "1")
                .replace("false", "0"),
        ],
    );
    let theirs_test = npy::read_matrix(&dir.path().join("test.npy")).unwrap();
    let theirs_train = npy::read_matrix(&dir.path().join("train.npy")).unwrap();
    let mut pipe = Pipeline::new();
    let n = Transform::paper_test().numel();
    for (i, f) in files.iter().enumerate() {
        let img = decode_file(f).unwrap();
        let mut out = vec![0.0; n];
        pipe.apply(
            &img,
            &Transform::paper_test(),
            &mut SampleRng::for_sample(0, 0, 0, 0),
            &mut out,
        )
        .unwrap();
        close(
            &out,
            &theirs_test.data[i * n..(i + 1) * n],
            &format!("test transform, image {i}"),
        );
        let (b, flip) = plans[i];
        pipe.crop_resize(&img, b, flip, 224, &mut out).unwrap();
        close(
            &out,
            &theirs_train.data[i * n..(i + 1) * n],
            &format!("train crop {b:?} flip {flip}, image {i}"),
        );
    }
}

#[test]
fn random_resized_crop_boxes_follow_the_scale_ratio_and_flip_laws() {
    let (w, h) = (500u32, 375u32);
    let mut flips = 0;
    let mut areas = Vec::new();
    for k in 0..20000 {
        let plan = Transform::paper_train().draw(w, h, &mut SampleRng::for_sample(1, 2, 3, k));
        let (b, flip) = (plan.crop, plan.flip);
        assert!(
            b.left >= 0.0 && b.top >= 0.0 && b.left + b.width <= w as f64 && b.top + b.height <= h as f64,
            "{b:?}"
        );
        assert_eq!(
            (b.left.fract(), b.top.fract(), b.width.fract(), b.height.fract()),
            (0.0, 0.0, 0.0, 0.0)
        );
        let area = b.width * b.height / (w * h) as f64;
        // Rounding the sides to whole pixels moves area and aspect slightly past the bounds.
        assert!((0.155..=1.0).contains(&area), "area {area}");
        let aspect = b.width / b.height;
        assert!((0.74..=1.345).contains(&aspect), "aspect {aspect}");
        areas.push(area);
        flips += usize::from(flip);
    }
    assert!((9700..10300).contains(&flips), "{flips} flips of 20000");
    // torchvision's own sampler on the same image size gives the same mean crop area (both have a
    // standard error of about 0.0014 over 20000 draws).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("areas.npy");
    run_python(RRC_AREAS, &[out.to_str().unwrap()]);
    let theirs = npy::read_matrix(&out).unwrap().data;
    let mean_theirs = theirs.iter().map(|&a| f64::from(a)).sum::<f64>() / theirs.len() as f64;
    let mean = areas.iter().sum::<f64>() / areas.len() as f64;
    assert!(
        (mean - mean_theirs).abs() < 0.008,
        "mean area {mean}, torchvision {mean_theirs}"
    );
    // A tall strip forces the fallback: the centred crop of the largest allowed aspect.
    let b = transform::random_resized_crop_box(
        10,
        1000,
        (0.99, 1.0),
        (0.75, 1.333),
        &mut SampleRng::for_sample(0, 0, 0, 0),
    );
    assert_eq!((b.left, b.top, b.width, b.height), (0.0, 493.0, 10.0, 13.0));
}

/// torchvision's RandomResizedCrop.get_params on a 500×375 image: 20000 area fractions.
const RRC_AREAS: &str = r#"
import sys
import numpy as np, torch
import torchvision.transforms as T
from PIL import Image
img, a = Image.new("RGB", (500, 375)), []
torch.manual_seed(0)
for _ in range(20000):
    i, j, h, w = T.RandomResizedCrop.get_params(img, (0.16, 1.0), (3 / 4, 4 / 3))
    a.append(h * w / (500 * 375))
np.save(sys.argv[1], np.array(a, dtype=np.float32).reshape(-1, 1))
"#;

fn loader_files(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("{i:03}.jpg"));
            image(&p, 60 + (i as u32 % 5) * 7, 50, i as u32);
            p
        })
        .collect()
}

#[test]
fn loader_is_ordered_and_deterministic_whatever_the_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let files = loader_files(dir.path(), 13);
    let batches: Vec<Vec<usize>> = vec![vec![0, 1, 2, 3], vec![12, 5, 5], vec![7], vec![8, 9, 10, 11, 4, 6]];
    let train = Transform::Train {
        size: 32,
        augment: Augment::imagenet(),
    };
    let run = |workers: usize, prefetch: usize, epoch: u64| {
        let cfg = LoaderConfig {
            workers,
            prefetch,
            seed: 42,
            strict: true,
            transform: train,
        };
        Loader::new(files.clone(), cfg)
            .epoch(epoch, batches.clone())
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    let one = run(1, 0, 3);
    assert_eq!(one.iter().map(|b| b.indices.clone()).collect::<Vec<_>>(), batches);
    for b in &one {
        assert_eq!(b.data.len(), b.indices.len() * 3 * 32 * 32);
        assert!(b.skipped.is_empty());
    }
    assert_eq!(run(2, 1, 3), one);
    assert_eq!(run(3, 5, 3), one);
    // The same batch made on this thread is the same too.
    let cfg = LoaderConfig {
        workers: 1,
        prefetch: 0,
        seed: 42,
        strict: true,
        transform: train,
    };
    assert_eq!(
        Loader::new(files.clone(), cfg).load_batch(3, 1, &batches[1]).unwrap(),
        one[1]
    );
    // Another epoch draws other crops; an image twice in a batch gets two different crops.
    assert_ne!(run(2, 1, 4)[0].data, one[0].data);
    let n = 3 * 32 * 32;
    assert_ne!(one[1].data[n..2 * n], one[1].data[2 * n..3 * n]);
}

#[test]
fn slices_of_batches_are_augmented_as_in_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let files = loader_files(dir.path(), 8);
    let batches: Vec<Vec<usize>> = vec![vec![0, 1, 2, 3, 4, 5], vec![7, 6, 5, 4, 3, 2]];
    let cfg = LoaderConfig {
        workers: 2,
        prefetch: 1,
        seed: 7,
        strict: true,
        transform: Transform::Train {
            size: 32,
            augment: Augment::imagenet(),
        },
    };
    let loader = Loader::new(files, cfg);
    let whole: Vec<_> = loader.epoch(2, batches.clone()).map(Result::unwrap).collect();
    let n = 3 * 32 * 32;
    // A data-parallel worker's share: slots 2..5 of each batch.
    let slices = batches.iter().map(|b| (2, b[2..5].to_vec())).collect();
    let part: Vec<_> = loader.epoch_slices(2, slices).map(Result::unwrap).collect();
    for (w, p) in whole.iter().zip(&part) {
        assert_eq!(p.indices, w.indices[2..5]);
        assert_eq!(p.data, w.data[2 * n..5 * n]);
    }
    // Loaded as a batch of its own (slot 0), the same images get other crops.
    let alone: Vec<_> = loader
        .epoch(2, batches.iter().map(|b| b[2..5].to_vec()).collect())
        .map(Result::unwrap)
        .collect();
    assert_ne!(alone[0].data, part[0].data);
}

#[test]
fn loader_skips_or_refuses_undecodable_images() {
    let dir = tempfile::tempdir().unwrap();
    let files = loader_files(dir.path(), 6);
    fs::write(&files[2], b"\xff\xd8\xff garbage").unwrap();
    fs::remove_file(&files[4]).unwrap();
    let batches = vec![vec![0, 1, 2], vec![3, 4, 5]];
    let mut cfg = LoaderConfig::new(2, Transform::Test { resize: 40, crop: 32 });
    let got: Vec<_> = Loader::new(files.clone(), cfg)
        .epoch(0, batches.clone())
        .map(Result::unwrap)
        .collect();
    assert_eq!(got[0].indices, [0, 1]);
    assert_eq!(got[1].indices, [3, 5]);
    assert_eq!(got[0].data.len(), 2 * 3 * 32 * 32);
    assert_eq!((got[0].skipped[0].index, got[1].skipped[0].index), (2, 4));
    assert!(got[0].skipped[0].reason.contains("002.jpg"));
    assert!(got[1].skipped[0].reason.contains("004.jpg"));
    // The kept images are exactly what a clean batch of them gives.
    let clean = Loader::new(files.clone(), cfg).load_batch(0, 0, &[0, 1]).unwrap();
    assert_eq!(clean.data, got[0].data);

    cfg.strict = true;
    let results: Vec<_> = Loader::new(files.clone(), cfg).epoch(0, batches).collect();
    let err = results[0].as_ref().unwrap_err().to_string();
    assert!(err.contains("002.jpg") && err.contains("cannot decode"), "{err}");
    let err = Loader::new(files, cfg).load_batch(0, 9, &[1, 6]).unwrap_err();
    assert!(
        matches!(
            err,
            LoaderError::Index {
                batch: 9,
                index: 6,
                len: 6
            }
        ),
        "{err}"
    );
}

/// torchvision on colour PNGs: PIL's `convert("L")`, `Resize(28)`, `CenterCrop(28)`, `ToTensor`,
/// `Normalize(0.2860, 0.3530)` (the Fashion-MNIST demo's input), against [`Transform::Grey`].
const TORCHVISION_GREY: &str = r#"
import json, sys
import numpy as np
from PIL import Image
import torchvision.transforms as T
out, files = sys.argv[1], json.loads(sys.argv[2])
t = T.Compose([T.Resize(28), T.CenterCrop(28), T.ToTensor(), T.Normalize([0.2860], [0.3530])])
rows = [t(Image.open(f).convert("L")).numpy().ravel() for f in files]
np.save(out + "/grey.npy", np.stack(rows).astype(np.float32))
"#;

#[test]
fn grey_transform_matches_pil_luma_and_torchvision() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [(28, 28), (300, 451), (64, 40), (97, 640)];
    let files: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| {
            let p = dir.path().join(format!("{i}.png"));
            image(&p, w, h, i as u32 + 11);
            p
        })
        .collect();
    let json_files = serde_json::to_string(&files.iter().map(|f| f.to_str().unwrap()).collect::<Vec<_>>()).unwrap();
    run_python(TORCHVISION_GREY, &[dir.path().to_str().unwrap(), &json_files]);
    let theirs = npy::read_matrix(&dir.path().join("grey.npy")).unwrap();
    let grey = Transform::Grey {
        size: 28,
        mean: 0.2860,
        std: 0.3530,
    };
    assert_eq!((grey.channels(), grey.numel()), (1, 784));
    let mut pipe = Pipeline::new();
    for (i, f) in files.iter().enumerate() {
        let mut out = vec![0.0; 784];
        pipe.apply(
            &decode_file(f).unwrap(),
            &grey,
            &mut SampleRng::for_sample(0, 0, 0, 0),
            &mut out,
        )
        .unwrap();
        let want = &theirs.data[i * 784..(i + 1) * 784];
        if sizes[i] == (28, 28) {
            // No resampling: PIL's integer luma exactly.
            let max = out.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(max < 1e-5, "image {i}: max |diff| {max}");
        } else {
            let diffs: Vec<f32> = out.iter().zip(want).map(|(a, b)| (a - b).abs()).collect();
            let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
            let max = diffs.iter().cloned().fold(0.0, f32::max);
            // One grey level is 1/255/0.353 ≈ 0.011.
            assert!(mean < 0.006 && max < 0.035, "image {i}: mean |diff| {mean}, max {max}");
        }
    }
}
