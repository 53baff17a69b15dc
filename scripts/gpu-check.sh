#!/usr/bin/env bash
# gpu-check.sh: the whole GPU check in one run, on a machine with PyTorch 2.11.0 (CUDA) and a GPU
# but no Rust toolchain and no internet. It uses the bundle that scripts/gpu-prepare.sh built here
# (.gpu/: the stripped release binary, the CUDA test binaries, the pytorch-metric-learning wheel)
# and runs, each step under its own timeout and a global time budget, every step logged and the
# next one run whatever happened:
#
#   bundle       checksums of the bundle (MANIFEST.json, SHA256SUMS)
#   python-env   the Python's torch (must be the bundle's libtorch ABI, 2.11.0): its lib/ goes on
#                LD_LIBRARY_PATH; PML installed from the carried wheel into a temporary site
#   test-knn     knn_device::tests::cuda_equals_the_cpu_search (lib test binary)
#   test-cuda    crates/torch/tests/cuda.rs (CUDA training vs CPU)
#   train-none   embedrank train --dataset synthetic --arch resnet50 --epochs 1 --amp none
#   eval-cuda    embedrank eval --checkpoint (that run) --device cuda (needs train-none)
#   train-bf16   the same training run with --amp bf16
#   bench-train  bench/bench_gpu_train.py at the README's sizes (AMP off and bf16)
#   bench-knn    bench/bench_gpu_knn.py at the README's sizes (N = 1,000,000, D = 512, k = 100)
#   profile-train  bench_gpu_train.py --phases (where a training target is missed): time per phase
#
# Then $OUT/summary.md: the steps (passed / failed / skipped, with why), the device (nvidia-smi),
# torch / CUDA versions, the targets met or missed, and the README blocks bench-gpu-train and
# bench-gpu-knn ready to paste (`python3 bench/readme.py NAME FILE` writes one into README.md).
# $OUT also gets steps.tsv, logs.txt (every step's log), the two tables, and details.tar.gz
# (logs, metrics.jsonl, eval JSON, bench JSON, the manifest): six files, as the device tool
# brings back at most eight.
#
# With the device tool (GPU machine; carries the ignored bundle, ≤ 64 MiB):
#   run  command: bash scripts/gpu-check.sh --budget 500    carry: [".gpu"]    timeout_s: 570
#   (`scripts/gpu-check.sh --print-run` prints it; a rerun of some steps: --steps a,b --budget N.)
# CPU rehearsal here, the same steps at tiny sizes on --device cpu, with the venv's Python:
#   scripts/gpu-prepare.sh --profile dev --no-wheels --dir .gpu-dev &&
#       scripts/gpu-check.sh --cpu-rehearsal --bundle .gpu-dev --out DIR
#
# Options: --cpu-rehearsal, --bundle DIR (default .gpu), --out DIR (default $OUT), --python PY
# (default python3; the rehearsal: .venv/bin/python), --budget SECONDS (default 500; rehearsal
# 600), --steps LIST (comma-separated names from above), --print-run.
set -uo pipefail # not -e: a failing step is recorded and the check goes on

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
START=$SECONDS
REHEARSAL=0
BUNDLE=.gpu
OUT_DIR="${OUT:-}"
PY=""
BUDGET=""
STEPS=""
RESERVE=25 # seconds kept back for the summary
DEVICE_RUN_BUDGET=500

while (($#)); do
    case "$1" in
    --cpu-rehearsal) REHEARSAL=1; shift ;;
    --bundle) BUNDLE="${2:?}"; shift 2 ;;
    --out) OUT_DIR="${2:?}"; shift 2 ;;
    --python) PY="${2:?}"; shift 2 ;;
    --budget) BUDGET="${2:?}"; shift 2 ;;
    --steps) STEPS=",${2:?},"; shift 2 ;;
    --print-run)
        cat <<EOF
Device-tool call for the GPU check (bundle from scripts/gpu-prepare.sh, $(du -sh "$BUNDLE" 2>/dev/null | cut -f1 || echo '?') in $BUNDLE):
  run(command="bash scripts/gpu-check.sh --budget $DEVICE_RUN_BUDGET", carry=["$BUNDLE"], timeout_s=570)
Results come back under \$OUT: summary.md, steps.tsv, logs.txt, bench-gpu-train.md, bench-gpu-knn.md, details.tar.gz.
EOF
        exit 0 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

if ((REHEARSAL)); then
    DEVICE=cpu
    [[ -n "$PY" ]] || { [[ -x .venv/bin/python ]] && PY="$ROOT/.venv/bin/python" || PY=python3; }
    BUDGET="${BUDGET:-600}"
    # Tiny sizes, so that it takes about a minute on two cores; bf16 (slow on most CPUs) only in
    # train-bf16, the benchmarks with AMP off.
    TRAIN_ARGS=(--arch resnet18 --image-size 16 --batch-size 256 --m 16)
    BENCH_TRAIN_ARGS=(--arch resnet18 --image-size 16 --batch-size 256 --m 16 --epochs 2)
    BENCH_AMP=none
    BENCH_KNN_ARGS=(--n 4000 --dim 64 --k 10 --check-queries 500)
else
    DEVICE=cuda
    PY="${PY:-python3}"
    BUDGET="${BUDGET:-$DEVICE_RUN_BUDGET}"
    # The README's sizes (bench_gpu_train.py's defaults: resnet50, 224², batch 8 × 32, 4 epochs).
    TRAIN_ARGS=(--arch resnet50 --image-size 224 --batch-size 256 --m 32)
    BENCH_TRAIN_ARGS=(--arch resnet50 --image-size 224 --batch-size 256 --m 32 --epochs 4)
    BENCH_AMP=both
    BENCH_KNN_ARGS=(--n 1000000 --dim 512 --k 100)
fi
[[ -n "$OUT_DIR" ]] || OUT_DIR="runs/gpu-check-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT_DIR" || exit 1
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
DEADLINE=$((START + BUDGET))
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")" || exit 1
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/logs" "$WORK/runs" "$WORK/data"
STATUS="$WORK/steps.tsv"
printf 'step\tstatus\tseconds\tnote\n' >"$STATUS"
N=0

say() { printf '[%4d s] %s\n' $((SECONDS - START)) "$*"; }
wanted() { [[ -z "$STEPS" || "$STEPS" == *",$1,"* || "$1" == bundle || "$1" == python-env ]]; }
record() { # record NAME STATUS SECONDS NOTE
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4//$'\t'/ }" >>"$STATUS"
    say "$(printf '%-13s %-7s %6s s  %s' "$1" "$2" "$3" "$4")"
}
passed() { awk -F'\t' -v s="$1" '$1 == s && $2 == "passed" { ok = 1 } END { exit !ok }' "$STATUS"; }

# step NAME MAX_SECONDS MIN_SECONDS CHECK -- COMMAND…: runs COMMAND (a program, cwd = the
# repository) under `timeout`, its output in logs/NN-NAME.log, then `CHECK LOG` (a function that
# prints why the output is wrong, or nothing). A COMMAND that is a shell function of this script
# runs in this shell, without a timeout (the quick set-up steps). Skipped when NAME is not in
# --steps or when fewer than MIN_SECONDS of the budget are left.
step() {
    local name="$1" max="$2" min="$3" check="$4"
    shift 5
    wanted "$name" || return 0
    N=$((N + 1))
    local log left limit t0 rc why secs
    log="$WORK/logs/$(printf '%02d' "$N")-$name.log"
    left=$((DEADLINE - RESERVE - SECONDS))
    if ((left < min)); then
        record "$name" skipped 0 "time budget: ${left} s left, needs ≥ ${min} s"
        return 0
    fi
    limit=$((max < left ? max : left))
    {
        printf '$'
        printf ' %q' "$@"
        printf '\n# timeout %d s, %s\n' "$limit" "$(date -Is)"
    } >"$log"
    t0=$SECONDS
    if [[ "$(type -t "$1")" == function ]]; then
        "$@" >>"$log" 2>&1
    else
        timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    fi
    rc=$?
    secs=$((SECONDS - t0))
    if ((rc == 124 || rc == 137)); then
        record "$name" failed "$secs" "timed out after ${limit} s"
    elif ((rc != 0)); then
        record "$name" failed "$secs" "exit $rc: $(grep -v '^[[:space:]]*$' "$log" | tail -1 | cut -c1-160)"
    elif why="$("$check" "$log")" && [[ -n "$why" ]]; then
        record "$name" failed "$secs" "$why"
    else
        record "$name" passed "$secs" ""
    fi
}

# ---------------------------------------------------------------------------------------------
# Output checks: each prints why LOG (or what the step wrote) is not a pass, or nothing.
check_test() { # libtest: at least one test ran and passed; on a GPU nothing was skipped
    local n
    n="$(grep -oE 'test result: ok\. [0-9]+ passed' "$1" | awk '{ s += $4 } END { print s + 0 }')"
    ((n >= 1)) || { echo "no test ran (filter matched nothing?)"; return; }
    if ((REHEARSAL)); then
        grep -q 'skipping: no CUDA device' "$1" || echo "no CUDA here, yet the test did not say it skipped"
    elif grep -q 'skipping: no CUDA device' "$1"; then
        echo "the test skipped: libtorch sees no CUDA device"
    fi
}
check_run() { # a training run: metrics.jsonl with a finite loss and the run's results.json
    local run="$WORK/runs/${1##*-}"
    run="${run%.log}"
    [[ -s "$run/metrics.jsonl" ]] || { echo "no $run/metrics.jsonl"; return; }
    "$PY" - "$run" <<'EOF'
import json, math, sys
from pathlib import Path
run = Path(sys.argv[1])
rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
bad = [r["epoch"] for r in rows if not all(math.isfinite(v) for v in r["batch_losses"])]
if not rows or bad:
    print(f"non-finite losses in epochs {bad}" if bad else "metrics.jsonl is empty")
elif not (run / "results.json").is_file():
    print("no results.json")
EOF
}
check_eval() { # eval --checkpoint: every protocol has a Recall@1 in [0, 1]
    "$PY" - "$WORK/eval.json" <<'EOF'
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    sys.exit(print(f"no eval JSON ({e})"))
def recall1(p):
    r = p.get("recall_at_k") or p.get("recall") or {}
    return r.get("1") if isinstance(r, dict) else None
ps = doc.get("protocols", {})
bad = [n for n, p in ps.items() if not isinstance(recall1(p), (int, float)) or not 0 <= recall1(p) <= 1]
if not ps or bad:
    print(f"no Recall@1 in {bad or 'any protocol'}: {json.dumps(doc)[:200]}")
EOF
}
check_table() { # a bench script: its table file and JSON
    local name="${1##*-}"
    name="${name%.log}"
    [[ -s "$OUT_DIR/bench-gpu-$name.md" && -s "$WORK/bench-$name.json" ]] ||
        echo "no table / JSON written"
}
check_profile() {
    grep -q '^| phase' "$1" || echo "no phase table in the log"
}

# ---------------------------------------------------------------------------------------------
# The environment: bundle, Python, loader path, PML.
say "gpu-check $( ((REHEARSAL)) && echo '--cpu-rehearsal ')on $(uname -n), device $DEVICE, budget ${BUDGET} s, out $OUT_DIR"
BIN="$WORK/bin/embedrank"
verify_bundle() { # checksums, then the binaries copied out (the carried files may have lost their exec bit)
    [[ -s "$BUNDLE/MANIFEST.json" ]] || { echo "no $BUNDLE/MANIFEST.json: run scripts/gpu-prepare.sh, carry $BUNDLE"; return 1; }
    cat "$BUNDLE/MANIFEST.json"
    (cd "$BUNDLE" && sha256sum -c SHA256SUMS) || return 1
    mkdir -p "$WORK/bin"
    for b in embedrank test-cuda test-lib; do
        cp "$BUNDLE/bin/$b" "$WORK/bin/$b" && chmod u+x "$WORK/bin/$b" || return 1
    done
}
check_nothing() { :; }
step bundle 60 1 check_nothing -- verify_bundle

python_env() { # torch's lib/ on LD_LIBRARY_PATH, PML from the carried wheel on PYTHONPATH
    local abi lib
    abi="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["torch_abi"])' "$BUNDLE/MANIFEST.json")" ||
        abi=2.11.0
    "$PY" - "$abi" <<'PYEOF' || return 1
import os, sys, torch
print(f"python {sys.version.split()[0]} at {sys.executable}; torch {torch.__version__} "
      f"(CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}) at {os.path.dirname(torch.__file__)}")
if torch.__version__.split("+")[0] != sys.argv[1]:
    sys.exit(f"torch {torch.__version__} is not {sys.argv[1]}, the libtorch the binaries were built against")
PYEOF
    lib="$("$PY" -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib" || return 1
    LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    if compgen -G "$BUNDLE/wheels/*.whl" >/dev/null; then
        "$PY" - "$BUNDLE/MANIFEST.json" >"$WORK/wheels.txt" <<'PYEOF' || return 1
import importlib.util, json, sys
from pathlib import Path
for w in json.load(open(sys.argv[1]))["wheels"]:  # PML always; a fallback only where the module is missing
    if w["always"] or importlib.util.find_spec(w["module"]) is None:
        print(Path(sys.argv[1]).parent / w["file"])
PYEOF
        echo "installing into $WORK/site: $(tr '\n' ' ' <"$WORK/wheels.txt")"
        if "$PY" -m pip --version >/dev/null 2>&1; then
            xargs -d '\n' "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps \
                --target "$WORK/site" <"$WORK/wheels.txt" || return 1
        else # no pip: a pure-Python wheel is a zip of the site-packages tree
            echo "no pip: unzipping the wheels"
            xargs -d '\n' -I{} "$PY" -m zipfile -e {} "$WORK/site" <"$WORK/wheels.txt" || return 1
        fi
        PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
        export PYTHONPATH
        echo "PYTHONPATH=$PYTHONPATH"
    else
        echo "no wheels in $BUNDLE: the Python's own pytorch-metric-learning"
    fi
    "$PY" -c 'import pytorch_metric_learning as p, pytorch_metric_learning.losses, pytorch_metric_learning.samplers
print("pytorch-metric-learning", p.__version__, "from", p.__file__)' || return 1
    if [[ -x "$BIN" ]]; then
        echo "ldd $BIN:"
        ldd "$BIN"
    else
        echo "no binary to check with ldd (see the bundle step)"
    fi
}
check_ldd() {
    if grep -q 'not found' "$1"; then echo "the binary misses libraries: $(grep 'not found' "$1" | tr -s ' \t\n' ' ')"; fi
}
step python-env 120 1 check_ldd -- python_env

# What the machine is: the header of the summary.
"$PY" - "$WORK/env.json" "$DEVICE" "$BUNDLE/MANIFEST.json" <<'EOF' 2>>"$WORK/logs/00-env.log"
import datetime, json, os, platform, shutil, subprocess, sys
env = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "host": platform.node(),
       "cpu_cores": os.cpu_count(), "device": sys.argv[2], "python": sys.version.split()[0]}
try:
    import torch
    env.update(torch=torch.__version__, cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
except ImportError as e:
    env["torch"] = f"not importable: {e}"
if shutil.which("nvidia-smi"):
    q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                       capture_output=True, text=True)
    env["gpus"] = [l.strip() for l in q.stdout.splitlines() if l.strip()] or [q.stderr.strip()]
try:
    m = json.load(open(sys.argv[3]))
    env["bundle"] = {k: m[k] for k in ("commit", "profile", "created", "torch_abi")}
except (OSError, ValueError, KeyError) as e:
    env["bundle"] = f"unreadable: {e}"
json.dump(env, open(sys.argv[1], "w"), indent=2)
print(json.dumps(env), file=sys.stderr)
EOF
say "$(tr -d '\n' <"$WORK/env.json" | tr -s ' ' | cut -c1-400)"

# ---------------------------------------------------------------------------------------------
# The steps. Test binaries run where cargo would run them (the package's folder).
step test-knn 90 15 check_test -- env -C crates/torch "$WORK/bin/test-lib" \
    knn_device::tests::cuda_equals_the_cpu_search --exact --nocapture --test-threads=1
step test-cuda 180 30 check_test -- env -C crates/torch "$WORK/bin/test-cuda" --nocapture --test-threads=1

step train-none 150 30 check_run -- "$BIN" train --dataset synthetic "${TRAIN_ARGS[@]}" --epochs 1 \
    --device "$DEVICE" --amp none --out "$WORK/runs/none"
if wanted eval-cuda && ! passed train-none; then
    N=$((N + 1))
    record eval-cuda skipped 0 "train-none did not pass: no checkpoint"
else
    step eval-cuda 90 15 check_eval -- "$BIN" eval --checkpoint "$WORK/runs/none" --device "$DEVICE" \
        --json "$WORK/eval.json"
fi
step train-bf16 150 30 check_run -- "$BIN" train --dataset synthetic "${TRAIN_ARGS[@]}" --epochs 1 \
    --device "$DEVICE" --amp bf16 --out "$WORK/runs/bf16"

step bench-train 300 90 check_table -- "$PY" bench/bench_gpu_train.py --bin "$BIN" --device "$DEVICE" \
    --amp "$BENCH_AMP" "${BENCH_TRAIN_ARGS[@]}" --out "$OUT_DIR/bench-gpu-train.md" --json "$WORK/bench-train.json"
step bench-knn 300 90 check_table -- "$PY" bench/bench_gpu_knn.py --bin "$BIN" --device "$DEVICE" \
    "${BENCH_KNN_ARGS[@]}" --out "$OUT_DIR/bench-gpu-knn.md" --json "$WORK/bench-knn.json"

# Phase timings where img/s missed its target (always in the rehearsal, to exercise it).
missed="$("$PY" -c 'import json,sys; print(",".join(r["amp"] for r in json.load(open(sys.argv[1]))["rows"] if r["ratio"] < 1.0))' \
    "$WORK/bench-train.json" 2>/dev/null)"
((REHEARSAL)) && missed=none
case "$missed" in
"") wanted profile-train && record profile-train skipped 0 "no training target missed (or no bench-train result)" ;;
*,*) profile_amp=both ;;
*) profile_amp="$missed" ;;
esac
if [[ -n "$missed" ]]; then
    step profile-train 200 60 check_profile -- "$PY" bench/bench_gpu_train.py --bin "$BIN" --device "$DEVICE" \
        --amp "$profile_amp" "${BENCH_TRAIN_ARGS[@]}" --phases --json "$WORK/profile-train.json"
fi

# ---------------------------------------------------------------------------------------------
# The summary and what comes back.
cp "$STATUS" "$OUT_DIR/steps.tsv"
for f in "$WORK"/logs/*.log; do
    printf '\n===== %s =====\n' "$(basename "$f")"
    tail -c 400000 "$f"
done >"$OUT_DIR/logs.txt"
"$PY" scripts/gpu-summary.py --work "$WORK" --out "$OUT_DIR" --device "$DEVICE" --seconds $((SECONDS - START)) --budget "$BUDGET" \
    || echo "gpu-check: the summary failed" >&2
for run in "$WORK"/runs/*/; do # the runs' records, not their checkpoints
    [[ -d "$run" ]] || continue
    mkdir -p "$WORK/details/runs/$(basename "$run")"
    cp "$run"/*.json "$run"/*.jsonl "$run"/*.toml "$WORK/details/runs/$(basename "$run")/" 2>/dev/null
done
mkdir -p "$WORK/details"
cp -r "$WORK/logs" "$WORK"/*.json "$WORK/details/" 2>/dev/null
cp "$BUNDLE/MANIFEST.json" "$WORK/details/" 2>/dev/null
tar -czf "$OUT_DIR/details.tar.gz" -C "$WORK" details
echo
cat "$OUT_DIR/summary.md" 2>/dev/null
failed="$(awk -F'\t' 'NR > 1 && $2 != "passed" { print $1 }' "$STATUS" | tr '\n' ' ')"
say "done in $((SECONDS - START)) s; ${failed:+not passed: $failed}results in $OUT_DIR"
[[ -z "$failed" ]]
