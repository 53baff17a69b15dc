"""make bench-loss: embedrank's FastAP / FAPPY vs PML's FastAPLoss, same inputs, one table.

Forward + backward on N×512 L2-normalised float32 embeddings (N in 128…1024, 8 images per class
in N/8 classes), torch on CPU with 2 threads. Medians over ~1 s of repetitions. The floor column is
one N×N×D matrix product with embedrank's GEMM (the Gram matrix); FastAP needs it plus one more
product for the gradient.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from readme import update_section
from pytorch_metric_learning.losses import FastAPLoss

SIZES = [128, 256, 512, 1024]
DIM = 512
THREADS = 2
ROOT = Path(__file__).resolve().parents[1]


def timings(f):
    """Median and minimum seconds of f over repetitions filling about a second."""
    f()
    t = time.perf_counter()
    f()
    once = time.perf_counter() - t
    reps = int(min(max(1.0 / max(once, 1e-6), 5), 2000))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), float(np.min(times))


def pml_seconds(x, labels):
    loss_fn = FastAPLoss(num_bins=10)
    xt = torch.tensor(x)
    yt = torch.tensor(labels)

    def step():
        e = xt.clone().requires_grad_(True)
        loss_fn(e, yt).backward()

    return timings(step)


def torch_gemm_seconds(x):
    xt = torch.tensor(x)
    return timings(lambda: xt @ xt.T)


def main():
    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = {}
        for n in SIZES:
            x = rng.normal(size=(n, DIM)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            labels = np.repeat(np.arange(n // 8), 8).astype(np.int64)
            rng.shuffle(labels)
            np.save(Path(tmp) / f"emb_{n}.npy", x)
            np.save(Path(tmp) / f"labels_{n}.npy", labels)
            data[n] = (x, labels)
        env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
        proc = subprocess.run(
            ["cargo", "bench", "-q", "-p", "embedrank-cli", "--bench", "loss", "--", tmp, *map(str, SIZES)],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"embedrank bench failed:\n{proc.stderr}")
        ours = {r["n"]: r for r in (json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{"))}
        rows = []
        for n in SIZES:
            x, labels = data[n]
            pml = pml_seconds(x, labels)
            tg = torch_gemm_seconds(x)
            r = ours[n]
            rows.append((n, (r["fastap_s"], r["fastap_min_s"]), (r["fappy_s"], r["fappy_min_s"]), pml,
                         (r["gemm_s"], r["gemm_min_s"]), tg))

    ms = lambda t: f"{t[0] * 1e3:.3f} ({t[1] * 1e3:.3f})"
    lines = [
        f"FastAP / FAPPY forward+backward, D = {DIM}, {THREADS} threads; ms as median (min). "
        f"torch {torch.__version__} + PML FastAPLoss, 10 bins; embedrank FastAP 10 bins, FAPPY delta 1e-4.",
        "",
        "| N | embedrank FastAP | embedrank FAPPY | PML FastAPLoss | FastAP vs PML | GEMM N×N×D (floor) "
        "| FastAP / floor | torch N×N×D |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for n, fa, fp, pml, g, tg in rows:
        lines.append(
            f"| {n} | {ms(fa)} | {ms(fp)} | {ms(pml)} | {pml[0] / fa[0]:.1f}x faster "
            f"| {ms(g)} | {fa[0] / g[0]:.2f}x ({fa[1] / g[1]:.2f}x) | {ms(tg)} |"
        )
    lines.append("")
    lines.append(f"Load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores.")
    table = "\n".join(lines)
    print(table)
    if update_section("bench-loss", table):
        print("\n(README.md updated)")

if __name__ == "__main__":
    main()
