//! The C ABI of `csrc/distributed.cpp`, and its error messages as Rust strings.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

use torch_sys::C_tensor;

extern "C" {
    pub fn embedrank_dist_free_message(message: *mut c_char);
    pub fn embedrank_dist_new_gloo(
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        timeout_ms: i64,
        error: *mut *mut c_char,
    ) -> *mut c_void;
    pub fn embedrank_dist_free(group: *mut c_void);
    pub fn embedrank_dist_allreduce_sum(group: *mut c_void, tensors: *const *mut C_tensor, n: usize) -> *mut c_char;
    pub fn embedrank_dist_allgather(
        group: *mut c_void,
        input: *mut C_tensor,
        outputs: *const *mut C_tensor,
        n: usize,
    ) -> *mut c_char;
    pub fn embedrank_dist_broadcast(
        group: *mut c_void,
        tensors: *const *mut C_tensor,
        n: usize,
        root: c_int,
    ) -> *mut c_char;
    pub fn embedrank_dist_barrier(group: *mut c_void) -> *mut c_char;
}

/// `Ok(())` for a NULL message, else the message (freed here).
pub fn check(message: *mut c_char) -> Result<(), String> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: a non-NULL message is a NUL-terminated malloc'd string from the shim, freed once here.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    // SAFETY: as above; not used after this.
    unsafe { embedrank_dist_free_message(message) };
    Err(text)
}
