"""make bench-train: the demo training run in PyTorch + PML and in embedrank, side by side, one run.

`--loss NAME` trains with another loss (PML's class with the same settings on the PyTorch side);
`--loss all` runs every loss in turn and writes the README's loss table. FAPPY has no PyTorch
implementation: its row is embedrank's alone. The losses with per-class parameters (proxy-anchor,
normalized-softmax) train them with Adam too, at the base rate times LOSS_LR_MULT (Proxy-Anchor's
reference ×100) on both sides.

Same network (3 conv-BN-ReLU-max-pool blocks 32/64/128, global average pool, linear to 64, L2
normalisation, PyTorch's default initialisation), same data (Fashion-MNIST train split, pixels
/255 standardised with mean 0.2860 / std 0.3530), same batch composition (8 classes x 32 images:
PML's MPerClassSampler here, embedrank's m-per-class sampler there), the loss (e.g. FastAP with 10 bins: PML's
FastAPLoss here, embedrank's analytic FastAP there), Adam lr 1e-3, 2 epochs, 2 threads, CPU.
Both are scored the same way: the 10k test split against itself, own image excluded, with PML's
AccuracyCalculator (k = max_bin_count) for PyTorch and embedrank's evaluator (PML's definitions,
checked against it by the oracle tests) for embedrank. Throughput counts the training steps only
(batch assembly, forward, loss, backward, optimiser step), not evaluation.

    .venv/bin/python bench/bench_train.py [--loss NAME|all] [--epochs 2] [--threads 2] [--data DIR]
                                          [--only torch|embedrank]
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from readme import update_section

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = 0.2860, 0.3530
LOSSES = ["fastap", "fappy", "contrastive", "triplet", "multi-similarity", "proxy-anchor", "normalized-softmax"]
# The learning-rate multiplier of a loss's own parameters (optim.loss_lr_mult), both sides.
LOSS_LR_MULT = {"proxy-anchor": 100.0, "normalized-softmax": 1.0}
CLASSES, DIM = 10, 64


def pml_loss(name: str):
    """PML's class for embedrank's loss `name` with the same settings (None: PML has none)."""
    from pytorch_metric_learning import losses

    return {
        "fastap": lambda: losses.FastAPLoss(num_bins=10),
        "contrastive": lambda: losses.ContrastiveLoss(pos_margin=0, neg_margin=1),
        "triplet": lambda: losses.TripletMarginLoss(margin=0.05),
        "multi-similarity": lambda: losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5),
        "proxy-anchor": lambda: losses.ProxyAnchorLoss(CLASSES, DIM, margin=0.1, alpha=32),
        "normalized-softmax": lambda: losses.NormalizedSoftmaxLoss(CLASSES, DIM, temperature=0.05),
    }.get(name, lambda: None)()


def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data: Path, stem: str):
    def find(name):
        for p in (data / f"{name}.gz", data / name):
            if p.is_file():
                return p
        sys.exit(f"{data}: {name}[.gz] not found (apt-get install dataset-fashion-mnist, or --data DIR)")

    x = read_idx(find(f"{stem}-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = read_idx(find(f"{stem}-labels-idx1-ubyte")).astype(np.int64)
    x = (x - MEAN) / STD
    return torch.from_numpy(x).unsqueeze(1).contiguous(), torch.from_numpy(y)


class SmallCnn(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        layers, c_in = [], 1
        for c_out in (32, 64, 128):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(128, dim)

    def forward(self, x):
        return F.normalize(self.head(self.features(x).mean(dim=(2, 3))), p=2, dim=1)


def run_torch(data: Path, epochs: int, threads: int, loss_name: str, seed: int = 42):
    from pytorch_metric_learning.samplers import MPerClassSampler
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    xtr, ytr = load(data, "train")
    xte, yte = load(data, "t10k")
    net = SmallCnn(DIM)
    loss_fn = pml_loss(loss_name)
    groups = [{"params": net.parameters(), "lr": 1e-3}]
    if list(loss_fn.parameters()):
        groups.append({"params": loss_fn.parameters(), "lr": 1e-3 * LOSS_LR_MULT[loss_name]})
    opt = torch.optim.Adam(groups, lr=1e-3)
    sampler = MPerClassSampler(ytr, m=32, batch_size=256, length_before_new_iter=len(ytr))
    seconds, images, losses = 0.0, 0, []
    for epoch in range(epochs):
        idx = torch.tensor(list(iter(sampler)), dtype=torch.int64)
        net.train()
        t0 = time.perf_counter()
        for b in range(len(idx) // 256):
            batch = idx[b * 256:(b + 1) * 256]
            x, y = xtr.index_select(0, batch), ytr.index_select(0, batch)
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            images += len(batch)
        seconds += time.perf_counter() - t0
        print(f"  torch epoch {epoch + 1}: loss {np.mean(losses[-(len(idx) // 256):]):.4f}, "
              f"{images / seconds:.0f} img/s so far", file=sys.stderr)
    net.eval()
    with torch.no_grad():
        emb = torch.cat([net(xte[i:i + 1000]) for i in range(0, len(xte), 1000)]).numpy()
    calc = AccuracyCalculator(include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
                              k="max_bin_count")
    acc = calc.get_accuracy(emb, yte.numpy())
    return {
        "img_per_s": images / seconds,
        "train_seconds": seconds,
        "r1": acc["precision_at_1"],
        "map_r": acc["mean_average_precision_at_r"],
        "r_precision": acc["r_precision"],
        "version": f"torch {torch.__version__} + PML",
    }


def run_embedrank(data: Path, epochs: int, threads: int, loss_name: str):
    binary = ROOT / "target" / "release" / "embedrank"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [str(binary), "train", "--data", str(data), "--epochs", str(epochs), "--threads", str(threads),
               "--eval-every", "0", "--out", str(out), "--loss", loss_name]
        if loss_name in LOSS_LR_MULT:
            cmd += ["--set", f"optim.loss_lr_mult={LOSS_LR_MULT[loss_name]}"]
        proc = subprocess.run(cmd, env={}, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"embedrank train failed:\n{proc.stderr}")
        print("\n".join(f"  {l}" for l in proc.stderr.splitlines() if l.startswith("epoch")), file=sys.stderr)
        res = json.loads((out / "results.json").read_text())
    r = res["retrieval"]
    return {
        "img_per_s": res["img_per_s"],
        "train_seconds": res["train_seconds"],
        "r1": r["precision_at_1"],
        "map_r": r["mean_average_precision_at_r"],
        "r_precision": r["r_precision"],
        "version": "tch 0.24, libtorch 2.11",
    }


def compare(args, loss_name: str):
    """The rows of one loss: PyTorch + PML (when PML has the loss), then embedrank."""
    rows = []
    if args.only != "embedrank" and loss_name != "fappy":
        print(f"PyTorch + PML, {loss_name} …", file=sys.stderr)
        rows.append(("PyTorch + PML", run_torch(args.data, args.epochs, args.threads, loss_name)))
    if args.only != "torch":
        print(f"embedrank, {loss_name} …", file=sys.stderr)
        rows.append(("embedrank train", run_embedrank(args.data, args.epochs, args.threads, loss_name)))
    return rows


def row(name, r):
    return (f"{name} ({r['version']}) | {r['img_per_s']:.0f} | {r['train_seconds']:.0f} "
            f"| {r['r1']:.3f} | {r['map_r']:.3f} | {r['r_precision']:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loss", default="fastap", choices=LOSSES + ["all"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--only", choices=["torch", "embedrank"])
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    footer = (f"Load average before / after: {load_before:.2f} / {{after:.2f}} on {os.cpu_count()} cores.")
    if args.loss == "all":
        lines = [
            f"Fashion-MNIST, small CNN → {DIM}-d, batches of 8 classes × 32, Adam 1e-3 (the losses' own "
            f"parameters ×{LOSS_LR_MULT['proxy-anchor']:.0f} for proxy-anchor), {args.epochs} epochs, "
            f"{args.threads} threads, CPU; each loss with PML 2.9's default settings on both sides. Test "
            "split vs itself (self excluded).",
            "",
            "| loss | stack | train img/s | train s | R@1 | MAP@R | R-precision | embedrank / PyTorch img/s |",
            "|---|---|--:|--:|--:|--:|--:|--:|",
        ]
        for loss_name in LOSSES:
            rows = compare(args, loss_name)
            speedup = (f"{rows[1][1]['img_per_s'] / rows[0][1]['img_per_s']:.2f}x"
                       if len(rows) == 2 else "—")
            for i, (name, r) in enumerate(rows):
                last = speedup if i == len(rows) - 1 else ""
                lines.append(f"| `{loss_name}` | {row(name, r)} | {last} |")
        lines.append("")
        lines.append(footer.format(after=os.getloadavg()[0]))
        table = "\n".join(lines)
        print(table)
        if update_section("bench-train-losses", table):
            print("\n(README.md updated)")
        return
    rows = compare(args, args.loss)
    lines = [
        f"Fashion-MNIST, small CNN → {DIM}-d, {args.loss}, batches of 8 classes × 32, Adam 1e-3, "
        f"{args.epochs} epochs, {args.threads} threads, CPU. Test split vs itself (self excluded).",
        "",
        "| stack | train img/s | train s | R@1 | MAP@R | R-precision |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    lines += [f"| {row(name, r)} |" for name, r in rows]
    if len(rows) == 2:
        lines.append("")
        lines.append(f"embedrank / PyTorch throughput: {rows[1][1]['img_per_s'] / rows[0][1]['img_per_s']:.2f}x.")
    lines.append(footer.format(after=os.getloadavg()[0]))
    table = "\n".join(lines)
    print(table)
    if args.loss == "fastap" and len(rows) == 2 and update_section("bench-train", table):
        print("\n(README.md updated)")


if __name__ == "__main__":
    main()
