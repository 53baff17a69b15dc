//! Requests that cannot fit in memory are refused before anything is allocated, with the figure
//! (exit 2), instead of aborting in the allocator (exit 134): `eval --k all` (N × N neighbour
//! lists) and `loss` (an N × N pair matrix), against the real memory of this machine and against a
//! cap set with EMBEDRANK_MEMORY_LIMIT.

mod common;

use common::{assert_fails, embedrank, embedrank_env, s, Case};

/// `n` points on the unit circle (distinct angles) with `classes` labels, as `.npy` files.
fn circle(case: &Case, n: usize, classes: i64) -> (std::path::PathBuf, std::path::PathBuf) {
    let data: Vec<f32> = (0..n)
        .flat_map(|i| {
            let a = i as f32 * 0.001;
            [a.cos(), a.sin()]
        })
        .collect();
    let labels: Vec<i64> = (0..n as i64).map(|i| i % classes).collect();
    (case.matrix("e.npy", &data, n, 2), case.labels("l.npy", &labels))
}

#[test]
fn eval_k_all_beyond_the_machine_s_memory_is_refused_with_the_figure() {
    // Two million queries, every neighbour: 2e6 × (2e6 − 1) × 8 bytes ≈ 29 TiB of neighbour lists.
    let case = Case::new();
    let (e, l) = circle(&case, 2_000_000, 1000);
    let out = embedrank(&["eval", "--embeddings", s(&e), "--labels", s(&l), "--k", "all"]);
    assert_fails(
        &out,
        &[
            "not enough memory",
            "the neighbour lists (2000000 queries × 1999999 neighbours) needs 29.1 TiB (31999984000000 bytes)",
            "available (",
        ],
    );
}

#[test]
fn eval_under_a_memory_cap_is_refused_and_fits_without_it() {
    let case = Case::new();
    let (e, l) = circle(&case, 3000, 30);
    let args = [
        "eval",
        "--embeddings",
        s(&e),
        "--labels",
        s(&l),
        "--k",
        "all",
        "--metrics",
        "precision_at_1",
    ];
    // 3000 × 2999 × 8 bytes = 68.6 MiB of neighbour lists, over a 16 MiB cap.
    let out = embedrank_env(&args, &[("EMBEDRANK_MEMORY_LIMIT", "16M")]);
    assert_fails(&out, &["needs 68.6 MiB (71976000 bytes)", "EMBEDRANK_MEMORY_LIMIT=16M"]);
    // Under a cap above the lists but below the search's buffers, the kNN's own estimate refuses.
    let out = embedrank_env(&args, &[("EMBEDRANK_MEMORY_LIMIT", "70M")]);
    assert_fails(
        &out,
        &["the kNN search (3000 queries × 2999 neighbours among 3000 references)"],
    );
    let out = embedrank(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_loss_whose_pair_matrix_cannot_fit_is_refused_with_the_figure() {
    let case = Case::new();
    // Two million rows: a 2e6 × 2e6 f32 pair matrix is 14.6 TiB.
    let (e, l) = circle(&case, 2_000_000, 1000);
    let out = embedrank(&["loss", "--loss", "fastap", "--embeddings", s(&e), "--labels", s(&l)]);
    assert_fails(
        &out,
        &[
            "e.npy",
            "not enough memory: the fastap loss's 2000000×2000000 pair matrix needs 14.6 TiB",
        ],
    );
    // float64 embeddings: 8 bytes per pair, against a cap.
    let small = Case::new();
    let rows: Vec<u8> = (0..3000 * 2)
        .flat_map(|i| (f64::from(i) * 1e-3).cos().to_le_bytes())
        .collect();
    let e64 = small.raw_npy("e64.npy", "<f8", "(3000, 2)", &rows);
    let l = small.labels("l.npy", &(0..3000).map(|i| i % 7).collect::<Vec<_>>());
    let args = ["loss", "--loss", "fappy", "--embeddings", s(&e64), "--labels", s(&l)];
    let out = embedrank_env(&args, &[("EMBEDRANK_MEMORY_LIMIT", "64M")]);
    assert_fails(
        &out,
        &["fappy loss's 3000×3000 pair matrix needs 68.7 MiB (72000000 bytes)"],
    );
    let out = embedrank_env(&args, &[("EMBEDRANK_MEMORY_LIMIT", "1G")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
