"""embedrank's losses as `torch.nn.Module`s with PML's call convention, `loss(embeddings, labels)`.

Each module L2-normalises the embeddings (as PML's losses do by default, with
`torch.nn.functional.normalize`'s definition), computes the loss and its exact analytic gradient
w.r.t. the raw embeddings, normalisation included, in the core on the host; a
`torch.autograd.Function` hands that gradient back to autograd. Tensors on any device work: the normalised embeddings are
copied to the host and the gradient back to their device (a round trip per call). float64 inputs
are computed in float64 throughout (so `torch.autograd.gradcheck` works); other dtypes in float32.
The proxy losses keep their parameters under PML's names (`proxies`, `W`), so a state dict moves
between the two.
"""

import json

import numpy as np
import torch

from . import _arrays, _core


def _host(t, dtype):
    """`t` on the host as a C-contiguous numpy array of `dtype` (torch.float32 or torch.float64)."""
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    return _arrays.matrix(t.detach().to("cpu", dtype), "embeddings", dtype=np_dtype)


class _CoreLossFunction(torch.autograd.Function):
    """The core's loss with its exact gradients (embeddings and, if any, the loss's parameters)."""

    @staticmethod
    def forward(ctx, config, embeddings, labels, params):
        double = embeddings.dtype == torch.float64
        host = torch.float64 if double else torch.float32
        e = _host(embeddings, host)
        p = _host(params, host) if params is not None else np.zeros((0, e.shape[1]), dtype=e.dtype)
        # The core L2-normalises the rows (F.normalize's definition) and returns the gradient
        # w.r.t. the raw embeddings: no normalise layer and backward in torch.
        loss, grad, param_grad = _core.loss(
            config, _arrays.address(e), e.shape[0], e.shape[1], _arrays.address(labels),
            _arrays.address(p), p.shape[0], double, True,
        )
        dt = np.float64 if double else np.float32
        ctx.grad = torch.from_numpy(np.frombuffer(grad, dtype=dt).reshape(e.shape)).to(
            embeddings.device, embeddings.dtype)
        ctx.param_grad = None
        if params is not None:
            ctx.param_grad = torch.from_numpy(np.frombuffer(param_grad, dtype=dt).reshape(p.shape)).to(
                params.device, params.dtype)
        return torch.tensor(loss, dtype=embeddings.dtype, device=embeddings.device)

    @staticmethod
    def backward(ctx, grad_output):
        param_grad = None if ctx.param_grad is None else ctx.param_grad * grad_output
        return None, ctx.grad * grad_output, None, param_grad


class CoreLoss(torch.nn.Module):
    """Any loss of embedrank's core by its `[loss]` settings, e.g.
    `CoreLoss("multi-similarity", alpha=2.0)`; the named classes below are the usual way in."""

    def __init__(self, kind, num_classes=None, embedding_size=None, **settings):
        super().__init__()
        if kind not in _core.loss_kinds():
            raise ValueError(f"unknown loss {kind!r}; embedrank has {', '.join(_core.loss_kinds())}")
        self.kind = kind
        self._config = json.dumps({"kind": kind, **settings})
        spec = _core.loss_parameters(self._config, embedding_size or 1, num_classes or 1)
        self._param_name = None
        if spec is not None:
            if num_classes is None or embedding_size is None:
                raise ValueError(f"{kind} has one trainable row per class: give num_classes and embedding_size")
            rows, cols, init, name = spec
            weight = torch.empty(rows, cols)
            if init == "kaiming_normal_fan_out":
                torch.nn.init.kaiming_normal_(weight, mode="fan_out")
            else:
                torch.nn.init.normal_(weight)
            self._param_name = name
            self._register(weight)

    def _register(self, weight):
        """Stores the `classes × dim` rows as this loss's parameter (PML's name and layout)."""
        self.proxies = torch.nn.Parameter(weight)

    def _rows(self):
        """The parameter as `classes × dim` rows for the core (None without parameters)."""
        return self.proxies if self._param_name is not None else None

    def forward(self, embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None):
        """The loss of `embeddings` (`N × dim`, any device and float dtype) with `labels` (`N`)."""
        if indices_tuple is not None or ref_emb is not None or ref_labels is not None:
            raise ValueError(
                "indices_tuple / ref_emb / ref_labels are not supported: embedrank mines inside the loss "
                "(e.g. TripletMarginLoss(mining='batch-hard'), MultiSimilarityLoss(miner=True))"
            )
        if embeddings.dim() != 2:
            raise ValueError(f"embeddings must be N × dim, got shape {tuple(embeddings.shape)}")
        if not embeddings.dtype.is_floating_point:
            raise ValueError(f"embeddings must be floating point, got {embeddings.dtype}")
        y = _arrays.labels(labels, "labels", embeddings.shape[0])
        return _CoreLossFunction.apply(self._config, embeddings, y, self._rows())

    def extra_repr(self):
        return self._config


class FastAPLoss(CoreLoss):
    """FastAP (Cakir et al., CVPR 2019), equal to PML's `FastAPLoss(num_bins)`."""

    def __init__(self, num_bins=10):
        super().__init__("fastap", bins=num_bins)


class FAPPYLoss(CoreLoss):
    """FAPPY (Zhong et al., ICONIP 2017): `delta` the histogram bin width, `weighting` "halving"
    (the paper) or "reference" (the official code)."""

    def __init__(self, delta=1e-4, weighting="halving"):
        super().__init__("fappy", delta=delta, weighting=weighting)


class SmoothAPLoss(CoreLoss):
    """Smooth-AP (Brown et al., ECCV 2020): `variant="paper"` (any batch) or `"reference"` (the
    official code: the query ranks itself too; class-sorted batches of equal-size classes)."""

    def __init__(self, temperature=0.01, variant="paper"):
        super().__init__("smooth-ap", temperature=temperature, variant=variant)


class RoadmapLoss(CoreLoss):
    """ROADMAP (Ramzi et al., NeurIPS 2021): SupAP + calibration with the official configs'
    defaults; `variant="paper"` (the query ranks the rest of the batch) or `"reference"` (the
    official code); any `[loss]` key of `roadmap` as a keyword (e.g. `rho=100.0`)."""

    def __init__(self, variant="paper", **settings):
        super().__init__("roadmap", variant=variant, **settings)


class RecallKSurrogateLoss(CoreLoss):
    """The Recall@k surrogate (Patel et al., CVPR 2022) with the official code's defaults (k 1–16,
    τ_k = k, rank temperature 0.01); `variant="paper"` (the query ranks the rest of the batch) or
    `"reference"` (the official code: its self-score takes part); any `[loss]` key of
    `recall-k-surrogate` as a keyword (e.g. `k=[1, 4]`, `k_temperatures=[1.0, 4.0]`, SiMix with
    `simix=True`, `simix_seed=0`)."""

    def __init__(self, variant="paper", **settings):
        super().__init__("recall-k-surrogate", variant=variant, **settings)


class ContrastiveLoss(CoreLoss):
    """PML's `ContrastiveLoss` (Euclidean distance, AvgNonZero reduction)."""

    def __init__(self, pos_margin=0.0, neg_margin=1.0):
        super().__init__("contrastive", pos_margin=pos_margin, neg_margin=neg_margin)


class TripletMarginLoss(CoreLoss):
    """PML's `TripletMarginLoss` over all triplets of the batch; `mining="batch-hard"` equals it
    with PML's `BatchHardMiner`, `"semi-hard"` with `TripletMarginMiner(type_of_triplets="semihard",
    margin=miner_margin)`. It never builds an N³ tensor."""

    def __init__(self, margin=0.05, mining="all", miner_margin=0.2):
        super().__init__("triplet", margin=margin, mining=mining, miner_margin=miner_margin)


class MultiSimilarityLoss(CoreLoss):
    """PML's `MultiSimilarityLoss`; `miner=True` equals it with PML's `MultiSimilarityMiner(epsilon)`."""

    def __init__(self, alpha=2.0, beta=50.0, base=0.5, miner=False, epsilon=0.1):
        super().__init__("multi-similarity", alpha=alpha, beta=beta, base=base,
                         miner="multi-similarity" if miner else "none", epsilon=epsilon)


class ProxyAnchorLoss(CoreLoss):
    """PML's `ProxyAnchorLoss(num_classes, embedding_size, margin, alpha)`: `proxies` is the
    trainable `num_classes × embedding_size` parameter (give it its own optimiser or learning rate,
    as PML's docs advise); labels must be in `0..num_classes-1`."""

    def __init__(self, num_classes, embedding_size, margin=0.1, alpha=32):
        super().__init__("proxy-anchor", num_classes, embedding_size, margin=margin, alpha=alpha)


class NormalizedSoftmaxLoss(CoreLoss):
    """PML's `NormalizedSoftmaxLoss(num_classes, embedding_size, temperature)`: `W` is the
    trainable `embedding_size × num_classes` parameter (PML's layout); labels in `0..num_classes-1`."""

    def __init__(self, num_classes, embedding_size, temperature=0.05):
        super().__init__("normalized-softmax", num_classes, embedding_size, temperature=temperature)

    def _register(self, weight):
        self.W = torch.nn.Parameter(weight.t().contiguous())

    def _rows(self):
        return self.W.t()
