"""embedrank's exact kNN on a GPU (`embedrank eval --knn-device cuda`) vs PyTorch and faiss.

One run, the same random data for everyone: N L2-normalised float32 embeddings of dimension D in
N/10 classes of ≥ 2 rows (clustered, so precision@1 means something), searched against themselves
(each row's own index excluded), k neighbours.

1. Timing. `embedrank eval --knn-device DEVICE --metrics precision_at_1 --k K` (its JSON gives the
   in-process kNN seconds, host-to-device copies included) vs a plain PyTorch baseline on the same
   device (references resident, query chunks × all references, one matmul + `topk(k)` per chunk,
   the diagonal masked) vs faiss `IndexFlatIP` (GPU when DEVICE is cuda and faiss has GPUs; search
   k + 1 and drop the query itself), if faiss is importable.
2. Agreement. A fresh set of `--check-queries` rows is searched against the N rows, whose labels
   are their own indices, with each check query labelled by PyTorch's top-1 index: embedrank's
   precision@1 on that is then exactly the fraction of queries where its top-1 equals PyTorch's.
   faiss's top-1 is compared directly. Both must agree on ≥ 99.9% of the queries (near-ties
   summed in different orders may flip); the script exits with an error otherwise.

Peak device memory: for embedrank the whole GPU's used memory (nvidia-smi, polled every 0.2 s)
minus what was in use before it started, CUDA context included; for PyTorch its allocator's peak.

Usage (from the venv): python bench/bench_gpu_knn.py --bin target/release/embedrank --n 1000000
--dim 512 --k 100 --device cuda [--readme] [--out TABLE.md] [--json RESULTS.json]. A CPU smoke test: --device cpu --n 5000 (embedrank then runs the
same code on libtorch's CPU, `--knn-device torch-cpu`, and its own CPU kNN as well).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

import provenance
from readme import update_section

ROOT = Path(__file__).resolve().parents[1]
NOISE = 2.4  # as bench_eval.py: per-coordinate noise around unit-variance class centres


def make_data(n, dim, classes, seed):
    """Labels (every class ≥ 2 rows), clustered unit rows, and the class centres."""
    rng = np.random.default_rng(seed)
    sizes = 2 + rng.multinomial(n - 2 * classes, np.ones(classes) / classes)
    labels = np.repeat(np.arange(classes), sizes)
    rng.shuffle(labels)
    centres = rng.standard_normal((classes, dim), dtype=np.float32)
    x = centres[labels]
    x += NOISE * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, labels.astype(np.int64), centres


def fresh_queries(centres, m, seed):
    """m new unit rows from the same distribution (not in the reference set)."""
    rng = np.random.default_rng(seed + 1)
    q = centres[rng.integers(0, len(centres), m)]
    q += NOISE * rng.standard_normal(q.shape, dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q


class GpuMemory:
    """Polls the GPU's used memory (MiB) with nvidia-smi while a `with` block runs."""

    def __init__(self, device):
        self.index = (device.index or 0) if device.type == "cuda" else None
        self.ok = self.index is not None and shutil.which("nvidia-smi") is not None
        self.peak = self.base = None

    def _used(self):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", str(self.index)],
            capture_output=True, text=True)
        return float(out.stdout.strip() or "nan")

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._used())
            self._stop.wait(0.2)

    def __enter__(self):
        if self.ok:
            self.base = self.peak = self._used()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.ok:
            self._stop.set()
            self._thread.join()

    def mib(self):
        return self.peak - self.base if self.ok else None


def embedrank(bin_path, files, knn_device, k, out, device):
    """Runs `embedrank eval`; (its JSON, process wall seconds, peak device MiB or None)."""
    cmd = [bin_path, "eval", *files, "--knn-device", knn_device, "--metrics", "precision_at_1",
           "--k", str(k), "--json", str(out)]
    with GpuMemory(device) as mem:
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text()), wall, mem.mib()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_knn(q, r, k, device, exclude_self):
    """PyTorch baseline: (top-k indices as numpy, seconds incl. copies). Tiles ≤ 2^30 scores."""
    sync(device)
    t = time.perf_counter()
    with torch.no_grad():
        rt = torch.from_numpy(r).to(device)
        chunk = max(1, min(len(q), 2**30 // len(r)))
        out = []
        for q0 in range(0, len(q), chunk):
            qt = torch.from_numpy(q[q0:q0 + chunk]).to(device)
            s = qt @ rt.T
            if exclude_self:
                s.diagonal(q0).fill_(float("-inf"))
            out.append(s.topk(k, dim=1).indices.cpu())
            del s
        idx = torch.cat(out).numpy()
    sync(device)
    return idx, time.perf_counter() - t


def faiss_knn(q, r, k, device, exclude_self):
    """faiss IndexFlatIP: (top-k indices, seconds, where), or None if faiss cannot run here."""
    try:
        import faiss
    except ImportError:
        return None
    gpu = device.type == "cuda"
    if gpu and not (hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0):
        return None
    t = time.perf_counter()
    index = faiss.IndexFlatIP(r.shape[1])
    if gpu:
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, device.index or 0, index)
    index.add(r)
    _, idx = index.search(q, k + int(exclude_self))
    seconds = time.perf_counter() - t
    if exclude_self:
        # Drop each row's own index (the top hit unless tied; else the last).
        own = idx == np.arange(len(q))[:, None]
        own[~own.any(1), -1] = True
        idx = idx[~own].reshape(len(q), k)
    return idx, seconds, "GPU" if gpu else "CPU"


def p_at_1(top1, labels):
    """precision@1 of a self-search (every class has ≥ 2 rows: no lone queries)."""
    return float(np.mean(labels[top1] == labels))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(ROOT / "target/release/embedrank"), help="the embedrank binary")
    ap.add_argument("--n", type=int, default=1_000_000, help="rows (queries = references)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--check-queries", type=int, default=10_000, help="fresh queries of the agreement check")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--readme", action="store_true", help="write the table into README.md (bench-gpu-knn)")
    ap.add_argument("--out", type=Path, help="write the table to this file too")
    ap.add_argument("--json", type=Path, help="write the measurements to this JSON file")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device visible to PyTorch")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    knn_device = "torch-cpu" if device.type == "cpu" else args.device
    n, dim, k = args.n, args.dim, args.k
    classes = max(1, n // 10)
    m = min(args.check_queries, n)

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t = time.perf_counter()
        x, labels, centres = make_data(n, dim, classes, args.seed)
        qc = fresh_queries(centres, m, args.seed)
        del centres
        np.save(d / "x.npy", x)
        np.save(d / "l.npy", labels)
        np.save(d / "qc.npy", qc)
        np.save(d / "ids.npy", np.arange(n, dtype=np.int64))
        print(f"data: N={n:,} D={dim} k={k}, {classes:,} classes, {m:,} check queries "
              f"({time.perf_counter() - t:.1f} s); device: {name}", flush=True)
        files = ["--embeddings", str(d / "x.npy"), "--labels", str(d / "l.npy")]

        rows = []  # (method, kNN s, wall s, peak MiB, p@1, agreement)
        ours, wall, mib = embedrank(args.bin, files, knn_device, k, d / "e.json", device)
        print(f"embedrank --knn-device {knn_device}: kNN {ours['timings']['knn_s']:.2f} s", flush=True)
        ours_row = [f"embedrank `--knn-device {knn_device}`", ours["timings"]["knn_s"], wall, mib,
                    ours["precision_at_1"]]
        core = None
        if device.type == "cpu":
            core, cwall, _ = embedrank(args.bin, files, "cpu", k, d / "c.json", device)
            print(f"embedrank --knn-device cpu: kNN {core['timings']['knn_s']:.2f} s", flush=True)

        # The agreement check: embedrank's top-1 vs PyTorch's on fresh queries.
        ref_top1, _ = torch_knn(qc, x, 1, device, exclude_self=False)
        np.save(d / "qcl.npy", ref_top1[:, 0].astype(np.int64))
        check = [*["--embeddings", str(d / "qc.npy"), "--labels", str(d / "qcl.npy")],
                 "--ref-embeddings", str(d / "x.npy"), "--ref-labels", str(d / "ids.npy")]
        agree, _, _ = embedrank(args.bin, check, knn_device, 1, d / "a.json", device)
        ours_row.append(agree["precision_at_1"])
        rows.append(ours_row)
        if core is not None:
            agree_core, _, _ = embedrank(args.bin, check, "cpu", 1, d / "ac.json", device)
            rows.append(["embedrank `--knn-device cpu` (its own CPU kNN)", core["timings"]["knn_s"], cwall,
                         None, core["precision_at_1"], agree_core["precision_at_1"]])

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        idx, secs = torch_knn(x, x, k, device, exclude_self=True)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        print(f"PyTorch matmul + topk: {secs:.2f} s", flush=True)
        rows.append(["PyTorch matmul + `topk`, chunked", secs, None, peak, p_at_1(idx[:, 0], labels), 1.0])
        torch_p1 = rows[-1][4]
        del idx

        f = faiss_knn(x, x, k, device, exclude_self=True)
        if f is not None:
            fidx, fsecs, where = f
            print(f"faiss IndexFlatIP ({where}): {fsecs:.2f} s", flush=True)
            cidx, _, _ = faiss_knn(qc, x, 1, device, exclude_self=False)
            rows.append([f"faiss `IndexFlatIP` ({where})", fsecs, None, None, p_at_1(fidx[:, 0], labels),
                         float(np.mean(cidx[:, 0] == ref_top1[:, 0]))])
            del fidx
        else:
            print("faiss: not importable, or no GPU build for this device; skipped", flush=True)

    flop = 2 * n * n * dim
    fmt = lambda v, spec: "—" if v is None else format(v, spec)  # noqa: E731
    where = provenance.facts(device)
    lines = [
        f"exact self-search kNN, N = {n:,}, D = {dim}, k = {k}, on {name}; agreement = fraction of "
        f"{m:,} fresh queries whose top-1 equals PyTorch's. {provenance.sentence(where)}",
        "",
        "| method | kNN time (s) | process wall (s) | GFLOP/s (2N²D / kNN time) | peak device memory (MiB) "
        "| precision@1 | top-1 agreement with PyTorch |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for method, secs, wall, mib, p1, agr in rows:
        lines.append(f"| {method} | {secs:.2f} | {fmt(wall, '.2f')} | {flop / secs / 1e9:.0f} | "
                     f"{fmt(mib, '.0f')} | {p1:.6f} | {100 * agr:.2f}% |")
    table = "\n".join(lines)
    print()
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    if args.json:
        keys = ["embedrank"] + (["embedrank-cpu"] if core is not None else []) + ["torch"] + (["faiss"] if f else [])
        record = {"facts": where, "n": n, "dim": dim, "k": k, "check_queries": m, "knn_device": knn_device,
                  "rows": [dict(zip(("key", "method", "knn_s", "wall_s", "peak_mib", "precision_at_1", "agreement"),
                                    (key, *row))) for key, row in zip(keys, rows)]}
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    if args.readme and not update_section("bench-gpu-knn", table):
        print("(README.md has no bench-gpu-knn markers; table not written there)")
    bad = [r[0] for r in rows if r[5] < 0.999]
    if abs(rows[0][4] - torch_p1) > 1e-3:
        bad.append("embedrank's precision@1 differs from PyTorch's by more than 0.001")
    if bad:
        sys.exit(f"disagreement with PyTorch on more than 0.1% of top-1 neighbours: {', '.join(bad)}")


if __name__ == "__main__":
    main()
