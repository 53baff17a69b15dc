"""Writes gpu-check's summary.md: the steps, the machine, the targets met or missed, the README blocks.

Run by scripts/gpu-check.sh at its end (standard library only: it runs on the GPU machine's Python).
Reads the check's work folder (steps.tsv, env.json, bench-*.json, profile-train.json, runs/*,
eval.json) and the tables the bench scripts wrote into the output folder.

    python3 scripts/gpu-summary.py --work WORK --out OUT --device cuda --seconds 412 --budget 500
"""

import argparse
import csv
import json
import math
from pathlib import Path

SECTIONS = ("bench-gpu-train", "bench-gpu-knn")


def load(path: Path):
    """A JSON file's content, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def machine(env: dict) -> list:
    """The machine and software, as bullet lines."""
    if not env:
        return ["- (no env.json: the environment step did not finish)"]
    gpus = env.get("gpus") or ["none (no nvidia-smi)"]
    lines = [
        f"- date: {env.get('date')}; host {env.get('host')}, {env.get('cpu_cores')} CPU cores",
        f"- GPU (nvidia-smi name, driver, memory): {'; '.join(gpus)}",
        f"- Python {env.get('python')}, torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}",
    ]
    b = env.get("bundle")
    if isinstance(b, dict):
        lines.append(f"- bundle: commit {b.get('commit')}, {b.get('profile')} build of {b.get('created')}, "
                     f"libtorch ABI {b.get('torch_abi')}")
    return lines


def targets(train: dict, knn: dict) -> list:
    """The issue's targets as table rows: (target, measured, verdict)."""
    rows = []
    for r in (train or {}).get("rows", []):
        rows.append((f"training img/s, AMP {r['amp']}: embedrank ≥ 1.0× PyTorch + PML",
                     f"{r['embedrank']['img_per_s']:.1f} vs {r['torch']['img_per_s']:.1f} img/s = {r['ratio']:.2f}×",
                     "met" if r["ratio"] >= 1.0 else "**missed**"))
    if not rows:
        rows.append(("training img/s ≥ 1.0× PyTorch + PML (none, bf16)", "no result", "**not measured**"))
    by = {r["key"]: r for r in (knn or {}).get("rows", [])}
    ours, torch = by.get("embedrank"), by.get("torch")
    if ours and torch:
        size = f"N = {knn['n']:,}, D = {knn['dim']}, k = {knn['k']}"
        speed = torch["knn_s"] / ours["knn_s"]
        rows.append((f"exact kNN ({size}): embedrank ≥ 1.0× PyTorch matmul + topk",
                     f"{ours['knn_s']:.2f} s vs {torch['knn_s']:.2f} s = {speed:.2f}×",
                     "met" if speed >= 1.0 else "**missed**"))
        rows.append(("identical top-1 (fresh queries vs PyTorch's top-1)", f"{100 * ours['agreement']:.3f}% agree",
                     "met" if ours["agreement"] == 1.0 else "**missed**"))
        mib = lambda v: "not measured" if v is None else f"{v:.0f} MiB"  # noqa: E731
        rows.append(("peak device memory stated", f"embedrank {mib(ours['peak_mib'])} (nvidia-smi, context "
                     f"included), PyTorch {mib(torch['peak_mib'])} (allocator peak)",
                     "stated" if ours["peak_mib"] is not None and torch["peak_mib"] is not None else "**missing**"))
    else:
        rows.append(("exact kNN ≥ 1.0× PyTorch, identical top-1, peak memory", "no result", "**not measured**"))
    return rows


def profile(prof: dict) -> list:
    """The phase profile (ms per step), if one was run."""
    if not prof:
        return []
    phases = ("gather", "forward", "loss", "backward", "optimiser")
    cols = [(r["amp"], side, r[key]) for r in prof["rows"] for side, key in
            (("PyTorch + PML", "torch"), ("embedrank", "embedrank"))]
    lines = ["", "## Phase profile (ms per step, device synchronised after each phase)", "",
             "| phase | " + " | ".join(f"{side} {amp}" for amp, side, _ in cols) + " |",
             "| --- |" + " ---: |" * len(cols)]
    for p in (*phases, "total"):
        cells = []
        for _, _, r in cols:
            secs = r["phase_seconds"]
            cells.append(f"{1e3 * (sum(secs.values()) if p == 'total' else secs[p]) / max(1, r['steps']):.2f}")
        lines.append(f"| {p} | {' | '.join(cells)} |")
    return lines


def short_runs(work: Path) -> list:
    """One line per short training run, and the eval --checkpoint result."""
    lines = []
    for run in sorted((work / "runs").glob("*"), key=lambda r: (r.name != "none", r.name)):
        res = load(run / "results.json")
        if not res:
            lines.append(f"- train --amp {run.name}: no results.json")
            continue
        hist = res.get("history") or [{}]
        r1 = (res.get("retrieval") or {}).get("precision_at_1")
        losses = hist[-1].get("batch_losses", [])
        finite = all(math.isfinite(v) for v in losses)
        lines.append(f"- train --amp {run.name}: {res.get('epochs')} epoch(s), loss {hist[-1].get('loss', float('nan')):.4f} "
                     f"({len(losses)} steps, {'all finite' if finite else 'NON-FINITE'}), "
                     f"{res.get('img_per_s', 0):.1f} img/s, test Recall@1 {r1 if r1 is None else f'{r1:.4f}'}")
    ev = load(work / "eval.json")
    if ev:
        for name, p in ev.get("protocols", {}).items():
            rec = p.get("recall_at_k") or {}
            lines.append(f"- eval --checkpoint (train --amp none), protocol {name}: " +
                         ", ".join(f"R@{k} {v:.4f}" for k, v in sorted(rec.items(), key=lambda kv: int(kv[0]))))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seconds", type=int, default=0, help="the check's wall time so far")
    ap.add_argument("--budget", type=int, default=0, help="the check's time budget")
    args = ap.parse_args()
    work, out = args.work, args.out
    with open(work / "steps.tsv", newline="") as f:
        steps = list(csv.DictReader(f, delimiter="\t"))
    env = load(work / "env.json") or {}
    rehearsal = args.device == "cpu"
    gpu = (env.get("gpus") or ["no GPU"])[0].split(",")[0]
    bad = [s for s in steps if s["status"] != "passed"]

    lines = [f"# gpu-check {'(CPU rehearsal) ' if rehearsal else ''}on {gpu if not rehearsal else 'the CPU'}, "
             f"{env.get('date', '?')}", ""]
    if rehearsal:
        lines += ["CPU rehearsal: the same steps at tiny sizes on `--device cpu`. Nothing here belongs in the "
                  "README.", ""]
    lines += machine(env)
    lines += ["", f"## Steps: {len(steps) - len(bad)} of {len(steps)} passed "
              f"({args.seconds} s of a {args.budget} s budget)", "",
              "| step | status | seconds | note |", "| --- | --- | ---: | --- |"]
    lines += [f"| {s['step']} | {s['status']} | {s['seconds']} | {s['note'].replace('|', '/')} |" for s in steps]
    if bad:
        names = ",".join(s["step"] for s in bad if s["step"] not in ("bundle", "python-env"))
        if names:
            lines += ["", f"Rerun what did not pass (machine still warm): `bash scripts/gpu-check.sh --steps {names} "
                      "--budget N` (the environment steps always run)."]
    lines += ["", "## Targets", "", "| target | measured | verdict |", "| --- | --- | --- |"]
    lines += [f"| {t} | {m} | {v} |" for t, m, v in targets(load(work / "bench-train.json"),
                                                          load(work / "bench-knn.json"))]
    lines += profile(load(work / "profile-train.json"))
    runs = short_runs(work)
    if runs:
        lines += ["", "## Short training runs and eval --checkpoint", "", *runs]
    lines += ["", "## README blocks", ""]
    if rehearsal:
        lines += ["(CPU rehearsal: these show the format only; do not paste them.)", ""]
    else:
        lines += ["Paste each between its markers, or from a checkout: "
                  "`python bench/readme.py bench-gpu-train bench-gpu-train.md` (and bench-gpu-knn).", ""]
    for name in SECTIONS:
        table = out / f"{name}.md"
        body = table.read_text().rstrip() if table.is_file() else f"(no {name}.md: the step did not finish)"
        lines += [f"<!-- {name}:begin -->", body, f"<!-- {name}:end -->", ""]
    (out / "summary.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
