//! Fuzz target `image`: [`embedrank_data::fuzz::image`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedrank_data::fuzz::image(data));
