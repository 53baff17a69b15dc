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
        [--image-size 224] [--batch-size 256] [--m 32] [--amp none|bf16|both] [--epochs 4] [--readme] \\
        [--out TABLE.md] [--json RESULTS.json] [--phases]

Phases (`--phases`, a profile instead of the table): the same runs with the device synchronised
after every phase of a step, and the milliseconds per step in each, over the timed epochs: data
gather (the batch's images selected on the device), forward, loss (PML: `FastAPLoss` forward on
the device; embedrank: the round trip, embeddings to the host, loss and gradient on the CPU,
gradient back), backward (PML: its loss's backward too), optimiser (zero_grad and Adam's step).
embedrank times them when `EMBEDRANK_PHASE_TIMES=1` is set (`phase_seconds` in metrics.jsonl).
The synchronisations cost throughput: img/s from a profile is not the benchmark's.

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

import provenance
from readme import update_section

ROOT = Path(__file__).resolve().parents[1]
CLASSES, PER_CLASS, SEED = 16, 64, 1001  # embedrank's synthetic training split (crates/torch/src/dataset.rs)
DIM, BINS, LR, HEAD_MULT = 512, 10, 1e-5, 10.0
TORCH_ABI = "2.11.0"  # the PyTorch release tch 0.24 is built against


def synthetic_split(side: int, classes: int, per_class: int, seed: int):
    """A split of embedrank's synthetic images (`classes` × `per_class`, drawn after `manual_seed(seed)`
    as crates/torch/src/dataset.rs does) and its labels 0.. (CPU tensors, NCHW float32)."""
    torch.manual_seed(seed)
    patterns = torch.randn(classes, 1, 3, side, side)
    noise = torch.randn(classes, per_class, 3, side, side)
    images = (patterns + noise * 0.5).view(classes * per_class, 3, side, side)
    labels = torch.arange(classes * per_class) // per_class
    return images, labels


def synthetic_train(side: int):
    """embedrank's synthetic training images and labels (CPU tensors, NCHW float32)."""
    return synthetic_split(side, CLASSES, PER_CLASS, SEED)


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


PHASES = ("gather", "forward", "loss", "backward", "optimiser")


class PhaseClock:
    """Seconds per phase of a step, the device synchronised at each mark (off: marks cost nothing)."""

    def __init__(self, device: torch.device):
        self.device, self.on, self.t = device, False, 0.0
        self.seconds = dict.fromkeys(PHASES, 0.0)

    def start(self, on: bool):
        self.on = on
        if on:
            sync(self.device)
            self.t = time.perf_counter()

    def mark(self, phase: str):
        if self.on:
            sync(self.device)
            now = time.perf_counter()
            self.seconds[phase] += now - self.t
            self.t = now


def run_torch(args, device: torch.device, amp: str, phases: bool = False):
    """PyTorch + PML: img/s over epochs 2.., PML FastAPLoss ms/step, last epoch's mean loss
    (and, with `phases`, seconds per phase over those epochs)."""
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
    clock = PhaseClock(device)
    for epoch in range(1, args.epochs + 1):
        batches = epoch_batches()
        losses = []
        sync(device)
        t0 = time.perf_counter()
        for batch in batches:
            clock.start(phases and epoch > 1)
            idx = batch.to(device)
            x, y = x_all.index_select(0, idx), y_all.index_select(0, idx)
            clock.mark("gather")
            emb = forward(x)
            clock.mark("forward")
            loss = loss_fn(emb, y)
            clock.mark("loss")
            loss.backward()
            clock.mark("backward")
            opt.step()
            opt.zero_grad(set_to_none=True)
            clock.mark("optimiser")
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

    # PML's loss alone: forward + backward on a batch's embeddings, synchronised around each call
    # (not in a profile, which has the loss's forward as a phase).
    loss_seconds, emb = 0.0, None
    batches = [] if phases else [b for _ in range(args.epochs) for b in epoch_batches()][: steps + 1]
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
        "loss_ms": 1e3 * loss_seconds / max(1, len(batches) - 1) if batches else None,
        "last_loss": epoch_loss,
    }
    if phases:
        result["phase_seconds"] = clock.seconds
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


def run_embedrank(args, amp: str, threads: int, phases: bool = False):
    """embedrank train: img/s and loss ms/step over epochs 2.., last epoch's mean loss (and, with
    `phases`, its seconds per phase over those epochs, EMBEDRANK_PHASE_TIMES=1)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [args.bin, "train", "--dataset", "synthetic", "--image-size", str(args.image_size),
               "--resize", str(max(256, args.image_size)), "--arch", args.arch, "--dim", str(DIM),
               "--loss", "fastap", "--bins", str(BINS), "--sampler", "m-per-class", "--m", str(args.m),
               "--batch-size", str(args.batch_size), "--optim", "adam", "--lr", str(LR),
               "--head-lr-mult", str(HEAD_MULT), "--weight-decay", "0", "--schedule", "constant",
               "--epochs", str(args.epochs), "--eval-every", "0", "--device", args.device, "--amp", amp,
               "--threads", str(threads), "--out", str(out)]
        env = child_env()
        if phases:
            env["EMBEDRANK_PHASE_TIMES"] = "1"
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"embedrank train failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        for line in proc.stderr.splitlines():
            if line.startswith(("epoch", "training on")):
                print(f"  {line}", file=sys.stderr, flush=True)
        history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    timed = [r for r in history if r["epoch"] >= 2]
    steps = sum(len(r["batch_losses"]) for r in timed)
    result = {
        "img_per_s": sum(r["images"] for r in timed) / sum(r["train_seconds"] for r in timed),
        "steps": steps,
        "loss_ms": 1e3 * sum(r["loss_seconds"] for r in timed) / max(1, steps),
        "last_loss": history[-1]["loss"],
    }
    if phases:
        if any("phase_seconds" not in r for r in timed):
            sys.exit("embedrank wrote no phase_seconds to metrics.jsonl (EMBEDRANK_PHASE_TIMES=1 unsupported?)")
        result["phase_seconds"] = {p: sum(r["phase_seconds"][p] for r in timed) for p in PHASES}
    return result


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
    ap.add_argument("--out", type=Path, help="write the table to this file too")
    ap.add_argument("--json", type=Path, help="write the measurements to this JSON file")
    ap.add_argument("--phases", action="store_true",
                    help="profile: ms per step in each phase, device synchronised between them (no README table)")
    args = ap.parse_args()
    if args.phases and args.readme:
        sys.exit("--phases is a profile, not the benchmark: it cannot write the README table")
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

    where = provenance.facts(device)
    rows = []
    for amp in amps:
        print(f"{name}, {args.arch}, {args.image_size}², batch {args.batch_size}, AMP {amp}"
              f"{' (phase profile)' if args.phases else ''}", file=sys.stderr)
        print(" embedrank …", file=sys.stderr, flush=True)
        ours = run_embedrank(args, amp, threads, args.phases)
        print(" PyTorch + PML …", file=sys.stderr, flush=True)
        theirs = run_torch(args, device, amp, args.phases)
        rows.append((amp, theirs, ours))

    steps = rows[0][2]["steps"]
    record = {"facts": where, "pml": pytorch_metric_learning.__version__, "arch": args.arch,
              "image_size": args.image_size, "batch_size": args.batch_size, "m": args.m, "epochs": args.epochs,
              "phases": args.phases,
              "rows": [{"amp": amp, "torch": theirs, "embedrank": ours, "ratio": ours["img_per_s"] / theirs["img_per_s"]}
                       for amp, theirs, ours in rows]}
    table = phase_table(args, rows, where) if args.phases else bench_table(args, rows, where, name, steps,
                                                                           pytorch_metric_learning.__version__)
    print()
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    if args.readme:
        if update_section("bench-gpu-train", table):
            print("\n(README.md updated)")
        else:
            print("\n(README.md has no bench-gpu-train markers; table not written there)")


def bench_table(args, rows, where, name, steps, pml_version):
    """The README table (bench-gpu-train)."""
    lines = [
        f"Training steps on synthetic {args.image_size}×{args.image_size} images held on the device "
        f"(batches of {args.batch_size // args.m} classes × {args.m}), {args.arch} → {DIM}-d, FastAP {BINS} bins, "
        f"Adam {LR:g} (head ×{HEAD_MULT:g}), channels-last, cudnn benchmark on; img/s over {steps} steps after "
        f"a warm-up epoch. torch {torch.__version__} + PML {pml_version} vs embedrank "
        f"(tch 0.24, libtorch {TORCH_ABI}). Loss ms/step: PML `FastAPLoss` forward + backward on the device; "
        f"embedrank's FastAP on the CPU, copies to and from the device included. {provenance.sentence(where)}",
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
    return "\n".join(lines)


def phase_table(args, rows, where):
    """The profile: ms per step in each phase, both sides, every AMP mode."""
    head = " | ".join(f"{side} {amp}" for amp, _, _ in rows for side in ("PyTorch + PML", "embedrank"))
    lines = [
        f"Phase profile: ms per step over {rows[0][2]['steps']} steps after a warm-up epoch, the device "
        f"synchronised after each phase ({args.arch}, {args.image_size}², batch {args.batch_size}). "
        f"{provenance.sentence(where)}",
        "",
        f"| phase | {head} |",
        "| --- |" + " ---: |" * (2 * len(rows)),
    ]
    for phase in (*PHASES, "total"):
        cells = []
        for _, theirs, ours in rows:
            for side in (theirs, ours):
                secs = side["phase_seconds"]
                value = sum(secs.values()) if phase == "total" else secs[phase]
                cells.append(f"{1e3 * value / max(1, side['steps']):.2f}")
        lines.append(f"| {phase} | {' | '.join(cells)} |")
    lines.append("| img/s (synchronised) | " + " | ".join(
        f"{side['img_per_s']:.1f}" for _, theirs, ours in rows for side in (theirs, ours)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
