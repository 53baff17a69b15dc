//! NumPy `.npy` files (format versions 1–3): 2-D float matrices and 1-D integer label vectors.
//!
//! The reader never trusts the file: every header field, dtype, shape and length is checked and a
//! bad file gives an [`NpyError`] naming the file and the problem, never a panic. Writes go to a
//! temporary file that is renamed into place, so a crash never leaves a half-written array.

use std::fs;
use std::path::{Path, PathBuf};

use embedrank_core::fsutil;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Why an `.npy` file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be opened, read or written.
    #[error("{path}: {io}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (part of the message, not a separate cause, so it is printed once).
        io: std::io::Error,
    },
    /// The file is not a well-formed `.npy` array.
    #[error("{path}: not a valid .npy file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The array's element type is not one this use accepts.
    #[error("{path}: dtype '{descr}' is not supported here: expected {expected}")]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The dtype descriptor found.
        descr: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A float64 value too large in magnitude for the float32 it is read as.
    #[error("{path}: the value {value:e} at row {row}, column {col} is too large for float32 (largest magnitude {:e}); scale the array down", f32::MAX)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The row (from 0).
        row: usize,
        /// The column (from 0).
        col: usize,
        /// The value.
        value: f64,
    },
    /// The array's shape is not one this use accepts.
    #[error("{path}: shape {shape:?} is not supported here: expected {expected}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The shape found.
        shape: Vec<usize>,
        /// What was expected.
        expected: &'static str,
    },
}

/// A row-major 2-D matrix read from or written to `.npy` (`f32` unless asked for `f64`).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<T = f32> {
    /// Row-major values, `rows × cols`.
    pub data: Vec<T>,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
}

/// Element kinds the reader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Float,
    Int,
    Uint,
    Bool,
    Other,
}

/// A parsed, validated array: dtype, shape and the raw element bytes in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct RawArray {
    descr: String,
    kind: Kind,
    size: usize,
    big_endian: bool,
    fortran_order: bool,
    /// The array's shape.
    pub shape: Vec<usize>,
    data: Vec<u8>,
}

impl RawArray {
    /// Number of elements (product of the shape).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dtype descriptor, e.g. `<f4`.
    pub fn descr(&self) -> &str {
        &self.descr
    }

    /// Whether the elements are 64-bit floats.
    pub fn is_f64(&self) -> bool {
        self.kind == Kind::Float && self.size == 8
    }

    fn element(&self, k: usize) -> [u8; 8] {
        let mut b = [0u8; 8];
        let src = &self.data[k * self.size..(k + 1) * self.size];
        if self.big_endian {
            for (d, s) in b.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        } else {
            b[..self.size].copy_from_slice(src);
        }
        b
    }

    fn float_at(&self, k: usize) -> f64 {
        let b = self.element(k);
        match self.size {
            4 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            _ => f64::from_le_bytes(b),
        }
    }

    fn int_at(&self, k: usize) -> Option<i64> {
        let b = self.element(k);
        let bits = 8 * self.size as u32;
        let raw = u64::from_le_bytes(b);
        match self.kind {
            Kind::Int => {
                let shift = 64 - bits;
                Some(((raw << shift) as i64) >> shift)
            }
            Kind::Uint | Kind::Bool => i64::try_from(raw).ok(),
            _ => None,
        }
    }

    /// Index in the file of element `(r, c)` of a 2-D array.
    fn index2(&self, r: usize, c: usize) -> usize {
        let (rows, cols) = (self.shape[0], self.shape[1]);
        if self.fortran_order {
            c * rows + r
        } else {
            r * cols + c
        }
    }
}

fn format_err(path: &Path, reason: impl Into<String>) -> NpyError {
    NpyError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Parses `.npy` bytes; `path` only names the file in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<RawArray, NpyError> {
    let fail = |r: &str| format_err(path, r);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(fail("missing the \\x93NUMPY magic string"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(fail("truncated header length"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(fail(&format!("unknown format version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| fail("truncated header"))?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| fail("header is not text"))?;
    let descr = dict_value(header, "descr").ok_or_else(|| fail("header has no 'descr'"))?;
    let descr = unquote(descr)
        .ok_or_else(|| fail("'descr' is not a plain dtype string (structured arrays are not supported)"))?;
    let fortran = match dict_value(header, "fortran_order").map(str::trim) {
        Some(v) if v.starts_with("False") => false,
        Some(v) if v.starts_with("True") => true,
        _ => return Err(fail("header has no valid 'fortran_order'")),
    };
    let shape_text = dict_value(header, "shape").ok_or_else(|| fail("header has no 'shape'"))?;
    let shape = parse_shape(shape_text).ok_or_else(|| fail(&format!("malformed shape {}", shape_text.trim())))?;
    let (kind, size, big_endian) = parse_descr(&descr);
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| fail("shape overflows"))?;
    let nbytes = count.checked_mul(size.max(1)).ok_or_else(|| fail("shape overflows"))?;
    let data = &bytes[end..];
    if kind != Kind::Other && data.len() < nbytes {
        return Err(fail(&format!(
            "truncated data: shape {shape:?} needs {nbytes} bytes, the file has {}",
            data.len()
        )));
    }
    let keep = if kind == Kind::Other { 0 } else { nbytes };
    Ok(RawArray {
        descr,
        kind,
        size,
        big_endian,
        fortran_order: fortran,
        shape,
        data: data[..keep].to_vec(),
    })
}

/// The text after `'key':` up to the next top-level comma or closing brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat_single = format!("'{key}'");
    let pat_double = format!("\"{key}\"");
    let at = header
        .find(&pat_single)
        .map(|p| p + pat_single.len())
        .or_else(|| header.find(&pat_double).map(|p| p + pat_double.len()))?;
    let rest = header[at..].trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (k, ch) in rest.char_indices() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..k]),
            _ => {}
        }
    }
    None
}

fn unquote(v: &str) -> Option<String> {
    let v = v.trim();
    let inner = v
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| v.strip_prefix('"').and_then(|s| s.strip_suffix('"')))?;
    Some(inner.to_string())
}

fn parse_shape(v: &str) -> Option<Vec<usize>> {
    let inner = v.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

fn parse_descr(d: &str) -> (Kind, usize, bool) {
    let (order, rest) = match d.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &d[1..]),
        _ => ('=', d),
    };
    let big = order == '>';
    let mut chars = rest.chars();
    let kind = match chars.next() {
        Some('f') => Kind::Float,
        Some('i') => Kind::Int,
        Some('u') => Kind::Uint,
        Some('b') => Kind::Bool,
        _ => Kind::Other,
    };
    let size: usize = chars.as_str().parse().unwrap_or(0);
    let ok = match kind {
        Kind::Float => size == 4 || size == 8,
        Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
        Kind::Bool => size == 1,
        Kind::Other => false,
    };
    if ok {
        (kind, size, big)
    } else {
        (Kind::Other, 0, big)
    }
}

/// Reads and parses an `.npy` file.
pub fn read(path: &Path) -> Result<RawArray, NpyError> {
    let bytes = fs::read(path).map_err(|io| NpyError::Io {
        path: path.to_path_buf(),
        io,
    })?;
    parse(&bytes, path)
}

/// Reads a 2-D float32/float64 array as a row-major `f32` matrix.
pub fn read_matrix(path: &Path) -> Result<Matrix, NpyError> {
    to_matrix(read(path)?, path)
}

/// Converts a parsed 2-D float32/float64 array to a row-major `f32` matrix; a finite float64
/// beyond float32's range is an error naming its row and column (NaN and ±inf are kept as they are).
pub fn to_matrix(raw: RawArray, path: &Path) -> Result<Matrix, NpyError> {
    convert_matrix(raw, path, |v, row, col| {
        let x = v as f32;
        if x.is_infinite() && v.is_finite() {
            return Err(NpyError::TooLarge {
                path: path.to_path_buf(),
                row,
                col,
                value: v,
            });
        }
        Ok(x)
    })
}

/// Converts a parsed 2-D float32/float64 array to a row-major `f64` matrix (exact).
pub fn to_matrix_f64(raw: RawArray, path: &Path) -> Result<Matrix<f64>, NpyError> {
    convert_matrix(raw, path, |v, _, _| Ok(v))
}

fn convert_matrix<T>(
    raw: RawArray,
    path: &Path,
    cast: impl Fn(f64, usize, usize) -> Result<T, NpyError>,
) -> Result<Matrix<T>, NpyError> {
    if raw.kind != Kind::Float {
        return Err(NpyError::Dtype {
            path: path.to_path_buf(),
            descr: raw.descr,
            expected: "float32 or float64 (float16 and complex are not accepted)",
        });
    }
    if raw.shape.len() != 2 {
        return Err(NpyError::Shape {
            path: path.to_path_buf(),
            shape: raw.shape,
            expected: "a 2-D array (rows × dim)",
        });
    }
    let (rows, cols) = (raw.shape[0], raw.shape[1]);
    if rows == 0 || cols == 0 {
        // No elements (a shape like (10**18, 0) must not be walked row by row).
        return Ok(Matrix {
            data: Vec::new(),
            rows,
            cols,
        });
    }
    let mut data = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            data.push(cast(raw.float_at(raw.index2(r, c)), r, c)?);
        }
    }
    Ok(Matrix { data, rows, cols })
}

/// Reads a 1-D (or `N×1`) integer or boolean array as `i64` labels.
pub fn read_labels(path: &Path) -> Result<Vec<i64>, NpyError> {
    to_labels(read(path)?, path)
}

/// Converts a parsed 1-D (or `N×1`) integer or boolean array to `i64` labels.
pub fn to_labels(raw: RawArray, path: &Path) -> Result<Vec<i64>, NpyError> {
    if !matches!(raw.kind, Kind::Int | Kind::Uint | Kind::Bool) {
        return Err(NpyError::Dtype {
            path: path.to_path_buf(),
            descr: raw.descr,
            expected: "an integer dtype",
        });
    }
    let column = raw.shape.len() == 2 && raw.shape[1] == 1;
    if raw.shape.len() != 1 && !column {
        return Err(NpyError::Shape {
            path: path.to_path_buf(),
            shape: raw.shape,
            expected: "a 1-D array of labels",
        });
    }
    (0..raw.len())
        .map(|k| {
            raw.int_at(k)
                .ok_or_else(|| format_err(path, format!("label {k} does not fit in a signed 64-bit integer")))
        })
        .collect()
}

fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so that the data starts on a 64-byte boundary, ending the header with a newline.
    let total = MAGIC.len() + 4 + h.len() + 1;
    h.push_str(&" ".repeat((64 - total % 64) % 64));
    h.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out
}

/// Writes `bytes` to `path` atomically ([`embedrank_core::fsutil::write_atomic`]), naming the file
/// in the error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NpyError> {
    fsutil::write_atomic(path, bytes).map_err(|io| NpyError::Io {
        path: path.to_path_buf(),
        io,
    })
}

/// Writes a row-major `rows × cols` `f32` matrix.
pub fn write_matrix(path: &Path, data: &[f32], rows: usize, cols: usize) -> Result<(), NpyError> {
    assert_eq!(data.len(), rows * cols, "write_matrix: data is not rows × cols");
    let mut out = header("<f4", &[rows, cols]);
    out.reserve(data.len() * 4);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    write_atomic(path, &out)
}

/// Writes a 1-D `i64` vector.
pub fn write_labels(path: &Path, labels: &[i64]) -> Result<(), NpyError> {
    let mut out = header("<i8", &[labels.len()]);
    for v in labels {
        out.extend_from_slice(&v.to_le_bytes());
    }
    write_atomic(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_file(descr: &str, shape: &str, fortran: bool, data: &[u8]) -> Vec<u8> {
        let h = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}\n",
            if fortran { "True" } else { "False" }
        );
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_big_endian_float64_in_fortran_order() {
        // Column-major [[1, 2], [3, 4]] is stored 1, 3, 2, 4.
        let data: Vec<u8> = [1.0f64, 3.0, 2.0, 4.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npy");
        fs::write(&p, raw_file(">f8", "(2, 2)", true, &data)).unwrap();
        let m = read_matrix(&p).unwrap();
        assert_eq!((m.rows, m.cols, m.data), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));
    }

    #[test]
    fn reads_signed_and_unsigned_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.npy");
        fs::write(&p, raw_file("<i2", "(3,)", false, &[0xff, 0xff, 7, 0, 0, 0x80])).unwrap();
        assert_eq!(read_labels(&p).unwrap(), vec![-1, 7, -32768]);
        fs::write(&p, raw_file("|u1", "(2,)", false, &[200, 3])).unwrap();
        assert_eq!(read_labels(&p).unwrap(), vec![200, 3]);
        fs::write(&p, raw_file("<u8", "(1,)", false, &u64::MAX.to_le_bytes())).unwrap();
        assert!(read_labels(&p).unwrap_err().to_string().contains("does not fit"));
    }

    #[test]
    fn rejects_half_complex_and_wrong_rank() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        fs::write(&p, raw_file("<f2", "(2, 2)", false, &[0; 8])).unwrap();
        assert!(matches!(read_matrix(&p), Err(NpyError::Dtype { .. })));
        fs::write(&p, raw_file("<c8", "(1, 1)", false, &[0; 8])).unwrap();
        assert!(matches!(read_matrix(&p), Err(NpyError::Dtype { .. })));
        fs::write(&p, raw_file("<f4", "(4,)", false, &[0; 16])).unwrap();
        let e = read_matrix(&p).unwrap_err();
        assert!(matches!(e, NpyError::Shape { .. }), "{e}");
        assert!(e.to_string().contains("x.npy"));
        fs::write(&p, raw_file("<f4", "(2, 3)", false, &[0; 20])).unwrap();
        assert!(read_matrix(&p).unwrap_err().to_string().contains("truncated data"));
    }

    #[test]
    fn round_trips_matrix_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npy");
        let data: Vec<f32> = (0..15).map(|k| k as f32 * 0.5 - 3.0).collect();
        write_matrix(&p, &data, 5, 3).unwrap();
        assert_eq!(read_matrix(&p).unwrap(), Matrix { data, rows: 5, cols: 3 });
        let bytes = fs::read(&p).unwrap();
        assert_eq!((bytes.len() - 15 * 4) % 64, 0, "data must start 64-byte aligned");
        let q = dir.path().join("l.npy");
        write_labels(&q, &[3, -1, i64::MAX]).unwrap();
        assert_eq!(read_labels(&q).unwrap(), vec![3, -1, i64::MAX]);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = read_matrix(Path::new("/nonexistent/emb.npy")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/emb.npy"), "{e}");
    }
}
