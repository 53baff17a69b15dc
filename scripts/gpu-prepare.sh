#!/usr/bin/env bash
# gpu-prepare.sh: builds, here, everything `scripts/gpu-check.sh` needs on a GPU machine that has
# PyTorch 2.11.0 but no Rust toolchain and no internet, into one ignored folder (the bundle, .gpu/):
#
#   bin/embedrank    the release CLI              (cargo build --release --bin embedrank)
#   bin/test-cuda    crates/torch/tests/cuda.rs   (cargo test --release --no-run -p embedrank-torch --test cuda)
#   bin/test-lib     embedrank-torch's unit tests, knn_device::tests::cuda_equals_the_cpu_search among them
#   wheels/*.whl     pytorch-metric-learning (pure Python), plus small pure-Python fallbacks that
#                    gpu-check installs only where the machine's Python lacks them
#   MANIFEST.json    what each file is, its size and sha256, the commit, profile and libtorch ABI
#   SHA256SUMS       the same checksums for `sha256sum -c`
#
# Debug info is stripped (objcopy --strip-debug; symbols stay, so backtraces keep their names):
# the release binary with debug info is ~120 MB, and the device tool carries at most 64 MiB.
# The binaries find libtorch through an rpath into this checkout's venv; on the GPU machine
# gpu-check puts that machine's torch/lib on LD_LIBRARY_PATH instead.
#
# Usage: scripts/gpu-prepare.sh [--profile release|dev] [--dir DIR] [--no-wheels]
#   --profile dev   the debug build `make test` already has (for the CPU rehearsal; no size limit)
#   --dir DIR       the bundle folder (default .gpu; it is emptied first)
#   --no-wheels     no pip download; gpu-check then uses the Python's own pytorch-metric-learning
# It ends by printing the device-tool call that runs the check (see scripts/gpu-check.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROFILE=release
DIR=.gpu
WHEELS=1
LIMIT_MIB=60 # the device tool carries 64 MiB in all, the working tree included

while (($#)); do
    case "$1" in
    --profile) PROFILE="${2:?--profile needs release or dev}"; shift 2 ;;
    --dir) DIR="${2:?--dir needs a folder}"; shift 2 ;;
    --no-wheels) WHEELS=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-prepare: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
# The test binaries: in release just the two; in dev those of `cargo test --workspace`, which
# `make test` has already built (another selection could unify features differently and rebuild).
case "$PROFILE" in
release) CARGO_PROFILE=(--release) TEST_SELECTION=(-p embedrank-torch --lib --test cuda) ;;
dev) CARGO_PROFILE=() TEST_SELECTION=(--workspace) ;;
*) echo "gpu-prepare: --profile must be release or dev, not $PROFILE" >&2; exit 2 ;;
esac

# libtorch comes from the venv's PyTorch, as in the Makefile.
export LIBTORCH_USE_PYTORCH=1
export PATH="$ROOT/.venv/bin:$PATH"
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || { echo "gpu-prepare: no venv at .venv (run make venv)" >&2; exit 1; }
command -v objcopy >/dev/null || { echo "gpu-prepare: objcopy (binutils) is needed" >&2; exit 1; }

# The executables a cargo command produced, "KIND:NAME<TAB>path" per line, from its JSON messages
# (a lib's or bin's unit-test binary is KIND:NAME+unittests).
executables() {
    "$PY" -c '
import json, sys
for line in sys.stdin:
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        t = m["target"]
        kind = "lib" if "lib" in t["kind"] else t["kind"][0]
        unit = "+unittests" if m["profile"]["test"] and kind in ("lib", "bin") else ""
        print(kind + ":" + t["name"] + unit + "\t" + m["executable"])
'
}

echo "gpu-prepare: building ($PROFILE) …" >&2
built="$(
    cargo build "${CARGO_PROFILE[@]}" --bin embedrank --message-format=json-render-diagnostics | executables
    cargo test "${CARGO_PROFILE[@]}" --no-run "${TEST_SELECTION[@]}" --message-format=json-render-diagnostics |
        executables
)"
pick() { # pick KIND:NAME → the path cargo reported
    local path
    path="$(awk -F'\t' -v k="$1" '$1 == k { p = $2 } END { print p }' <<<"$built")"
    [[ -n "$path" && -x "$path" ]] || { echo "gpu-prepare: cargo reported no executable for $1" >&2; exit 1; }
    echo "$path"
}
src_bin="$(pick bin:embedrank)"
src_cuda="$(pick test:cuda)"
src_lib="$(pick lib:embedrank_torch+unittests)"

rm -rf "$DIR"
mkdir -p "$DIR/bin"
for pair in "embedrank:$src_bin" "test-cuda:$src_cuda" "test-lib:$src_lib"; do
    name="${pair%%:*}" src="${pair#*:}"
    objcopy --strip-debug "$src" "$DIR/bin/$name"
    printf 'gpu-prepare: %-10s %4d MiB → %3d MiB  (%s)\n' "$name" "$(($(stat -c %s "$src") >> 20))" \
        "$(($(stat -c %s "$DIR/bin/$name") >> 20))" "${src#"$ROOT"/}" >&2
done

if ((WHEELS)); then
    mkdir -p "$DIR/wheels"
    pml="$(grep -E '^pytorch-metric-learning==' requirements.txt)"
    # PML itself, and tqdm (pure Python), which PML imports and the machine's Python may lack
    # (scikit-learn, its joblib and threadpoolctl, and scipy: the GPU machine must have them).
    for req in "$pml" tqdm; do
        "$PY" -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
            --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$DIR/wheels" "$req"
    done
fi

# The manifest: files, sizes, checksums, and what gpu-check must know about them.
sums="$(cd "$DIR" && find . -type f | sed 's|^\./||' | sort | xargs sha256sum)"
echo "$sums" >"$DIR/SHA256SUMS"
torch_version="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
"$PY" - "$DIR" "$PROFILE" "$torch_version" "$(git rev-parse HEAD)" "$(git status --porcelain | wc -l)" <<'EOF'
import json, sys, time, zipfile
from pathlib import Path

folder, profile, torch_version, commit, dirty = sys.argv[1:]
files = {}
for line in (Path(folder) / "SHA256SUMS").read_text().splitlines():
    digest, name = line.split(maxsplit=1)
    files[name] = {"sha256": digest, "bytes": (Path(folder) / name).stat().st_size}
wheels = []
for name in sorted(n for n in files if n.endswith(".whl")):
    with zipfile.ZipFile(Path(folder) / name) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    requires = [l.split(":", 1)[1].strip() for l in text.splitlines()
                if l.startswith("Requires-Dist:") and "extra ==" not in l]
    dist = Path(name).name.split("-")[0].lower()
    module = {"pytorch_metric_learning": "pytorch_metric_learning"}.get(dist, dist)
    wheels.append({"file": name, "module": module, "always": dist == "pytorch_metric_learning",
                   "requires": requires})
manifest = {
    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "commit": commit + ("+dirty" if int(dirty) else ""),
    "profile": profile,
    "torch_abi": torch_version,
    "binaries": {"embedrank": "bin/embedrank", "test-cuda": "bin/test-cuda", "test-lib": "bin/test-lib"},
    "wheels": wheels,
    "files": files,
}
(Path(folder) / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
for w in wheels:
    print(f"gpu-prepare: {w['file']}: requires {', '.join(w['requires']) or 'nothing'}", file=sys.stderr)
EOF

total_kib="$(du -sk "$DIR" | cut -f1)"
tree_kib="$(git ls-files -z | xargs -0 du -ck 2>/dev/null | tail -1 | cut -f1)"
echo "gpu-prepare: bundle $DIR: $((total_kib / 1024)) MiB; with the tracked tree ($((tree_kib / 1024)) MiB):" \
    "$(((total_kib + tree_kib) / 1024)) MiB of the 64 MiB the device tool carries" >&2
if [[ "$PROFILE" == release ]] && ((total_kib + tree_kib > LIMIT_MIB * 1024)); then
    echo "gpu-prepare: over ${LIMIT_MIB} MiB: the device tool cannot carry this bundle" >&2
    exit 1
fi
echo >&2
scripts/gpu-check.sh --print-run --bundle "$DIR"
