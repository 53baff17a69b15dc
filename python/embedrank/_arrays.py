"""Turning what users pass (numpy arrays, torch tensors on any device, lists) into the
C-contiguous, aligned numpy arrays whose addresses the extension reads without a copy."""

import numpy as np


def _from_torch(x):
    """A torch tensor as a numpy array on the host (a copy only where needed)."""
    import torch  # already imported: x is a tensor

    x = x.detach()
    if x.device.type != "cpu":
        x = x.cpu()
    if x.dtype.is_floating_point and x.dtype not in (torch.float32, torch.float64):
        x = x.float()  # float16 / bfloat16 (numpy has no bfloat16); the core computes in float32
    return x.numpy()


def _host(x):
    if type(x).__module__.startswith("torch") and hasattr(x, "detach"):
        return _from_torch(x)
    return np.asarray(x)


def _aligned(a):
    return a if a.flags.aligned else a.copy()


def matrix(x, name, dtype=np.float32):
    """`x` as a C-contiguous `rows × dim` array of `dtype`; 1-D input is one column."""
    a = _host(x)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows × dim), got shape {tuple(a.shape)}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must hold numbers, got dtype {a.dtype}")
    return _aligned(np.ascontiguousarray(a, dtype=dtype))


def labels(y, name, rows):
    """`y` as a C-contiguous int64 vector of `rows` labels (integer-valued floats accepted, as PML
    turns labels into floats)."""
    a = _host(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(
            f"{name} must be one label per row (1-D), got shape {tuple(a.shape)}; "
            "multi-column labels need a custom label_comparison_fn, which embedrank does not support"
        )
    if len(a) != rows:
        raise ValueError(f"{name} has {len(a)} labels for {rows} embeddings")
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name}[{i}] = {a[i]} is not a whole number; labels must be integers")
    elif not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"{name} must be integers, got dtype {a.dtype}")
    return _aligned(np.ascontiguousarray(a, dtype=np.int64))


def address(a):
    """The address of `a`'s first value (arrays from `matrix` / `labels` only)."""
    return a.ctypes.data
