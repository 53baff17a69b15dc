//! The training augmentation's parts against torchvision (run from the venv on the same PNGs, with
//! the parameters our sampler drew): pad-crop, flip and each colour-jitter adjustment; and the laws
//! of the draws (offset ranges, factor ranges, random order).

mod common;

use std::path::PathBuf;

use common::{image, run_python};
use embedrank_data::image::{
    decode_file, Adjust, Augment, Crop, Jitter, JitterDraw, Pipeline, Plan, SampleRng, Transform,
};
use embedrank_data::npy;

/// torchvision on the same PNGs: for each file, the geometry (`resized_crop`, or `resize` to a
/// square + `pad` + `crop` for a pad-crop), the flip, then the colour adjustments in the given
/// order with `torchvision.transforms.functional` on the float tensor, then normalisation.
const TORCHVISION: &str = r#"
import json, sys
import numpy as np, torch
from PIL import Image
import torchvision.transforms.functional as F
out, cases = sys.argv[1], json.loads(sys.argv[2])
adjust = {"Brightness": F.adjust_brightness, "Contrast": F.adjust_contrast,
          "Saturation": F.adjust_saturation, "Hue": F.adjust_hue}
rows = []
for c in cases:
    img, s = Image.open(c["file"]).convert("RGB"), c["size"]
    if c["pad"] is None:
        top, left, h, w = c["box"]
        img = F.resized_crop(img, top, left, h, w, [s, s])
    else:
        p, top, left = c["pad"]
        img = F.crop(F.pad(F.resize(img, [s, s]), p, fill=0), top, left, s, s)
    if c["flip"]:
        img = F.hflip(img)
    x = F.to_tensor(img)
    for name, factor in c["steps"]:
        x = adjust[name](x, factor)
    x = F.normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    rows.append(x.numpy().ravel())
np.save(out + "/aug.npy", np.stack(rows).astype(np.float32))
"#;

/// Our output and torchvision's for each `(file, transform, seed)`.
fn both(cases: &[(PathBuf, Transform, u64)]) -> Vec<(Vec<f32>, Vec<f32>, Plan)> {
    let dir = tempfile::tempdir().unwrap();
    let mut pipe = Pipeline::new();
    let mut ours = Vec::new();
    let mut json = Vec::new();
    for (file, t, seed) in cases {
        let img = decode_file(file).unwrap();
        let plan = t.draw(img.width, img.height, &mut SampleRng::for_sample(*seed, 1, 2, 3));
        let mut out = vec![0.0; t.numel()];
        pipe.render(&img, &plan, t.size(), &mut out).unwrap();
        let b = plan.crop;
        json.push(serde_json::json!({
            "file": file.to_str().unwrap(),
            "size": t.size(),
            "box": [b.top, b.left, b.height, b.width],
            "pad": plan.pad.map(|w| [w.padding, w.top, w.left]),
            "flip": plan.flip,
            "steps": plan.jitter.steps.iter().map(|(a, f)| (format!("{a:?}"), *f)).collect::<Vec<_>>(),
        }));
        ours.push((out, plan));
    }
    let cases = serde_json::to_string(&json).unwrap();
    run_python(TORCHVISION, &[dir.path().to_str().unwrap(), &cases]);
    let theirs = npy::read_matrix(&dir.path().join("aug.npy")).unwrap();
    let n = theirs.data.len() / ours.len();
    ours.into_iter()
        .enumerate()
        .map(|(i, (o, p))| (o, theirs.data[i * n..(i + 1) * n].to_vec(), p))
        .collect()
}

/// Mean and largest absolute difference.
fn diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let d: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    (
        d.iter().sum::<f32>() / d.len() as f32,
        d.iter().cloned().fold(0.0, f32::max),
    )
}

fn pngs(dir: &std::path::Path, sizes: &[(u32, u32)]) -> Vec<PathBuf> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| {
            let p = dir.join(format!("{i}.png"));
            image(&p, w, h, i as u32 + 11);
            p
        })
        .collect()
}

#[test]
fn pad_crop_and_flip_match_torchvision() {
    let dir = tempfile::tempdir().unwrap();
    let files = pngs(dir.path(), &[(32, 32), (28, 28), (97, 61), (40, 130)]);
    let t = |padding: u32| Transform::Train {
        size: 32,
        augment: Augment {
            crop: Crop::PadCrop { padding },
            flip: true,
            jitter: Jitter::default(),
        },
    };
    let cases: Vec<_> = files
        .iter()
        .flat_map(|f| (0..4).map(move |s| (f.clone(), t([4, 1, 8, 0][s as usize]), s)))
        .collect();
    let results = both(&cases);
    let mut flips = 0;
    for (i, (ours, theirs, plan)) in results.iter().enumerate() {
        let (mean, max) = diff(ours, theirs);
        // The resize of a square image to its own size is exact in both; the others differ by PIL's
        // and fast_image_resize's rounding (one 8-bit level is 1/255/0.225 ≈ 0.0174 after
        // normalising; the same bound as the other transforms' tests); the window and the black
        // fill are exact.
        assert!(mean < 0.01 && max < 0.07, "case {i} {plan:?}: mean {mean}, max {max}");
        if i < 4 {
            assert_eq!(max, 0.0, "case {i}: a square image at its own size must match exactly");
        }
        flips += usize::from(plan.flip);
    }
    assert!(flips > 0 && flips < results.len(), "{flips} flips of {}", results.len());
}

#[test]
fn each_colour_adjustment_matches_torchvision() {
    let dir = tempfile::tempdir().unwrap();
    let files = pngs(dir.path(), &[(48, 48), (64, 64)]);
    // The test transform at the image's own size is the identity, so only the jitter differs.
    let with = |jitter: Jitter| Transform::Train {
        size: 48,
        augment: Augment {
            crop: Crop::Center { resize: 48 },
            flip: false,
            jitter,
        },
    };
    let one = |b, c, s, h| Jitter {
        brightness: b,
        contrast: c,
        saturation: s,
        hue: h,
    };
    let jitters = [
        one(0.8, 0.0, 0.0, 0.0),
        one(0.0, 0.9, 0.0, 0.0),
        one(0.0, 0.0, 0.9, 0.0),
        one(0.0, 0.0, 0.0, 0.5),
        one(0.4, 0.4, 0.4, 0.1),
    ];
    let cases: Vec<_> = jitters
        .iter()
        .enumerate()
        .flat_map(|(k, &j)| (0..3).map(move |s| (k, j, s as u64)))
        .map(|(k, j, s)| (files[0].clone(), with(j), 10 * k as u64 + s))
        .collect();
    let results = both(&cases);
    for (i, (ours, theirs, plan)) in results.iter().enumerate() {
        let (mean, max) = diff(ours, theirs);
        // Same float formulas in float32 on the same pixels: only summation order (the contrast
        // mean) and HSV rounding differ.
        assert!(
            mean < 1e-5 && max < 1e-4,
            "case {i} {:?}: mean {mean}, max {max}",
            plan.jitter
        );
        let j = jitters[i / 3];
        let want = [j.brightness, j.contrast, j.saturation, j.hue]
            .iter()
            .filter(|&&x| x > 0.0)
            .count();
        assert_eq!(plan.jitter.steps.len(), want, "{:?}", plan.jitter);
    }
    // A jitter of factor 1 changes nothing, so the identity case really is the identity.
    let identity = Transform::Train {
        size: 64,
        augment: Augment::none(64),
    };
    let test = Transform::Test { resize: 64, crop: 64 };
    let img = decode_file(&files[1]).unwrap();
    let mut pipe = Pipeline::new();
    let (mut a, mut b) = (vec![0.0; test.numel()], vec![0.0; test.numel()]);
    let mut rng = SampleRng::for_sample(0, 0, 0, 0);
    pipe.render(&img, &identity.draw(64, 64, &mut rng), 64, &mut a).unwrap();
    let mut plan = test.draw(64, 64, &mut rng);
    plan.jitter = JitterDraw {
        steps: vec![(Adjust::Brightness, 1.0), (Adjust::Saturation, 1.0), (Adjust::Hue, 0.0)],
    };
    pipe.render(&img, &plan, 64, &mut b).unwrap();
    assert!(diff(&a, &b).1 < 1e-5);
}

#[test]
fn draws_follow_torchvisions_ranges_and_orders() {
    let jitter = Jitter {
        brightness: 0.4,
        contrast: 1.5,
        saturation: 0.2,
        hue: 0.3,
    };
    let mut orders = std::collections::BTreeSet::new();
    let mut offsets = [0usize; 9];
    let mut hue_sum = 0.0;
    let n = 20000;
    for k in 0..n {
        let mut rng = SampleRng::for_sample(5, 1, 0, k);
        let d = jitter.draw(&mut rng);
        assert_eq!(d.steps.len(), 4);
        orders.insert(d.steps.iter().map(|(a, _)| format!("{a:?}")).collect::<Vec<_>>());
        for &(a, f) in &d.steps {
            let (lo, hi) = match a {
                Adjust::Brightness => (0.6, 1.4),
                Adjust::Contrast => (0.0, 2.5), // max(0, 1 − 1.5)
                Adjust::Saturation => (0.8, 1.2),
                Adjust::Hue => (-0.3, 0.3),
            };
            assert!((lo..hi).contains(&f), "{a:?} {f}");
            if a == Adjust::Hue {
                hue_sum += f;
            }
        }
        let w = embedrank_data::image::augment::pad_window(4, &mut rng);
        assert!(w.top <= 8 && w.left <= 8, "{w:?}");
        offsets[w.left as usize] += 1;
    }
    assert_eq!(orders.len(), 24, "every order of the four adjustments appears");
    assert!((hue_sum / n as f64).abs() < 0.01, "hue mean {}", hue_sum / n as f64);
    // Each of the 9 offsets has probability 1/9 (2222 of 20000; standard deviation about 44).
    assert!(offsets.iter().all(|&c| (2000..2450).contains(&c)), "{offsets:?}");
    // The imagenet preset draws no jitter and nothing after its crop and flip.
    let t = Transform::paper_train();
    let (mut a, mut b) = (SampleRng::for_sample(1, 1, 1, 1), SampleRng::for_sample(1, 1, 1, 1));
    let plan = t.draw(500, 375, &mut a);
    assert!(plan.jitter.steps.is_empty() && plan.pad.is_none());
    embedrank_data::image::transform::random_resized_crop_box(500, 375, (0.16, 1.0), (0.75, 4.0 / 3.0), &mut b);
    b.uniform(0.0, 1.0);
    assert_eq!(a.next_u64(), b.next_u64());
}
