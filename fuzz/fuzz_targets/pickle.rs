//! Fuzz target `pickle`: [`embedrank_data::fuzz::pickle`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedrank_data::fuzz::pickle(data));
