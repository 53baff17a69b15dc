# embedrank — `make demo` runs the main job on the default data; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
BIN := target/debug/embedrank
RELEASE_BIN := target/release/embedrank

.PHONY: all demo test venv build release lint rust-test oracle bench bench-loss clean

all: build

## The project venv with the reference implementations (created once, re-made when requirements change).
$(VENV)/.ready: requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

venv: $(VENV)/.ready

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release --bin embedrank

## Everything CI runs: formatting, lints, Rust tests, then the oracle tests against PML & co.
test: venv lint rust-test oracle

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

rust-test:
	$(CARGO) test --workspace

oracle: venv
	$(CARGO) build --bin embedrank
	EMBEDRANK_BIN=$(BIN) $(PY) -m pytest tests/oracle -q

demo:
	@echo "make demo: training lands with the training issue (embedrank train on Fashion-MNIST)."
	@echo "Until then, try: make release && target/release/embedrank loss --help"

## Benchmarks: embedrank side by side with the PyTorch / PML / faiss equivalent, in one run.
bench: bench-loss

bench-loss: venv release
	EMBEDRANK_BIN=$(RELEASE_BIN) $(PY) bench/bench_loss.py

clean:
	$(CARGO) clean
