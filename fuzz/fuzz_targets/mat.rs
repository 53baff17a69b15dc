//! Fuzz target `mat`: [`embedrank_data::fuzz::mat`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedrank_data::fuzz::mat(data));
