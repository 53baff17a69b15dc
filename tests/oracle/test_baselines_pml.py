"""embedrank's baseline losses against pytorch-metric-learning 2.9 (autograd), same inputs.

Each loss / option runs on the same 20 random batches (N 2–512, dims 2–512, unequal classes with
singletons, all singletons, one class only), float64 throughout. PML normalises the embeddings
inside its distances, embedrank uses them as given: on unit inputs the losses are equal, and PML's
embedding gradient is ours projected on each embedding's tangent space. The proxies / class weights
are normalised inside both, so their gradients are compared whole. Loss to 1e-5, gradients to 1e-4
of their largest entry.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses, miners

import embedrank_cli as er

# (N, dim, classes): classes drawn with skewed probabilities, so some are singletons or absent.
CASES = [
    (2, 2, 1), (2, 3, 2), (3, 4, 2), (5, 3, 50), (8, 8, 1), (12, 16, 3), (16, 4, 4), (24, 32, 6),
    (32, 64, 8), (40, 8, 20), (48, 128, 6), (64, 16, 16), (80, 32, 40), (96, 64, 12), (128, 128, 32),
    (160, 256, 20), (200, 64, 50), (256, 512, 32), (384, 128, 48), (512, 256, 64),
]


def batch(n, dim, classes, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = er.unit_rows(rng.normal(size=(n, dim))).astype(dtype)
    if classes >= 50:  # every row its own class: no positive pair anywhere
        labels = rng.permutation(n)
    else:
        labels = rng.choice(classes, size=n, p=rng.dirichlet(np.full(classes, 0.7)))
    return x, labels.astype(np.int64)


def backward(value, *tensors):
    """PML's loss value and the gradients of `tensors` (zeros where PML's zero loss has none)."""
    if value.requires_grad:
        value.backward()
    return value.item(), [np.zeros(t.shape) if t.grad is None else t.grad.numpy().copy() for t in tensors]


# name -> (embedrank --set arguments, PML loss and miner factory)
PAIR_LOSSES = {
    "contrastive": ([], lambda: (losses.ContrastiveLoss(), None)),
    "triplet": ([], lambda: (losses.TripletMarginLoss(), None)),
    "triplet-batch-hard": (["--set", "loss.mining=batch-hard"],
                           lambda: (losses.TripletMarginLoss(), miners.BatchHardMiner())),
    "triplet-semi-hard": (["--set", "loss.mining=semi-hard"],
                          lambda: (losses.TripletMarginLoss(),
                                   miners.TripletMarginMiner(type_of_triplets="semihard"))),
    "multi-similarity": ([], lambda: (losses.MultiSimilarityLoss(), None)),
    "multi-similarity-miner": (["--set", "loss.miner=multi-similarity"],
                               lambda: (losses.MultiSimilarityLoss(), miners.MultiSimilarityMiner())),
}


def kind_of(name):
    return "triplet" if name.startswith("triplet") else name.removesuffix("-miner")


def pml_pair_loss(name, x, labels):
    loss_fn, miner = PAIR_LOSSES[name][1]()
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    yt = torch.tensor(labels)
    mined = None if miner is None else miner(xt, yt)
    value, (grad,) = backward(loss_fn(xt, yt, mined), xt)
    return value, grad


def assert_grad_close(ours, ref, what):
    scale = max(np.abs(ref).max(), 1e-12)
    err = np.abs(ours - ref).max()
    assert err <= 1e-4 * scale + 1e-9, f"{what}: max error {err / scale:.2e} of the largest entry"


def check_pair_loss(tmp, name, x, labels):
    ours, grad = er.loss(tmp, kind_of(name), x, labels, *PAIR_LOSSES[name][0])
    ref, ref_grad = pml_pair_loss(name, x, labels)
    assert abs(ours - ref) <= 1e-5 * max(1.0, abs(ref)), (name, len(x), ours, ref)
    assert_grad_close(er.tangential(grad, x.astype(np.float64)), ref_grad, f"{name} N={len(x)}")
    return ours


def in_parallel(calls):
    """Runs the binary calls `calls` (thunks) on a thread pool while the caller computes PML's side;
    returns their futures. Each call starts a process, so the pool overlaps their start-up."""
    pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
    futures = [pool.submit(c) for c in calls]
    pool.shutdown(wait=False)
    return futures


def case_dirs(tmp, count):
    dirs = [tmp / str(k) for k in range(count)]
    for d in dirs:
        d.mkdir()
    return dirs


@pytest.mark.parametrize("name", PAIR_LOSSES)
def test_pair_and_triplet_losses_match_pml(tmp_path, name):
    batches = [batch(n, dim, classes, seed=1000 * k + n) for k, (n, dim, classes) in enumerate(CASES)]
    ours = in_parallel(
        lambda d=d, x=x, labels=labels: er.loss(d, kind_of(name), x, labels, *PAIR_LOSSES[name][0])
        for d, (x, labels) in zip(case_dirs(tmp_path, len(batches)), batches)
    )
    nonzero = 0
    for (x, labels), result in zip(batches, ours):
        ref, ref_grad = pml_pair_loss(name, x, labels)
        value, grad = result.result()
        assert abs(value - ref) <= 1e-5 * max(1.0, abs(ref)), (name, len(x), value, ref)
        assert_grad_close(er.tangential(grad, x), ref_grad, f"{name} N={len(x)}")
        nonzero += ref != 0.0
    assert nonzero >= 12, f"{name}: only {nonzero} batches with a loss"


def pml_proxy_loss(kind, x, labels, proxies):
    classes, dim = proxies.shape
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    if kind == "proxy-anchor":
        loss_fn = losses.ProxyAnchorLoss(classes, dim).double()
        loss_fn.proxies.data = torch.tensor(proxies.astype(np.float64))
        param, transpose = loss_fn.proxies, False
    else:
        loss_fn = losses.NormalizedSoftmaxLoss(classes, dim).double()
        loss_fn.W.data = torch.tensor(proxies.astype(np.float64).T.copy())  # PML keeps dim×C
        param, transpose = loss_fn.W, True
    value, (grad, pgrad) = backward(loss_fn(xt, torch.tensor(labels)), xt, param)
    return value, grad, pgrad.T if transpose else pgrad


@pytest.mark.parametrize("kind", ["proxy-anchor", "normalized-softmax"])
def test_proxy_losses_match_pml(tmp_path, kind):
    batches = []
    for k, (n, dim, classes) in enumerate(CASES):
        x, labels = batch(n, dim, classes, seed=2000 * k + n)
        c = max(classes, int(labels.max()) + 1) + k % 3  # some classes absent from the batch
        batches.append((x, labels, np.random.default_rng(k).normal(size=(c, dim)) * np.sqrt(2.0 / c)))
    results = in_parallel(
        lambda d=d, b=b: er.loss_with_proxies(d, kind, *b) for d, b in zip(case_dirs(tmp_path, len(batches)), batches)
    )
    for (x, labels, proxies), result in zip(batches, results):
        n = len(x)
        ref, ref_grad, ref_pgrad = pml_proxy_loss(kind, x, labels, proxies)
        ours, grad, pgrad = result.result()
        assert abs(ours - ref) <= 1e-5 * max(1.0, abs(ref)), (n, ours, ref)
        assert_grad_close(er.tangential(grad, x), ref_grad, f"{kind} N={n} embeddings")
        assert_grad_close(pgrad, ref_pgrad, f"{kind} N={n} proxies")


@pytest.mark.parametrize("name", ["contrastive", "triplet", "triplet-batch-hard", "multi-similarity-miner"])
def test_float32_path_matches_pml(tmp_path, name):
    for k, (n, dim, classes) in enumerate([(64, 32, 8), (200, 128, 25), (512, 512, 64)]):
        x, labels = batch(n, dim, classes, seed=3000 + k, dtype=np.float32)
        ours, grad = er.loss(tmp_path, kind_of(name), x, labels, *PAIR_LOSSES[name][0])
        ref, ref_grad = pml_pair_loss(name, x, labels)
        assert abs(ours - ref) <= 1e-4 * max(1.0, abs(ref)), (ours, ref)
        proj = er.tangential(grad, x.astype(np.float64))
        scale = np.abs(ref_grad).max()
        assert np.abs(proj - ref_grad).max() <= 2e-3 * scale, name


def test_batch_hard_ties_take_the_first_index(tmp_path):
    # Rows 2 and 3 duplicate row 1 (the same class as anchor 0); rows 5, 6 duplicate row 4.
    x, _ = batch(12, 6, 1, seed=7)
    x[2] = x[3] = x[1]
    x[6] = x[5] = x[4]
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 1, 0, 2])
    check_pair_loss(tmp_path, "triplet-batch-hard", x, labels)


def test_multi_similarity_one_mined_pair_each_is_zero_as_pml(tmp_path):
    # Anchor 0 mines one positive and one negative pair, the others none: PML returns 0.
    x = er.unit_rows(np.array([[1.0, 0.0], [0.8, 0.6], [0.9, -0.436]]))
    labels = np.array([0, 0, 1])
    assert check_pair_loss(tmp_path, "multi-similarity-miner", x, labels) == 0.0
    assert check_pair_loss(tmp_path, "multi-similarity", x, labels) > 0.0


@pytest.mark.parametrize("name,setting", [
    ("contrastive", "loss.pos_margin=0.1"), ("triplet", "loss.margin=0.06"),
    ("triplet-semi-hard", "loss.miner_margin=0.03"), ("multi-similarity", "loss.base=0.45"),
    ("multi-similarity-miner", "loss.epsilon=0.3"),
])
def test_a_different_setting_gives_a_different_loss(tmp_path, name, setting):
    # The comparisons above can fail: one setting off PML's default moves the loss past their
    # tolerance.
    x, labels = batch(128, 64, 16, seed=11)
    ours, _ = er.loss(tmp_path, kind_of(name), x, labels, *PAIR_LOSSES[name][0], "--set", setting)
    ref, _ = pml_pair_loss(name, x, labels)
    assert abs(ours - ref) > 1e-5 * max(1.0, abs(ref)), (name, setting, ours, ref)
