"""Runs the `embedrank` binary (path in $EMBEDRANK_BIN) on numpy arrays, for the oracle tests."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np

BIN = os.environ.get("EMBEDRANK_BIN", str(Path(__file__).resolve().parents[2] / "target/debug/embedrank"))


def run(args, check=True):
    """Runs embedrank with `args`; returns the CompletedProcess (text mode)."""
    proc = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"embedrank {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def loss(tmp: Path, kind: str, emb: np.ndarray, labels: np.ndarray, *extra):
    """`embedrank loss` on in-memory arrays: returns (loss, gradient as float64)."""
    e, l, g = tmp / "emb.npy", tmp / "labels.npy", tmp / "grad.npy"
    np.save(e, emb)
    np.save(l, labels)
    proc = run(["loss", "--loss", kind, "--embeddings", e, "--labels", l, "--grad-out", g, *extra])
    return json.loads(proc.stdout)["loss"], np.load(g).astype(np.float64)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm."""
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def tangential(grad: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The part of `grad` orthogonal to each (unit) row of `x`: what a normalisation layer passes."""
    return grad - np.sum(grad * x, axis=1, keepdims=True) * x


def loss_with_proxies(tmp: Path, kind: str, emb: np.ndarray, labels: np.ndarray, proxies: np.ndarray, *extra):
    """`embedrank loss` for a loss with per-class rows: returns (loss, gradient, proxies' gradient)."""
    p, pg = tmp / "proxies.npy", tmp / "proxy_grad.npy"
    np.save(p, proxies)
    value, grad = loss(tmp, kind, emb, labels, "--proxies", p, "--proxy-grad-out", pg, *extra)
    return value, grad, np.load(pg).astype(np.float64)
