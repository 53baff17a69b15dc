#!/usr/bin/env python3
"""Writes Fashion-MNIST test images as PNG files, one folder per class, for trying `embedrank index`
and `embedrank search` on the demo run: `scripts/fashion-mnist-images.py DATA OUT [--count N]`.

DATA is the folder of the four IDX files (`scripts/fashion-mnist.sh` prints it); OUT receives
`OUT/<class>/<row>.png` (28×28 grey) for the first N rows of the test split (default 1000).
Needs numpy and Pillow (both in the project venv).
"""

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def idx(folder, name):
    """The array stored in IDX file `name` (plain or .gz) of `folder`."""
    for path, opener in ((folder / name, open), (folder / f"{name}.gz", gzip.open)):
        if path.is_file():
            with opener(path, "rb") as f:
                data = f.read()
            dims = data[3]
            shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
            return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    sys.exit(f"error: {folder} has no {name} (or {name}.gz): pass the Fashion-MNIST folder")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder of the Fashion-MNIST IDX files")
    parser.add_argument("out", type=Path, help="folder to write OUT/<class>/<row>.png into")
    parser.add_argument("--count", type=int, default=1000, help="test images to write (default 1000)")
    args = parser.parse_args()
    images = idx(args.data, "t10k-images-idx3-ubyte")
    labels = idx(args.data, "t10k-labels-idx1-ubyte")
    count = max(0, min(args.count, len(images)))
    for row in range(count):
        folder = args.out / CLASSES[labels[row]]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(images[row])).save(folder / f"{row:05d}.png")
    print(f"{count} images in {args.out}/<class>/")


if __name__ == "__main__":
    main()
