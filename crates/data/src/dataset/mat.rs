//! A minimal reader for MATLAB level-5 `.mat` files (what Cars196's `cars_annos.mat` is).
//!
//! A MAT v5 file is a 128-byte header (text, version `0x0100`, endian mark `IM`/`MI`) followed by
//! data elements, each an 8-byte tag (type, byte count; or the 4-byte "small element" form) and
//! its data padded to 8 bytes. `miCOMPRESSED` elements hold a zlib stream of further elements.
//! Variables are `miMATRIX` elements: array flags, dimensions, name, then the data — numeric (any
//! integer or float element type, read as `f64`), char (UTF-8/16/8-bit), cell and struct arrays
//! are read; sparse, complex and object arrays are refused. Nothing is trusted: every length is
//! checked against the bytes there are, nesting depth and decompressed size are bounded, and a
//! bad file is an error naming it, never a panic.

use std::io::Read;
use std::path::Path;

use flate2::read::ZlibDecoder;

use super::{DatasetError, Result};

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MX_CELL: u32 = 1;
const MX_STRUCT: u32 = 2;
const MX_CHAR: u32 = 4;
/// Refuse to inflate a compressed element beyond this (a defence against zip bombs): 1 GiB.
const MAX_INFLATED: u64 = 1 << 30;
const MAX_DEPTH: usize = 32;

/// A MATLAB array.
#[derive(Debug, Clone, PartialEq)]
pub enum MatValue {
    /// A numeric or logical array, column-major, converted to `f64`.
    Numeric {
        /// Dimensions.
        dims: Vec<usize>,
        /// Elements, column-major.
        data: Vec<f64>,
    },
    /// A char array (rows joined with `\n`).
    Char {
        /// Dimensions.
        dims: Vec<usize>,
        /// The text.
        text: String,
    },
    /// A cell array, column-major.
    Cell {
        /// Dimensions.
        dims: Vec<usize>,
        /// The cells.
        items: Vec<MatValue>,
    },
    /// A struct array: `values[e * fields.len() + f]` is field `f` of element `e` (column-major).
    Struct {
        /// Dimensions.
        dims: Vec<usize>,
        /// Field names.
        fields: Vec<String>,
        /// Field values, element by element.
        values: Vec<MatValue>,
    },
}

impl MatValue {
    /// The number of elements (product of the dimensions).
    pub fn len(&self) -> usize {
        let dims = match self {
            MatValue::Numeric { dims, .. }
            | MatValue::Char { dims, .. }
            | MatValue::Cell { dims, .. }
            | MatValue::Struct { dims, .. } => dims,
        };
        dims.iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The single number of a 1×1 numeric array.
    pub fn scalar(&self) -> Option<f64> {
        match self {
            MatValue::Numeric { data, .. } if data.len() == 1 => Some(data[0]),
            _ => None,
        }
    }

    /// The text of a char array.
    pub fn text(&self) -> Option<&str> {
        match self {
            MatValue::Char { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Field `name` of element `index` of a struct array.
    pub fn field(&self, index: usize, name: &str) -> Option<&MatValue> {
        match self {
            MatValue::Struct { fields, values, .. } => {
                let f = fields.iter().position(|n| n == name)?;
                values.get(index.checked_mul(fields.len())?.checked_add(f)?)
            }
            _ => None,
        }
    }
}

/// A named variable of a `.mat` file.
#[derive(Debug, Clone, PartialEq)]
pub struct MatVar {
    /// The variable's name.
    pub name: String,
    /// Its value.
    pub value: MatValue,
}

/// Reads every variable of the MAT v5 file `path`.
pub fn read(path: &Path) -> Result<Vec<MatVar>> {
    let bytes = std::fs::read(path).map_err(|io| DatasetError::Io {
        path: path.to_path_buf(),
        io,
    })?;
    parse(&bytes).map_err(|reason| DatasetError::Format {
        path: path.to_path_buf(),
        reason: format!("not a readable MAT v5 file: {reason}"),
    })
}

/// Parses the bytes of a MAT v5 file into its variables (errors are plain messages).
pub fn parse(bytes: &[u8]) -> std::result::Result<Vec<MatVar>, String> {
    if bytes.len() < 128 {
        return Err(format!("{} bytes, shorter than the 128-byte header", bytes.len()));
    }
    let big = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        m => return Err(format!("bad endian mark {m:?} (MAT v7.3/HDF5 files are not supported)")),
    };
    let mut r = Reader {
        buf: &bytes[128..],
        pos: 0,
        big,
    };
    let mut vars = Vec::new();
    while !r.done() {
        r.top_level(&mut vars, 0)?;
    }
    Ok(vars)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big: bool,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn u32_at(&self, at: usize) -> std::result::Result<u32, String> {
        let b: [u8; 4] = self
            .buf
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or("truncated element tag")?;
        Ok(if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// The next element's type and data; `pad` says whether data is padded to 8 bytes.
    fn element(&mut self, pad: bool) -> std::result::Result<(u32, &'a [u8]), String> {
        let first = self.u32_at(self.pos)?;
        if first >> 16 != 0 {
            // Small element: type in the low half, byte count in the high half, data in the next 4 bytes.
            let n = (first >> 16) as usize;
            if n > 4 {
                return Err(format!("small element of {n} bytes (at most 4)"));
            }
            let data = self
                .buf
                .get(self.pos + 4..self.pos + 4 + n)
                .ok_or("truncated small element")?;
            self.pos += 8;
            return Ok((first & 0xffff, data));
        }
        let n = self.u32_at(self.pos + 4)? as usize;
        let start = self.pos + 8;
        let data = self
            .buf
            .get(start..start.checked_add(n).ok_or("element size overflow")?)
            .ok_or_else(|| {
                format!(
                    "element of type {first} claims {n} bytes, {} left",
                    self.buf.len() - start.min(self.buf.len())
                )
            })?;
        self.pos = start + if pad { n.div_ceil(8) * 8 } else { n };
        Ok((first, data))
    }

    fn top_level(&mut self, vars: &mut Vec<MatVar>, depth: usize) -> std::result::Result<(), String> {
        let (ty, data) = self.element(false)?;
        match ty {
            MI_COMPRESSED => {
                if depth > 0 {
                    return Err("nested compressed element".into());
                }
                let mut inflated = Vec::new();
                ZlibDecoder::new(data)
                    .take(MAX_INFLATED + 1)
                    .read_to_end(&mut inflated)
                    .map_err(|e| format!("corrupt compressed element: {e}"))?;
                if inflated.len() as u64 > MAX_INFLATED {
                    return Err("compressed element inflates beyond 1 GiB".into());
                }
                let mut inner = Reader {
                    buf: &inflated,
                    pos: 0,
                    big: self.big,
                };
                while !inner.done() {
                    inner.top_level(vars, depth + 1)?;
                }
                Ok(())
            }
            MI_MATRIX => {
                let (name, value) = self.matrix(data, 0)?;
                vars.push(MatVar { name, value });
                // Top-level matrices are padded too.
                self.pos = self.pos.div_ceil(8) * 8;
                Ok(())
            }
            t => Err(format!("unexpected top-level element type {t}")),
        }
    }

    fn sub(&self, data: &'a [u8]) -> Reader<'a> {
        Reader {
            buf: data,
            pos: 0,
            big: self.big,
        }
    }

    fn matrix(&self, data: &'a [u8], depth: usize) -> std::result::Result<(String, MatValue), String> {
        if depth > MAX_DEPTH {
            return Err(format!("arrays nested deeper than {MAX_DEPTH}"));
        }
        if data.is_empty() {
            return Ok((
                String::new(),
                MatValue::Numeric {
                    dims: vec![0, 0],
                    data: vec![],
                },
            ));
        }
        let mut r = self.sub(data);
        let (ty, flags) = r.element(true)?;
        if ty != MI_UINT32 || flags.len() < 8 {
            return Err(format!("array flags of type {ty}, {} bytes", flags.len()));
        }
        let flags = r.sub(flags).u32_at(0)?;
        let class = flags & 0xff;
        if flags & 0x800 != 0 {
            return Err("complex arrays are not supported".into());
        }
        let dims: Vec<usize> = {
            let e = r.element(true)?;
            ints(r.big, e)?
        }
        .into_iter()
        .map(|d| d as usize)
        .collect();
        let count = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or("dimensions overflow")?;
        let (_, name) = r.element(true)?;
        let name = String::from_utf8_lossy(name).into_owned();
        let value = match class {
            MX_CELL | MX_STRUCT => {
                let fields = if class == MX_STRUCT {
                    field_names(&mut r)?
                } else {
                    Vec::new()
                };
                let n = count.checked_mul(fields.len().max(1)).ok_or("too many cells")?;
                if n > r.buf.len() / 8 + 1 {
                    return Err(format!("{n} cells claimed in {} bytes", r.buf.len()));
                }
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    let (ty, d) = r.element(true)?;
                    if ty != MI_MATRIX {
                        return Err(format!("cell/field of element type {ty}, not a matrix"));
                    }
                    values.push(self.matrix(d, depth + 1)?.1);
                }
                if class == MX_CELL {
                    MatValue::Cell { dims, items: values }
                } else {
                    MatValue::Struct { dims, fields, values }
                }
            }
            MX_CHAR => {
                let (ty, d) = r.element(true)?;
                let units: Vec<u32> = match ty {
                    MI_UTF8 | MI_UINT8 | MI_INT8 => {
                        return Ok((
                            name,
                            char_array(dims, String::from_utf8_lossy(d).chars().map(u32::from).collect()),
                        ))
                    }
                    MI_UTF16 => numeric(r.big, MI_UINT16, d)?.into_iter().map(|v| v as u32).collect(),
                    _ => numeric(r.big, ty, d)?.into_iter().map(|v| v as u32).collect(),
                };
                char_array(dims, units)
            }
            6..=15 => {
                let (ty, d) = r.element(true)?;
                let data = numeric(r.big, ty, d)?;
                if data.len() != count {
                    return Err(format!("{} numbers for dimensions {dims:?}", data.len()));
                }
                MatValue::Numeric { dims, data }
            }
            c => return Err(format!("array class {c} (sparse/object/function) is not supported")),
        };
        Ok((name, value))
    }
}

fn char_array(dims: Vec<usize>, units: Vec<u32>) -> MatValue {
    let chars: Vec<char> = units
        .into_iter()
        .map(|u| char::from_u32(u).unwrap_or('\u{fffd}'))
        .collect();
    // Never more rows than characters: the declared dimensions alone must not size an allocation.
    let rows = dims.first().copied().unwrap_or(1).clamp(1, chars.len().max(1));
    let text = if rows == 1 {
        chars.into_iter().collect()
    } else {
        // Column-major: row i is every rows-th char from i.
        (0..rows)
            .map(|i| chars.iter().skip(i).step_by(rows).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    };
    MatValue::Char { dims, text }
}

fn field_names(r: &mut Reader<'_>) -> std::result::Result<Vec<String>, String> {
    let e = r.element(true)?;
    let len = ints(r.big, e)?;
    let len = match len.as_slice() {
        [l] if *l > 0 => *l as usize,
        _ => return Err(format!("bad field name length {len:?}")),
    };
    let (_, names) = r.element(true)?;
    Ok(names
        .chunks(len)
        .map(|c| String::from_utf8_lossy(c.split(|&b| b == 0).next().unwrap_or(&[])).into_owned())
        .collect())
}

fn ints(big: bool, (ty, d): (u32, &[u8])) -> std::result::Result<Vec<i64>, String> {
    numeric(big, ty, d)?
        .into_iter()
        .map(|v| {
            if v.fract() == 0.0 && v >= 0.0 {
                Ok(v as i64)
            } else {
                Err(format!("bad size {v}"))
            }
        })
        .collect()
}

/// The elements of a numeric data element, as `f64`.
fn numeric(big: bool, ty: u32, d: &[u8]) -> std::result::Result<Vec<f64>, String> {
    macro_rules! conv {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            if !d.chunks_exact(N).remainder().is_empty() {
                return Err(format!("{} bytes is not a whole number of {N}-byte elements", d.len()));
            }
            d.chunks_exact(N)
                .map(|c| {
                    let b: [u8; N] = c.try_into().expect("chunk of N bytes");
                    (if big {
                        <$t>::from_be_bytes(b)
                    } else {
                        <$t>::from_le_bytes(b)
                    }) as f64
                })
                .collect()
        }};
    }
    Ok(match ty {
        MI_INT8 => conv!(i8),
        MI_UINT8 => conv!(u8),
        MI_INT16 => conv!(i16),
        MI_UINT16 => conv!(u16),
        MI_INT32 => conv!(i32),
        MI_UINT32 => conv!(u32),
        MI_SINGLE => conv!(f32),
        MI_DOUBLE => conv!(f64),
        MI_INT64 => conv!(i64),
        MI_UINT64 => conv!(u64),
        t => return Err(format!("element type {t} is not numeric")),
    })
}
