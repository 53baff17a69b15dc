//! IDX files, the format of MNIST and Fashion-MNIST: plain or gzipped, read without trusting the file.
//!
//! An IDX file is a big-endian header, `0x00 0x00 <type> <ndim>` then `ndim` 32-bit sizes, followed
//! by the elements in row-major order. Only unsigned bytes (type `0x08`) are read: images are
//! `0x00000803` (`N × rows × cols`) and labels `0x00000801` (`N`). A file starting with the gzip
//! magic bytes is decompressed on the fly. Every field is checked and a bad file gives an
//! [`IdxError`] naming the file and the problem (bad magic, truncated header or data, trailing
//! bytes, corrupt gzip stream), never a panic.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::npy;

/// The element type code of unsigned bytes.
const TYPE_U8: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Refuse arrays larger than this (a defence against decompression bombs): 8 GiB.
const MAX_BYTES: usize = 1 << 33;

/// Why an IDX file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The file could not be opened, read or written.
    #[error("{path}: {io}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (part of the message, not a separate cause, so it is printed once).
        io: io::Error,
    },
    /// The file is not a well-formed IDX file of the expected kind.
    #[error("{path}: not a valid IDX file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A parsed IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The sizes of the dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// `count` grey-scale images of `rows × cols` bytes, row-major, one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// All pixels, `count × rows × cols`.
    pub data: Vec<u8>,
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
}

impl Images {
    /// Pixels per image (`rows × cols`).
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i`, or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let p = self.pixels();
        self.data.get(i.checked_mul(p)?..i.checked_add(1)?.checked_mul(p)?)
    }
}

fn format_err(path: &Path, reason: impl Into<String>) -> IdxError {
    IdxError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads exactly `buf.len()` bytes, or says what was being read when the input ended.
fn read_part(r: &mut impl Read, buf: &mut [u8], what: &str, path: &Path) -> Result<(), IdxError> {
    r.read_exact(buf).map_err(|e| stream_err(e, what, path))
}

fn stream_err(e: io::Error, what: &str, path: &Path) -> IdxError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        format_err(path, format!("the file ends inside the {what}"))
    } else {
        format_err(path, format!("cannot decompress the {what}: {e}"))
    }
}

/// Parses an IDX array from a stream of (decompressed) bytes.
fn parse_stream(mut r: impl Read, path: &Path) -> Result<IdxArray, IdxError> {
    let mut magic = [0u8; 4];
    read_part(&mut r, &mut magic, "4-byte magic number", path)?;
    let magic_text = format!("0x{:08x}", u32::from_be_bytes(magic));
    if magic[0] != 0 || magic[1] != 0 {
        return Err(format_err(
            path,
            format!("bad magic number {magic_text}: an IDX file starts with two zero bytes"),
        ));
    }
    let element = match magic[2] {
        TYPE_U8 => None,
        0x09 => Some("signed byte"),
        0x0b => Some("16-bit integer"),
        0x0c => Some("32-bit integer"),
        0x0d => Some("32-bit float"),
        0x0e => Some("64-bit float"),
        _ => Some("unknown"),
    };
    if let Some(kind) = element {
        return Err(format_err(
            path,
            format!(
                "magic number {magic_text}: element type 0x{:02x} ({kind}) is not supported, only unsigned bytes (0x08)",
                magic[2]
            ),
        ));
    }
    let ndim = usize::from(magic[3]);
    if ndim == 0 {
        return Err(format_err(
            path,
            format!("magic number {magic_text} declares 0 dimensions"),
        ));
    }
    let mut header = vec![0u8; 4 * ndim];
    read_part(&mut r, &mut header, &format!("header ({ndim} dimension sizes)"), path)?;
    let dims: Vec<usize> = header
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_BYTES)
        .ok_or_else(|| format_err(path, format!("dimensions {dims:?} exceed the {MAX_BYTES}-byte limit")))?;
    let mut data = Vec::new();
    (&mut r)
        .take(expected as u64)
        .read_to_end(&mut data)
        .map_err(|e| stream_err(e, "data", path))?;
    if data.len() < expected {
        return Err(format_err(
            path,
            format!(
                "truncated data: dimensions {dims:?} need {expected} bytes after the header, the file has {}",
                data.len()
            ),
        ));
    }
    let mut extra = [0u8; 1];
    match r.read(&mut extra) {
        Ok(0) => Ok(IdxArray { dims, data }),
        Ok(_) => Err(format_err(
            path,
            format!("unexpected bytes after the {expected} bytes of data that dimensions {dims:?} need"),
        )),
        Err(e) => Err(stream_err(e, "end of the file", path)),
    }
}

/// Parses IDX bytes, gzipped or plain; `path` only names the file in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray, IdxError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        parse_stream(MultiGzDecoder::new(bytes), path)
    } else {
        parse_stream(bytes, path)
    }
}

/// Reads and parses an IDX file, gzipped or plain.
pub fn read(path: &Path) -> Result<IdxArray, IdxError> {
    let bytes = fs::read(path).map_err(|io| IdxError::Io {
        path: path.to_path_buf(),
        io,
    })?;
    parse(&bytes, path)
}

/// Converts a parsed array to images; it must be 3-D (`0x00000803`: images × rows × cols).
pub fn to_images(array: IdxArray, path: &Path) -> Result<Images, IdxError> {
    match array.dims[..] {
        [count, rows, cols] => Ok(Images {
            data: array.data,
            count,
            rows,
            cols,
        }),
        _ => Err(format_err(
            path,
            format!(
                "an image file has 3 dimensions (magic 0x00000803: images × rows × cols), this one has {:?}",
                array.dims
            ),
        )),
    }
}

/// Converts a parsed array to labels; it must be 1-D (`0x00000801`).
pub fn to_labels(array: IdxArray, path: &Path) -> Result<Vec<u8>, IdxError> {
    if array.dims.len() == 1 {
        Ok(array.data)
    } else {
        Err(format_err(
            path,
            format!(
                "a label file has 1 dimension (magic 0x00000801), this one has {:?}",
                array.dims
            ),
        ))
    }
}

/// Reads an image file (`0x00000803`), gzipped or plain.
pub fn read_images(path: &Path) -> Result<Images, IdxError> {
    to_images(read(path)?, path)
}

/// Reads a label file (`0x00000801`), gzipped or plain.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxError> {
    to_labels(read(path)?, path)
}

/// Encodes an unsigned-byte array as IDX bytes; `path` only names the file in errors.
///
/// Errors if `data` does not hold `Π dims` bytes, or there are 0 or more than 255 dimensions,
/// or one exceeds `u32::MAX`.
pub fn encode(dims: &[usize], data: &[u8], path: &Path) -> Result<Vec<u8>, IdxError> {
    let ndim = u8::try_from(dims.len())
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format_err(path, format!("cannot write {} dimensions (1 to 255)", dims.len())))?;
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if expected != Some(data.len()) {
        return Err(format_err(
            path,
            format!("dimensions {dims:?} do not match the {} bytes given", data.len()),
        ));
    }
    let mut out = vec![0, 0, TYPE_U8, ndim];
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| format_err(path, format!("dimension {d} exceeds u32")))?;
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    Ok(out)
}

/// Writes an unsigned-byte array as an IDX file, gzipped when `path` ends in `.gz`, atomically.
pub fn write(path: &Path, dims: &[usize], data: &[u8]) -> Result<(), IdxError> {
    let mut bytes = encode(dims, data, path)?;
    let io_err = |io| IdxError::Io {
        path: path.to_path_buf(),
        io,
    };
    if path.extension().is_some_and(|e| e == "gz") {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bytes).map_err(io_err)?;
        bytes = gz.finish().map_err(io_err)?;
    }
    npy::write_atomic(path, &bytes).map_err(|e| match e {
        npy::NpyError::Io { path, io } => IdxError::Io { path, io },
        other => format_err(path, other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.idx")
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn parses_a_hand_written_image_file() {
        // Magic 0x00000803, then 2 × 2 × 3 big-endian, then 12 pixels.
        let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        bytes.extend(0u8..12);
        let want = Images {
            data: (0..12).collect(),
            count: 2,
            rows: 2,
            cols: 3,
        };
        assert_eq!(to_images(parse(&bytes, p()).unwrap(), p()).unwrap(), want);
        assert_eq!(to_images(parse(&gzip(&bytes), p()).unwrap(), p()).unwrap(), want);
        assert_eq!(want.image(1), Some(&[6u8, 7, 8, 9, 10, 11][..]));
        assert_eq!(want.image(2), None);
        assert_eq!(want.image(usize::MAX), None);
    }

    #[test]
    fn parses_labels_and_round_trips_through_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["l.idx", "l.idx.gz"] {
            let path = dir.path().join(name);
            write(&path, &[5], &[9, 0, 3, 3, 1]).unwrap();
            assert_eq!(read_labels(&path).unwrap(), vec![9, 0, 3, 3, 1]);
            let raw = fs::read(&path).unwrap();
            assert_eq!(raw.starts_with(&GZIP_MAGIC), name.ends_with(".gz"));
        }
        let path = dir.path().join("i.idx.gz");
        write(&path, &[3, 1, 2], &[1, 2, 3, 4, 5, 6]).unwrap();
        let img = read_images(&path).unwrap();
        assert_eq!((img.count, img.rows, img.cols, img.pixels()), (3, 1, 2, 2));
        assert!(read_labels(&path)
            .unwrap_err()
            .to_string()
            .contains("a label file has 1 dimension"));
        assert!(read_images(&dir.path().join("l.idx"))
            .unwrap_err()
            .to_string()
            .contains("[5]"));
    }

    fn reason(bytes: &[u8]) -> String {
        match parse(bytes, Path::new("bad.idx")) {
            Err(e @ IdxError::Format { .. }) => {
                let text = e.to_string();
                assert!(text.starts_with("bad.idx: "), "{text}");
                text
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn rejects_malformed_files_with_a_reason() {
        assert!(reason(&[]).contains("ends inside the 4-byte magic"));
        assert!(reason(&[1, 0, 8, 1, 0, 0, 0, 0]).contains("bad magic number 0x01000801"));
        assert!(reason(&[0, 0, 0x0d, 1, 0, 0, 0, 0]).contains("0x0d (32-bit float) is not supported"));
        assert!(reason(&[0, 0, 0x42, 1, 0, 0, 0, 0]).contains("(unknown)"));
        assert!(reason(&[0, 0, 8, 0]).contains("0 dimensions"));
        assert!(reason(&[0, 0, 8, 2, 0, 0, 0, 1]).contains("ends inside the header (2 dimension sizes)"));
        assert!(reason(&[0, 0, 8, 1, 0, 0, 0, 3, 7]).contains("need 3 bytes after the header, the file has 1"));
        assert!(reason(&[0, 0, 8, 1, 0, 0, 0, 1, 7, 7]).contains("unexpected bytes after the 1 bytes"));
        assert!(reason(&[0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255]).contains("limit"));
        // A gzip stream cut short, and one with a corrupted body.
        let gz = gzip(&[0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4]);
        assert!(reason(&gz[..gz.len() - 6]).contains("bad.idx"));
        let mut bad = gz.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        assert!(parse(&bad, p()).is_err());
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = read_images(Path::new("/nonexistent/train-images-idx3-ubyte.gz")).unwrap_err();
        assert!(matches!(e, IdxError::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/train-images-idx3-ubyte.gz"), "{e}");
    }

    #[test]
    fn encode_checks_its_input() {
        assert!(encode(&[2, 2], &[0; 3], p())
            .unwrap_err()
            .to_string()
            .contains("do not match"));
        assert!(encode(&[], &[], p()).is_err());
        assert!(encode(&[1usize << 33], &[], p()).is_err());
    }
}
