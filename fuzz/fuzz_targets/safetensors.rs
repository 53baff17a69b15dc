//! Fuzz target `safetensors`: [`embedrank_data::fuzz::safetensors`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedrank_data::fuzz::safetensors(data));
