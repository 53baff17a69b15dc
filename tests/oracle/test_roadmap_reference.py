"""embedrank's ROADMAP against torch transcriptions (roadmap_reference.py): the official trainer's
loss (`variant = "reference"`) and the paper's retrieval set (`variant = "paper"`, the default).

Float64 inputs, so embedrank computes in f64; the loss must agree to 1e-5 and the gradient (a
float32 file) to 1e-4 of its largest entry, against autograd of the transcriptions. The
calibration transcription is itself checked against PML's `ContrastiveLoss`, which the official
`CalibrationLoss` subclasses.
"""

import numpy as np
import pytest
import torch

import embedrank_cli as er
from roadmap_reference import calibration, official, paper, with_gradient


def assert_matches(ours, grad, ref, ref_grad):
    assert abs(ours - ref) <= 1e-5, (ours, ref)
    scale = max(np.abs(ref_grad).max(), 1e-12)
    assert np.abs(grad - ref_grad).max() <= 1e-4 * scale, np.abs(grad - ref_grad).max() / scale


def batch(rng, sizes, dim, unit=True):
    """Rows for classes of the given sizes, shuffled (any order: the official code reads labels)."""
    labels = np.repeat(rng.permutation(1000)[: len(sizes)], sizes).astype(np.int64)
    labels = labels[rng.permutation(len(labels))]
    x = rng.normal(size=(len(labels), dim))
    x = er.unit_rows(x) if unit else x * rng.uniform(0.15, 0.3, size=(len(labels), 1))
    return x, labels


# The official config `roadmap.yaml` (SOP, In-Shop, CUB) and `roadmap_inat.yaml` (iNaturalist).
SOP = {}
INAT = {"offset": 1.0, "start": 0.0}
SETTINGS = {"sop": SOP, "inat": INAT, "no-delta": {"delta": 0.0, "offset": 1.0},
            "wide": {"tau": 0.1, "delta": 0.3, "rho": 5.0, "ap_weight": 0.5, "calibration_weight": 2.0}}
CLI_KEY = {"tau": "temperature"}

CASES = [
    # (class sizes, dim, settings, unit rows, seed)
    ([2, 2], 2, "sop", True, 0),
    ([4, 4, 4], 8, "sop", True, 1),
    ([3, 1, 5, 2, 1], 6, "sop", True, 2),  # unequal classes with singletons
    ([4] * 8, 16, "sop", True, 3),
    ([6], 4, "sop", True, 4),  # one class only
    ([1] * 7, 4, "sop", True, 5),  # singletons only
    ([5, 3, 3, 1, 2, 6], 32, "inat", True, 6),
    ([2, 7, 1, 4], 5, "no-delta", True, 7),
    ([3, 3, 2, 4, 1], 3, "wide", True, 8),
    ([4, 2, 5, 1], 6, "sop", False, 9),  # rows of norm 0.15–0.3: small scores, the self-scores vary
    ([8, 8, 8, 8, 8], 64, "sop", True, 10),
    ([2, 1], 3, "sop", True, 11),  # N = 3
]


def cli_settings(name):
    return [a for k, v in SETTINGS[name].items() for a in ("--set", f"loss.{CLI_KEY.get(k, k)}={v}")]


@pytest.mark.parametrize("sizes,dim,settings,unit,seed", CASES)
def test_reference_variant_matches_the_official_loss(tmp_path, sizes, dim, settings, unit, seed):
    x, labels = batch(np.random.default_rng(seed), sizes, dim, unit)
    ours, grad = er.loss(tmp_path, "roadmap", x, labels, "--set", "loss.variant=reference", *cli_settings(settings))
    ref, ref_grad = with_gradient(official, x, labels, **SETTINGS[settings])
    assert_matches(ours, grad, ref, ref_grad)


@pytest.mark.parametrize("sizes,dim,settings,unit,seed", CASES)
def test_paper_variant_matches_the_formula(tmp_path, sizes, dim, settings, unit, seed):
    x, labels = batch(np.random.default_rng(100 + seed), sizes, dim, unit)
    ours, grad = er.loss(tmp_path, "roadmap", x, labels, *cli_settings(settings))
    ref, ref_grad = with_gradient(paper, x, labels, **SETTINGS[settings])
    assert_matches(ours, grad, ref, ref_grad)


@pytest.mark.parametrize("seed", range(4))
def test_calibration_transcription_is_pml(seed):
    """On unit rows the transcription equals PML's ContrastiveLoss on DotProductSimilarity (which
    normalises the rows: its gradient is the tangential part of ours)."""
    from pytorch_metric_learning.distances import DotProductSimilarity
    from pytorch_metric_learning.losses import ContrastiveLoss

    x, labels = batch(np.random.default_rng(200 + seed), [3, 1, 4, 2, 5], 6)
    pml = ContrastiveLoss(pos_margin=0.9, neg_margin=0.6, distance=DotProductSimilarity())
    t = torch.tensor(x, requires_grad=True)
    value = pml(t, torch.as_tensor(labels))
    value.backward()
    ours, grad = with_gradient(calibration, x, torch.as_tensor(labels), 0.9, 0.6)
    assert value.item() > 0 and abs(value.item() - ours) <= 1e-12
    assert np.abs(er.tangential(grad, x) - t.grad.numpy()).max() <= 1e-10


def test_the_variants_differ_and_the_default_is_the_paper(tmp_path):
    x, labels = batch(np.random.default_rng(12), [4, 4, 4], 8)
    default, _ = er.loss(tmp_path, "roadmap", x, labels)
    assert abs(default - with_gradient(paper, x, labels)[0]) <= 1e-5
    assert abs(default - with_gradient(official, x, labels)[0]) > 1e-3


def test_no_positive_leaves_the_calibration(tmp_path):
    x = er.unit_rows(np.random.default_rng(13).normal(size=(6, 4)))
    labels = np.arange(6, dtype=np.int64)
    ours, grad = er.loss(tmp_path, "roadmap", x, labels)
    cal, cal_grad = with_gradient(calibration, x, torch.as_tensor(labels), 0.9, 0.6)
    assert_matches(ours, grad, cal, cal_grad)


@pytest.mark.parametrize("key,value", [("temperature", 0), ("rho", -1), ("offset", -0.5), ("delta", -0.1),
                                       ("calibration_weight", -1)])
def test_bad_settings_are_refused(tmp_path, key, value):
    x = er.unit_rows(np.random.default_rng(14).normal(size=(4, 3)))
    e, lab = tmp_path / "emb.npy", tmp_path / "labels.npy"
    np.save(e, x)
    np.save(lab, np.array([0, 0, 1, 1], dtype=np.int64))
    proc = er.run(["loss", "--loss", "roadmap", "--embeddings", e, "--labels", lab, "--set", f"loss.{key}={value}"],
                  check=False)
    assert proc.returncode == 2, proc.stderr
    assert key in proc.stderr, proc.stderr
