"""embedrank's FAPPY against a literal loop transcription of the official layer (fappy_reference.py).

Float64 inputs, so embedrank computes in f64 and the two meet to 1e-5 even on the finest grid.
"""

import numpy as np
import pytest

import embedrank_cli as er
from fappy_reference import fappy as reference_fappy

CASES = [
    # (n, dim, classes, delta, seed)
    (4, 2, 2, 1e-4, 0),
    (8, 3, 3, 1e-4, 1),
    (12, 8, 3, 1e-4, 2),
    (16, 4, 5, 1e-3, 3),
    (20, 16, 4, 1e-4, 4),
    (10, 5, 2, 0.3, 5),
    (14, 6, 6, 2.0, 6),
]


def batch(n, dim, classes, seed):
    rng = np.random.default_rng(seed)
    x = er.unit_rows(rng.normal(size=(n, dim)))
    labels = rng.integers(0, classes, size=n).astype(np.int64)
    labels[:2] = labels[0]  # at least one positive pair
    return x, labels


@pytest.mark.parametrize("weighting", ["reference", "halving"])
@pytest.mark.parametrize("n,dim,classes,delta,seed", CASES)
def test_fappy_matches_literal_reference(tmp_path, n, dim, classes, delta, seed, weighting):
    x, labels = batch(n, dim, classes, seed)
    ours, grad = er.loss(tmp_path, "fappy", x, labels, "--delta", delta, "--fappy-weighting", weighting)
    ref, ref_grad = reference_fappy(x, labels, delta=delta, weighting=weighting)
    assert abs(ours - ref) <= 1e-5 * max(1.0, abs(ref)), (ours, ref)
    # The gradient file is float32: compare to 1e-5 relative to the largest entry.
    scale = max(np.abs(ref_grad).max(), 1e-12)
    assert np.abs(grad - ref_grad).max() <= 1e-5 * scale, np.abs(grad - ref_grad).max() / scale


def test_reference_weighting_is_half_the_finest_level_in_practice(tmp_path):
    # REFERENCE §2: coarse levels are divided by the finer levels' positive counts, so with many
    # positive pairs the reference loss is ½·L at the finest level plus a sliver.
    x, labels = batch(24, 8, 2, seed=11)
    ours, _ = er.loss(tmp_path, "fappy", x, labels, "--delta", 0.01, "--fappy-weighting", "reference")
    finest, _ = reference_fappy(x, labels, delta=0.01, weighting="finest")
    halving, _ = reference_fappy(x, labels, delta=0.01, weighting="halving")
    assert finest > 0.0
    assert abs(ours - 0.5 * finest) <= 0.01 * ours
    # The intended weighting keeps a real share of the coarser levels.
    assert abs(halving - 0.5 * finest) > 0.05 * halving
