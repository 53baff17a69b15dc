"""`embedrank eval` against PML's AccuracyCalculator (pytorch-metric-learning 2.9, faiss CPU kNN).

The data are random clustered unit vectors built so that every f32 inner product is exact: each row
is an integer vector `a` with sum(a**2) == 4096**2, divided by 4096. Every product is then a multiple
of 2**-24 bounded by 1 in magnitude, so any summation order (faiss's BLAS, embedrank's GEMM, this
file's int64 check) gives the same value, L2-normalisation leaves the rows unchanged, and rows are
resampled until no query has two references with equal scores. The rankings are therefore identical
and the kNN metrics must agree to 1e-6 (PML computes some in float32). NMI/AMI come from two
different k-means runs (faiss's vs embedrank's k-means++), so they agree to 0.01.
"""

import json
import os
import subprocess

import faiss
import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import FaissKMeans, FaissKNN
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

BIN = os.environ.get("EMBEDRANK_BIN", "target/debug/embedrank")
SCALE = 4096
DIM = 32
KNN_METRICS = (
    "precision_at_1",
    "r_precision",
    "mean_average_precision_at_r",
    "mean_average_precision",
    "mean_reciprocal_rank",
)
RECALL_AT = (1, 2, 4, 8, 32)


def exact_unit_rows(directions, rng):
    """Integer rows with squared norm exactly SCALE**2, close to the given unit directions."""
    out = np.zeros((len(directions), DIM), dtype=np.int64)
    target = SCALE * SCALE
    offsets = np.stack(np.meshgrid(*[np.arange(-12, 13)] * 3, indexing="ij"), -1).reshape(-1, 3)
    for i, d in enumerate(directions):
        while True:
            head = np.round(d[: DIM - 4] * SCALE).astype(np.int64)
            rest = target - int((head**2).sum())
            if rest >= 0:
                # Three of the last four coordinates near the direction, the fourth a perfect square.
                abc = np.round(d[DIM - 4 : DIM - 1] * SCALE).astype(np.int64) + offsets
                d2 = rest - (abc**2).sum(1)
                ok = d2 >= 0
                root = np.floor(np.sqrt(np.where(ok, d2, 0))).astype(np.int64)
                ok &= root * root == d2
                if ok.any():
                    j = rng.choice(np.flatnonzero(ok))
                    last = root[j] * (1 if d[DIM - 1] >= 0 else -1)
                    out[i] = np.concatenate([head, abc[j], [last]])
                    break
            d = d + rng.normal(scale=1e-3, size=DIM)
            d /= np.linalg.norm(d)
    assert ((out**2).sum(1) == target).all()
    return out


def directions(rng, centres, labels, noise):
    """Unit directions scattered around their class centres."""
    d = centres[labels] + noise * rng.normal(size=(len(labels), DIM)) / np.sqrt(DIM)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def clustered(rng, n, n_classes, noise):
    """Labels and unit directions around one random centre per class."""
    centres = rng.normal(size=(n_classes, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, n_classes, n)
    return labels, directions(rng, centres, labels, noise), centres


def tied_columns(scores, exclude_diagonal):
    """Columns involved in a tie within some row of an integer score matrix."""
    bad = set()
    for i, row in enumerate(scores):
        idx = np.arange(len(row))
        if exclude_diagonal:
            idx = np.delete(idx, i)
        order = idx[np.argsort(row[idx], kind="stable")]
        s = row[order]
        bad.update(order[np.flatnonzero(s[1:] == s[:-1]) + 1].tolist())
    return bad


def make_set(rng, n, n_classes, noise, against=None):
    """Exact rows and labels, resampled (same class) until no query row has tied scores: against
    itself (own index excluded), or against the reference rows `against`."""
    labels, d, centres = clustered(rng, n, n_classes, noise)
    a = exact_unit_rows(d, rng)
    while True:
        if against is None:
            bad = tied_columns(a @ a.T, exclude_diagonal=True)
        else:
            bad = {i for i, row in enumerate(a @ against.T) if len(np.unique(row)) < len(row)}
        if not bad:
            return a, labels
        idx = np.array(sorted(bad))
        a[idx] = exact_unit_rows(directions(rng, centres, labels[idx], noise), rng)


class Calculator(AccuracyCalculator):
    """PML's calculator plus Recall@K computed the same way from its own kNN labels."""

    def requires_knn(self):
        return super().requires_knn() + [f"recall_at_{k}" for k in RECALL_AT]


def _recall(k):
    def calc(self, knn_labels, query_labels, not_lone_query_mask, **kwargs):
        knn = knn_labels[not_lone_query_mask][:, :k]
        q = query_labels[not_lone_query_mask][:, None]
        return (knn == q).any(1).double().mean().item()

    return calc


for _k in RECALL_AT:
    setattr(Calculator, f"calculate_recall_at_{_k}", _recall(_k))


def pml(q, ql, r=None, rl=None, k="max_bin_count", include=KNN_METRICS):
    calc = Calculator(
        include=include,
        k=k,
        device=torch.device("cpu"),
        knn_func=FaissKNN(index_init_fn=faiss.IndexFlatIP),
    )
    f = lambda x: torch.from_numpy(np.ascontiguousarray(x))  # noqa: E731
    if r is None:
        return calc.get_accuracy(f(q), f(ql))
    return calc.get_accuracy(f(q), f(ql), f(r), f(rl), ref_includes_query=False)


def embedrank(tmp_path, q, ql, r=None, rl=None, *extra):
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "ql.npy", ql)
    args = [BIN, "eval", "--embeddings", str(tmp_path / "q.npy"), "--labels", str(tmp_path / "ql.npy")]
    if r is not None:
        np.save(tmp_path / "r.npy", r)
        np.save(tmp_path / "rl.npy", rl)
        args += ["--ref-embeddings", str(tmp_path / "r.npy"), "--ref-labels", str(tmp_path / "rl.npy")]
    out = tmp_path / "out.json"
    args += ["--json", str(out), *extra]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def check_knn_metrics(got, want):
    for name in KNN_METRICS:
        assert got[name] == pytest.approx(want[name], abs=1e-6), name


@pytest.fixture(scope="module")
def self_set():
    rng = np.random.default_rng(2024)
    a, labels = make_set(rng, 600, 40, noise=1.3)
    return (a / SCALE).astype(np.float32), labels


@pytest.fixture(scope="module")
def inshop_set():
    rng = np.random.default_rng(7)
    ref, ref_labels = make_set(rng, 700, 50, noise=1.3)
    # Queries from 55 classes: those of classes 50..54 have no reference and are lone.
    q, q_labels = make_set(rng, 300, 55, noise=1.3, against=ref)
    return (q / SCALE).astype(np.float32), q_labels, (ref / SCALE).astype(np.float32), ref_labels


def test_data_is_exact_and_unit_norm(self_set):
    q, _ = self_set
    assert np.array_equal(np.round(q.astype(np.float64) * SCALE), q.astype(np.float64) * SCALE)
    assert np.array_equal((q.astype(np.float64) ** 2).sum(1), np.ones(len(q)))


@pytest.mark.parametrize("k", ["max_bin_count", 5, 100])
def test_query_is_reference(tmp_path, self_set, k):
    q, ql = self_set
    want = pml(q, ql, k=k)
    got = embedrank(tmp_path, q, ql, None, None, "--k", str(k), "--metrics", ",".join(KNN_METRICS))
    check_knn_metrics(got, want)
    assert got["num_excluded"] == 0 and got["num_queries"] == len(q)


@pytest.mark.parametrize("k", ["max_bin_count", 7])
def test_separate_query_and_reference(tmp_path, inshop_set, k):
    q, ql, r, rl = inshop_set
    want = pml(q, ql, r, rl, k=k)
    got = embedrank(tmp_path, q, ql, r, rl, "--k", str(k), "--metrics", ",".join(KNN_METRICS))
    check_knn_metrics(got, want)
    lone = int((~np.isin(ql, rl)).sum())
    assert lone > 0
    assert (got["num_excluded"], got["num_queries"]) == (lone, len(q) - lone)


@pytest.mark.parametrize("which", ["self", "inshop"])
def test_recall_at_k(tmp_path, self_set, inshop_set, which):
    sets = self_set + (None, None) if which == "self" else inshop_set
    names = tuple(f"recall_at_{k}" for k in RECALL_AT)
    want = pml(*sets, k=max(RECALL_AT), include=names)
    recall = ",".join(map(str, RECALL_AT))
    got = embedrank(tmp_path, *sets, "--recall-at", recall, "--metrics", "recall_at_k")
    for k in RECALL_AT:
        assert got["recall_at_k"][str(k)] == pytest.approx(want[f"recall_at_{k}"], abs=1e-6), k


@pytest.mark.parametrize("k", ["max_bin_count", 9])
def test_queries_among_the_references_paired_by_id(tmp_path, self_set, k):
    """PML's ref_includes_query (the queries are the first rows of the reference set, each query's
    own row left out) against `eval --ids --ref-ids`, with the reference set shuffled so that only
    the ids can pair each query with its own row."""
    r, rl = self_set
    q, ql = r[:250], rl[:250]
    f = lambda x: torch.from_numpy(np.ascontiguousarray(x))  # noqa: E731
    calc = Calculator(include=KNN_METRICS, k=k, device=torch.device("cpu"),
                      knn_func=FaissKNN(index_init_fn=faiss.IndexFlatIP))
    want = calc.get_accuracy(f(q), f(ql), f(r), f(rl), ref_includes_query=True)
    ids = np.arange(len(r), dtype=np.int64) + 5000
    perm = np.random.default_rng(3).permutation(len(r))
    np.save(tmp_path / "qi.npy", ids[:250])
    np.save(tmp_path / "ri.npy", ids[perm])
    id_args = ["--ids", str(tmp_path / "qi.npy"), "--ref-ids", str(tmp_path / "ri.npy")]
    got = embedrank(tmp_path, q, ql, r[perm], rl[perm], "--k", str(k), "--metrics", ",".join(KNN_METRICS), *id_args)
    check_knn_metrics(got, want)
    assert got["same_id_pairs_left_out"] == 250


def test_full_self_matrix_schedule_gives_the_same_numbers(tmp_path, self_set):
    q, ql = self_set
    metrics = ["--metrics", ",".join(KNN_METRICS), "--k", "100", "--block", "37"]
    a = embedrank(tmp_path, q, ql, None, None, *metrics)
    b = embedrank(tmp_path, q, ql, None, None, *metrics, "--no-symmetry")
    check_knn_metrics(a, b)


@pytest.fixture(scope="module")
def cluster_set():
    rng = np.random.default_rng(11)
    labels, d, _ = clustered(rng, 4000, 100, noise=0.6)
    return d.astype(np.float32), labels


def test_nmi_ami_formulas_equal_sklearn_on_our_clusters(tmp_path, cluster_set):
    q, labels = cluster_set
    got = embedrank(tmp_path, q, labels, None, None, "--metrics", "nmi,ami", "--clusters-out", str(tmp_path / "c.npy"))
    clusters = np.load(tmp_path / "c.npy")
    assert got["nmi"] == pytest.approx(normalized_mutual_info_score(labels, clusters), abs=1e-9)
    assert got["ami"] == pytest.approx(adjusted_mutual_info_score(labels, clusters), abs=1e-9)


def test_nmi_ami_close_to_pml(tmp_path, cluster_set):
    # One k-means run lands in a seed-dependent local optimum (NMI spread about ±0.01 for faiss
    # and for embedrank alike), so compare means over three seeds on each side.
    q, labels = cluster_set
    want = [
        AccuracyCalculator(
            include=("NMI", "AMI"), device=torch.device("cpu"), kmeans_func=FaissKMeans(niter=20, seed=s)
        ).get_accuracy(torch.from_numpy(q), torch.from_numpy(labels))
        for s in (1, 2, 3)
    ]
    got = [embedrank(tmp_path, q, labels, None, None, "--metrics", "nmi,ami", "--seed", str(s)) for s in (1, 2, 3)]
    for ours, theirs in (("nmi", "NMI"), ("ami", "AMI")):
        mean_got = np.mean([g[ours] for g in got])
        mean_want = np.mean([w[theirs] for w in want])
        assert mean_got == pytest.approx(mean_want, abs=0.01), ours
