"""make bench-loss: embedrank's losses vs PML 2.9's, same inputs, two tables.

Forward + backward on N×512 L2-normalised float32 embeddings (8 images per class in N/8 classes),
torch on CPU with 2 threads, embedrank's rayon pool with 2. Medians over ~1 s of repetitions.
1. FastAP / FAPPY vs PML's FastAPLoss, N in 128…1024. The floor column is one N×N×D matrix product
   with embedrank's GEMM (the Gram matrix); FastAP needs it plus one more product for the gradient.
2. The baselines (contrastive, triplet with each mining, multi-similarity with and without its
   miner, Proxy-Anchor, normalized softmax) vs the PML loss (+ miner) each equals, N = 256 and 1024,
   PML defaults; the proxy losses get N/8 random class rows (one per class).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytorch_metric_learning
import torch

from readme import update_section
from pytorch_metric_learning import losses, miners
from pytorch_metric_learning.losses import FastAPLoss

SIZES = [128, 256, 512, 1024]
BASELINE_SIZES = [256, 1024]
# Name (as the Rust harness prints it) -> PML loss and miner, given (classes, dim).
BASELINES = {
    "contrastive": lambda c, d: (losses.ContrastiveLoss(), None),
    "triplet (all)": lambda c, d: (losses.TripletMarginLoss(), None),
    "triplet batch-hard": lambda c, d: (losses.TripletMarginLoss(), miners.BatchHardMiner()),
    "triplet semi-hard": lambda c, d: (losses.TripletMarginLoss(),
                                       miners.TripletMarginMiner(type_of_triplets="semihard")),
    "multi-similarity": lambda c, d: (losses.MultiSimilarityLoss(), None),
    "multi-similarity + miner": lambda c, d: (losses.MultiSimilarityLoss(), miners.MultiSimilarityMiner()),
    "proxy-anchor": lambda c, d: (losses.ProxyAnchorLoss(c, d), None),
    "normalized-softmax": lambda c, d: (losses.NormalizedSoftmaxLoss(c, d), None),
}
DIM = 512
THREADS = 2
PML_VERSION = pytorch_metric_learning.__version__
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


def pml_baseline(name, x, labels, proxies):
    """PML's forward + backward timings of baseline `name`, and its loss value."""
    loss_fn, miner = BASELINES[name](*proxies.shape)
    if isinstance(loss_fn, losses.ProxyAnchorLoss):
        loss_fn.proxies.data = torch.tensor(proxies)
    elif isinstance(loss_fn, losses.NormalizedSoftmaxLoss):
        loss_fn.W.data = torch.tensor(proxies.T.copy())  # PML keeps dim×C
    xt, yt = torch.tensor(x), torch.tensor(labels)

    def step():
        loss_fn.zero_grad(set_to_none=True)
        e = xt.clone().requires_grad_(True)
        value = loss_fn(e, yt, None if miner is None else miner(e, yt))
        value.backward()
        return value.item()

    return timings(step), step()


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
            proxies = None
            if n in BASELINE_SIZES:  # one row per class, PML ProxyAnchorLoss's init scale
                proxies = (rng.normal(size=(n // 8, DIM)) * np.sqrt(2.0 / (n // 8))).astype(np.float32)
                np.save(Path(tmp) / f"proxies_{n}.npy", proxies)
            data[n] = (x, labels, proxies)
        env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
        proc = subprocess.run(
            ["cargo", "bench", "-q", "-p", "embedrank-cli", "--bench", "loss", "--", tmp, *map(str, SIZES)],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"embedrank bench failed:\n{proc.stderr}")
        records = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
        ours = {r["n"]: r for r in records if "baseline" not in r}
        ours_baselines = {(r["baseline"], r["n"]): r for r in records if "baseline" in r}
        rows = []
        for n in SIZES:
            x, labels, _ = data[n]
            pml = pml_seconds(x, labels)
            tg = torch_gemm_seconds(x)
            r = ours[n]
            rows.append((n, (r["fastap_s"], r["fastap_min_s"]), (r["fappy_s"], r["fappy_min_s"]), pml,
                         (r["gemm_s"], r["gemm_min_s"]), tg))
        baseline_rows = []
        for name in BASELINES:
            for n in BASELINE_SIZES:
                x, labels, proxies = data[n]
                pml, pml_value = pml_baseline(name, x, labels, proxies)
                r = ours_baselines[(name, n)]
                if abs(r["loss"] - pml_value) > 1e-3 * max(1.0, abs(pml_value)):
                    print(f"warning: {name} N={n}: embedrank loss {r['loss']} vs PML {pml_value}", file=sys.stderr)
                baseline_rows.append((name, n, (r["s"], r["min_s"]), pml))

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
    lines += [
        "",
        f"Baselines forward+backward, PML {PML_VERSION} defaults, D = {DIM}, {THREADS} threads, "
        "8 images per class; ms as median (min).",
        "",
        "| loss | N | embedrank | PML | embedrank vs PML |",
        "|:--|--:|--:|--:|--:|",
    ]
    for name, n, ours_t, pml in baseline_rows:
        lines.append(f"| {name} | {n} | {ms(ours_t)} | {ms(pml)} | {pml[0] / ours_t[0]:.1f}x faster |")
    lines.append("")
    lines.append(f"Load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores.")
    table = "\n".join(lines)
    print(table)
    if update_section("bench-loss", table):
        print("\n(README.md updated)")

if __name__ == "__main__":
    main()
