//! Fuzz target `datasets`: [`embedrank_data::fuzz::datasets`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedrank_data::fuzz::datasets(data));
