//! Decoding JPEG and PNG files into 8-bit RGB (grey, palette and alpha images are converted).
//!
//! JPEG goes through the `image` crate's zune-jpeg decoder, PNG through `png`; the `image` crate's
//! default allocation limits guard against decompression bombs. A file that cannot be read or
//! decoded is an [`ImageError`] naming it, never a panic.
//!
//! zune-jpeg decodes a truncated JPEG (a cut-off download, half a file padded with zeros) without
//! complaint, filling the missing part with grey. So a JPEG's markers are walked first
//! ([`check_jpeg_complete`]): one whose data ends before its end-of-image marker is refused as
//! truncated, as PIL (`image file is truncated`) and libjpeg (`Premature end of JPEG file`) do.

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
    #[error("{path}: {io}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (part of the message, not a separate cause, so it is printed once).
        io: std::io::Error,
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
    let bytes = std::fs::read(path).map_err(|io| ImageError::Io {
        path: path.to_path_buf(),
        io,
    })?;
    decode_bytes(&bytes).map_err(|reason| ImageError::Decode {
        path: path.to_path_buf(),
        reason,
    })
}

/// Decodes an encoded JPEG or PNG image held in memory.
pub fn decode_bytes(bytes: &[u8]) -> Result<RgbImage, String> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        check_jpeg_complete(bytes)?;
    }
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

/// Walks a JPEG's marker segments and entropy-coded data to its end-of-image marker (`FF D9`);
/// an error says where the data ran out if there is none. Bytes after the marker are ignored (some
/// cameras append data), as are stray bytes between segments (libjpeg skips them too).
pub fn check_jpeg_complete(bytes: &[u8]) -> Result<(), String> {
    let truncated = |at: usize| {
        Err(format!(
            "truncated JPEG: its {} bytes end inside the segment at byte {at}, before the end-of-image marker",
            bytes.len()
        ))
    };
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG (no start-of-image marker)".into());
    }
    let mut pos = 2;
    loop {
        // The next marker: 0xFF (any fill 0xFF bytes), then its code.
        let Some(ff) = bytes[pos..].iter().position(|&b| b == 0xFF) else {
            return truncated(pos);
        };
        let mut at = pos + ff;
        while bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let Some(&code) = bytes.get(at + 1) else {
            return truncated(at);
        };
        pos = at + 2;
        match code {
            0xD9 => return Ok(()),
            0x00 | 0x01 | 0xD0..=0xD7 => continue, // not a segment: stuffing, TEM, restart
            _ => {}
        }
        let Some(len) = bytes
            .get(pos..pos + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            return truncated(at);
        };
        if len < 2 || pos + len > bytes.len() {
            return truncated(at);
        }
        pos += len;
        if code == 0xDA {
            // Entropy-coded data: runs to the next marker other than FF 00 (a stuffed 0xFF) and
            // the restart markers FF D0..D7.
            loop {
                let Some(ff) = bytes[pos..].iter().position(|&b| b == 0xFF) else {
                    return truncated(at);
                };
                let next = bytes.get(pos + ff + 1).copied();
                match next {
                    None => return truncated(at),
                    Some(0x00 | 0xD0..=0xD7) => pos += ff + 2,
                    Some(_) => {
                        pos += ff;
                        break;
                    }
                }
            }
        }
    }
}
