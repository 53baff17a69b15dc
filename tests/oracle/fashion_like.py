"""A small Fashion-MNIST-shaped dataset (gzipped IDX files) that a network learns in one epoch."""

import gzip
import struct

import numpy as np

CLASSES, TRAIN_PER_CLASS, TEST_PER_CLASS = 6, 16, 5


def write_idx(path, array):
    """An IDX file (unsigned bytes), gzipped, as Fashion-MNIST ships."""
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fashion_like(root, rng):
    """A Fashion-MNIST-shaped folder: class c is a bright bar at its own rows, plus noise."""
    root.mkdir()
    out = {}
    for stem, per in (("train", TRAIN_PER_CLASS), ("t10k", TEST_PER_CLASS)):
        labels = np.repeat(np.arange(CLASSES), per)
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(len(labels), 28, 28))
        for i, c in enumerate(labels):
            images[i, 2 + 4 * c:6 + 4 * c, 4:20] += 180
        write_idx(root / f"{stem}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{stem}-labels-idx1-ubyte.gz", labels)
        out[stem] = (images, labels)
    return out
