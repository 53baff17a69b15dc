"""scripts/gpu-check.sh --cpu-rehearsal: the GPU check (issue 11) run here, at tiny sizes on the CPU.

The GPU machine has no Rust toolchain and no internet, and its time is short, so the check must
work the first time it runs there. CI runs the same script on a bundle from scripts/gpu-prepare.sh
(the debug build `make test` already has) and checks what comes back: every step passed, the CUDA
tests said visibly that they skipped, the two tables hold consistent numbers, the phase profile
accounts for the epoch's time, and the summary holds the README blocks. A second run on a broken
bundle checks that failures are recorded, the budget is kept, and the summary is still written.
"""

import csv
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["bundle", "python-env", "test-knn", "test-cuda", "train-none", "eval-cuda", "train-bf16",
         "bench-train", "bench-knn", "profile-train"]


def steps(out: Path):
    with open(out / "steps.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def numbers(row: str):
    """The numeric cells of a markdown table row (× and % stripped; — skipped)."""
    cells = [c.strip().rstrip("×%") for c in row.strip().strip("|").split("|")]
    return [float(c) for c in cells if re.fullmatch(r"-?\d+(\.\d+)?", c)]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu-check")
    bundle, out = tmp / "bundle", tmp / "out"
    prep = subprocess.run(["bash", "scripts/gpu-prepare.sh", "--profile", "dev", "--no-wheels", "--dir", str(bundle)],
                          cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert prep.returncode == 0, prep.stderr[-3000:]
    run = subprocess.run(["bash", "scripts/gpu-check.sh", "--cpu-rehearsal", "--bundle", str(bundle),
                          "--out", str(out), "--budget", "1200"], cwd=ROOT, capture_output=True, text=True,
                         timeout=1500)
    return prep, run, out


def test_every_step_passed(rehearsal):
    _, run, out = rehearsal
    got = steps(out)
    assert [s["step"] for s in got] == STEPS
    assert all(s["status"] == "passed" for s in got), got
    assert run.returncode == 0, run.stdout[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["summary.md", "steps.tsv", "logs.txt", "bench-gpu-train.md", "bench-gpu-knn.md", "details.tar.gz"])


def test_cuda_tests_ran_and_said_they_skipped(rehearsal):
    logs = (rehearsal[2] / "logs.txt").read_text()
    for name, test in [("test-knn", "knn_device::tests::cuda_equals_the_cpu_search"),
                       ("test-cuda", "cuda_training_matches_the_cpu")]:
        part = logs.split(f"-{name}.log =====", 1)[1].split("=====", 1)[0]
        assert f"test {test} ... skipping: no CUDA device" in part, part
        assert "test result: ok. 1 passed" in part, part


def test_training_table_has_consistent_numbers(rehearsal):
    table = (rehearsal[2] / "bench-gpu-train.md").read_text()
    assert "Measured " in table and "torch 2.11.0" in table
    rows = [line for line in table.splitlines() if line.startswith("| CPU")]
    assert len(rows) == 1 and "| none |" in rows[0], table
    size, batch, theirs, ours, ratio, pml_ms, our_ms = numbers(rows[0])
    assert (size, batch) == (16, 256)
    assert theirs > 0 and ours > 0 and pml_ms > 0 and our_ms > 0
    assert ratio == pytest.approx(ours / theirs, abs=0.006)


def test_knn_table_agrees_with_pytorch(rehearsal):
    table = (rehearsal[2] / "bench-gpu-knn.md").read_text()
    assert "N = 4,000, D = 64, k = 10" in table
    ours = next(line for line in table.splitlines() if line.startswith("| embedrank `--knn-device torch-cpu`"))
    torch_row = next(line for line in table.splitlines() if line.startswith("| PyTorch matmul"))
    knn_s, wall_s, gflops, p1, agree = numbers(ours)
    assert knn_s > 0 and wall_s >= knn_s and gflops > 0
    assert agree == 100.0
    assert p1 == numbers(torch_row)[-2]


def test_phase_profile_accounts_for_the_epoch(rehearsal):
    with tarfile.open(rehearsal[2] / "details.tar.gz") as tar:
        names = tar.getnames()
        prof = json.load(tar.extractfile("details/profile-train.json"))
    for run in ("none", "bf16"):
        assert f"details/runs/{run}/metrics.jsonl" in names
    assert "details/eval.json" in names and "details/MANIFEST.json" in names
    (row,) = prof["rows"]
    for side in ("torch", "embedrank"):
        r = row[side]
        phases = r["phase_seconds"]
        assert set(phases) == {"gather", "forward", "loss", "backward", "optimiser"}
        assert phases["forward"] > 0 and phases["backward"] > 0 and phases["loss"] > 0
        # The phases cover the timed steps: their sum is the epoch time, less the loop's bookkeeping.
        epoch_seconds = r["steps"] * prof["batch_size"] / r["img_per_s"]
        assert 0.8 * epoch_seconds <= sum(phases.values()) <= 1.001 * epoch_seconds, (side, phases, epoch_seconds)


def test_summary_holds_targets_runs_and_readme_blocks(rehearsal):
    summary = (rehearsal[2] / "summary.md").read_text()
    assert "CPU rehearsal" in summary and "## Steps: 10 of 10 passed" in summary
    assert re.search(r"\| training img/s, AMP none: embedrank ≥ 1\.0× PyTorch \+ PML \| [\d.]+ vs [\d.]+ img/s", summary)
    assert "| identical top-1 (fresh queries vs PyTorch's top-1) | 100.000% agree | met |" in summary
    assert re.search(r"\| backward \| [\d.]+ \| [\d.]+ \|", summary)
    assert re.search(r"train --amp none: 1 epoch\(s\), loss [\d.]+ \(4 steps, all finite\)", summary)
    assert re.search(r"train --amp bf16: 1 epoch\(s\), loss [\d.]+ \(4 steps, all finite\)", summary)
    assert re.search(r"eval --checkpoint \(train --amp none\), protocol test: R@1 [\d.]+", summary)
    out = rehearsal[2]
    for name in ("bench-gpu-train", "bench-gpu-knn"):
        block = summary.split(f"<!-- {name}:begin -->\n", 1)[1].split(f"\n<!-- {name}:end -->", 1)[0]
        assert block == (out / f"{name}.md").read_text().rstrip()


def test_print_run_gives_a_device_tool_call():
    got = subprocess.run(["bash", "scripts/gpu-check.sh", "--print-run"], cwd=ROOT, capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    command = re.search(r'run\(command="([^"]+)", carry=\["\.gpu"\], timeout_s=(\d+)\)', got.stdout)
    assert command, got.stdout
    assert len(command.group(1)) <= 2000 and command.group(1).startswith("bash scripts/gpu-check.sh")
    budget = int(re.search(r"--budget (\d+)", command.group(1)).group(1))
    assert budget < int(command.group(2)) <= 600  # the script ends (summary written) before the tool's limit


def test_a_broken_bundle_is_recorded_and_the_check_goes_on(tmp_path):
    bundle, out = tmp_path / "bundle", tmp_path / "out"
    (bundle / "bin").mkdir(parents=True)
    (bundle / "bin" / "embedrank").write_text("not a binary\n")
    (bundle / "SHA256SUMS").write_text(f"{'0' * 64}  bin/embedrank\n")
    (bundle / "MANIFEST.json").write_text(json.dumps({"torch_abi": "2.11.0", "wheels": []}))
    # 100 s: enough for test-knn (needs 15 s), not for bench-knn (90 s) after the 25 s reserve.
    run = subprocess.run(["bash", "scripts/gpu-check.sh", "--cpu-rehearsal", "--bundle", str(bundle), "--out", str(out),
                          "--steps", "test-knn,bench-knn", "--budget", "100"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    got = {s["step"]: s for s in steps(out)}
    assert list(got) == ["bundle", "python-env", "test-knn", "bench-knn"]
    assert got["bundle"]["status"] == "failed" and "FAILED" in (out / "logs.txt").read_text()
    assert got["python-env"]["status"] == "passed"
    assert got["test-knn"]["status"] == "failed"
    assert got["bench-knn"]["status"] == "skipped" and "time budget" in got["bench-knn"]["note"]
    summary = (out / "summary.md").read_text()
    assert "## Steps: 1 of 4 passed" in summary
    assert "--steps test-knn,bench-knn" in summary
    assert "(no bench-gpu-knn.md: the step did not finish)" in summary
