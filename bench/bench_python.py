"""make bench-python: the Python package against PML 2.9 in one process, same threads (2).

1. SOP-size evaluation (N = 60,502, D = 512, 11,316 classes, bench_eval's SOP-like data):
   `AccuracyCalculator(k="max_bin_count")`, every default metric, PML (faiss kNN + k-means) vs
   `embedrank.AccuracyCalculator`: wall time and peak RSS growth during the call (sampled every
   5 ms from /proc/self/statm; embedrank runs first so it cannot reuse memory PML freed).
2. FastAP forward + backward through autograd at N = 256 and 1024, D = 512: PML's FastAPLoss vs
   `embedrank.FastAPLoss` (both L2-normalise inside), median of repetitions filling ~1 s.
"""

import os

THREADS = 2
os.environ.setdefault("RAYON_NUM_THREADS", str(THREADS))  # before embedrank's pool starts

import logging
import sys
import threading
import time
from pathlib import Path

import faiss
import numpy as np
import pytorch_metric_learning
import torch
from pytorch_metric_learning.losses import FastAPLoss
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

import embedrank

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_eval import CLASSES, N, make_data  # noqa: E402
from readme import update_section  # noqa: E402

logging.getLogger("PML").setLevel(logging.ERROR)
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def measured(f):
    """(result, seconds, peak RSS growth in bytes) of f()."""
    start, peak, done = rss(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)

    t = threading.Thread(target=sample)
    t.start()
    t0 = time.perf_counter()
    try:
        out = f()
    finally:
        seconds = time.perf_counter() - t0
        done.set()
        t.join()
    return out, seconds, max(peak[0], rss()) - start


def median_ms(f):
    f()
    t = time.perf_counter()
    f()
    reps = int(min(max(1.0 / max(time.perf_counter() - t, 1e-6), 5), 500))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def fastap_step(loss, x, y):
    def run():
        e = x.clone().requires_grad_(True)
        loss(e, y).backward()
    return run


def main():
    torch.set_num_threads(THREADS)
    faiss.omp_set_num_threads(THREADS)
    x, labels = make_data(N, CLASSES)
    ours, ours_s, ours_mem = measured(lambda: embedrank.AccuracyCalculator(k="max_bin_count").get_accuracy(x, labels))
    print(f"embedrank: {ours_s:.1f} s, +{ours_mem / 2**20:.0f} MB", flush=True)
    calc = AccuracyCalculator(k="max_bin_count", device=torch.device("cpu"))
    pml, pml_s, pml_mem = measured(lambda: calc.get_accuracy(x, labels))
    print(f"PML: {pml_s:.1f} s, +{pml_mem / 2**20:.0f} MB", flush=True)

    lines = [
        f"Evaluation: N = {N:,}, D = 512, {CLASSES:,} classes (bench_eval's SOP-like data), "
        f"`AccuracyCalculator(k=\"max_bin_count\")`, every default metric, {THREADS} threads, one process; "
        f"PML {pytorch_metric_learning.__version__} (faiss {faiss.__version__}) vs embedrank "
        f"{embedrank.__version__}. Peak RSS = growth during the call.",
        "",
        "| | PML `AccuracyCalculator` | `embedrank.AccuracyCalculator` | PML / embedrank |",
        "| --- | ---: | ---: | ---: |",
        f"| wall time (s) | {pml_s:.1f} | {ours_s:.1f} | {pml_s / ours_s:.1f}× |",
        f"| peak RSS growth (MB) | {pml_mem / 2**20:.0f} | {ours_mem / 2**20:.0f} | {pml_mem / max(ours_mem, 1):.1f}× |",
    ]
    for key in pml:
        lines.append(f"| {key} | {pml[key]:.6f} | {ours[key]:.6f} | diff {abs(pml[key] - ours[key]):.1e} |")
    lines += [
        "",
        f"FastAP forward + backward through autograd, D = 512, 10 bins, {THREADS} threads, 8 images per class; "
        "ms, median.",
        "",
        "| N | PML `FastAPLoss` | `embedrank.FastAPLoss` | embedrank vs PML |",
        "| --: | --: | --: | --: |",
    ]
    g = torch.Generator().manual_seed(0)
    for n in (256, 1024):
        xb = torch.randn(n, 512, generator=g)
        yb = torch.arange(n) // 8
        p = median_ms(fastap_step(FastAPLoss(num_bins=10), xb, yb))
        e = median_ms(fastap_step(embedrank.FastAPLoss(num_bins=10), xb, yb))
        lines.append(f"| {n} | {p:.2f} | {e:.2f} | {p / e:.1f}x faster |")
    load = os.getloadavg()[0]
    lines += ["", f"Load average at the end of the run: {load:.2f} on {os.cpu_count()} cores."]
    text = "\n".join(lines)
    print(text)
    if not update_section("bench-python", text):
        print("README.md has no bench-python section; table not written", file=sys.stderr)


if __name__ == "__main__":
    main()
