//! Fuzz target `idx`: [`embedrank_data::fuzz::idx`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedrank_data::fuzz::idx(data));
