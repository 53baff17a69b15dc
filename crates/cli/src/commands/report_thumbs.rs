//! Thumbnails of a split's images for the retrieval grid of `report.html`, as PNG bytes: image
//! files decoded and scaled down; in-memory images (Fashion-MNIST, synthetic) as their pixels.

use embedrank_data::image::{decode_file, thumbnail};
use embedrank_report::image::{encode_png, Pixels};
use embedrank_torch::config::DatasetKind;
use embedrank_torch::dataset::{Images, SplitData, FASHION_MNIST_MEAN, FASHION_MNIST_STD};
use embedrank_torch::tch::{Kind, Tensor};

/// Longer side of a file image's thumbnail, in pixels.
const SIDE: u32 = 128;

/// The thumbnail of image `index` of `split` (PNG), or why there is none.
pub fn of(split: &SplitData, index: usize, dataset: DatasetKind) -> Result<Vec<u8>, String> {
    match &split.images {
        Images::Files(paths) => {
            let img = decode_file(&paths[index]).map_err(|e| e.to_string())?;
            let t = thumbnail(&img, SIDE)?;
            encode_png(t.width, t.height, Pixels::Rgb, &t.pixels)
        }
        Images::Memory(all) => memory(&all.get(index as i64), dataset),
    }
}

/// A grey PNG standing in for an image that cannot be shown.
pub fn placeholder() -> Vec<u8> {
    encode_png(8, 8, Pixels::Grey, &[160; 64]).expect("a fixed 8×8 image encodes")
}

/// A `C×H×W` standardised float image back to 8-bit pixels: Fashion-MNIST's standardisation
/// undone exactly; anything else (synthetic noise) stretched from its minimum to its maximum.
fn memory(img: &Tensor, dataset: DatasetKind) -> Result<Vec<u8>, String> {
    let size = img.size();
    let [c, h, w] = size[..] else {
        return Err(format!("an in-memory image of shape {size:?}, expected C×H×W"));
    };
    let layout = match c {
        1 => Pixels::Grey,
        3 => Pixels::Rgb,
        _ => return Err(format!("an in-memory image with {c} channels")),
    };
    let x = img.to_kind(Kind::Float);
    let unit = if dataset == DatasetKind::FashionMnist {
        x * FASHION_MNIST_STD + FASHION_MNIST_MEAN
    } else {
        let (lo, hi) = (x.min().double_value(&[]), x.max().double_value(&[]));
        (x - lo) / (hi - lo).max(1e-12)
    };
    let hwc = (unit * 255.0).round().clamp(0.0, 255.0).permute([1, 2, 0]).contiguous();
    let values = Vec::<f32>::try_from(hwc.view([-1])).map_err(|e| e.to_string())?;
    let bytes: Vec<u8> = values.iter().map(|&v| v as u8).collect();
    encode_png(w as u32, h as u32, layout, &bytes)
}
