"""embedrank.AccuracyCalculator against PML 2.9's, on random, clustered and tie-heavy data."""

import numpy as np
import pytest
import torch
from conftest import CUDA, blobs, grid
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator as PMLCalculator

import embedrank

KNN_METRICS = ("mean_average_precision", "mean_average_precision_at_r", "mean_reciprocal_rank",
               "precision_at_1", "r_precision")


def assert_same(ours, theirs, tol=1e-6, cluster_tol=None):
    """Equal values; NMI/AMI (two different k-means) no worse than PML's by more than `cluster_tol`."""
    assert list(ours) == list(theirs), "same keys in the same order"
    for key, want in theirs.items():
        got = ours[key]
        if key in ("NMI", "AMI"):
            assert cluster_tol is not None and got >= want - cluster_tol, (key, got, want)
            continue
        np.testing.assert_allclose(np.array(got, dtype=float), np.array(want, dtype=float), atol=tol, rtol=0,
                                   err_msg=key)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("options", [
    {},
    {"k": "max_bin_count"},
    {"k": 5},
    {"avg_of_avgs": True},
    {"return_per_class": True, "k": "max_bin_count"},
])
def test_self_search_equals_pml(seed, options):
    rng = np.random.default_rng(seed)
    n, dim, classes = rng.integers(20, 400), rng.integers(1, 33), rng.integers(2, 30)
    emb, labels = blobs(rng, n, dim, classes, spread=1.0)
    kw = dict(exclude=("NMI", "AMI"), **options)
    assert_same(embedrank.AccuracyCalculator(**kw).get_accuracy(emb, labels),
                PMLCalculator(**kw).get_accuracy(emb, labels))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("options", [{}, {"k": 3}, {"return_per_class": True}, {"avg_of_avgs": True}])
def test_separate_reference_set_equals_pml(seed, options):
    rng = np.random.default_rng(100 + seed)
    dim = rng.integers(2, 20)
    q, ql = blobs(rng, rng.integers(10, 200), dim, 12, spread=1.0)
    r, rl = blobs(rng, rng.integers(10, 300), dim, 15, spread=1.0)
    kw = dict(exclude=("NMI", "AMI"), **options)
    assert_same(embedrank.AccuracyCalculator(**kw).get_accuracy(q, ql, r, rl),
                PMLCalculator(**kw).get_accuracy(q, ql, r, rl))


def test_reference_that_starts_with_the_queries_equals_pml(rng):
    q, ql = blobs(rng, 150, 8, 10, spread=1.0)
    extra, el = blobs(rng, 100, 8, 10, spread=1.0)
    r, rl = np.concatenate([q, extra]), np.concatenate([ql, el])
    for kw in ({}, {"avg_of_avgs": True}):
        kw = dict(exclude=("NMI", "AMI"), **kw)
        assert_same(embedrank.AccuracyCalculator(**kw).get_accuracy(q, ql, r, rl, ref_includes_query=True),
                    PMLCalculator(**kw).get_accuracy(q, ql, r, rl, ref_includes_query=True))
    with pytest.raises(ValueError, match="first len\\(query\\) elements"):
        embedrank.AccuracyCalculator().get_accuracy(q, ql, extra, el, ref_includes_query=True)


@pytest.mark.parametrize("seed", range(4))
def test_tie_heavy_data_equals_pml(seed):
    rng = np.random.default_rng(200 + seed)
    q, ql = grid(rng, 300, 3, 4)
    r, rl = grid(rng, 200, 3, 4)
    kw = dict(exclude=("NMI", "AMI"))
    assert_same(embedrank.AccuracyCalculator(**kw).get_accuracy(q, ql), PMLCalculator(**kw).get_accuracy(q, ql))
    assert_same(embedrank.AccuracyCalculator(**kw).get_accuracy(q, ql, r, rl),
                PMLCalculator(**kw).get_accuracy(q, ql, r, rl))


def test_lone_queries_are_left_out_and_all_lone_is_nan(rng):
    q, ql = blobs(rng, 60, 4, 6)
    r, rl = blobs(rng, 80, 4, 6)
    rl[rl == ql[0]] = 99  # query label ql[0] has no reference: lone
    kw = dict(exclude=("NMI", "AMI"))
    for extra in ({}, {"return_per_class": True}):
        assert_same(embedrank.AccuracyCalculator(**kw, **extra).get_accuracy(q, ql, r, rl),
                    PMLCalculator(**kw, **extra).get_accuracy(q, ql, r, rl))
    ours = embedrank.AccuracyCalculator(**kw).get_accuracy(q, ql + 1000, r, rl)
    assert all(np.isnan(v) for v in ours.values())
    per_class = embedrank.AccuracyCalculator(return_per_class=True, **kw).get_accuracy(q, ql + 1000, r, rl)
    assert all(len(v) == len(np.unique(ql)) and np.isnan(v).all() for v in per_class.values())


def test_nmi_ami_within_k_means_tolerance_on_clustered_data(rng):
    emb, labels = blobs(rng, 2000, 16, 10, spread=0.2)
    ours = embedrank.AccuracyCalculator().get_accuracy(emb, labels)
    theirs = PMLCalculator().get_accuracy(emb, labels)
    # Well separated blobs: both k-means recover them up to a local optimum or two merged.
    assert_same(ours, theirs, cluster_tol=0.02)
    assert ours["NMI"] > 0.9 and ours["AMI"] > 0.85


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_and_torch_inputs_of_every_float_dtype(rng, dtype):
    emb, labels = blobs(rng, 200, 8, 10, spread=1.0)
    emb = emb.astype(dtype)
    # max_bin_count: with k = all 199 references, two distances within float32 rounding of each
    # other can rank either way in faiss's arithmetic and in ours (see the README).
    kw = dict(exclude=("NMI", "AMI"), k="max_bin_count")
    want = PMLCalculator(**kw).get_accuracy(emb.astype(np.float32), labels)
    assert_same(embedrank.AccuracyCalculator(**kw).get_accuracy(emb, labels), want)
    t = torch.from_numpy(emb)
    assert_same(embedrank.AccuracyCalculator(**kw).get_accuracy(t, torch.from_numpy(labels)), want)
    # Non-contiguous input (a transposed copy's transpose) and float labels, as PML converts them.
    strided = np.asfortranarray(emb)
    assert_same(embedrank.AccuracyCalculator(**kw).get_accuracy(strided, labels.astype(np.float32)), want)


@CUDA
def test_cuda_tensors(rng):
    emb, labels = blobs(rng, 300, 8, 10, spread=1.0)
    kw = dict(exclude=("NMI", "AMI"))
    got = embedrank.AccuracyCalculator(**kw).get_accuracy(torch.from_numpy(emb).cuda().half(),
                                                          torch.from_numpy(labels).cuda())
    assert_same(got, PMLCalculator(**kw).get_accuracy(emb.astype(np.float16).astype(np.float32), labels))


def test_cosine_ranking_is_pml_on_normalised_embeddings(rng):
    emb, labels = blobs(rng, 300, 8, 10, spread=1.0)
    emb *= rng.uniform(0.1, 10, size=(300, 1)).astype(np.float32)  # norms matter for Euclidean
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    kw = dict(exclude=("NMI", "AMI"))
    assert_same(embedrank.AccuracyCalculator(metric="cosine", **kw).get_accuracy(emb, labels),
                PMLCalculator(**kw).get_accuracy(unit, labels))


def test_include_exclude_and_constructor_checks_as_pml():
    rng = np.random.default_rng(5)
    emb, labels = blobs(rng, 100, 4, 5)
    calc = embedrank.AccuracyCalculator(include=("precision_at_1", "r_precision"))
    assert list(calc.get_accuracy(emb, labels)) == ["precision_at_1", "r_precision"]
    assert list(calc.get_accuracy(emb, labels, exclude=("r_precision",))) == ["precision_at_1"]
    with pytest.raises(ValueError, match="mutually exclusive"):
        embedrank.AccuracyCalculator(avg_of_avgs=True, return_per_class=True)
    with pytest.raises(ValueError, match="k must be"):
        embedrank.AccuracyCalculator(k=0)
    with pytest.raises(ValueError, match="Primary metrics"):
        embedrank.AccuracyCalculator(include=("recall",))
    with pytest.raises(TypeError):
        embedrank.AccuracyCalculator(include="precision_at_1")
    with pytest.raises(ValueError, match="label_comparison_fn is not supported"):
        embedrank.AccuracyCalculator(label_comparison_fn=lambda a, b: a == b)


def test_bad_input_is_a_value_error_naming_it():
    calc = embedrank.AccuracyCalculator(exclude=("NMI", "AMI"))
    emb = np.ones((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="4 embeddings"):
        calc.get_accuracy(emb, [0, 1, 0])
    bad = emb.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="row 2"):
        calc.get_accuracy(bad, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="not a whole number"):
        calc.get_accuracy(emb, [0, 1.5, 0, 1])
    with pytest.raises(ValueError, match="2-D"):
        calc.get_accuracy(np.ones((2, 2, 2)), [0, 1])
    with pytest.raises(ValueError, match="empty"):
        calc.get_accuracy(np.ones((0, 3)), [])
