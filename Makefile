# embedrank — `make demo` runs the main job on the default data; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
BIN := target/debug/embedrank
RELEASE_BIN := target/release/embedrank

## libtorch comes from the venv's PyTorch (torch-sys runs `python3` to find it): every cargo call sees
## LIBTORCH_USE_PYTORCH=1 and the venv first on PATH, and waits for the venv to be ready.
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# python: the wheel of python/ (see below).
.PHONY: all demo test venv build release lint rust-test oracle browser python python-test bench-python bench bench-loss bench-eval bench-train bench-data bench-gpu gpu-bundle fuzz clean

all: build

## The project venv with the reference implementations (created once, re-made when requirements change).
$(VENV)/.ready: requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

venv: $(VENV)/.ready

build: venv
	$(CARGO) build --workspace

release: venv
	$(CARGO) build --release --bin embedrank

## Everything CI runs: formatting, lints, Rust tests, the oracle tests against PML & co., then the
## Python package's tests (against PML too).
test: venv lint rust-test oracle python-test

lint: venv
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

rust-test: venv
	$(CARGO) test --workspace

oracle: venv browser
	$(CARGO) build --bin embedrank
	EMBEDRANK_BIN=$(BIN) $(PY) -m pytest tests/oracle -q -rs

## Debian's headless Chromium and chromedriver, for the browser test of report.html
## (tests/oracle/test_report_html.py): installed with apt-get when missing. If that fails, the test is
## skipped and says why (pytest -rs lists the reason).
browser:
	@if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then \
	  echo "installing chromium and chromium-driver (apt-get) for the report's browser test"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo -n"; \
	  { $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q chromium chromium-driver; } \
	    >/dev/null 2>&1 || echo "could not install chromium and chromium-driver: the browser test will be skipped"; \
	fi

## The Python package (python/, PyO3 abi3 over the core, no libtorch): one wheel for CPython >= 3.9
## into target/wheels/, installed into the project venv. `pip install ./python` does the same anywhere.
python: venv
	rm -f target/wheels/embedrank-*.whl
	cd python && $(CURDIR)/$(VENV)/bin/maturin build --release -o $(CURDIR)/target/wheels
	$(PY) -m pip install -q --force-reinstall --no-deps target/wheels/embedrank-*.whl

python-test: python
	$(PY) -m pytest python/tests -q

## The main job on the default data: Fashion-MNIST (installed if missing; DATA=DIR to use another
## copy), the default config (small CNN, FastAP 10 bins, 8 classes x 32, Adam 1e-3, 2 epochs), then
## the Recall@K / MAP@R table. The run (checkpoints, metrics.jsonl, results.json, plots) goes to runs/demo.
DATA ?=
demo: venv release
	@data="$$(scripts/fashion-mnist.sh $(DATA))" && \
	echo "Fashion-MNIST: $$data" && \
	$(RELEASE_BIN) train --data "$$data" --out runs/demo --overwrite

## Coverage-guided fuzzing of the readers of untrusted files (not part of `test`): each target of
## fuzz/ runs FUZZ_SECONDS (default 60) from the seeds in fuzz/seeds/<target> (corpus kept in
## fuzz/corpus/<target>, crashes in fuzz/artifacts/<target>). cargo-fuzz needs nightly flags:
## RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. FUZZ_TARGETS=npy,pth to run some.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= npy idx mat safetensors pickle pth datasets image
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	@for t in $(subst $(comma), ,$(FUZZ_TARGETS)); do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  mkdir -p fuzz/corpus/$$t; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir fuzz $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 || exit 1; \
	done
comma := ,

## Benchmarks: embedrank side by side with the PyTorch / PML / faiss equivalent, in one run.
bench: bench-loss bench-eval bench-train bench-data bench-python

bench-loss: venv
	$(PY) bench/bench_loss.py

## Exact top-k (N = 60,502, D = 512, k = 1000) vs faiss IndexFlatIP, full metric set vs PML; peak RSS via GNU time.
bench-eval: venv release
	@test -x /usr/bin/time || apt-get install -y -q time || { echo "bench-eval needs GNU time (/usr/bin/time)"; exit 1; }
	cd bench && EMBEDRANK_BIN=$(CURDIR)/$(RELEASE_BIN) ../$(PY) bench_eval.py

## The demo training run in PyTorch + PML and in embedrank, side by side (img/s, R@1, MAP@R).
## LOSS=NAME trains with another loss; LOSS=all runs every loss and writes the README's loss table.
## ARCH=NAME instead measures one backbone's training img/s on synthetic 224-px images, PyTorch + PML
## vs embedrank (bench_arch.py: batch 32 = 8 x 4, FastAP, Adam, 2 threads); ARCH=all runs every
## backbone and writes the README's bench-arch table.
LOSS ?= fastap
ARCH ?=
bench-train: venv release
	@if [ -n "$(ARCH)" ]; then \
		cd bench && ../$(PY) bench_arch.py --arch $(ARCH) $(if $(filter all,$(ARCH)),--readme); \
	else \
		data="$$(scripts/fashion-mnist.sh $(DATA))" && cd bench && ../$(PY) bench_train.py --data "$$data" --loss $(LOSS); \
	fi

## The Python package vs PML in one process: SOP-size AccuracyCalculator, FastAP at N = 256 / 1024.
bench-python: python
	$(PY) bench/bench_python.py

## Decoded+augmented images/s: embedrank's loader vs PyTorch DataLoader + torchvision, same JPEGs and workers.
bench-data: venv
	$(PY) bench/bench_data.py

## On a GPU machine (not part of `bench`): ResNet-50 training steps, PyTorch + PML vs embedrank, AMP off
## and bf16 (bench_gpu_train.py), then exact kNN on the GPU vs PyTorch / faiss (bench_gpu_knn.py);
## both write their tables into README.md. GPU=cuda:N picks another device.
GPU ?= cuda
bench-gpu: venv release
	$(PY) bench/bench_gpu_train.py --bin $(RELEASE_BIN) --device $(GPU) --amp both --readme
	@if [ -f bench/bench_gpu_knn.py ]; then \
		readme=""; if grep -q -- '--readme' bench/bench_gpu_knn.py; then readme="--readme"; fi; \
		echo "$(PY) bench/bench_gpu_knn.py --bin $(RELEASE_BIN) --n 1000000 --dim 512 --k 100 --device $(GPU) $$readme"; \
		$(PY) bench/bench_gpu_knn.py --bin $(RELEASE_BIN) --n 1000000 --dim 512 --k 100 --device $(GPU) $$readme; \
	fi

## For a GPU machine without Rust or internet: .gpu/ (the stripped release CLI, the CUDA test binaries,
## the PML wheel, a manifest), run there by scripts/gpu-check.sh; it prints the device-tool call.
gpu-bundle: venv
	scripts/gpu-prepare.sh

clean:
	$(CARGO) clean
