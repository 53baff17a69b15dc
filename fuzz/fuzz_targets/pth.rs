//! Fuzz target `pth`: [`embedrank_data::fuzz::pth`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedrank_data::fuzz::pth(data));
