//! A minimal, safe pickle interpreter for `torch.save` state dicts: it builds values, never runs code.
//!
//! It understands the opcodes a state dict's pickle uses (protocols 2–5): PROTO, FRAME, MARK,
//! EMPTY_DICT/LIST/TUPLE, TUPLE/TUPLE1/2/3, the integer, float, string and bool opcodes, the memo
//! (BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET), SETITEM(S), APPEND(S), BUILD, BINPERSID
//! (storages: `('storage', torch.<T>Storage, key, location, numel)`), REDUCE and STOP. GLOBAL /
//! STACK_GLOBAL may name only `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch._utils._rebuild_parameter` and the `torch.<T>Storage` types, and REDUCE may call only
//! those. Anything else — `os.system`, INST, OBJ, NEWOBJ, … — is an [`PickleError::Unsafe`] naming
//! the opcode or the global. Every read is bounds-checked; malformed input is an error, never a panic.

use std::rc::Rc;

pub use super::pickle_value::{Global, Items, Pairs, StorageRef, TensorRef, Value};
use super::DType;

/// Why a pickle could not be interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickleError {
    /// An opcode or global outside the safe subset.
    Unsafe(String),
    /// A malformed pickle.
    Malformed(String),
}

/// The most dimensions a tensor may have (PyTorch's own limit is lower).
const MAX_DIMS: usize = 64;

/// The longest storage key read (torch.save writes decimal numbers).
const MAX_KEY: usize = 255;

/// The most values [`tensors`] visits: dicts that share sub-dicts can make a walk exponential.
pub const MAX_VISITS: usize = 1 << 18;

/// The longest dotted tensor name [`tensors`] builds.
pub const MAX_NAME: usize = 1024;

fn malformed(s: impl Into<String>) -> PickleError {
    PickleError::Malformed(s.into())
}

/// The allowed globals by module and name.
fn global(module: &str, name: &str) -> Result<Global, PickleError> {
    let storage = |d| Ok(Global::Storage(d));
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Ok(Global::RebuildParameter),
        ("torch", "FloatStorage") => storage(DType::F32),
        ("torch", "DoubleStorage") => storage(DType::F64),
        ("torch", "HalfStorage") => storage(DType::F16),
        ("torch", "BFloat16Storage") => storage(DType::BF16),
        ("torch", "LongStorage") => storage(DType::I64),
        ("torch", "IntStorage") => storage(DType::I32),
        ("torch", "ShortStorage") => storage(DType::I16),
        ("torch", "CharStorage") => storage(DType::I8),
        ("torch", "ByteStorage") => storage(DType::U8),
        ("torch", "BoolStorage") => storage(DType::Bool),
        _ => Err(PickleError::Unsafe(format!("global `{module}.{name}`"))),
    }
}

/// The name of a pickle opcode, for error messages.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'c' => "GLOBAL",
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        b'R' => "REDUCE",
        b'P' => "PERSID",
        b'I' => "INT",
        b'L' => "LONG",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'F' => "FLOAT",
        b'p' => "PUT",
        b'g' => "GET",
        b'B' | b'C' | 0x8e => "BINBYTES",
        b'T' | b'U' => "BINSTRING",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x82..=0x84 => "EXT",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'l' => "LIST",
        b'd' => "DICT",
        _ => "unknown",
    }
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: Vec<Option<Value>>,
}

impl<'a> Vm<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| malformed(format!("truncated at byte {}", self.pos)))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, PickleError> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(malformed("pop across a MARK"));
        }
        self.stack.pop().ok_or_else(|| malformed("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let m = self.marks.pop().ok_or_else(|| malformed("no MARK"))?;
        Ok(self.stack.split_off(m))
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        self.stack.last_mut().ok_or_else(|| malformed("stack underflow"))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| malformed("unterminated GLOBAL"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn string(&mut self, n: u64) -> Result<Value, PickleError> {
        let n = usize::try_from(n).map_err(|_| malformed("string too long"))?;
        let b = self.take(n)?;
        let text = std::str::from_utf8(b).map_err(|_| malformed("string is not UTF-8"))?;
        Ok(Value::Str(text.into()))
    }

    fn put(&mut self, index: usize) -> Result<(), PickleError> {
        if index > self.data.len() {
            return Err(malformed(format!("memo index {index} out of range")));
        }
        let v = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| malformed("PUT on an empty stack"))?;
        if self.memo.len() <= index {
            self.memo.resize(index + 1, None);
        }
        self.memo[index] = Some(v);
        Ok(())
    }

    fn get(&mut self, index: usize) -> Result<(), PickleError> {
        let v = self.memo.get(index).cloned().flatten();
        self.stack
            .push(v.ok_or_else(|| malformed(format!("memo entry {index} is empty")))?);
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        if items.len() % 2 != 0 {
            return Err(malformed("SETITEMS with an odd number of values"));
        }
        let Value::Dict(d) = self.top()? else {
            return Err(malformed("SETITEM(S) on a non-dict"));
        };
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    fn run(mut self) -> Result<Value, PickleError> {
        loop {
            let at = self.pos;
            let op = self.take(1)?[0];
            match op {
                0x80 => {
                    let p = self.take(1)?[0];
                    if p > 5 {
                        return Err(malformed(format!("pickle protocol {p}")));
                    }
                }
                0x95 => {
                    self.take(8)?;
                }
                b'(' => self.marks.push(self.stack.len()),
                b'}' => self.stack.push(Value::Dict(Rc::default())),
                b']' => self.stack.push(Value::List(Rc::default())),
                b')' => self.stack.push(Value::Tuple(Rc::default())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(Rc::new(Items(items))));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items: Vec<Value> = (0..n).map(|_| self.pop()).collect::<Result<_, _>>()?;
                    items.reverse();
                    self.stack.push(Value::Tuple(Rc::new(Items(items))));
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a => {
                    let n = usize::from(self.take(1)?[0]);
                    if n > 8 {
                        return Err(malformed(format!("LONG1 of {n} bytes")));
                    }
                    let raw = self.uint(n)?;
                    // Sign-extend from n bytes.
                    let v = if n == 0 {
                        0
                    } else {
                        ((raw << (64 - 8 * n)) as i64) >> (64 - 8 * n)
                    };
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let b: [u8; 8] = self.take(8)?.try_into().expect("8 bytes");
                    self.stack.push(Value::Float(f64::from_be_bytes(b)));
                }
                b'X' => {
                    let n = self.uint(4)?;
                    let s = self.string(n)?;
                    self.stack.push(s);
                }
                0x8c => {
                    let n = self.uint(1)?;
                    let s = self.string(n)?;
                    self.stack.push(s);
                }
                0x8d => {
                    let n = self.uint(8)?;
                    let s = self.string(n)?;
                    self.stack.push(s);
                }
                b'q' => {
                    let i = self.uint(1)? as usize;
                    self.put(i)?;
                }
                b'r' => {
                    let i = self.uint(4)? as usize;
                    self.put(i)?;
                }
                0x94 => {
                    let i = self.memo.len();
                    self.put(i)?;
                }
                b'h' => {
                    let i = self.uint(1)? as usize;
                    self.get(i)?;
                }
                b'j' => {
                    let i = self.uint(4)? as usize;
                    self.get(i)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(global(&module, &name)?));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(global(&m, &n)?)),
                        _ => return Err(malformed("STACK_GLOBAL without two strings")),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(Value::Storage(persistent(pid)?));
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    self.stack.push(reduce(f, args)?);
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'a' | b'e' => {
                    let items = if op == b'a' {
                        vec![self.pop()?]
                    } else {
                        self.pop_mark()?
                    };
                    let Value::List(l) = self.top()? else {
                        return Err(malformed("APPEND(S) on a non-list"));
                    };
                    l.borrow_mut().extend(items);
                }
                b'b' => {
                    // The state of an OrderedDict (its `_metadata`) or of a tensor is not needed.
                    let _state = self.pop()?;
                    if !matches!(self.top()?, Value::Dict(_) | Value::Tensor(_)) {
                        return Err(malformed("BUILD on something other than a dict or tensor"));
                    }
                }
                b'.' => return self.pop(),
                _ => {
                    return Err(PickleError::Unsafe(format!(
                        "opcode {} (0x{op:02x}) at byte {at}",
                        opcode_name(op)
                    )))
                }
            }
        }
    }
}

fn int(v: &Value, what: &str) -> Result<usize, PickleError> {
    match v {
        Value::Int(i) => usize::try_from(*i).map_err(|_| malformed(format!("{what} {i} is negative"))),
        _ => Err(malformed(format!("{what} is not an integer"))),
    }
}

fn ints(v: &Value, what: &str) -> Result<Vec<usize>, PickleError> {
    match v {
        Value::Tuple(items) => items.iter().map(|i| int(i, what)).collect(),
        _ => Err(malformed(format!("{what} is not a tuple"))),
    }
}

/// A storage persistent id: `('storage', torch.<T>Storage, key, location, numel)`.
fn persistent(pid: Value) -> Result<StorageRef, PickleError> {
    match pid {
        Value::Tuple(t) => match t.as_slice() {
            [Value::Str(tag), Value::Global(Global::Storage(dtype)), Value::Str(key), Value::Str(_), numel]
                if &**tag == "storage" =>
            {
                if key.len() > MAX_KEY {
                    return Err(malformed(format!(
                        "a storage key of {} bytes (at most {MAX_KEY})",
                        key.len()
                    )));
                }
                Ok(StorageRef {
                    key: key.to_string(),
                    dtype: *dtype,
                    numel: int(numel, "storage size")?,
                })
            }
            _ => Err(malformed(
                "persistent id is not ('storage', type, key, location, numel)",
            )),
        },
        _ => Err(malformed("persistent id is not a tuple")),
    }
}

/// Calls one of the allowed globals.
fn reduce(f: Value, args: Value) -> Result<Value, PickleError> {
    let Value::Tuple(args) = args else {
        return Err(malformed("REDUCE arguments are not a tuple"));
    };
    match f {
        Value::Global(Global::OrderedDict) if args.is_empty() => Ok(Value::Dict(Rc::default())),
        Value::Global(Global::RebuildTensorV2) => match args.as_slice() {
            [Value::Storage(s), offset, shape, stride, ..] if (6..=7).contains(&args.len()) => {
                let (shape, stride) = (ints(shape, "size")?, ints(stride, "stride")?);
                if shape.len() > MAX_DIMS {
                    return Err(malformed(format!(
                        "a tensor of {} dimensions (at most {MAX_DIMS} are read)",
                        shape.len()
                    )));
                }
                Ok(Value::Tensor(TensorRef {
                    storage: s.clone(),
                    offset: int(offset, "storage offset")?,
                    shape,
                    stride,
                }))
            }
            _ => Err(malformed("_rebuild_tensor_v2 called with unexpected arguments")),
        },
        Value::Global(Global::RebuildParameter) => match args.first() {
            Some(t @ Value::Tensor(_)) => Ok(t.clone()),
            _ => Err(malformed("_rebuild_parameter called without a tensor")),
        },
        Value::Global(g) => Err(PickleError::Unsafe(format!("calling {g:?} with these arguments"))),
        _ => Err(malformed("REDUCE on something that is not an allowed global")),
    }
}

/// Interprets a pickle, returning its top-level value.
pub fn load(data: &[u8]) -> Result<Value, PickleError> {
    Vm {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Vec::new(),
    }
    .run()
}

/// Every tensor in `value` with its dotted key path (nested dicts' keys joined by `.`), in order
/// (dicts nested deeper than 32 levels, e.g. a dict holding itself, are not entered). A walk that
/// would visit more than [`MAX_VISITS`] values (dicts sharing sub-dicts level after level) or build
/// a name longer than [`MAX_NAME`] bytes is an error, not an exponential loop.
pub fn tensors(value: &Value) -> Result<Vec<(String, TensorRef)>, PickleError> {
    fn walk(
        v: &Value,
        prefix: &str,
        depth: usize,
        visits: &mut usize,
        out: &mut Vec<(String, TensorRef)>,
    ) -> Result<(), PickleError> {
        *visits += 1;
        if *visits > MAX_VISITS {
            return Err(malformed(format!(
                "walking its dicts visits more than {MAX_VISITS} values (dicts shared level after level)"
            )));
        }
        match v {
            _ if depth > 32 => {}
            Value::Tensor(t) => out.push((prefix.to_string(), t.clone())),
            Value::Dict(d) => {
                for (k, v) in d.borrow().iter() {
                    let key = match k {
                        Value::Str(s) => s.to_string(),
                        Value::Int(i) => i.to_string(),
                        _ => continue,
                    };
                    if prefix.len() + key.len() >= MAX_NAME {
                        return Err(malformed(format!(
                            "a key path longer than {MAX_NAME} bytes (`{}…`)",
                            prefix.chars().take(40).collect::<String>()
                        )));
                    }
                    let name = if prefix.is_empty() {
                        key
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(v, &name, depth + 1, visits, out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(value, "", 0, &mut 0, &mut out)?;
    Ok(out)
}
