"""make bench-eval: embedrank's evaluation vs faiss IndexFlatIP and PML's AccuracyCalculator.

One run, the same random data for everyone: N = 60,502 (the SOP test size) L2-normalised float32
embeddings of dimension 512 in 11,316 classes of 2-16 images (SOP-like), on CPU with the same
thread count on both sides (all cores, 2 here).

1. Exact top-k, k = 1000, the set against itself: faiss `IndexFlatIP` (add + search k+1, the
   query itself is among the hits) vs `embedrank eval --k 1000 --metrics mean_average_precision`
   (kNN with self-exclusion, streamed). Both sides' MAP@1000 (PML's `mean_average_precision`,
   computed here from faiss's neighbours) is printed as a cross-check of the neighbour lists.
2. The full metric set: PML `AccuracyCalculator(k="max_bin_count")` (faiss kNN + faiss k-means,
   20 iterations) vs `embedrank eval` (all metrics, Recall@1/10/100/1000 on top).

Each side runs in its own process under `/usr/bin/time -v` for its peak memory (RSS). GFLOP/s
count 2·N²·D for an all-pairs product (what faiss computes); embedrank computes only the upper
triangle of tiles, so its "effective" rate is that count over its time. The machine's GEMM peak is
one large f32 product through torch (MKL) on the same threads.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from readme import update_section

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("EMBEDRANK_BIN", str(ROOT / "target/release/embedrank"))
N, DIM, CLASSES, K = 60502, 512, 11316, 1000
NOISE = 2.4  # per-coordinate noise around unit-variance class centres: MAP@R well below 1


def make_data(n, classes, noise=NOISE, seed=0):
    """SOP-like labels (every class ≥ 2 images) and clustered unit embeddings."""
    rng = np.random.default_rng(seed)
    sizes = 2 + rng.multinomial(n - 2 * classes, np.ones(classes) / classes)
    labels = np.repeat(np.arange(classes), sizes)
    rng.shuffle(labels)
    centres = rng.normal(size=(classes, DIM)).astype(np.float32)
    x = centres[labels] + noise * rng.normal(size=(n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels.astype(np.int64)


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time -v: (wall seconds, peak RSS in MB, stdout)."""
    t = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    return wall, rss, done.stdout


def pml_map_at_k(indices, labels):
    """PML's mean_average_precision on given neighbour lists (self already removed)."""
    q = labels[:, None]
    hits = labels[indices] == q
    counts = np.bincount(labels)[labels] - 1
    keep = counts > 0
    hits, counts = hits[keep], counts[keep]
    prec = np.cumsum(hits, 1) / np.arange(1, hits.shape[1] + 1)
    return float(np.mean((prec * hits).sum(1) / counts))


def child_faiss(d, threads):
    import faiss

    faiss.omp_set_num_threads(threads)
    x, labels = np.load(d / "q.npy"), np.load(d / "ql.npy")
    t = time.perf_counter()
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, idx = index.search(x, K + 1)
    seconds = time.perf_counter() - t
    # Drop each row's own index (PML's rule: it is the top hit unless tied; else drop the last).
    own = idx == np.arange(len(x))[:, None]
    own[~own.any(1), -1] = True
    idx = idx[~own].reshape(len(x), K)
    print(json.dumps({"seconds": seconds, "map_at_k": pml_map_at_k(idx, labels)}))


def child_pml(d, threads):
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    torch.set_num_threads(threads)
    import faiss

    faiss.omp_set_num_threads(threads)
    x, labels = torch.from_numpy(np.load(d / "q.npy")), torch.from_numpy(np.load(d / "ql.npy"))
    calc = AccuracyCalculator(k="max_bin_count", device=torch.device("cpu"))
    t = time.perf_counter()
    acc = calc.get_accuracy(x, labels)
    print(json.dumps({"seconds": time.perf_counter() - t, **acc}))


def gemm_peak(threads):
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(4096, DIM), torch.randn(DIM, 16384)
    a @ b
    best = min(_timeit(lambda: a @ b) for _ in range(5))
    return 2 * 4096 * DIM * 16384 / best / 1e9


def _timeit(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=N, help="rows (default: the SOP test size)")
    ap.add_argument("--child", choices=["faiss", "pml"])
    ap.add_argument("--dir")
    ap.add_argument("--skip-full", action="store_true", help="only the top-k comparison")
    args = ap.parse_args()
    threads = os.cpu_count()
    if args.child:
        return {"faiss": child_faiss, "pml": child_pml}[args.child](Path(args.dir), threads)

    n = args.n
    classes = max(2, round(CLASSES * n / N))
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    me = [sys.executable, __file__]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        x, labels = make_data(n, classes)
        np.save(d / "q.npy", x)
        np.save(d / "ql.npy", labels)
        del x
        files = ["--embeddings", str(d / "q.npy"), "--labels", str(d / "ql.npy")]
        print(f"data: N={n} D={DIM} classes={classes} (sizes {np.bincount(labels).min()}-"
              f"{np.bincount(labels).max()}), {threads} threads", flush=True)
        peak = gemm_peak(threads)
        print(f"GEMM peak (torch/MKL f32, 4096x512 . 512x16384): {peak:.0f} GFLOP/s", flush=True)

        fw, frss, fout = timed([*me, "--child", "faiss", "--dir", tmp], env)
        faiss_res = json.loads(fout)
        print(f"faiss IndexFlatIP top-{K}: {faiss_res['seconds']:.2f} s", flush=True)
        out = d / "topk.json"
        ew, erss, _ = timed([BIN, "eval", *files, "--k", str(K), "--metrics", "mean_average_precision",
                             "--json", str(out)], env)
        ours = json.loads(out.read_text())
        print(f"embedrank top-{K}: {ours['timings']['knn_s']:.2f} s", flush=True)

        # The binary's own start-up footprint (it links libtorch for `train`), for the RSS columns.
        _, base_rss, _ = timed([BIN, "--help"], env)
        flop = 2 * n * n * DIM
        # embedrank's symmetric schedule: tiles (I, J >= I) of 1024 rows, diagonal tiles in full.
        nb = -(-n // 1024)
        done = sum(2 * min(1024, n - i * 1024) * min(1024, n - j * 1024) * DIM
                   for i in range(nb) for j in range(i, nb))
        rows = [
            "| exact top-k, N={:,}, D={}, k={} | time (s) | process wall (s) | GFLOP/s (2N²D / time) | GFLOP/s computed | % of GEMM peak (computed) | peak RSS (MB) | RSS above start-up (MB) | MAP@{} |".format(n, DIM, K, K),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| faiss `IndexFlatIP` (add + search) | {faiss_res['seconds']:.2f} | {fw:.2f} | {flop / faiss_res['seconds'] / 1e9:.0f} | {flop / faiss_res['seconds'] / 1e9:.0f} | {100 * flop / faiss_res['seconds'] / 1e9 / peak:.0f}% | {frss:.0f} | — | {faiss_res['map_at_k']:.6f} |",
            f"| embedrank (kNN stage) | {ours['timings']['knn_s']:.2f} | {ew:.2f} | {flop / ours['timings']['knn_s'] / 1e9:.0f} | {done / ours['timings']['knn_s'] / 1e9:.0f} | {100 * done / ours['timings']['knn_s'] / 1e9 / peak:.0f}% | {erss:.0f} | {erss - base_rss:.0f} | {ours['mean_average_precision']:.6f} |",
            f"| ratio embedrank / faiss | {ours['timings']['knn_s'] / faiss_res['seconds']:.2f}× | {ew / fw:.2f}× | | | | | | |",
        ]
        table = "\n".join(rows)
        if not args.skip_full:
            pw, prss, pout = timed([*me, "--child", "pml", "--dir", tmp], env)
            pml = json.loads(pout)
            print(f"PML AccuracyCalculator: {pml['seconds']:.2f} s", flush=True)
            out = d / "full.json"
            fw2, frss2, _ = timed([BIN, "eval", *files, "--json", str(out)], env)
            full = json.loads(out.read_text())
            names = [("precision_at_1", "precision_at_1"), ("r_precision", "r_precision"),
                     ("mean_average_precision_at_r", "mean_average_precision_at_r"),
                     ("mean_average_precision", "mean_average_precision"),
                     ("mean_reciprocal_rank", "mean_reciprocal_rank"), ("nmi", "NMI"), ("ami", "AMI")]
            rows = [
                "",
                f"| full metric set, k = max_bin_count = {full['k']} | PML `AccuracyCalculator` | embedrank eval | abs. difference |",
                "| --- | ---: | ---: | ---: |",
            ]
            rows += [f"| {a} | {pml[b]:.6f} | {full[a]:.6f} | {abs(pml[b] - full[a]):.1e} |" for a, b in names]
            rows += [f"| recall_at_{k} | — | {v:.6f} | |" for k, v in full["recall_at_k"].items()]
            rows += [
                f"| time (s), in-process | {pml['seconds']:.1f} | {full['timings']['knn_s'] + full['timings']['kmeans_s']:.1f} (kNN {full['timings']['knn_s']:.1f} + k-means {full['timings']['kmeans_s']:.1f}) | |",
                f"| process wall (s) | {pw:.1f} | {fw2:.1f} | |",
                f"| peak RSS (MB) | {prss:.0f} | {frss2:.0f} ({frss2 - base_rss:.0f} above start-up) | |",
            ]
            table += "\n" + "\n".join(rows)
        header = (f"N = {n:,}, D = {DIM}, {classes:,} classes, {threads} threads; machine GEMM peak "
                  f"(torch/MKL f32) {peak:.0f} GFLOP/s; `embedrank --help` alone peaks at {base_rss:.0f} MB RSS "
                  "(libtorch is linked for `train`).\n\n")
        print()
        print(header + table)
        if n == N and not args.skip_full and not update_section("bench-eval", header + table):
            print("(README.md has no bench-eval markers; table not written there)")


if __name__ == "__main__":
    main()
