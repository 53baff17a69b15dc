//! Loads libtorch's CUDA half on demand.
//!
//! The binary links only libtorch's CPU libraries, so runs on CPU (and `embedrank eval`, which
//! needs no libtorch at all) do not map the CUDA stack, several hundred MB of resident memory.
//! When a CUDA device is asked for, `libtorch_cuda.so` is loaded here, found through the binary's
//! rpath or `LD_LIBRARY_PATH`; its static initialisers register CUDA with libtorch.

use std::ffi::{CStr, CString};
use std::sync::OnceLock;

/// Loads `libtorch_cuda.so` once per process; the error says why it could not be loaded.
pub fn load() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let name = CString::new("libtorch_cuda.so").expect("no NUL in a literal");
            // SAFETY: `name` is a valid C string; dlopen/dlerror have no other preconditions. The
            // handle is kept for the life of the process (never closed).
            let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if handle.is_null() {
                // SAFETY: dlerror returns NULL or a valid C string owned by libc.
                let err = unsafe { libc::dlerror() };
                let why = if err.is_null() {
                    "unknown error".to_string()
                } else {
                    // SAFETY: checked non-null above.
                    unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned()
                };
                Err(format!(
                    "could not load libtorch_cuda.so ({why}); point LD_LIBRARY_PATH at the lib/ folder of a CUDA build of torch 2.11.0"
                ))
            } else {
                Ok(())
            }
        })
        .clone()
}
