"""embedrank's FastAP against pytorch-metric-learning's FastAPLoss (autograd), same inputs.

PML normalises inside its distance, so its gradient is ours projected on each embedding's tangent
space (the Jacobian of x/|x| at a unit vector is I − xxᵀ); the loss values are compared directly.
Inputs are float32 (embedrank's training path); PML runs in float64 on the same values.
"""

import numpy as np
import pytest
import torch
from pytorch_metric_learning.losses import FastAPLoss

import embedrank_cli as er

# (N, dim, bins, number of classes): N from 2 to 512, dims 2–512, bins 5–40.
CASES = [
    (2, 2, 10, 1), (2, 3, 5, 2), (3, 2, 10, 2), (8, 4, 7, 3), (16, 8, 10, 4), (24, 2, 40, 5),
    (32, 16, 13, 8), (48, 512, 10, 6), (64, 32, 20, 8), (80, 64, 5, 30), (96, 128, 25, 12),
    (128, 64, 10, 16), (128, 512, 40, 4), (160, 3, 10, 20), (200, 100, 17, 50), (256, 128, 10, 32),
    (256, 512, 10, 8), (300, 256, 33, 60), (384, 64, 8, 48), (512, 512, 10, 64), (512, 32, 40, 128),
    (511, 200, 11, 97),
]


def batch(n, dim, classes, seed):
    rng = np.random.default_rng(seed)
    x = er.unit_rows(rng.normal(size=(n, dim))).astype(np.float32)
    # Unequal class sizes with singletons: draw labels from a skewed distribution.
    p = rng.dirichlet(np.full(classes, 0.7))
    labels = rng.choice(classes, size=n, p=p).astype(np.int64)
    return x, labels


def pml_fastap(x32, labels, bins):
    x = torch.tensor(x32.astype(np.float64), requires_grad=True)
    value = FastAPLoss(num_bins=bins)(x, torch.tensor(labels))
    if value.requires_grad:
        value.backward()
        grad = x.grad.numpy()
    else:  # PML returns a constant zero when no query has a positive
        grad = np.zeros_like(x32, dtype=np.float64)
    return value.item(), grad


@pytest.mark.parametrize("n,dim,bins,classes", CASES)
def test_fastap_matches_pml(tmp_path, n, dim, bins, classes):
    x, labels = batch(n, dim, classes, seed=n * 1000 + dim)
    ours, grad = er.loss(tmp_path, "fastap", x, labels, "--bins", bins)
    ref, ref_grad = pml_fastap(x, labels, bins)
    assert abs(ours - ref) <= 1e-5, (ours, ref)
    proj = er.tangential(grad, x.astype(np.float64))
    scale = max(np.abs(ref_grad).max(), 1e-12)
    assert np.abs(proj - ref_grad).max() <= 1e-4 * scale + 1e-9, np.abs(proj - ref_grad).max() / scale


def test_fastap_no_positive_anywhere_is_zero(tmp_path):
    x, _ = batch(6, 4, 1, seed=3)
    labels = np.arange(6, dtype=np.int32)  # every query alone in its class
    ours, grad = er.loss(tmp_path, "fastap", x, labels)
    ref, _ = pml_fastap(x, labels.astype(np.int64), 10)
    assert ours == ref == 0.0
    assert not grad.any()
