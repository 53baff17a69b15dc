"""Exact retrieval evaluation: `AccuracyCalculator`, a drop-in for PML 2.9's, and `knn`."""

import numpy as np

from . import _arrays, _core

# PML's metric names, in the order of its result dict (its `calculate_*` methods, sorted).
METRICS = (
    "AMI",
    "NMI",
    "mean_average_precision",
    "mean_average_precision_at_r",
    "mean_reciprocal_rank",
    "precision_at_1",
    "r_precision",
)
_KNN_METRICS = {m for m in METRICS if m not in ("AMI", "NMI")}
_RANKINGS = ("euclidean", "cosine", "inner_product")


def _check_ranking(metric):
    if metric not in _RANKINGS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, _RANKINGS))}, not {metric!r}")


def knn(query, reference=None, k=10, exclude_self=None, metric="euclidean"):
    """The exact `k` nearest references of every query.

    `reference=None` searches the queries against themselves. `exclude_self` (default: True when
    `reference` is None) leaves reference `i` out of query `i`'s list: the query itself, when the
    reference set starts with the query set (PML's `ref_includes_query`). `metric`: "euclidean"
    (PML's and faiss IndexFlatL2's default, on the embeddings as given), "cosine" (rows
    L2-normalised first) or "inner_product". `k` is clipped to the number of candidates.

    Returns `(indices, scores)`, int64 and float32 arrays of shape `(queries, k)`, best first:
    for "euclidean" the scores are squared distances (ascending, as faiss returns them), otherwise
    similarities (descending). Tie rule: equal scores rank the lower reference index first, so
    the result is deterministic whatever the thread count.
    """
    _check_ranking(metric)
    if not (isinstance(k, (int, np.integer)) and k > 0):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    q = _arrays.matrix(query, "query")
    r = None if reference is None else _arrays.matrix(reference, "reference")
    if r is not None and r.shape[1] != q.shape[1]:
        raise ValueError(f"query has dimension {q.shape[1]} but reference has {r.shape[1]}")
    if exclude_self is None:
        exclude_self = reference is None
    if exclude_self and r is not None and len(r) < len(q):
        raise ValueError(
            f"exclude_self with a reference set needs the reference to start with the {len(q)} "
            f"queries, but it has {len(r)} rows"
        )
    nr = 0 if r is None else len(r)
    k_out, idx, score = _core.knn(
        _arrays.address(q), len(q), 0 if r is None else _arrays.address(r), nr, q.shape[1],
        int(k), bool(exclude_self), metric,
    )
    indices = np.frombuffer(idx, dtype=np.int64).reshape(len(q), k_out)
    scores = np.frombuffer(score, dtype=np.float32).reshape(len(q), k_out)
    if metric == "euclidean":
        # The core ranks by q·r − ‖r‖²/2; the squared distance is ‖q‖² − 2·score.
        sq = np.einsum("ij,ij->i", q, q, dtype=np.float64)[:, None]
        scores = np.maximum(sq - 2.0 * scores.astype(np.float64), 0.0).astype(np.float32)
    return indices, scores


class AccuracyCalculator:
    """PML 2.9's `AccuracyCalculator`, computed exactly by embedrank's core.

    Same constructor and `get_accuracy`, same result keys and values (to 1e-6; NMI/AMI from a
    seeded k-means, so within k-means' run-to-run tolerance of PML's faiss k-means). Like PML's
    default it ranks by Euclidean distance on the embeddings as given; `metric="cosine"` ranks
    L2-normalised rows instead. Neighbours are exact, with ties broken by the lower reference
    index; a fixed `k` larger than the candidates is clipped (PML would read faiss's -1 padding).

    Not supported (refused with a ValueError): `label_comparison_fn`, `knn_func` and
    `kmeans_func` (embedrank compares labels for equality and brings its own search and k-means).
    `device` is accepted and ignored: the work runs on the CPU, tensors on any device are
    copied to the host first.
    """

    def __init__(
        self,
        include=(),
        exclude=(),
        avg_of_avgs=False,
        return_per_class=False,
        k=None,
        label_comparison_fn=None,
        device=None,
        knn_func=None,
        kmeans_func=None,
        *,
        metric="euclidean",
        kmeans_iters=20,
        seed=0,
    ):
        for name, value in (("label_comparison_fn", label_comparison_fn), ("knn_func", knn_func),
                            ("kmeans_func", kmeans_func)):
            if value is not None:
                raise ValueError(
                    f"{name} is not supported: embedrank compares labels for equality and uses its own "
                    "exact kNN and k-means; leave it None (use pytorch_metric_learning for custom ones)"
                )
        self._check_metrics(include, exclude)
        if avg_of_avgs and return_per_class:
            raise ValueError("avg_of_avgs and return_per_class are mutually exclusive")
        if not ((isinstance(k, int) and not isinstance(k, bool) and k > 0) or k in (None, "max_bin_count")):
            raise ValueError("k must be an integer greater than 0, or None, or 'max_bin_count'")
        _check_ranking(metric)
        self.include, self.exclude = tuple(include), tuple(exclude)
        self.avg_of_avgs = avg_of_avgs
        self.return_per_class = return_per_class
        self.k = k
        self.device = device
        self.metric = metric
        self.kmeans_iters = kmeans_iters
        self.seed = seed

    @staticmethod
    def _check_metrics(include, exclude):
        for chosen in (include, exclude):
            if not isinstance(chosen, (tuple, list)):
                raise TypeError(f"Arguments must be of type tuple, not {type(chosen)}.")
            unknown = [m for m in chosen if m not in METRICS]
            if unknown:
                raise ValueError(f"Primary metrics must be one or more of: {list(METRICS)} (got {unknown})")

    def get_curr_metrics(self, include=(), exclude=()):
        """The metrics computed, in result order: `include` (or all) minus `exclude`."""
        self._check_metrics(include, exclude)
        base = [m for m in METRICS if m in (self.include or METRICS) and m not in self.exclude]
        if include:
            base = [m for m in base if m in include]
        return [m for m in base if m not in exclude]

    def get_accuracy(self, query, query_labels, reference=None, reference_labels=None,
                     ref_includes_query=False, include=(), exclude=()):
        """PML's metrics of `query` against `reference` (or against itself, each query excluded).

        `ref_includes_query`: the first `len(query)` rows of `reference` are the queries, each
        left out of its own ranking. Returns `{metric: value}` (per-class lists with
        `return_per_class`).
        """
        if reference is None:
            reference, reference_labels, ref_includes_query, same = query, query_labels, True, True
        else:
            same = False
        q = _arrays.matrix(query, "query")
        ql = _arrays.labels(query_labels, "query_labels", len(q))
        if same:
            r, rl = q, ql
        else:
            if reference_labels is None:
                raise ValueError("reference_labels are needed with a reference set")
            r = _arrays.matrix(reference, "reference")
            rl = _arrays.labels(reference_labels, "reference_labels", len(r))
            if r.shape[1] != q.shape[1]:
                raise ValueError(f"query has dimension {q.shape[1]} but reference has {r.shape[1]}")
            if ref_includes_query and not (
                len(r) >= len(q) and np.allclose(q, r[: len(q)]) and np.array_equal(ql, rl[: len(q)])
            ):
                raise ValueError(
                    "When ref_includes_query is True, the first len(query) elements of reference must be "
                    "equal to query.\nLikewise, the first len(query_labels) elements of reference_labels "
                    "must be equal to query_labels.\n"
                )
        chosen = self.get_curr_metrics(include, exclude)
        if not chosen:
            return {}
        core_names = [m.lower() if m in ("AMI", "NMI") else m for m in chosen]
        k = {None: "all", "max_bin_count": "max_bin_count"}.get(self.k, str(self.k))
        out = _core.evaluate(
            _arrays.address(q), _arrays.address(ql), len(q),
            0 if same else _arrays.address(r), 0 if same else _arrays.address(rl), 0 if same else len(r),
            q.shape[1], core_names, k, bool(ref_includes_query), self.metric, self.kmeans_iters, self.seed,
        )
        per_query = {name: np.frombuffer(v, dtype=np.float64) for name, v in out.get("per_query", {}).items()}
        result = {}
        for name, core_name in zip(chosen, core_names):
            if name in _KNN_METRICS and (self.avg_of_avgs or self.return_per_class):
                result[name] = self._per_class(per_query[name], ql)
            else:
                result[name] = float(out[core_name])
        return result

    def _per_class(self, values, labels):
        """Per-sample values averaged per class of the non-lone queries (PML's avg_of_avgs /
        return_per_class); lone queries' values are NaN."""
        keep = ~np.isnan(values)
        if not keep.any():
            nan = [float("nan")] * len(np.unique(labels))
            return nan if self.return_per_class else float("nan")
        classes, which = np.unique(labels[keep], return_inverse=True)
        sums = np.bincount(which, weights=values[keep], minlength=len(classes))
        counts = np.bincount(which, minlength=len(classes))
        per_class = sums / counts
        return per_class.tolist() if self.return_per_class else float(np.mean(per_class))
