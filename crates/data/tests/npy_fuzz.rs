//! Property tests: the `.npy` reader survives arbitrary and corrupted input without panicking.

use std::path::Path;

use embedrank_data::npy;
use proptest::prelude::*;

fn valid_file(rows: usize, cols: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.npy");
    let data: Vec<f32> = (0..rows * cols).map(|k| k as f32).collect();
    npy::write_matrix(&p, &data, rows, cols).unwrap();
    std::fs::read(p).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = npy::parse(&bytes, Path::new("fuzz.npy"));
    }

    #[test]
    fn corrupted_valid_files_never_panic(
        rows in 0usize..6, cols in 0usize..6,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = valid_file(rows, cols);
        for (at, v) in &edits {
            let k = at.index(bytes.len());
            bytes[k] = *v;
        }
        let keep = cut.index(bytes.len() + 1);
        bytes.truncate(keep);
        let path = Path::new("fuzz.npy");
        if let Ok(raw) = npy::parse(&bytes, path) {
            // Whatever parsed must convert (or be refused) without panicking.
            let _ = npy::to_matrix(raw.clone(), path);
            let _ = npy::to_labels(raw, path);
        }
    }

    #[test]
    fn header_text_mutations_never_panic(header in "[ -~]{0,120}") {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 64]);
        let _ = npy::parse(&bytes, Path::new("fuzz.npy"));
    }
}
