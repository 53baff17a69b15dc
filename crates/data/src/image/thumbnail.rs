//! Small previews of images (the retrieval grid of `report.html`): the whole image scaled down,
//! aspect ratio kept, so that its longer side is at most a given number of pixels.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::RgbImage;

/// `img` scaled (bilinear, antialiased) so that its longer side is `side` pixels; an image that
/// already fits is returned unchanged.
pub fn thumbnail(img: &RgbImage, side: u32) -> Result<RgbImage, String> {
    let (w, h) = (img.width, img.height);
    if side == 0 {
        return Err("a thumbnail needs a side of at least one pixel".into());
    }
    if w <= side && h <= side {
        return Ok(img.clone());
    }
    let scale = f64::from(side) / f64::from(w.max(h));
    let (tw, th) = [w, h]
        .map(|v| ((f64::from(v) * scale).round() as u32).clamp(1, side))
        .into();
    let src = ImageRef::new(w, h, &img.pixels, PixelType::U8x3).map_err(|e| e.to_string())?;
    let mut dst = Image::new(tw, th, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| e.to_string())?;
    Ok(RgbImage {
        width: tw,
        height: th,
        pixels: dst.into_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(width: u32, height: u32, rgb: [u8; 3]) -> RgbImage {
        RgbImage {
            width,
            height,
            pixels: rgb.repeat((width * height) as usize),
        }
    }

    #[test]
    fn keeps_the_aspect_ratio_and_the_colour() {
        let t = thumbnail(&solid(300, 150, [200, 10, 30]), 96).unwrap();
        assert_eq!((t.width, t.height), (96, 48));
        assert_eq!(t.pixels.len(), 96 * 48 * 3);
        assert!(t.pixels.chunks(3).all(|p| p == [200, 10, 30]));
        let t = thumbnail(&solid(7, 500, [1, 2, 3]), 50).unwrap();
        assert_eq!((t.width, t.height), (1, 50));
    }

    #[test]
    fn small_images_are_left_alone_and_zero_is_refused() {
        let img = solid(28, 28, [9, 9, 9]);
        assert_eq!(thumbnail(&img, 96).unwrap(), img);
        assert!(thumbnail(&img, 0).unwrap_err().contains("at least one pixel"));
    }
}
