"""embedrank.knn against a float64 brute force, the tie rule, and Ctrl-C on a long search."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import grid

import embedrank


def brute(q, r, k, exclude_self, metric):
    """Indices by the documented rule (best score first, then lower index), in float64."""
    q, r = q.astype(np.float64), r.astype(np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        r = r / np.linalg.norm(r, axis=1, keepdims=True)
    if metric == "euclidean":
        score = -((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
    else:
        score = q @ r.T
    if exclude_self:
        score[np.arange(len(q)), np.arange(len(q))] = -np.inf
    k = min(k, r.shape[0] - int(exclude_self))
    order = np.lexsort((np.broadcast_to(np.arange(len(r)), score.shape), -score), axis=1)
    return order[:, :k], np.take_along_axis(score, order[:, :k], 1)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "inner_product"])
def test_random_data_equals_brute_force(rng, metric):
    q = rng.normal(size=(70, 9)).astype(np.float32) * rng.uniform(0.5, 3, size=(70, 1)).astype(np.float32)
    r = rng.normal(size=(130, 9)).astype(np.float32)
    idx, score = embedrank.knn(q, r, k=12, metric=metric)
    want_idx, want_score = brute(q, r, 12, False, metric)
    np.testing.assert_array_equal(idx, want_idx)
    want = -want_score if metric == "euclidean" else want_score  # squared distances for euclidean
    np.testing.assert_allclose(score, want, rtol=1e-4, atol=1e-4)
    if metric == "euclidean":
        assert np.all(np.diff(score, axis=1) >= 0), "distances ascend"


@pytest.mark.parametrize("metric", ["euclidean", "inner_product"])
def test_ties_rank_the_lower_index_first_in_self_search(rng, metric):
    e, _ = grid(rng, 150, 3, 2)
    idx, _ = embedrank.knn(e, k=40, metric=metric)
    want, _ = brute(e, e, 40, True, metric)
    np.testing.assert_array_equal(idx, want)
    assert not np.any(idx == np.arange(150)[:, None]), "no query finds itself"


def test_exclude_self_with_a_reference_that_starts_with_the_queries(rng):
    q = rng.normal(size=(20, 4)).astype(np.float32)
    r = np.concatenate([q, rng.normal(size=(30, 4)).astype(np.float32)])
    idx, _ = embedrank.knn(q, r, k=5, exclude_self=True)
    assert not np.any(idx == np.arange(20)[:, None])
    with_self, _ = embedrank.knn(q, r, k=1)
    np.testing.assert_array_equal(with_self[:, 0], np.arange(20))


def test_k_is_clipped_and_bad_input_refused():
    e = np.eye(3, dtype=np.float32)
    idx, score = embedrank.knn(e, k=10)
    assert idx.shape == score.shape == (3, 2)
    with pytest.raises(ValueError, match="k must be"):
        embedrank.knn(e, k=0)
    with pytest.raises(ValueError, match="dimension"):
        embedrank.knn(e, np.ones((2, 4)), k=1)
    with pytest.raises(ValueError, match="metric"):
        embedrank.knn(e, k=1, metric="manhattan")
    with pytest.raises(ValueError, match="zero vector"):
        embedrank.knn(np.zeros((2, 3)), k=1, metric="cosine")


def test_ctrl_c_interrupts_a_long_search():
    """A real process, a real SIGINT: the search stops within seconds with KeyboardInterrupt."""
    script = textwrap.dedent("""
        import sys, numpy as np, embedrank
        e = np.random.default_rng(0).normal(size=(60000, 256)).astype(np.float32)
        print("ready", flush=True)
        try:
            embedrank.knn(e, k=10)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "interrupted" in out, (proc.returncode, out)
    assert time.monotonic() - sent < 10, "it should stop at the next block, not run to the end"
