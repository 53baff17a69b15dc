"""SiMix (`simix = true`) of embedrank's Recall@k surrogate against the official trainer with
`--mixup 1` (recall_k_surrogate_reference.py: `pos_mixup` + the loss, torch float64 autograd).

Both sides use the same coefficients: the test draws one α per same-class pair, feeds them to the
transcription in the official order and to embedrank (`simix_alphas`) in its own order (pairs
`a < b` of the batch's rows, `a` then `b` ascending). Loss to 1e-5, gradient to 1e-4 of its
largest entry.
"""

import numpy as np
import pytest
import torch

import embedrank_cli as er
from recall_k_surrogate_reference import K_TEMPERATURES, K_VALS, official_simix, paper, with_gradient

# The pairs of a class group in `pos_mixup`'s order (its fake_1, fake_2, ...).
OFFICIAL_ORDER = {
    3: [(0, 1), (1, 2), (0, 2)],
    4: [(0, 1), (1, 2), (2, 3), (0, 3), (0, 2), (1, 3)],
    6: [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 2), (0, 3), (0, 4), (0, 5), (1, 3), (1, 4), (1, 5),
        (2, 4), (2, 5), (3, 5)],
}


def assert_matches(ours, grad, ref, ref_grad):
    assert abs(ours - ref) <= 1e-5, (ours, ref)
    scale = max(np.abs(ref_grad).max(), 1e-12)
    assert np.abs(grad - ref_grad).max() <= 1e-4 * scale, np.abs(grad - ref_grad).max() / scale


def official_alphas(rng, classes, per_class):
    """One α per pair, as {(row a, row b): α} over the class-sorted batch, and the official stream."""
    stream, by_pair = [], {}
    for g in range(classes):
        for a, b in OFFICIAL_ORDER[per_class]:
            alpha = float(rng.uniform())
            stream.append(alpha)
            by_pair[(g * per_class + a, g * per_class + b)] = alpha
    return stream, by_pair


def our_alphas(labels, by_pair, perm):
    """embedrank's `simix_alphas` for the batch reordered by `perm` (new row i = old row perm[i]):
    its pairs a < b in row order, α flipped to 1 − α where the pair's rows swapped order."""
    inv = {int(old): new for new, old in enumerate(perm)}
    pairs = {}
    for (a, b), alpha in by_pair.items():
        na, nb = inv[a], inv[b]
        pairs[(min(na, nb), max(na, nb))] = alpha if na < nb else 1.0 - alpha
    n = len(labels)
    ordered = [(a, b) for a in range(n) for b in range(a + 1, n) if labels[a] == labels[b]]
    assert sorted(pairs) == ordered
    return [pairs[p] for p in ordered]


def ours(tmp_path, x, labels, alphas, *extra):
    return er.loss(tmp_path, "recall-k-surrogate", x, labels, "--set", "loss.simix=true",
                   "--set", f"loss.simix_alphas={alphas!r}", *extra)


CASES = [
    # (classes, samples per class, dim, unit rows, seed): the official layouts (groups of 3, 4, 6)
    (2, 4, 3, True, 0),
    (5, 4, 8, True, 1),  # the official default of 4 per class
    (1, 4, 4, True, 2),  # N = 4: k = 8 and 16 lowered to 4 (not to the mixed batch's 10)
    (3, 3, 5, True, 3),
    (2, 6, 6, True, 4),
    (4, 4, 6, False, 5),  # rows of norm 0.15–0.3
    (8, 4, 32, True, 6),
]


@pytest.mark.parametrize("classes,per_class,dim,unit,seed", CASES)
def test_simix_matches_the_official_mixup(tmp_path, classes, per_class, dim, unit, seed):
    rng = np.random.default_rng(300 + seed)
    n = classes * per_class
    x = rng.normal(size=(n, dim))
    x = er.unit_rows(x) if unit else x * rng.uniform(0.15, 0.3, size=(n, 1))
    labels = np.repeat(rng.permutation(1000)[:classes], per_class).astype(np.int64)
    stream, by_pair = official_alphas(rng, classes, per_class)
    draws = iter(stream)
    ref, ref_grad = with_gradient(official_simix, x, classes, lambda: next(draws))
    for perm in [np.arange(n), rng.permutation(n)]:
        alphas = our_alphas(labels[perm], by_pair, perm)
        value, grad = ours(tmp_path, x[perm], labels[perm], alphas, "--set", "loss.variant=reference")
        assert_matches(value, grad, ref, ref_grad[perm])


def mixed_paper(x, labels, alphas, k_vals=K_VALS):
    """The paper's surrogate on the batch extended by embedrank's pairs, k lowered to the original N."""
    n = x.shape[0]
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n) if labels[a] == labels[b]]
    rows = [alpha * x[a] + (1.0 - alpha) * x[b] for (a, b), alpha in zip(pairs, alphas)]
    mixed = torch.cat([x, torch.stack(rows)]) if rows else x
    mixed_labels = list(labels) + [labels[a] for a, _ in pairs]
    return paper(mixed, mixed_labels, k_vals=[min(k, n) for k in k_vals], k_temperatures=K_TEMPERATURES)


@pytest.mark.parametrize("sizes,dim,seed", [([3, 1, 5, 2], 6, 0), ([2, 2], 2, 1), ([4] * 6, 16, 2), ([7], 4, 3)])
def test_simix_with_the_paper_variant(tmp_path, sizes, dim, seed):
    rng = np.random.default_rng(400 + seed)
    labels = np.repeat(rng.permutation(1000)[: len(sizes)], sizes).astype(np.int64)
    labels = labels[rng.permutation(len(labels))]
    x = er.unit_rows(rng.normal(size=(len(labels), dim)))
    n = len(labels)
    pairs = sum(1 for a in range(n) for b in range(a + 1, n) if labels[a] == labels[b])
    alphas = [float(v) for v in rng.uniform(size=pairs)]
    value, grad = ours(tmp_path, x, labels, alphas)
    ref, ref_grad = with_gradient(mixed_paper, x, [int(v) for v in labels], alphas)
    assert_matches(value, grad, ref, ref_grad)


def test_drawn_coefficients_are_reproducible(tmp_path):
    rng = np.random.default_rng(500)
    x = er.unit_rows(rng.normal(size=(12, 8)))
    labels = np.repeat(np.arange(3), 4).astype(np.int64)
    run = lambda *extra: er.loss(tmp_path, "recall-k-surrogate", x, labels, "--set", "loss.simix=true", *extra)
    first, second = run(), run()
    assert first[0] == second[0] and np.array_equal(first[1], second[1])
    assert run("--set", "loss.simix_seed=3")[0] != first[0]
    plain, _ = er.loss(tmp_path, "recall-k-surrogate", x, labels)
    assert plain != first[0]


@pytest.mark.parametrize("sets,needle", [
    (["loss.simix_alphas=[0.5]"], "only applies with simix = true"),
    (["loss.simix=true", "loss.simix_alphas=[0.5, 1.5]"], "[0, 1]"),
    (["loss.simix=true", "loss.simix_alphas=[0.5]"], "1 values for a batch with 2 same-label pairs"),
])
def test_bad_simix_settings_are_refused(tmp_path, sets, needle):
    x = er.unit_rows(np.random.default_rng(14).normal(size=(4, 3)))
    e, lab = tmp_path / "emb.npy", tmp_path / "labels.npy"
    np.save(e, x)
    np.save(lab, np.array([0, 0, 1, 1], dtype=np.int64))
    args = ["loss", "--loss", "recall-k-surrogate", "--embeddings", e, "--labels", lab]
    for s in sets:
        args += ["--set", s]
    proc = er.run(args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "simix_alphas" in proc.stderr and needle in proc.stderr, proc.stderr
