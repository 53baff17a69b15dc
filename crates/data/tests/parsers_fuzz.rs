//! Property tests: the pickle VM and the MAT v5 reader survive arbitrary and corrupted input
//! without panicking (bad weight or annotation files must be errors, never crashes).

use embedrank_data::dataset::mat;
use embedrank_data::weights::pickle;
use proptest::prelude::*;

/// A hand-assembled state-dict pickle: `OrderedDict(w = _rebuild_tensor_v2(storage '0' of 4 floats,
/// offset 0, size (2, 2), stride (2, 1), False, OrderedDict()))`.
fn state_dict_pickle() -> Vec<u8> {
    let mut p = vec![0x80, 2];
    let global = |p: &mut Vec<u8>, m: &str, n: &str| {
        p.push(b'c');
        p.extend(format!("{m}\n{n}\n").bytes());
    };
    let string = |p: &mut Vec<u8>, s: &str| {
        p.extend([0x8c, s.len() as u8]);
        p.extend(s.bytes());
    };
    global(&mut p, "collections", "OrderedDict");
    p.extend([b')', b'R', b'q', 0, b'(']);
    string(&mut p, "w");
    global(&mut p, "torch._utils", "_rebuild_tensor_v2");
    p.extend([b'(', b'(']);
    string(&mut p, "storage");
    global(&mut p, "torch", "FloatStorage");
    string(&mut p, "0");
    string(&mut p, "cpu");
    p.extend([
        b'K', 4, b't', b'Q', b'K', 0, b'K', 2, b'K', 2, 0x86, b'K', 2, b'K', 1, 0x86, 0x89,
    ]);
    global(&mut p, "collections", "OrderedDict");
    p.extend([b')', b'R', b't', b'R', b'u', b'.']);
    p
}

/// A hand-assembled MAT v5 file holding `x = [1.5, -2]` (1×2 double).
fn mat_file() -> Vec<u8> {
    let mut f = b"MATLAB 5.0 MAT-file".to_vec();
    f.resize(124, b' ');
    f.extend([0x00, 0x01, b'I', b'M']);
    let mut m = Vec::new();
    let tag = |m: &mut Vec<u8>, ty: u32, n: u32| {
        m.extend(ty.to_le_bytes());
        m.extend(n.to_le_bytes());
    };
    tag(&mut m, 6, 8);
    m.extend([6, 0, 0, 0, 0, 0, 0, 0]); // class double
    tag(&mut m, 5, 8);
    m.extend(1i32.to_le_bytes());
    m.extend(2i32.to_le_bytes());
    m.extend([1, 0, 1, 0, b'x', 0, 0, 0]); // small element: miINT8 "x"
    tag(&mut m, 9, 16);
    m.extend(1.5f64.to_le_bytes());
    m.extend((-2.0f64).to_le_bytes());
    tag(&mut f, 14, m.len() as u32);
    f.extend(m);
    f
}

#[test]
fn the_hand_assembled_files_read_as_intended() {
    let v = pickle::load(&state_dict_pickle()).unwrap();
    let t = pickle::tensors(&v).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].0.as_str(), &t[0].1.shape, &t[0].1.stride, t[0].1.storage.numel),
        ("w", &vec![2, 2], &vec![2, 1], 4)
    );
    let vars = mat::parse(&mat_file()).unwrap();
    assert_eq!(vars[0].name, "x");
    assert_eq!(
        vars[0].value,
        mat::MatValue::Numeric {
            dims: vec![1, 2],
            data: vec![1.5, -2.0]
        }
    );
}

fn corrupt(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, u8)], cut: prop::sample::Index) -> Vec<u8> {
    for (at, b) in edits {
        let i = at.index(bytes.len());
        bytes[i] = *b;
    }
    let keep = cut.index(bytes.len() + 1);
    bytes.truncate(keep);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = pickle::load(&bytes);
        let mut with_header = mat_file()[..128].to_vec();
        with_header.extend(&bytes);
        let _ = mat::parse(&with_header);
    }

    #[test]
    fn corrupted_valid_files_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        if let Ok(v) = pickle::load(&corrupt(state_dict_pickle(), &edits, cut)) {
            let _ = pickle::tensors(&v);
        }
        let _ = mat::parse(&corrupt(mat_file(), &edits, cut));
    }
}
