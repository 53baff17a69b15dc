//! The values the pickle VM builds: scalars, strings, containers, allowed globals, storages and
//! tensors. Containers free their contents with a work list, never recursion. Strings, tuples,
//! lists and dicts are shared (`Rc`), so copying a value (pickle's memo GET, PUT) costs the same
//! whatever its size: a small pickle cannot GET a big value over and over into gigabytes.

use std::cell::RefCell;
use std::rc::Rc;

use super::DType;

/// A reference to one storage of the zip archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// The storage's key (its file is `data/<key>`).
    pub key: String,
    /// Its element type.
    pub dtype: DType,
    /// Its number of elements.
    pub numel: usize,
}

/// A tensor: a view into a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage.
    pub storage: StorageRef,
    /// The first element's index in the storage.
    pub offset: usize,
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The strides, in elements.
    pub stride: Vec<usize>,
}

/// A callable the VM may name (and the only ones REDUCE may call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter`.
    RebuildParameter,
    /// `torch.<T>Storage`.
    Storage(DType),
}

/// The items of a tuple or list. Dropped without recursion, so a pickle nesting a million
/// containers cannot overflow the stack when its value is freed.
#[derive(Debug, Clone, Default)]
pub struct Items(pub Vec<Value>);

/// The entries of a dict, in insertion order; dropped without recursion like [`Items`].
#[derive(Debug, Clone, Default)]
pub struct Pairs(pub Vec<(Value, Value)>);

impl std::ops::Deref for Items {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.0
    }
}

impl std::ops::DerefMut for Items {
    fn deref_mut(&mut self) -> &mut Vec<Value> {
        &mut self.0
    }
}

impl std::ops::Deref for Pairs {
    type Target = Vec<(Value, Value)>;
    fn deref(&self) -> &Vec<(Value, Value)> {
        &self.0
    }
}

impl std::ops::DerefMut for Pairs {
    fn deref_mut(&mut self) -> &mut Vec<(Value, Value)> {
        &mut self.0
    }
}

/// Frees `work` and everything only it holds with an explicit work list instead of recursion.
fn dismantle(mut work: Vec<Value>) {
    while let Some(v) = work.pop() {
        match v {
            Value::Tuple(items) => {
                if let Ok(mut items) = Rc::try_unwrap(items) {
                    work.append(&mut items.0);
                }
            }
            Value::List(l) => {
                if let Ok(cell) = Rc::try_unwrap(l) {
                    work.append(&mut cell.into_inner().0);
                }
            }
            Value::Dict(d) => {
                if let Ok(cell) = Rc::try_unwrap(d) {
                    for (k, v) in std::mem::take(&mut cell.into_inner().0) {
                        work.push(k);
                        work.push(v);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Drop for Items {
    fn drop(&mut self) {
        dismantle(std::mem::take(&mut self.0));
    }
}

impl Drop for Pairs {
    fn drop(&mut self) {
        let pairs = std::mem::take(&mut self.0);
        dismantle(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect());
    }
}

/// A value built by the VM.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (shared).
    Str(Rc<str>),
    /// A tuple (shared).
    Tuple(Rc<Items>),
    /// A list (shared, as pickle's memo shares it).
    List(Rc<RefCell<Items>>),
    /// A dict or OrderedDict, in insertion order (shared).
    Dict(Rc<RefCell<Pairs>>),
    /// An allowed global.
    Global(Global),
    /// A storage from a persistent id.
    Storage(StorageRef),
    /// A tensor.
    Tensor(TensorRef),
}
