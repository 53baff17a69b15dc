"""Shared data for the tests of the embedrank Python package (run by `make test` against the
package built into the project venv, `make python`)."""

import logging
import zlib

import numpy as np
import pytest

# PML logs (faiss k-means size advice, k warnings) that say nothing about the comparison.
logging.getLogger("PML").setLevel(logging.ERROR)


def blobs(rng, n, dim, classes, spread=0.3, dtype=np.float32):
    """`n` points around `classes` random centres, labels unequal in size (some singletons likely)."""
    centres = rng.normal(size=(classes, dim))
    labels = rng.integers(0, classes, n)
    return (centres[labels] + spread * rng.normal(size=(n, dim))).astype(dtype), labels


def grid(rng, n, dim, classes):
    """Tie-heavy data: coordinates in {-1, 0, 1}, so many rows are exact duplicates across labels."""
    return rng.integers(-1, 2, size=(n, dim)).astype(np.float32), rng.integers(0, classes, n)


@pytest.fixture
def rng(request):
    """A generator seeded by the test's name (stable across runs, unlike `hash`)."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


CUDA = pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="no CUDA device on this machine (CPU paths tested)"
)
