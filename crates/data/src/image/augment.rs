//! The parts of the training augmentation, as torchvision defines them: the crop
//! (`RandomResizedCrop`, `Resize((size, size))` + `RandomCrop(size, padding)` with zero fill, or the
//! test-time `Resize` + `CenterCrop`), `RandomHorizontalFlip(0.5)`, and
//! `ColorJitter(brightness, contrast, saturation, hue)`.
//!
//! A sample's random draws are made in this order from its [`SampleRng`]: the crop, the flip (only
//! when flipping is on), then the jitter (only when some jitter is on): the order of the four
//! adjustments (a random permutation, as `ColorJitter` makes one) and their factors, each uniform
//! in torchvision's range (`[max(0, 1 − b), 1 + b]`, hue `[−h, h]`). So the `imagenet` preset (crop
//! and flip, no jitter) draws exactly what it drew before jitter existed.
//!
//! The jitter works on the float image in `[0, 1]` (after the 8-bit resize, before normalising),
//! with torchvision's tensor definitions: blends clamped to `[0, 1]`, grey as
//! `0.2989 R + 0.587 G + 0.114 B`, contrast blending towards the mean grey of the whole output image,
//! hue through torchvision's float HSV round trip. (torchvision on PIL images rounds to 8 bits after
//! each step instead; the two differ by less than one 8-bit level per step.)

use super::transform::{CropBox, SampleRng};

/// How the training crop is taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crop {
    /// `RandomResizedCrop(size, scale, ratio)`.
    RandomResized {
        /// Range of the crop's area as a fraction of the image's.
        scale: (f64, f64),
        /// Range of the crop's aspect ratio (width / height).
        ratio: (f64, f64),
    },
    /// `Resize((size, size))` then `RandomCrop(size, padding)` with zero (black) fill.
    PadCrop {
        /// Pixels of black added on each side before the random `size × size` crop.
        padding: u32,
    },
    /// `Resize(resize)` + `CenterCrop(size)`: the test transform, no randomness.
    Center {
        /// Shorter side after resizing.
        resize: u32,
    },
}

/// `ColorJitter`'s arguments: each factor is drawn from `[max(0, 1 − x), 1 + x]` (hue from
/// `[−hue, hue]`, `hue ≤ 0.5`); 0 leaves that adjustment out.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Jitter {
    /// Brightness spread.
    pub brightness: f64,
    /// Contrast spread.
    pub contrast: f64,
    /// Saturation spread.
    pub saturation: f64,
    /// Hue spread (at most 0.5).
    pub hue: f64,
}

/// One of the four colour adjustments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjust {
    /// Scale towards black.
    Brightness,
    /// Blend with the image's mean grey.
    Contrast,
    /// Blend with each pixel's grey.
    Saturation,
    /// Rotate the hue.
    Hue,
}

/// The jitter drawn for one sample: the adjustments to make, in order, with their factors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JitterDraw {
    /// `(adjustment, factor)` in the order they are applied.
    pub steps: Vec<(Adjust, f64)>,
}

impl Jitter {
    /// Whether any adjustment is on.
    pub fn is_on(&self) -> bool {
        self.brightness > 0.0 || self.contrast > 0.0 || self.saturation > 0.0 || self.hue > 0.0
    }

    /// `ColorJitter.get_params`: a random order of the four, then each factor that is on.
    pub fn draw(&self, rng: &mut SampleRng) -> JitterDraw {
        let mut order = [Adjust::Brightness, Adjust::Contrast, Adjust::Saturation, Adjust::Hue];
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let around_one = |x: f64, rng: &mut SampleRng| (x > 0.0).then(|| rng.uniform((1.0 - x).max(0.0), 1.0 + x));
        let b = around_one(self.brightness, rng);
        let c = around_one(self.contrast, rng);
        let s = around_one(self.saturation, rng);
        let h = (self.hue > 0.0).then(|| rng.uniform(-self.hue, self.hue));
        let steps = order
            .into_iter()
            .filter_map(|a| {
                let factor = match a {
                    Adjust::Brightness => b,
                    Adjust::Contrast => c,
                    Adjust::Saturation => s,
                    Adjust::Hue => h,
                };
                factor.map(|f| (a, f))
            })
            .collect();
        JitterDraw { steps }
    }
}

/// The whole training augmentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// How the crop is taken.
    pub crop: Crop,
    /// `RandomHorizontalFlip(0.5)` on or off.
    pub flip: bool,
    /// `ColorJitter`'s arguments.
    pub jitter: Jitter,
}

impl Augment {
    /// The papers' (and torchvision's ImageNet recipe's) augmentation: random-resized crop, scale
    /// 0.16–1, ratio 3/4–4/3, flip, no colour jitter.
    pub fn imagenet() -> Self {
        Augment {
            crop: Crop::RandomResized {
                scale: (0.16, 1.0),
                ratio: (3.0 / 4.0, 4.0 / 3.0),
            },
            flip: true,
            jitter: Jitter::default(),
        }
    }

    /// No augmentation: the test transform (`Resize(resize)` + `CenterCrop`).
    pub fn none(resize: u32) -> Self {
        Augment {
            crop: Crop::Center { resize },
            flip: false,
            jitter: Jitter::default(),
        }
    }
}

/// A pad-crop's draw: the `size × size` window taken from the resized image padded by `padding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PadWindow {
    /// Black pixels added on each side.
    pub padding: u32,
    /// The window's top row in the padded image (`0..=2·padding`).
    pub top: u32,
    /// The window's left column in the padded image (`0..=2·padding`).
    pub left: u32,
}

/// Everything drawn for one sample: the source box, the pad-crop window, the flip and the jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The rectangle of the source image resized to the output side.
    pub crop: CropBox,
    /// For a pad-crop, the window taken after padding the resized image.
    pub pad: Option<PadWindow>,
    /// Whether the output is flipped horizontally.
    pub flip: bool,
    /// The colour jitter to apply (none when jitter is off).
    pub jitter: JitterDraw,
}

/// `RandomCrop.get_params` on the resized image padded by `padding`: offsets uniform in `0..=2P`.
pub fn pad_window(padding: u32, rng: &mut SampleRng) -> PadWindow {
    let span = 2 * u64::from(padding) + 1;
    let top = rng.below(span) as u32;
    let left = rng.below(span) as u32;
    PadWindow { padding, top, left }
}

/// Moves the `side × side` RGB image `src` by a pad-crop window into `dst` (black where the window
/// is outside the image).
pub fn shift(src: &[u8], side: usize, w: PadWindow, dst: &mut Vec<u8>) {
    dst.clear();
    dst.resize(side * side * 3, 0);
    let p = w.padding as isize;
    let (dy, dx) = (w.top as isize - p, w.left as isize - p);
    for y in 0..side as isize {
        let sy = y + dy;
        if sy < 0 || sy >= side as isize {
            continue;
        }
        let x0 = (-dx).max(0);
        let x1 = (side as isize - dx).min(side as isize);
        if x0 >= x1 {
            continue;
        }
        let (s, d) = (
            (sy as usize * side + (x0 + dx) as usize) * 3,
            (y as usize * side + x0 as usize) * 3,
        );
        let n = (x1 - x0) as usize * 3;
        dst[d..d + n].copy_from_slice(&src[s..s + n]);
    }
}

/// Applies the drawn jitter to the RGB planes `r`, `g`, `b` (floats in `[0, 1]`).
pub fn apply_jitter(draw: &JitterDraw, r: &mut [f32], g: &mut [f32], b: &mut [f32]) {
    for &(adjust, factor) in &draw.steps {
        let f = factor as f32;
        match adjust {
            Adjust::Brightness => {
                for v in r.iter_mut().chain(g.iter_mut()).chain(b.iter_mut()) {
                    *v = blend(f, *v, 0.0);
                }
            }
            Adjust::Contrast => {
                let n = r.len().max(1) as f64;
                let sum: f64 = (0..r.len()).map(|i| f64::from(grey(r[i], g[i], b[i]))).sum();
                let mean = (sum / n) as f32;
                for v in r.iter_mut().chain(g.iter_mut()).chain(b.iter_mut()) {
                    *v = blend(f, *v, mean);
                }
            }
            Adjust::Saturation => {
                for i in 0..r.len() {
                    let l = grey(r[i], g[i], b[i]);
                    (r[i], g[i], b[i]) = (blend(f, r[i], l), blend(f, g[i], l), blend(f, b[i], l));
                }
            }
            Adjust::Hue => {
                for i in 0..r.len() {
                    (r[i], g[i], b[i]) = rotate_hue(r[i], g[i], b[i], f);
                }
            }
        }
    }
}

/// torchvision's `_blend` for floats: `(f·a + (1 − f)·b)` clamped to `[0, 1]`.
fn blend(f: f32, a: f32, b: f32) -> f32 {
    (f * a + (1.0 - f) * b).clamp(0.0, 1.0)
}

/// torchvision's `rgb_to_grayscale` weights.
fn grey(r: f32, g: f32, b: f32) -> f32 {
    0.2989 * r + 0.587 * g + 0.114 * b
}

/// torchvision's `adjust_hue` on one float pixel: `_rgb2hsv`, `h = (h + factor) mod 1`, `_hsv2rgb`.
fn rotate_hue(r: f32, g: f32, b: f32, factor: f32) -> (f32, f32, f32) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let eqc = maxc == minc;
    let cr = maxc - minc;
    let s = cr / if eqc { 1.0 } else { maxc };
    let div = if eqc { 1.0 } else { cr };
    let (rc, gc, bc) = ((maxc - r) / div, (maxc - g) / div, (maxc - b) / div);
    let h = if maxc == r {
        bc - gc
    } else if maxc == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    let h = (h / 6.0 + 1.0) % 1.0;
    let h = (h + factor).rem_euclid(1.0);
    let v = maxc;
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    match (i as i32).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}
