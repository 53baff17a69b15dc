//! Property tests: the IDX reader survives arbitrary and corrupted input (plain and gzipped) without
//! panicking, and reads back whatever the writer wrote.

use std::io::Write;
use std::path::Path;

use embedrank_data::idx;
use proptest::prelude::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn path() -> &'static Path {
    Path::new("fuzz-idx3-ubyte")
}

/// Parses and converts both ways; whatever happens must not panic.
fn exercise(bytes: &[u8]) {
    if let Ok(array) = idx::parse(bytes, path()) {
        let _ = idx::to_images(array.clone(), path());
        let _ = idx::to_labels(array, path());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        exercise(&bytes);
        // Also behind the gzip magic, so the decompressing path sees garbage too.
        let mut gz = vec![0x1f, 0x8b];
        gz.extend_from_slice(&bytes);
        exercise(&gz);
    }

    #[test]
    fn arbitrary_headers_never_panic(
        ty in prop_oneof![Just(8u8), any::<u8>()],
        ndim in 0u8..6,
        dims in proptest::collection::vec(prop_oneof![0u32..5, any::<u32>()], 0..6),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![0, 0, ty, ndim];
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&tail);
        exercise(&bytes);
        exercise(&gzip(&bytes));
    }

    #[test]
    fn corrupted_valid_files_never_panic(
        dims in proptest::collection::vec(1usize..5, 1..4),
        compress in any::<bool>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let n: usize = dims.iter().product();
        let data: Vec<u8> = (0..n).map(|k| k as u8).collect();
        let plain = idx::encode(&dims, &data, path()).unwrap();
        let mut bytes = if compress { gzip(&plain) } else { plain };
        for (at, v) in &edits {
            let k = at.index(bytes.len());
            bytes[k] = *v;
        }
        let keep = cut.index(bytes.len() + 1);
        bytes.truncate(keep);
        exercise(&bytes);
    }

    #[test]
    fn written_arrays_read_back(
        dims in proptest::collection::vec(0usize..5, 1..4),
        compress in any::<bool>(),
        seed in any::<u8>(),
    ) {
        let n: usize = dims.iter().product();
        let data: Vec<u8> = (0..n).map(|k| (k as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let plain = idx::encode(&dims, &data, path()).unwrap();
        let bytes = if compress { gzip(&plain) } else { plain };
        let back = idx::parse(&bytes, path()).unwrap();
        prop_assert_eq!(back.dims, dims);
        prop_assert_eq!(back.data, data);
    }

    #[test]
    fn every_truncation_of_a_valid_file_is_an_error(
        dims in proptest::collection::vec(1usize..5, 1..4),
        compress in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let n: usize = dims.iter().product();
        let plain = idx::encode(&dims, &vec![7u8; n], path()).unwrap();
        let bytes = if compress { gzip(&plain) } else { plain };
        let keep = cut.index(bytes.len());
        let err = idx::parse(&bytes[..keep], path()).unwrap_err().to_string();
        prop_assert!(err.contains("fuzz-idx3-ubyte"), "{}", err);
    }
}
