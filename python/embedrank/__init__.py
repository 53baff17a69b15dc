"""embedrank: exact retrieval evaluation and exact rank losses from a Rust core.

- `AccuracyCalculator`: a drop-in for PML 2.9's, exact and fast (numpy only, no torch needed);
- `knn`: exact k-nearest-neighbour search with a documented tie rule;
- losses as `torch.nn.Module`s (imported on first use, so evaluation works without torch):
  `FastAPLoss`, `FAPPYLoss`, `SmoothAPLoss`, `RoadmapLoss`, `RecallKSurrogateLoss`, `ContrastiveLoss`,
  `TripletMarginLoss`, `MultiSimilarityLoss`, `ProxyAnchorLoss`, `NormalizedSoftmaxLoss`, and `CoreLoss` for any loss by name.
"""

from ._core import __version__
from .evaluation import AccuracyCalculator, knn

_LOSSES = (
    "CoreLoss",
    "FastAPLoss",
    "FAPPYLoss",
    "SmoothAPLoss",
    "RoadmapLoss",
    "RecallKSurrogateLoss",
    "ContrastiveLoss",
    "TripletMarginLoss",
    "MultiSimilarityLoss",
    "ProxyAnchorLoss",
    "NormalizedSoftmaxLoss",
)

__all__ = ["AccuracyCalculator", "knn", "__version__", *_LOSSES]


def __getattr__(name):
    if name in _LOSSES:
        try:
            from . import losses
        except ModuleNotFoundError as e:
            if e.name != "torch":
                raise
            raise ImportError(f"embedrank.{name} is a torch.nn.Module: install torch to use the losses "
                              "(evaluation and knn need numpy only)") from e
        return getattr(losses, name)
    raise AttributeError(f"module 'embedrank' has no attribute {name!r}")
