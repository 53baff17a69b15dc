"""`make bench-data`: decoded+augmented images per second, embedrank's loader vs PyTorch's DataLoader.

Both sides read the same JPEGs (512 photos-like images of 500×375, generated once into
target/bench-data/) with the same worker count and batch size, and apply the same transforms:
train = RandomResizedCrop(224, scale 0.16–1, ratio 3/4–4/3) + horizontal flip + ImageNet
normalisation into float32 CHW batches; test = Resize(256) + CenterCrop(224) + normalisation.
Each side runs one warm-up epoch and then EPOCHS timed ones. Prints one table and writes it into
README.md (the bench-data section).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
import torchvision.transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme import update_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIR = ROOT / "target" / "bench-data"
N, WIDTH, HEIGHT = 512, 500, 375
WORKERS, BATCH, EPOCHS = 2, 64, 2


def make_images():
    """Writes N JPEGs with photo-like content (smooth colour fields, edges, noise), once."""
    DIR.mkdir(parents=True, exist_ok=True)
    if len(list(DIR.glob("*.jpg"))) == N:
        return
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    for i in range(N):
        f = rng.uniform(0.005, 0.05, size=(3, 2))
        ph = rng.uniform(0, 6.3, size=(3, 2))
        img = np.stack([np.sin(x * f[c, 0] + ph[c, 0]) + np.cos(y * f[c, 1] + ph[c, 1]) for c in range(3)], -1)
        cx, cy, r = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(30, 150)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] *= -1
        img = (img + 2) * 60 + rng.normal(0, 8, size=img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(DIR / f"{i:04d}.jpg", quality=90)


class Files(Dataset):
    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.transform(Image.open(self.paths[i]).convert("RGB"))


def torchvision_rate(transform):
    paths = sorted(DIR.glob("*.jpg"))
    loader = DataLoader(Files(paths, transform), batch_size=BATCH, num_workers=WORKERS, persistent_workers=True)
    for _ in loader:  # warm-up: worker start, file cache
        pass
    start = time.perf_counter()
    count = sum(len(b) for _ in range(EPOCHS) for b in loader)
    return count / (time.perf_counter() - start)


def main():
    make_images()
    norm = [T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    transforms = {
        "train": T.Compose([T.RandomResizedCrop(224, scale=(0.16, 1.0), ratio=(3 / 4, 4 / 3)), T.RandomHorizontalFlip()] + norm),
        "test": T.Compose([T.Resize(256), T.CenterCrop(224)] + norm),
    }
    cmd = ["cargo", "bench", "-q", "-p", "embedrank-data", "--bench", "data", "--", str(DIR), str(WORKERS), str(BATCH), str(EPOCHS)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    ours = {r["transform"]: r for r in map(json.loads, filter(None, out.splitlines()))}
    rows = [
        f"Image loading, {N} JPEGs of {WIDTH}×{HEIGHT}, {WORKERS} workers, batch {BATCH}, {os.cpu_count()} CPU cores "
        f"(torch {torch.__version__}):",
        "",
        "| transform | embedrank images/s | torchvision DataLoader images/s | speed-up |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, transform in transforms.items():
        theirs = torchvision_rate(transform)
        mine = ours[name]["images_per_s"]
        rows.append(f"| {name} | {mine:,.0f} | {theirs:,.0f} | {mine / theirs:.2f}× |")
    table = "\n".join(rows)
    print(table)
    if not update_section("bench-data", table):
        print("README.md has no bench-data markers; table not written", file=sys.stderr)


if __name__ == "__main__":
    main()
