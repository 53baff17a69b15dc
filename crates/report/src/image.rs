//! Images for the report: PNG encoding of raw 8-bit pixels, and base64 `data:` URIs that embed
//! an encoded image (or any bytes) in the HTML page.

/// The pixel layout of a raw 8-bit buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pixels {
    /// One byte per pixel.
    Grey,
    /// Three bytes per pixel, R G B.
    Rgb,
}

impl Pixels {
    fn bytes(self) -> usize {
        match self {
            Pixels::Grey => 1,
            Pixels::Rgb => 3,
        }
    }
}

/// Encodes a `height × width` row-major 8-bit buffer as PNG bytes.
pub fn encode_png(width: u32, height: u32, layout: Pixels, buf: &[u8]) -> Result<Vec<u8>, String> {
    let want = width as usize * height as usize * layout.bytes();
    if buf.len() != want {
        return Err(format!(
            "{} bytes of pixels for a {width}×{height} {layout:?} image (need {want})",
            buf.len()
        ));
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(match layout {
        Pixels::Grey => png::ColorType::Grayscale,
        Pixels::Rgb => png::ColorType::Rgb,
    });
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(buf).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// The MIME type of encoded image bytes (PNG or JPEG by their signature; anything else is
/// `application/octet-stream`, which a browser will not show as an image).
pub fn mime_of(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else {
        "application/octet-stream"
    }
}

/// `data:<mime>;base64,<bytes>`: the bytes embedded in a URI.
pub fn data_uri(bytes: &[u8]) -> String {
    let mut out = format!("data:{};base64,", mime_of(bytes));
    base64_into(bytes, &mut out);
    out
}

/// Appends the standard base64 encoding (RFC 4648, with padding) of `bytes` to `out`.
pub fn base64_into(bytes: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        let mut s = String::new();
        base64_into(bytes, &mut s);
        s
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        // RFC 4648 §10.
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64(raw.as_bytes()), enc, "{raw:?}");
        }
        assert_eq!(b64(&[0xFF, 0xFE, 0xFD]), "//79");
    }

    #[test]
    fn png_round_trips_through_the_decoder() {
        let pixels: Vec<u8> = (0..6 * 4).map(|v| (v * 10) as u8).collect();
        let bytes = encode_png(6, 4, Pixels::Grey, &pixels).unwrap();
        assert_eq!(mime_of(&bytes), "image/png");
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        let mut out = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut out).unwrap();
        assert_eq!(
            (info.width, info.height, info.color_type),
            (6, 4, png::ColorType::Grayscale)
        );
        assert_eq!(&out[..info.buffer_size()], &pixels[..]);
        let e = encode_png(6, 4, Pixels::Rgb, &pixels).unwrap_err();
        assert!(e.contains("need 72"), "{e}");
        assert!(data_uri(&[0xFF, 0xD8, 0xFF, 0xE0]).starts_with("data:image/jpeg;base64,/9j/4A"));
    }
}
