"""embedrank's Smooth-AP against torch transcriptions (smooth_ap_reference.py): the official
forward (`variant = "reference"`) and the paper's formula (`variant = "paper"`, the default).

Float64 inputs, so embedrank computes in f64; the loss must agree to 1e-5 and the gradient (a
float32 file) to 1e-4 of its largest entry, against autograd of the transcriptions.
"""

import numpy as np
import pytest

import embedrank_cli as er
from smooth_ap_reference import official, paper, with_gradient


def assert_matches(ours, grad, ref, ref_grad):
    assert abs(ours - ref) <= 1e-5, (ours, ref)
    scale = max(np.abs(ref_grad).max(), 1e-12)
    assert np.abs(grad - ref_grad).max() <= 1e-4 * scale, np.abs(grad - ref_grad).max() / scale


REFERENCE_CASES = [
    # (classes, per class, dim, temperature, unit rows, seed)
    (2, 2, 2, 0.01, True, 0),
    (4, 3, 8, 0.01, True, 1),
    (6, 4, 16, 0.01, True, 2),
    (3, 5, 4, 0.1, True, 3),
    (1, 6, 3, 0.05, True, 4),  # one class only
    (8, 1, 4, 0.05, True, 5),  # singletons only
    (5, 4, 6, 0.2, False, 6),  # rows of unequal norms: the self-scores vary
    (16, 4, 32, 0.01, True, 7),
]


@pytest.mark.parametrize("classes,m,dim,temperature,unit,seed", REFERENCE_CASES)
def test_reference_variant_matches_the_official_forward(tmp_path, classes, m, dim, temperature, unit, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(classes * m, dim))
    x = er.unit_rows(x) if unit else x * rng.uniform(0.3, 0.6, size=(classes * m, 1))
    # Sorted by class, in any label order (the official code ignores the label values).
    labels = np.repeat(rng.permutation(100)[:classes], m).astype(np.int64)
    ours, grad = er.loss(tmp_path, "smooth-ap", x, labels, "--set", "loss.variant=reference",
                         "--set", f"loss.temperature={temperature}")
    ref, ref_grad = with_gradient(official, x, temperature, classes)
    assert_matches(ours, grad, ref, ref_grad)


PAPER_CASES = [
    # (n, dim, classes, temperature, seed)
    (2, 3, 1, 0.01, 0),
    (5, 2, 2, 0.01, 1),
    (12, 8, 4, 0.01, 2),
    (20, 16, 6, 0.05, 3),
    (24, 4, 3, 0.5, 4),
    (30, 32, 12, 0.01, 5),
]


@pytest.mark.parametrize("n,dim,classes,temperature,seed", PAPER_CASES)
def test_paper_variant_matches_the_formula(tmp_path, n, dim, classes, temperature, seed):
    rng = np.random.default_rng(seed)
    x = er.unit_rows(rng.normal(size=(n, dim)))
    labels = rng.integers(0, classes, size=n).astype(np.int64)  # unequal classes, singletons
    labels[:2] = labels[0]  # at least one positive pair
    ours, grad = er.loss(tmp_path, "smooth-ap", x, labels, "--set", f"loss.temperature={temperature}")
    ref, ref_grad = with_gradient(paper, x, labels, temperature)
    assert_matches(ours, grad, ref, ref_grad)


def test_the_variants_differ_and_the_default_is_the_paper(tmp_path):
    rng = np.random.default_rng(9)
    x = er.unit_rows(rng.normal(size=(12, 8)))
    labels = np.repeat(np.arange(3), 4).astype(np.int64)
    default, _ = er.loss(tmp_path, "smooth-ap", x, labels)
    assert abs(default - with_gradient(paper, x, labels, 0.01)[0]) <= 1e-5
    assert abs(default - with_gradient(official, x, 0.01, 3)[0]) > 1e-3


def test_no_positive_is_zero(tmp_path):
    x = er.unit_rows(np.random.default_rng(10).normal(size=(6, 4)))
    ours, grad = er.loss(tmp_path, "smooth-ap", x, np.arange(6, dtype=np.int64))
    assert ours == 0.0 and not grad.any()


@pytest.mark.parametrize("labels", [[0, 0, 1], [0, 1, 0, 1], [2, 2, 1, 1, 2, 2]])
def test_reference_variant_refuses_other_layouts(tmp_path, labels):
    x = er.unit_rows(np.random.default_rng(11).normal(size=(len(labels), 3)))
    e, lab = tmp_path / "emb.npy", tmp_path / "labels.npy"
    np.save(e, x)
    np.save(lab, np.array(labels, dtype=np.int64))
    proc = er.run(["loss", "--loss", "smooth-ap", "--embeddings", e, "--labels", lab,
                   "--set", "loss.variant=reference"], check=False)
    assert proc.returncode == 2, proc.stderr
    assert "sorted by class" in proc.stderr, proc.stderr
