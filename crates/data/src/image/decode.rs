//! Decoding JPEG and PNG files into 8-bit RGB (grey, palette and alpha images are converted).
//!
//! JPEG goes through the `image` crate's zune-jpeg decoder, PNG through `png`; the `image` crate's
//! default allocation limits guard against decompression bombs. A file that cannot be read or
//! decoded is an [`ImageError`] naming it, never a panic.

use std::path::{Path, PathBuf};

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `height × width × 3` bytes.
    pub pixels: Vec<u8>,
}

/// Why an image could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a decodable image, or the transform cannot be applied to it.
    #[error("{path}: cannot decode image: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Reads and decodes the image file `path` (JPEG or PNG, by content).
pub fn decode_file(path: &Path) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_bytes(&bytes).map_err(|reason| ImageError::Decode {
        path: path.to_path_buf(),
        reason,
    })
}

/// Decodes an encoded JPEG or PNG image held in memory.
pub fn decode_bytes(bytes: &[u8]) -> Result<RgbImage, String> {
    let img = image::load_from_memory(bytes).map_err(|e| e.to_string())?;
    let rgb = img.into_rgb8();
    let (width, height) = rgb.dimensions();
    if width == 0 || height == 0 {
        return Err(format!("empty image ({width}×{height})"));
    }
    Ok(RgbImage {
        width,
        height,
        pixels: rgb.into_raw(),
    })
}
