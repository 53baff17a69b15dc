//! Borrowed views of numpy arrays passed by address.
//!
//! The Python wrappers (`embedrank/_arrays.py`) pass `(address, length)` only for arrays they
//! made C-contiguous and aligned with the exact dtype, and hold a reference to each array until
//! the call returns; this is the contract that makes [`view`] sound.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The `len` values of type `T` at `address` (an empty slice when `len` is 0).
///
/// # Safety
/// `address` must point to `len` initialised, aligned values of `T` that stay alive and unchanged
/// for `'a` (the Python side's contract above).
pub unsafe fn view<'a, T>(address: usize, len: usize) -> PyResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if address == 0 || address % std::mem::align_of::<T>() != 0 {
        return Err(PyValueError::new_err(format!(
            "internal error: array address {address:#x} is null or misaligned"
        )));
    }
    // SAFETY: guaranteed by the caller (see the function's contract).
    Ok(unsafe { std::slice::from_raw_parts(address as *const T, len) })
}

/// The raw bytes of a slice of plain numbers, for numpy's `frombuffer`.
pub fn bytes_of<T: Copy>(values: &[T]) -> &[u8] {
    // SAFETY: `T` is a plain number type (f32, f64, i64) without padding; any byte is valid as u8.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) }
}
