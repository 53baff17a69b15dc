"""make bench-train ARCH=NAME|all: training img/s of each backbone, PyTorch + PML vs embedrank, one run.

The same job on both sides, on this CPU, one backbone at a time:

- model: random weights; the backbone as its source builds it, then `nn.Linear(features, 128)` and
  `F.normalize` (embedrank's embedding head), weights and inputs channels-last (embedrank's
  `model.channels_last` default):
  `resnet18` / `resnet50`: torchvision's, `fc` replaced by Identity;
  `googlenet`: torchvision's, `aux_logits=False`, `transform_input=True` (embedrank's default),
  its dropout and `fc` replaced by Identity;
  `bn-inception`: pretrainedmodels' `bninception`, `last_linear` replaced by Identity, its
  `AvgPool2d(7)` by a global average pool (the same at 224 px; embedrank's), the Caffe input
  transform (BGR, 0–255, minus [104, 117, 128]) of ImageNet-normalised RGB inside the network as
  embedrank's `model.transform_input` does;
  `vit-s16` / `vit-b16` / `deit-s16`: timm's `vit_small_patch16_224` / `vit_base_patch16_224` /
  `deit_small_patch16_224` with `num_classes=0` (class token after the final LayerNorm) and
  `img_size` the benchmark's side;
- data: `embedrank train --dataset synthetic --train-split test`'s images (8 classes × 32 at the
  benchmark's side, regenerated here with the same seed and draws), so that an epoch is only
  256 / batch steps; batches of batch / m classes × m images (PML's `MPerClassSampler` here,
  embedrank's m-per-class sampler there);
- loss: PML's `FastAPLoss(num_bins=10)` vs embedrank's FastAP, 10 bins (its analytic gradient);
- optimiser: Adam lr 1e-4, no weight decay (PyTorch's `torch.optim.Adam`);
- threads: `--threads` on both sides (`torch.set_num_threads`, embedrank's `--threads`).

Timing: the first epoch is warm-up on both sides; img/s = images / seconds of the training steps
(batch gather, forward, loss, backward, optimiser step) over the epochs after it. embedrank's from
its metrics.jsonl (`train_seconds`; its evaluation after the last epoch is not counted), PyTorch's
from the same number of steps timed here. The load average before and after goes under the table.

    .venv/bin/python bench/bench_arch.py [--arch NAME|all] [--image-size 224] [--batch-size 32] [--m 4]
                                         [--epochs 2] [--threads 2] [--bin target/release/embedrank] [--readme]

Smoke test (nothing from it belongs in the README; bn-inception takes 224, 227, 256, 64 or 32 px):

    .venv/bin/python bench/bench_arch.py --arch all --image-size 64 --batch-size 128 --m 16
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
import torch
import torch.nn as nn
import torch.nn.functional as F

import provenance
from bench_gpu_train import child_env, synthetic_split
from readme import update_section

ROOT = Path(__file__).resolve().parents[1]
CLASSES, PER_CLASS, SEED = 8, 32, 1002  # embedrank's synthetic test split (crates/torch/src/dataset.rs)
DIM, BINS, LR = 128, 10, 1e-4
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TIMM = {"vit-s16": "vit_small_patch16_224", "vit-b16": "vit_base_patch16_224", "deit-s16": "deit_small_patch16_224"}
# embedrank's --arch → the PyTorch model it is measured against (the table's second column).
SOURCES = {
    "resnet18": "torchvision `resnet18`",
    "resnet50": "torchvision `resnet50`",
    "googlenet": "torchvision `googlenet`",
    "bn-inception": "pretrainedmodels `bninception`",
    **{arch: f"timm `{name}`" for arch, name in TIMM.items()},
}
ARCHES = list(SOURCES)


class CaffeInput(nn.Module):
    """ImageNet-normalised RGB → BN-Inception's converted-Caffe input: BGR, 0–255, minus [104, 117, 128]."""

    def __init__(self):
        super().__init__()
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("shift", (torch.tensor(IMAGENET_MEAN) * 255.0 - torch.tensor([128.0, 117.0, 104.0]))
                             .view(1, 3, 1, 1))

    def forward(self, x):
        return (x * self.std + self.shift).flip(1)


def backbone(arch: str, side: int):
    """(network, feature width) of `arch` as its PyTorch source builds it, random weights, no classifier."""
    if arch in ("resnet18", "resnet50", "googlenet"):
        import torchvision

        if arch == "googlenet":
            net = torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=True)
            net.dropout = nn.Identity()
        else:
            net = getattr(torchvision.models, arch)(weights=None)
        features = net.fc.in_features
        net.fc = nn.Identity()
        return net, features
    if arch == "bn-inception":
        from pretrainedmodels.models.bninception import bninception

        net = bninception(num_classes=1000, pretrained=None)
        features = net.last_linear.in_features
        net.last_linear = nn.Identity()
        net.global_pool = nn.AdaptiveAvgPool2d(1)
        return nn.Sequential(CaffeInput(), net), features
    import timm

    net = timm.create_model(TIMM[arch], pretrained=False, num_classes=0, img_size=side)
    return net, net.num_features


class EmbeddingNet(nn.Module):
    def __init__(self, arch: str, side: int, dim: int):
        super().__init__()
        self.backbone, features = backbone(arch, side)
        self.head = nn.Linear(features, dim)

    def forward(self, x):
        return F.normalize(self.head(self.backbone(x)), p=2, dim=1)


def run_torch(args, arch: str):
    """PyTorch + PML: img/s over the epochs after the first, the last epoch's mean loss."""
    from pytorch_metric_learning.losses import FastAPLoss
    from pytorch_metric_learning.samplers import MPerClassSampler

    images, labels = synthetic_split(args.image_size, CLASSES, PER_CLASS, SEED)
    torch.manual_seed(42)
    np.random.seed(42)  # PML's samplers draw from numpy's global generator
    net = EmbeddingNet(arch, args.image_size, DIM).to(memory_format=torch.channels_last)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = FastAPLoss(num_bins=BINS)
    sampler = MPerClassSampler(labels, m=args.m, batch_size=args.batch_size, length_before_new_iter=len(labels))
    seconds, images_done, epoch_loss = 0.0, 0, float("nan")
    for epoch in range(1, args.epochs + 1):
        idx = torch.tensor(list(iter(sampler)), dtype=torch.int64)
        batches = [idx[b * args.batch_size:(b + 1) * args.batch_size] for b in range(len(idx) // args.batch_size)]
        losses = []
        t0 = time.perf_counter()
        for batch in batches:
            x = images.index_select(0, batch).contiguous(memory_format=torch.channels_last)
            loss = loss_fn(net(x), labels.index_select(0, batch))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        dt = time.perf_counter() - t0
        epoch_loss = float(np.mean(losses))
        if epoch > 1:
            seconds += dt
            images_done += len(batches) * args.batch_size
        print(f"  torch epoch {epoch}/{args.epochs}: loss {epoch_loss:.4f}, {len(batches) * args.batch_size / dt:.1f} "
              f"img/s{' (warm-up)' if epoch == 1 else ''}", file=sys.stderr, flush=True)
    return {"img_per_s": images_done / seconds, "last_loss": epoch_loss,
            "parameters": sum(p.numel() for p in net.parameters())}


def run_embedrank(args, arch: str):
    """embedrank train: img/s over the epochs after the first (metrics.jsonl), the last epoch's mean loss."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [args.bin, "train", "--dataset", "synthetic", "--train-split", "test",
               "--image-size", str(args.image_size), "--resize", str(max(256, args.image_size)), "--arch", arch,
               "--dim", str(DIM), "--loss", "fastap", "--bins", str(BINS), "--sampler", "m-per-class",
               "--m", str(args.m), "--batch-size", str(args.batch_size), "--optim", "adam", "--lr", str(LR),
               "--weight-decay", "0", "--schedule", "constant", "--epochs", str(args.epochs), "--eval-every", "0",
               "--device", "cpu", "--threads", str(args.threads), "--out", str(out)]
        proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"embedrank train failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        for line in proc.stderr.splitlines():
            if line.startswith(("epoch", "training on")):
                print(f"  {line}", file=sys.stderr, flush=True)
        counted = re.search(r"; (\d+) parameters;", proc.stderr)
        history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    timed = [r for r in history if r["epoch"] >= 2]
    return {"img_per_s": sum(r["images"] for r in timed) / sum(r["train_seconds"] for r in timed),
            "last_loss": history[-1]["loss"], "parameters": int(counted[1]) if counted else None}


def table(args, rows, where, load_before, load_after):
    """The README table (bench-arch): one row per backbone."""
    import pytorch_metric_learning

    steps = (args.epochs - 1) * (CLASSES * PER_CLASS // args.batch_size)
    lines = [
        f"Training steps on synthetic {args.image_size}×{args.image_size} images (batches of "
        f"{args.batch_size // args.m} classes × {args.m}), random weights, backbone → {DIM}-d, FastAP {BINS} bins, "
        f"Adam {LR:g}, channels-last, {args.threads} threads, CPU; img/s over {steps} steps after a warm-up "
        f"epoch of as many. PyTorch + PML {pytorch_metric_learning.__version__} vs embedrank (tch 0.24, libtorch "
        f"2.11). {provenance.sentence(where)}",
        "",
        "| arch | PyTorch model | parameters | batch | PyTorch + PML img/s | embedrank img/s | embedrank / PyTorch |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arch, theirs, ours in rows:
        params = f"{theirs['parameters']:,}"
        if ours["parameters"] != theirs["parameters"]:  # e.g. timm's position embedding made for a smaller side
            params += f" (embedrank {ours['parameters']:,})" if ours["parameters"] else " (embedrank ?)"
        lines.append(f"| `{arch}` | {SOURCES[arch]} | {params} | {args.batch_size} | {theirs['img_per_s']:.1f} "
                     f"| {ours['img_per_s']:.1f} | {ours['img_per_s'] / theirs['img_per_s']:.2f}× |")
    lines.append("")
    lines.append("Mean loss of the last epoch, PyTorch / embedrank: " + "; ".join(
        f"{arch} {theirs['last_loss']:.4f} / {ours['last_loss']:.4f}" for arch, theirs, ours in rows) + ".")
    lines.append(f"Load average before / after: {load_before:.2f} / {load_after:.2f} on {os.cpu_count()} cores.")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="all", choices=ARCHES + ["all"])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--m", type=int, default=4, help="images per class in a batch")
    ap.add_argument("--epochs", type=int, default=2, help="the first is warm-up, the rest are timed")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads on both sides")
    ap.add_argument("--bin", default=str(ROOT / "target/release/embedrank"), help="the embedrank binary")
    ap.add_argument("--readme", action="store_true", help="write the table into README.md (bench-arch)")
    args = ap.parse_args()
    if args.epochs < 2:
        sys.exit("--epochs must be at least 2 (the first is warm-up)")
    if args.batch_size % args.m or args.batch_size // args.m > CLASSES or args.m > PER_CLASS:
        sys.exit(f"--batch-size {args.batch_size} / --m {args.m}: need batch = classes × m with at most "
                 f"{CLASSES} classes and m ≤ {PER_CLASS}")
    if args.readme and (args.arch != "all" or args.image_size != 224):
        sys.exit("--readme writes the benchmark's table: every backbone (--arch all) at 224 px")
    if not Path(args.bin).is_file():
        sys.exit(f"{args.bin}: no embedrank binary (make release)")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    where = provenance.facts(torch.device("cpu"))
    rows = []
    for arch in ARCHES if args.arch == "all" else [args.arch]:
        print(f"{arch}, {args.image_size}², batch {args.batch_size}", file=sys.stderr)
        t0 = time.perf_counter()
        print(" embedrank …", file=sys.stderr, flush=True)
        ours = run_embedrank(args, arch)
        print(" PyTorch + PML …", file=sys.stderr, flush=True)
        theirs = run_torch(args, arch)
        print(f" {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        rows.append((arch, theirs, ours))
    text = table(args, rows, where, load_before, os.getloadavg()[0])
    print()
    print(text)
    if args.readme:
        if update_section("bench-arch", text):
            print("\n(README.md updated)")
        else:
            print("\n(README.md has no bench-arch markers; table not written there)")


if __name__ == "__main__":
    main()
