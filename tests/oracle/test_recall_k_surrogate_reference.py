"""embedrank's Recall@k surrogate against torch transcriptions (recall_k_surrogate_reference.py):
the official trainer's loss (`variant = "reference"`) and the paper's retrieval set
(`variant = "paper"`, the default).

Float64 inputs, so embedrank computes in f64; the loss must agree to 1e-5 and the gradient (a
float32 file) to 1e-4 of its largest entry, against autograd of the transcriptions.
"""

import numpy as np
import pytest

import embedrank_cli as er
from recall_k_surrogate_reference import K_TEMPERATURES, K_VALS, official, paper, with_gradient


def assert_matches(ours, grad, ref, ref_grad):
    assert abs(ours - ref) <= 1e-5, (ours, ref)
    scale = max(np.abs(ref_grad).max(), 1e-12)
    assert np.abs(grad - ref_grad).max() <= 1e-4 * scale, np.abs(grad - ref_grad).max() / scale


def rows(rng, n, dim, unit=True):
    x = rng.normal(size=(n, dim))
    return er.unit_rows(x) if unit else x * rng.uniform(0.15, 0.3, size=(n, 1))


# The official settings (src/main.py) and others: (k values, their temperatures, rank temperature).
SETTINGS = {
    "official": (K_VALS, K_TEMPERATURES, 0.01),
    "sop-eval-k": ((1, 10, 100, 1000), (1, 10, 100, 1000), 0.01),
    "soft": ((1, 3), (0.5, 2.0), 0.1),
    "one-k": ((4,), (4.0,), 0.05),
}


def settings_args(name, variant):
    k, temps, tau = SETTINGS[name]
    return ["--set", f"loss.variant={variant}", "--set", f"loss.k={list(k)}",
            "--set", f"loss.k_temperatures={[float(t) for t in temps]}", "--set", f"loss.temperature={tau}"]


def settings_kwargs(name):
    k, temps, tau = SETTINGS[name]
    return {"k_vals": k, "k_temperatures": temps, "anneal": tau}


def ours(tmp_path, x, labels, settings, variant):
    """embedrank's loss and gradient (float64 input: computed in f64)."""
    return er.loss(tmp_path, "recall-k-surrogate", x, labels, *settings_args(settings, variant))


REFERENCE_CASES = [
    # (classes, samples per class, dim, settings, unit rows, seed): the official layout
    (2, 2, 2, "official", True, 0),
    (1, 2, 3, "official", True, 1),  # N = 2
    (5, 4, 8, "official", True, 2),  # the official default of 4 per class
    (1, 7, 4, "official", True, 3),  # one class only
    (8, 4, 16, "official", True, 4),  # N = 32: k = 16 below N
    (3, 6, 5, "soft", True, 5),
    (4, 3, 6, "one-k", True, 6),
    (6, 5, 32, "sop-eval-k", True, 7),  # every k of 100, 1000 lowered to N
    (4, 4, 6, "official", False, 8),  # rows of norm 0.15–0.3: the self-scores vary
    (10, 4, 64, "official", True, 9),
    (3, 2, 3, "soft", False, 10),
]


@pytest.mark.parametrize("classes,per_class,dim,settings,unit,seed", REFERENCE_CASES)
def test_reference_variant_matches_the_official_loss(tmp_path, classes, per_class, dim, settings, unit, seed):
    rng = np.random.default_rng(seed)
    x = rows(rng, classes * per_class, dim, unit)
    labels = np.repeat(rng.permutation(1000)[:classes], per_class).astype(np.int64)
    ref, ref_grad = with_gradient(official, x, classes, **settings_kwargs(settings))
    value, grad = ours(tmp_path, x, labels, settings, "reference")
    assert_matches(value, grad, ref, ref_grad)
    # Any layout: the same batch shuffled gives the same loss, the gradient's rows shuffled.
    perm = rng.permutation(len(labels))
    value, grad = ours(tmp_path, x[perm], labels[perm], settings, "reference")
    assert_matches(value, grad, ref, ref_grad[perm])


PAPER_CASES = [
    # (class sizes, dim, settings, unit rows, seed)
    ([2, 2], 2, "official", True, 0),
    ([2], 3, "official", True, 1),  # N = 2
    ([3, 1, 5, 2, 1], 6, "official", True, 2),  # unequal classes with singletons
    ([4] * 8, 16, "official", True, 3),
    ([6], 4, "official", True, 4),  # one class only
    ([1] * 7, 4, "official", True, 5),  # singletons only: 0
    ([5, 3, 3, 1, 2, 6], 32, "soft", True, 6),
    ([2, 7, 1, 4], 5, "one-k", True, 7),
    ([3, 3, 2, 4, 1], 3, "sop-eval-k", True, 8),
    ([4, 2, 5, 1], 6, "official", False, 9),
    ([8, 8, 8, 8, 8], 64, "official", True, 10),
    ([20, 12], 8, "official", True, 11),  # more positives than the largest k
]


@pytest.mark.parametrize("sizes,dim,settings,unit,seed", PAPER_CASES)
def test_paper_variant_matches_the_formula(tmp_path, sizes, dim, settings, unit, seed):
    rng = np.random.default_rng(100 + seed)
    labels = np.repeat(rng.permutation(1000)[: len(sizes)], sizes).astype(np.int64)
    labels = labels[rng.permutation(len(labels))]
    x = rows(rng, len(labels), dim, unit)
    value, grad = ours(tmp_path, x, labels, settings, "paper")
    ref, ref_grad = with_gradient(paper, x, labels, **settings_kwargs(settings))
    assert_matches(value, grad, ref, ref_grad)


def test_the_variants_differ_and_the_default_is_the_paper(tmp_path):
    rng = np.random.default_rng(12)
    x = rows(rng, 12, 8)
    labels = np.repeat(np.arange(3), 4).astype(np.int64)
    default, _ = er.loss(tmp_path, "recall-k-surrogate", x, labels)
    assert abs(default - with_gradient(paper, x, labels)[0]) <= 1e-5
    assert abs(default - with_gradient(official, x, 3)[0]) > 1e-3


@pytest.mark.parametrize("key,value", [("temperature", 0), ("k", "[]"), ("k", "[0, 1]"),
                                       ("k_temperatures", "[1.0, 2.0]"), ("k_temperatures", "[1.0, 2.0, 0.0, 8.0, 16.0]")])
def test_bad_settings_are_refused(tmp_path, key, value):
    x = er.unit_rows(np.random.default_rng(14).normal(size=(4, 3)))
    e, lab = tmp_path / "emb.npy", tmp_path / "labels.npy"
    np.save(e, x)
    np.save(lab, np.array([0, 0, 1, 1], dtype=np.int64))
    proc = er.run(["loss", "--loss", "recall-k-surrogate", "--embeddings", e, "--labels", lab,
                   "--set", f"loss.{key}={value}"], check=False)
    assert proc.returncode == 2, proc.stderr
    assert key in proc.stderr, proc.stderr


def test_reference_refuses_a_row_without_positive(tmp_path):
    x = er.unit_rows(np.random.default_rng(15).normal(size=(5, 3)))
    e, lab = tmp_path / "emb.npy", tmp_path / "labels.npy"
    np.save(e, x)
    np.save(lab, np.array([0, 0, 1, 1, 2], dtype=np.int64))
    proc = er.run(["loss", "--loss", "recall-k-surrogate", "--embeddings", e, "--labels", lab,
                   "--set", "loss.variant=reference"], check=False)
    assert proc.returncode == 2, proc.stderr
    assert "row 4" in proc.stderr, proc.stderr
