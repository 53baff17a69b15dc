//! Fuzz target `npy`: [`embedrank_data::fuzz::npy`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedrank_data::fuzz::npy(data));
