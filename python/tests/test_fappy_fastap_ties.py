"""FAPPYLoss against the literal transcription of the official FAPPY layer (tests/oracle), and
FastAPLoss against PML on tie-heavy batches (similarities exactly on bin centres)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_metric_learning.losses import FastAPLoss as PMLFastAP

import embedrank

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "oracle"))
from fappy_reference import fappy as reference_fappy  # noqa: E402


@pytest.mark.parametrize("weighting", ["reference", "halving"])
@pytest.mark.parametrize("n,dim,classes,delta,seed", [(6, 3, 2, 0.01, 0), (12, 5, 3, 0.05, 1), (10, 4, 4, 0.02, 2)])
def test_fappy_equals_the_official_layer(weighting, n, dim, classes, delta, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = rng.integers(0, classes, n)
    labels[:2] = labels[0]
    ref, ref_grad = reference_fappy(x, labels, delta=delta, weighting=weighting)
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    loss = embedrank.FAPPYLoss(delta=delta, weighting=weighting)(t, torch.from_numpy(labels))
    (grad,) = torch.autograd.grad(loss, t)
    assert abs(loss.item() - ref) <= 1e-5 * max(1.0, abs(ref))
    # The module normalises its input: on unit rows only the tangential part of the gradient remains.
    tangential = ref_grad - np.sum(ref_grad * x, axis=1, keepdims=True) * x
    scale = max(np.abs(tangential).max(), 1e-12)
    assert np.abs(grad.numpy() - tangential).max() <= 1e-4 * scale


@pytest.mark.parametrize("seed", range(3))
def test_fastap_on_tie_heavy_batches_equals_pml(seed):
    """Rows on a coarse grid: many duplicate rows and distances exactly on bin centres (0 and 2).
    The loss equals PML's. The gradient does not, by design: at a bin centre the histogram's
    triangular kernel has a kink, where PML takes autograd's subgradient and embedrank the official
    FastAP code's one-sided derivative (README, "The losses"); off the kinks both are equal
    (test_losses_pml)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-1, 2, (48, 3), generator=g).double()
    x[x.abs().sum(1) == 0] = 1.0  # no zero rows
    labels = torch.randint(0, 4, (48,), generator=g)
    ours_in, pml_in = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours = embedrank.FastAPLoss()(ours_in, labels)
    theirs = PMLFastAP()(pml_in, labels)
    assert abs(ours.item() - theirs.item()) <= 1e-5
    (go,) = torch.autograd.grad(ours, ours_in)
    assert torch.isfinite(go).all() and float(go.abs().max()) > 0
