//! The papers' image transforms, as torchvision defines them, written into normalised CHW floats.
//!
//! - Train: the [`Augment`] of the run (see [`super::augment`]): by default (`imagenet`)
//!   `RandomResizedCrop(size, scale, ratio)` (torchvision's sampling: 10 tries of a random area and
//!   log-uniform aspect, then a centred fallback) + `RandomHorizontalFlip(0.5)`; or
//!   `Resize((size, size))` + `RandomCrop(size, padding)`, or the test transform; optionally
//!   `ColorJitter`.
//! - Test: `Resize(resize)` of the shorter side + `CenterCrop(crop)` (Python's round-half-even
//!   offsets, as torchvision).
//! - Grey: PIL's `convert("L")` (ITU-R 601-2 luma, `(19595 R + 38470 G + 7471 B + 2¹⁵) >> 16`),
//!   then `Resize(size)` + `CenterCrop(size)`, normalised with one mean/std into `1 × size × size`
//!   floats: image files for a 1-channel network (the Fashion-MNIST demo's).
//!
//! Both are one resampling step: the crop box (in source pixels, fractional for the test
//! transform; cut out first for the train one, as torchvision crops before resizing) is resized
//! straight to the output with `fast_image_resize`'s antialiased bilinear convolution (PIL's
//! filter); a pad-crop then moves the 8-bit result by its window (black outside). Without colour
//! jitter the pixels go through per-channel lookup tables of `(x / 255 − mean) / std` (ImageNet
//! mean/std) into `3 × size × size` floats, the flip applied while writing; with jitter they are
//! written as `x / 255`, jittered, then normalised. Randomness comes from a [`SampleRng`] seeded
//! per sample, so a sample's augmentation does not depend on which thread made it.

use fast_image_resize::images::{CroppedImage, Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::augment::{self, Augment, Crop, JitterDraw, Plan};
use super::RgbImage;

/// ImageNet channel means (RGB).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A small deterministic random generator (SplitMix64) for per-sample augmentation.
#[derive(Debug, Clone)]
pub struct SampleRng(u64);

impl SampleRng {
    /// A generator for one sample, from the run's seed, the epoch and the sample's position.
    pub fn for_sample(seed: u64, epoch: u64, batch: u64, slot: u64) -> Self {
        let mut r = SampleRng(seed);
        for v in [epoch, batch, slot] {
            r.0 = r.next_u64() ^ v;
        }
        SampleRng(r.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform float in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// A rectangle of the source image, in (possibly fractional) pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropBox {
    /// Left edge.
    pub left: f64,
    /// Top edge.
    pub top: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
    /// Cut the box out before resizing, so its edges are clamped (torchvision's `resized_crop`);
    /// otherwise pixels beyond the box feed the filter, as when resizing the whole image and then
    /// cropping (`Resize` + `CenterCrop`). Needs whole-pixel edges.
    pub crop_first: bool,
}

/// Which transform to apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// The training augmentation `augment`, output side `size`.
    Train {
        /// Output side.
        size: u32,
        /// The crop, flip and colour jitter.
        augment: Augment,
    },
    /// Resize the shorter side to `resize`, then take the centre `crop × crop`.
    Test {
        /// Shorter side after resizing.
        resize: u32,
        /// Output side.
        crop: u32,
    },
    /// Grey (PIL's "L"), resize the shorter side to `size`, centre `size × size`, `(x/255 − mean)/std`.
    Grey {
        /// Output side.
        size: u32,
        /// Mean subtracted after scaling to [0, 1].
        mean: f32,
        /// Standard deviation divided by after that.
        std: f32,
    },
}

impl Transform {
    /// The FastAP paper's training transform: crop 224, scale 0.16–1, ratio 3/4–4/3, flip.
    pub fn paper_train() -> Self {
        Self::paper_train_at(224)
    }

    /// The papers' training transform with output side `size` (scale 0.16–1, ratio 3/4–4/3, flip).
    pub fn paper_train_at(size: u32) -> Self {
        Transform::Train {
            size,
            augment: Augment::imagenet(),
        }
    }

    /// The papers' test transform: resize 256, centre crop 224.
    pub fn paper_test() -> Self {
        Transform::Test { resize: 256, crop: 224 }
    }

    /// The output side length.
    pub fn size(&self) -> u32 {
        match *self {
            Transform::Train { size, .. } => size,
            Transform::Test { crop, .. } => crop,
            Transform::Grey { size, .. } => size,
        }
    }

    /// Channels of the output (1 for [`Transform::Grey`], else 3).
    pub fn channels(&self) -> usize {
        match self {
            Transform::Grey { .. } => 1,
            _ => 3,
        }
    }

    /// Floats per output image (`channels × size × size`).
    pub fn numel(&self) -> usize {
        self.channels() * (self.size() as usize).pow(2)
    }

    /// Everything drawn for one image of `width × height`: the source rectangle, the pad-crop
    /// window, the flip and the colour jitter (in that order from `rng`).
    pub fn draw(&self, width: u32, height: u32, rng: &mut SampleRng) -> Plan {
        match *self {
            Transform::Train { size, augment } => {
                let (crop, pad) = match augment.crop {
                    Crop::RandomResized { scale, ratio } => {
                        (random_resized_crop_box(width, height, scale, ratio, rng), None)
                    }
                    Crop::PadCrop { padding } => (whole_box(width, height), Some(augment::pad_window(padding, rng))),
                    Crop::Center { resize } => (center_crop_box(width, height, resize, size), None),
                };
                let flip = augment.flip && rng.uniform(0.0, 1.0) < 0.5;
                let jitter = if augment.jitter.is_on() {
                    augment.jitter.draw(rng)
                } else {
                    JitterDraw::default()
                };
                Plan {
                    crop,
                    pad,
                    flip,
                    jitter,
                }
            }
            Transform::Test { resize, crop } => fixed(center_crop_box(width, height, resize, crop)),
            Transform::Grey { size, .. } => fixed(center_crop_box(width, height, size, size)),
        }
    }
}

/// A plan that only resizes `crop` (nothing random: the test and grey transforms).
fn fixed(crop: CropBox) -> Plan {
    Plan {
        crop,
        pad: None,
        flip: false,
        jitter: JitterDraw::default(),
    }
}

/// The whole image as a box (`Resize((size, size))`).
pub fn whole_box(width: u32, height: u32) -> CropBox {
    CropBox {
        left: 0.0,
        top: 0.0,
        width: f64::from(width),
        height: f64::from(height),
        crop_first: true,
    }
}

/// torchvision's `RandomResizedCrop.get_params`: the crop box in whole pixels.
pub fn random_resized_crop_box(
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut SampleRng,
) -> CropBox {
    let (w, h) = (f64::from(width), f64::from(height));
    let area = w * h;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.uniform(scale.0, scale.1);
        let aspect = rng.uniform(log_lo, log_hi).exp();
        let cw = (target * aspect).sqrt().round();
        let ch = (target / aspect).sqrt().round();
        if cw > 0.0 && cw <= w && ch > 0.0 && ch <= h {
            let top = rng.below((h - ch) as u64 + 1) as f64;
            let left = rng.below((w - cw) as u64 + 1) as f64;
            return CropBox {
                left,
                top,
                width: cw,
                height: ch,
                crop_first: true,
            };
        }
    }
    let in_ratio = w / h;
    let (cw, ch) = if in_ratio < ratio.0 {
        (w, (w / ratio.0).round())
    } else if in_ratio > ratio.1 {
        ((h * ratio.1).round(), h)
    } else {
        (w, h)
    };
    CropBox {
        left: ((w - cw) / 2.0).floor(),
        top: ((h - ch) / 2.0).floor(),
        width: cw,
        height: ch,
        crop_first: true,
    }
}

/// torchvision's `Resize(resize)` + `CenterCrop(crop)`, as one box of the source image.
pub fn center_crop_box(width: u32, height: u32, resize: u32, crop: u32) -> CropBox {
    let (w, h) = (u64::from(width), u64::from(height));
    let r = u64::from(resize);
    // torchvision: the shorter side becomes `resize`, the longer int(resize * long / short).
    let (rw, rh) = if w <= h { (r, r * h / w) } else { (r * w / h, r) };
    let c = f64::from(crop);
    let offset = |len: u64| ((len as f64 - c) / 2.0).round_ties_even();
    let (sx, sy) = (w as f64 / rw as f64, h as f64 / rh as f64);
    CropBox {
        left: offset(rw) * sx,
        top: offset(rh) * sy,
        width: c * sx,
        height: c * sy,
        crop_first: false,
    }
}

/// One worker's reusable state: the resizer, a pixel buffer and the normalisation tables.
pub struct Pipeline {
    resizer: Resizer,
    dst: Vec<u8>,
    shifted: Vec<u8>,
    table: [[f32; 256]; 3],
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipeline {
    /// A pipeline normalising with the ImageNet mean and std.
    pub fn new() -> Self {
        let mut table = [[0.0f32; 256]; 3];
        for (c, t) in table.iter_mut().enumerate() {
            for (v, x) in t.iter_mut().enumerate() {
                *x = (v as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            }
        }
        Pipeline {
            resizer: Resizer::new(),
            dst: Vec::new(),
            shifted: Vec::new(),
            table,
        }
    }

    /// Applies `transform` to `img`, writing `channels × size × size` floats (CHW) into `out`.
    pub fn apply(
        &mut self,
        img: &RgbImage,
        transform: &Transform,
        rng: &mut SampleRng,
        out: &mut [f32],
    ) -> Result<(), String> {
        let plan = transform.draw(img.width, img.height, rng);
        match *transform {
            Transform::Grey { size, mean, std } => self.grey_resize(img, plan.crop, size, (mean, std), out),
            _ => self.render(img, &plan, transform.size(), out),
        }
    }

    /// Converts `img` to grey (PIL's "L"), resizes its `crop` to `size × size` and writes
    /// `(x/255 − mean)/std` into `out` (`size²` floats).
    pub fn grey_resize(
        &mut self,
        img: &RgbImage,
        crop: CropBox,
        size: u32,
        (mean, std): (f32, f32),
        out: &mut [f32],
    ) -> Result<(), String> {
        let plane = (size as usize).pow(2);
        if out.len() != plane {
            return Err(format!("output buffer of {} floats, need {plane}", out.len()));
        }
        let luma: Vec<u8> = img
            .pixels
            .chunks_exact(3)
            .map(|p| {
                ((u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471 + 0x8000) >> 16) as u8
            })
            .collect();
        let src = ImageRef::new(img.width, img.height, &luma, PixelType::U8).map_err(|e| e.to_string())?;
        self.dst.resize(plane, 0);
        let mut dst =
            Image::from_slice_u8(size, size, &mut self.dst[..plane], PixelType::U8).map_err(|e| e.to_string())?;
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
            .crop(crop.left, crop.top, crop.width, crop.height);
        self.resizer
            .resize(&src, &mut dst, &options)
            .map_err(|e| e.to_string())?;
        for (o, &v) in out.iter_mut().zip(&self.dst[..plane]) {
            *o = (f32::from(v) / 255.0 - mean) / std;
        }
        Ok(())
    }

    /// Resizes the `crop` of `img` to `size × size`, flips it if asked, and normalises it into `out`.
    pub fn crop_resize(
        &mut self,
        img: &RgbImage,
        crop: CropBox,
        flip: bool,
        size: u32,
        out: &mut [f32],
    ) -> Result<(), String> {
        let plan = Plan {
            crop,
            pad: None,
            flip,
            jitter: JitterDraw::default(),
        };
        self.render(img, &plan, size, out)
    }

    /// Makes the `size × size` output of a drawn [`Plan`] from `img` into `out` (CHW, normalised).
    pub fn render(&mut self, img: &RgbImage, plan: &Plan, size: u32, out: &mut [f32]) -> Result<(), String> {
        let plane = (size as usize).pow(2);
        if out.len() != 3 * plane {
            return Err(format!("output buffer of {} floats, need {}", out.len(), 3 * plane));
        }
        self.resize(img, plan.crop, size)?;
        let side = size as usize;
        if let Some(window) = plan.pad {
            augment::shift(&self.dst, side, window, &mut self.shifted);
            std::mem::swap(&mut self.dst, &mut self.shifted);
        }
        let px = &self.dst[..];
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        let jitter = !plan.jitter.steps.is_empty();
        for y in 0..side {
            let row = &px[y * side * 3..(y + 1) * side * 3];
            for x in 0..side {
                let sx = if plan.flip { side - 1 - x } else { x };
                let p = &row[sx * 3..sx * 3 + 3];
                let o = y * side + x;
                if jitter {
                    // `to_tensor`: x / 255.
                    (r[o], g[o], b[o]) = (
                        f32::from(p[0]) / 255.0,
                        f32::from(p[1]) / 255.0,
                        f32::from(p[2]) / 255.0,
                    );
                } else {
                    r[o] = self.table[0][usize::from(p[0])];
                    g[o] = self.table[1][usize::from(p[1])];
                    b[o] = self.table[2][usize::from(p[2])];
                }
            }
        }
        if jitter {
            augment::apply_jitter(&plan.jitter, r, g, b);
            for (c, ch) in [r, g, b].into_iter().enumerate() {
                for v in ch.iter_mut() {
                    *v = (*v - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
                }
            }
        }
        Ok(())
    }

    /// Resizes the `crop` of `img` to `size × size` 8-bit RGB pixels in `self.dst`.
    fn resize(&mut self, img: &RgbImage, crop: CropBox, size: u32) -> Result<(), String> {
        let plane = (size as usize).pow(2);
        let src = ImageRef::new(img.width, img.height, &img.pixels, PixelType::U8x3).map_err(|e| e.to_string())?;
        self.dst.resize(3 * plane, 0);
        let mut dst = Image::from_slice_u8(size, size, &mut self.dst, PixelType::U8x3).map_err(|e| e.to_string())?;
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        if crop.crop_first {
            let whole = |v: f64| (v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX)).then_some(v as u32);
            let (l, t, w, h) = match (whole(crop.left), whole(crop.top), whole(crop.width), whole(crop.height)) {
                (Some(l), Some(t), Some(w), Some(h)) => (l, t, w, h),
                _ => return Err(format!("crop box {crop:?} is not in whole pixels")),
            };
            let part = CroppedImage::new(&src, l, t, w, h).map_err(|e| format!("crop box {crop:?}: {e}"))?;
            self.resizer.resize(&part, &mut dst, &options)
        } else {
            let options = options.crop(crop.left, crop.top, crop.width, crop.height);
            self.resizer.resize(&src, &mut dst, &options)
        }
        .map_err(|e| e.to_string())
    }
}
