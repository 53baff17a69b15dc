"""embedrank's loss modules against PML 2.9's: values, gradients (embeddings and proxies), devices,
and a two-step training loop that must end with the same parameters."""

import numpy as np
import pytest
import torch
from conftest import CUDA
from pytorch_metric_learning import losses as pml
from pytorch_metric_learning import miners

import embedrank


def pml_with_miner(loss, miner):
    def run(emb, labels):
        return loss(emb, labels, miner(emb, labels))
    return run


# (embedrank module, PML callable) builders, given (classes, dim) and a seed for the proxies.
PAIRS = {
    "fastap": lambda c, d: (embedrank.FastAPLoss(), pml.FastAPLoss()),
    "fastap 20 bins": lambda c, d: (embedrank.FastAPLoss(num_bins=20), pml.FastAPLoss(num_bins=20)),
    "contrastive": lambda c, d: (embedrank.ContrastiveLoss(), pml.ContrastiveLoss()),
    "triplet": lambda c, d: (embedrank.TripletMarginLoss(), pml.TripletMarginLoss()),
    "triplet batch-hard": lambda c, d: (embedrank.TripletMarginLoss(mining="batch-hard"),
                                        pml_with_miner(pml.TripletMarginLoss(), miners.BatchHardMiner())),
    "multi-similarity": lambda c, d: (embedrank.MultiSimilarityLoss(), pml.MultiSimilarityLoss()),
    "multi-similarity + miner": lambda c, d: (
        embedrank.MultiSimilarityLoss(miner=True),
        pml_with_miner(pml.MultiSimilarityLoss(), miners.MultiSimilarityMiner())),
    "proxy-anchor": lambda c, d: (embedrank.ProxyAnchorLoss(c, d), pml.ProxyAnchorLoss(c, d)),
    "normalized-softmax": lambda c, d: (embedrank.NormalizedSoftmaxLoss(c, d), pml.NormalizedSoftmaxLoss(c, d)),
}


def batch(seed, n, dim, classes):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    return torch.randn(n, dim, generator=g), labels


def copy_parameters(ours, theirs):
    if isinstance(ours, embedrank.ProxyAnchorLoss):
        ours.proxies.data.copy_(theirs.proxies.data)
    if isinstance(ours, embedrank.NormalizedSoftmaxLoss):
        ours.W.data.copy_(theirs.W.data)


def loss_and_grads(module, emb, labels):
    x = emb.clone().requires_grad_(True)
    value = module(x, labels)
    params = [p for p in getattr(module, "parameters", lambda: [])()]
    grads = torch.autograd.grad(value, [x, *params], allow_unused=True)
    return value.detach(), grads


@pytest.mark.parametrize("name", list(PAIRS))
@pytest.mark.parametrize("seed", range(5))
def test_loss_and_gradients_equal_pml(name, seed):
    """float32 for the small batches; float64 for the large ones, where float32 sums of thousands
    of triplets or pairs cancel to below the tolerance in either implementation."""
    n, dim, classes = [(2, 3, 1), (8, 4, 2), (64, 16, 8), (100, 32, 30), (256, 64, 16)][seed]
    emb, labels = batch(seed, n, dim, classes)
    ours, theirs = PAIRS[name](classes, dim)
    if n > 64:
        emb = emb.double()
        ours, theirs = ours.double(), (theirs.double() if isinstance(theirs, torch.nn.Module) else theirs)
    copy_parameters(ours, theirs)
    got, got_grads = loss_and_grads(ours, emb, labels)
    want, want_grads = loss_and_grads(theirs if isinstance(theirs, torch.nn.Module) else _Wrap(theirs), emb, labels)
    assert abs(float(got) - float(want)) <= 1e-5 * max(1.0, abs(float(want))), (float(got), float(want))
    for g, w in zip(got_grads, want_grads):
        if w is None:
            continue
        scale = float(w.abs().max()) or 1.0
        assert float((g - w).abs().max()) <= 1e-4 * scale, name


class _Wrap(torch.nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, emb, labels):
        return self.f(emb, labels)


def test_float64_gradient_passes_gradcheck():
    emb, labels = batch(3, 12, 5, 3)
    for module in (embedrank.MultiSimilarityLoss(), embedrank.ContrastiveLoss(),
                   embedrank.ProxyAnchorLoss(3, 5).double()):
        x = emb.double().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda e: module(e, labels), (x,), eps=1e-6, atol=1e-5)


@CUDA
def test_cuda_tensors_round_trip():
    emb, labels = batch(1, 64, 16, 8)
    ours = embedrank.FastAPLoss()
    got, (g,) = loss_and_grads(ours, emb.cuda(), labels.cuda())
    want, (w,) = loss_and_grads(pml.FastAPLoss(), emb, labels)
    assert g.device.type == "cuda"
    assert abs(float(got) - float(want)) < 1e-5 and float((g.cpu() - w).abs().max()) < 1e-4 * float(w.abs().max())


def test_two_training_steps_match_pml():
    """A small model trained two steps with embedrank.FastAPLoss ends where PML's does."""
    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))

    def train(loss_fn):
        net = model()
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        g = torch.Generator().manual_seed(1)
        for _ in range(2):
            x, y = torch.randn(64, 20, generator=g), torch.randint(0, 8, (64,), generator=g)
            opt.zero_grad()
            loss_fn(net(x), y).backward()
            opt.step()
        return [p.detach() for p in net.parameters()]

    ours, theirs = train(embedrank.FastAPLoss()), train(pml.FastAPLoss())
    moved = max(float((p - q).abs().max()) for p, q in zip(theirs, [p.detach() for p in model().parameters()]))
    assert moved > 1e-3, "the steps should change the parameters"
    for p, q in zip(ours, theirs):
        assert float((p - q).abs().max()) < 1e-5


def test_errors_are_value_errors_with_the_core_message():
    emb, labels = batch(0, 6, 3, 2)
    with pytest.raises(ValueError, match="6 embeddings"):
        embedrank.FastAPLoss()(emb, labels[:5])
    bad = emb.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="row 1"):
        embedrank.FastAPLoss()(bad, labels)
    with pytest.raises(ValueError, match="bins"):
        embedrank.FastAPLoss(num_bins=0)
    with pytest.raises(ValueError, match="num_classes"):
        embedrank.CoreLoss("proxy-anchor")
    with pytest.raises(ValueError, match="unknown loss"):
        embedrank.CoreLoss("arcface")
    with pytest.raises(ValueError):
        embedrank.ProxyAnchorLoss(2, 3)(emb, labels + 5)  # labels outside 0..C-1
    with pytest.raises(ValueError, match="indices_tuple"):
        embedrank.TripletMarginLoss()(emb, labels, indices_tuple=(labels,))


@pytest.mark.parametrize("seed", range(3))
def test_smooth_ap_reference_variant_equals_pml_where_pml_groups_rows_right(seed):
    """PML's SmoothAPLoss follows the official code, but reshapes the batch as (samples per class)
    × (classes) rows where it means the transpose: it is right only when the two are equal. There,
    embedrank's `variant="reference"` equals it (PML accumulates AP in float32)."""
    g = torch.Generator().manual_seed(seed)
    classes = per_class = 4 + seed
    x = torch.randn(classes * per_class, 16, generator=g, dtype=torch.float64)
    y = torch.arange(classes).repeat_interleave(per_class)
    got, (g_ours,) = loss_and_grads(embedrank.SmoothAPLoss(variant="reference"), x, y)
    want, (g_pml,) = loss_and_grads(pml.SmoothAPLoss(), x, y)
    assert abs(got.item() - want.item()) <= 1e-6
    assert float((g_ours - g_pml).abs().max()) <= 1e-4 * float(g_pml.abs().max())


def test_every_core_loss_runs_by_name_with_a_finite_gradient():
    """The rank losses without a PML twin (FAPPY, ROADMAP, the Recall@k surrogate; the oracle tests check their values
    against transcriptions of the official code) and any future `[loss]` kind, through CoreLoss."""
    emb, labels = batch(5, 24, 8, 4)
    for kind in embedrank._core.loss_kinds():
        extra = {"num_classes": 4, "embedding_size": 8} if kind in ("proxy-anchor", "normalized-softmax") else {}
        module = embedrank.CoreLoss(kind, **extra)
        value, (grad, *_) = loss_and_grads(module, emb, labels)
        assert torch.isfinite(value) and torch.isfinite(grad).all() and float(grad.abs().max()) > 0, kind
    assert isinstance(embedrank.RoadmapLoss(rho=50.0), embedrank.CoreLoss)
    assert isinstance(embedrank.RecallKSurrogateLoss(k=[1, 4], k_temperatures=[1.0, 4.0]), embedrank.CoreLoss)
