"""make bench-gpu: ResNet training steps in PyTorch + PML and in `embedrank train`, side by side, one run.

The same job on both sides, on the same device:

- model: torchvision's resnet18 / resnet50 (weights=None, `fc` replaced by Identity), then
  `nn.Linear(features, 512)` and `F.normalize` (the head's output in float32, as embedrank's);
  weights and inputs channels-last; `torch.backends.cudnn.benchmark = True` (embedrank's default);
- data: `embedrank train --dataset synthetic`'s training split, regenerated here with the same
  seed and draws on libtorch's CPU generator (`manual_seed(1001)`, then 16 class patterns and
  16 × 64 noise images of 3×S×S from `randn`, image = pattern + 0.5·noise), held on the device;
  batches of `batch/m` classes × `m` images (PML's `MPerClassSampler` here, embedrank's
  m-per-class sampler there), ⌊1024 / batch⌋ steps per epoch; the index batch goes to the device
  and the images are gathered there on both sides;
- AMP: none (float32) or bf16 (`torch.autocast(device_type, dtype=torch.bfloat16)` around the
  forward only; `--amp bf16` in embedrank); float32 weights and optimiser either way;
- loss: PML's `FastAPLoss(num_bins=10)` vs embedrank's FastAP, 10 bins (its exact analytic
  gradient, computed on the CPU: the embeddings go to the host and the gradient comes back);
- optimiser: Adam lr 1e-5, the head's ×10 (PyTorch's default `torch.optim.Adam`, foreach on CUDA).

Timing. embedrank: images / seconds summed over the epochs after the first, from the run's
metrics.jsonl (`train_seconds`: sampling, forward, loss, backward and optimiser steps; evaluation
and checkpoints excluded). Its epoch clock is read on the host after the last step has been
queued; each step waits for its loss on the host, but unless the trainer synchronises the device
before reading the clock, the epoch's last backward and update are outside it. PyTorch: the same
first epoch as warm-up, then the same number of steps, `torch.cuda.synchronize()` before every
clock read, the per-step losses read back once per epoch (no per-step synchronisation).
Loss time per step: embedrank's `loss_seconds / steps` over the same epochs (device-to-host copy,
loss and gradient on the CPU, copy back: the time the device waits for it); PML's `FastAPLoss`
forward + backward on the device, timed separately afterwards with `synchronize()` around each call,
on the embeddings of as many batches of the same kind.

    python bench/bench_gpu_train.py --bin target/release/embedrank [--device cuda] [--arch resnet50] \\
        [--image-size 224] [--batch-size 256] [--m 32] [--amp none|bf16|both] [--epochs 4] [--readme]

CPU smoke test (nothing from it belongs in the README):

    python bench/bench_gpu_train.py --bin target/release/embedrank --device cpu --arch resnet18 \\
        --image-size 32 --batch-size 64 --m 8 --epochs 3

The embedrank binary loads libtorch from `LD_LIBRARY_PATH`, then its rpath: this script puts the
lib/ folder of the torch it imports first on the child's `LD_LIBRARY_PATH` when that torch is
2.11.0, so both sides run the same libtorch (and a binary copied from another machine finds one).
"""

import argparse
import gc
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
CLASSES, PER_CLASS, SEED = 16, 64, 1001  # embedrank's synthetic training split (crates/torch/src/dataset.rs)
DIM, BINS, LR, HEAD_MULT = 512, 10, 1e-5, 10.0
TORCH_ABI = "2.11.0"  # the PyTorch release tch 0.24 is built against


def synthetic_train(side: int):
    """embedrank's synthetic training images and labels (CPU tensors, NCHW float32)."""
    torch.manual_seed(SEED)
    patterns = torch.randn(CLASSES, 1, 3, side, side)
    noise = torch.randn(CLASSES, PER_CLASS, 3, side, side)
    images = (patterns + noise * 0.5).view(CLASSES * PER_CLASS, 3, side, side)
    labels = torch.arange(CLASSES * PER_CLASS) // PER_CLASS
    return images, labels


class EmbeddingNet(nn.Module):
    def __init__(self, arch: str, dim: int):
        super().__init__()
        import torchvision

        self.backbone = getattr(torchvision.models, arch)(weights=None)
        features = self.backbone.fc.in_features
        self.backbone.fc = nn.Identity()
        self.head = nn.Linear(features, dim)

    def forward(self, x):
        # float32 out of the head even under autocast, as embedrank's head (the loss sees f32).
        return F.normalize(self.head(self.backbone(x)).float(), p=2, dim=1)


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_torch(args, device: torch.device, amp: str):
    """PyTorch + PML: img/s over epochs 2.., PML FastAPLoss ms/step, last epoch's mean loss."""
    from pytorch_metric_learning.losses import FastAPLoss
    from pytorch_metric_learning.samplers import MPerClassSampler

    images, labels = synthetic_train(args.image_size)
    x_all, y_all = images.to(device), labels.to(device)
    del images
    torch.manual_seed(42)
    np.random.seed(42)  # PML's samplers draw from numpy's global generator
    net = EmbeddingNet(args.arch, DIM).to(device, memory_format=torch.channels_last)
    net.train()
    backbone = [p for n, p in net.named_parameters() if not n.startswith("head.")]
    opt = torch.optim.Adam([{"params": backbone, "lr": LR},
                            {"params": list(net.head.parameters()), "lr": LR * HEAD_MULT}], lr=LR)
    loss_fn = FastAPLoss(num_bins=BINS)
    sampler = MPerClassSampler(labels, m=args.m, batch_size=args.batch_size, length_before_new_iter=len(labels))
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp == "bf16" else None

    def forward(x):
        x = x.contiguous(memory_format=torch.channels_last)
        if autocast is None:
            return net(x)
        with autocast():
            return net(x)

    def epoch_batches():
        idx = torch.tensor(list(iter(sampler)), dtype=torch.int64)
        return [idx[b * args.batch_size:(b + 1) * args.batch_size] for b in range(len(idx) // args.batch_size)]

    seconds, images_done, steps, epoch_loss = 0.0, 0, 0, float("nan")
    for epoch in range(1, args.epochs + 1):
        batches = epoch_batches()
        losses = []
        sync(device)
        t0 = time.perf_counter()
        for batch in batches:
            idx = batch.to(device)
            x, y = x_all.index_select(0, idx), y_all.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(forward(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        sync(device)
        dt = time.perf_counter() - t0
        epoch_loss = torch.stack(losses).float().mean().item()
        if epoch > 1:
            seconds += dt
            images_done += len(batches) * args.batch_size
            steps += len(batches)
        print(f"  torch epoch {epoch}/{args.epochs}: loss {epoch_loss:.4f}, "
              f"{len(batches) * args.batch_size / dt:.1f} img/s{' (warm-up)' if epoch == 1 else ''}",
              file=sys.stderr, flush=True)

    # PML's loss alone: forward + backward on a batch's embeddings, synchronised around each call.
    loss_seconds = 0.0
    batches = [b for _ in range(args.epochs) for b in epoch_batches()][: steps + 1]
    for i, batch in enumerate(batches):
        idx = batch.to(device)
        with torch.no_grad():
            emb = forward(x_all.index_select(0, idx))
        emb = emb.detach().requires_grad_(True)
        y = y_all.index_select(0, idx)
        sync(device)
        t0 = time.perf_counter()
        loss_fn(emb, y).backward()
        sync(device)
        if i > 0:  # the first call is a warm-up
            loss_seconds += time.perf_counter() - t0
    result = {
        "img_per_s": images_done / seconds,
        "steps": steps,
        "loss_ms": 1e3 * loss_seconds / max(1, len(batches) - 1),
        "last_loss": epoch_loss,
    }
    del net, opt, x_all, y_all, emb
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def child_env():
    """The environment for embedrank: the imported torch's lib/ first, if it is the right release."""
    env = dict(os.environ)
    if torch.__version__.split("+")[0] == TORCH_ABI:
        lib = str(Path(torch.__file__).parent / "lib")
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (lib, env.get("LD_LIBRARY_PATH", "")) if p)
    else:
        print(f"note: this python's torch is {torch.__version__}, not {TORCH_ABI}: embedrank keeps its own "
              f"rpath / LD_LIBRARY_PATH", file=sys.stderr)
    return env


def run_embedrank(args, amp: str, threads: int):
    """embedrank train: img/s and loss ms/step over epochs 2.., last epoch's mean loss."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [args.bin, "train", "--dataset", "synthetic", "--image-size", str(args.image_size),
               "--resize", str(max(256, args.image_size)), "--arch", args.arch, "--dim", str(DIM),
               "--loss", "fastap", "--bins", str(BINS), "--sampler", "m-per-class", "--m", str(args.m),
               "--batch-size", str(args.batch_size), "--optim", "adam", "--lr", str(LR),
               "--head-lr-mult", str(HEAD_MULT), "--weight-decay", "0", "--schedule", "constant",
               "--epochs", str(args.epochs), "--eval-every", "0", "--device", args.device, "--amp", amp,
               "--threads", str(threads), "--out", str(out)]
        proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"embedrank train failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        for line in proc.stderr.splitlines():
            if line.startswith(("epoch", "training on")):
                print(f"  {line}", file=sys.stderr, flush=True)
        history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    timed = [r for r in history if r["epoch"] >= 2]
    steps = sum(len(r["batch_losses"]) for r in timed)
    return {
        "img_per_s": sum(r["images"] for r in timed) / sum(r["train_seconds"] for r in timed),
        "steps": steps,
        "loss_ms": 1e3 * sum(r["loss_seconds"] for r in timed) / max(1, steps),
        "last_loss": history[-1]["loss"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(ROOT / "target/release/embedrank"), help="the embedrank binary")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet50"])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--m", type=int, default=32, help="images per class in a batch")
    ap.add_argument("--amp", default="none", choices=["none", "bf16", "both"])
    ap.add_argument("--epochs", type=int, default=4, help="the first is warm-up, the rest are timed")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads on both sides (0 = all cores)")
    ap.add_argument("--readme", action="store_true", help="write the table into README.md (bench-gpu-train)")
    args = ap.parse_args()
    if args.epochs < 2:
        sys.exit("--epochs must be at least 2 (the first is warm-up)")
    if args.batch_size % args.m or args.batch_size // args.m > CLASSES or args.m > PER_CLASS:
        sys.exit(f"--batch-size {args.batch_size} / --m {args.m}: need batch = classes × m with at most "
                 f"{CLASSES} classes and m ≤ {PER_CLASS}")
    if args.batch_size > CLASSES * PER_CLASS:
        sys.exit(f"--batch-size must be at most {CLASSES * PER_CLASS} (the synthetic training split)")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device visible to PyTorch")
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({threads} threads)"
    amps = ["none", "bf16"] if args.amp == "both" else [args.amp]
    import pytorch_metric_learning

    rows = []
    for amp in amps:
        print(f"{name}, {args.arch}, {args.image_size}², batch {args.batch_size}, AMP {amp}", file=sys.stderr)
        print(" embedrank …", file=sys.stderr, flush=True)
        ours = run_embedrank(args, amp, threads)
        print(" PyTorch + PML …", file=sys.stderr, flush=True)
        theirs = run_torch(args, device, amp)
        rows.append((amp, theirs, ours))

    steps = rows[0][2]["steps"]
    lines = [
        f"Training steps on synthetic {args.image_size}×{args.image_size} images held on the device "
        f"(batches of {args.batch_size // args.m} classes × {args.m}), {args.arch} → {DIM}-d, FastAP {BINS} bins, "
        f"Adam {LR:g} (head ×{HEAD_MULT:g}), channels-last, cudnn benchmark on; img/s over {steps} steps after "
        f"a warm-up epoch. torch {torch.__version__} + PML {pytorch_metric_learning.__version__} vs embedrank "
        f"(tch 0.24, libtorch {TORCH_ABI}). Loss ms/step: PML `FastAPLoss` forward + backward on the device; "
        f"embedrank's FastAP on the CPU, copies to and from the device included.",
        "",
        "| device | arch | image size | batch | AMP | PyTorch + PML img/s | embedrank img/s | embedrank / PyTorch "
        "| PML loss ms/step | embedrank loss ms/step |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for amp, theirs, ours in rows:
        lines.append(f"| {name} | {args.arch} | {args.image_size} | {args.batch_size} | {amp} "
                     f"| {theirs['img_per_s']:.1f} | {ours['img_per_s']:.1f} "
                     f"| {ours['img_per_s'] / theirs['img_per_s']:.2f}× "
                     f"| {theirs['loss_ms']:.2f} | {ours['loss_ms']:.2f} |")
    lines.append("")
    lines.append("Mean loss of the last epoch, PyTorch / embedrank: " + "; ".join(
        f"{amp} {theirs['last_loss']:.4f} / {ours['last_loss']:.4f}" for amp, theirs, ours in rows) + ".")
    table = "\n".join(lines)
    print()
    print(table)
    if args.readme:
        if update_section("bench-gpu-train", table):
            print("\n(README.md updated)")
        else:
            print("\n(README.md has no bench-gpu-train markers; table not written there)")


if __name__ == "__main__":
    main()
