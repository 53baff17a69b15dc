"""Smooth-AP (Brown et al., ECCV 2020) in torch float64, for the oracle tests: autograd gives the
gradients, nothing is shared with embedrank's implementation.

- `official(x, temperature, classes)`: a literal transcription of the forward of the official
  `SmoothAP` module (Andrew-Brown1/Smooth_AP, `src/losses.py`), step by step, with its N×N×N
  difference tensors, its clamped sigmoid and its layout (rows sorted by class, `classes` groups
  of equal size), on the CPU instead of `.cuda()`. Each query ranks the whole batch, itself
  included, and counts itself as one of its positives.
- `paper(x, labels, temperature)`: the paper's formula, query by query: the rest of the batch is
  ranked, the positives are the other rows of the query's label, and the mean runs over the
  queries that have one (0 if none).

Both take the embeddings as given (no normalisation) and return a 0-d tensor.
"""

import torch


def clamped_sigmoid(t, temperature):
    """The official sigmoid: exp(−t/τ) with its exponent clamped to [−50, 50]."""
    exponent = torch.clamp(-t / temperature, min=-50, max=50)
    return 1.0 / (1.0 + torch.exp(exponent))


def official(x, temperature, classes):
    """The official forward on `x` (N×D, N = classes × samples per class, sorted by class)."""
    n, dim = x.shape
    assert n % classes == 0
    group = n // classes
    dtype = x.dtype

    # Ranks among the whole batch: every row j ≠ i of query q's scores, q's own score included.
    off_diag = (1.0 - torch.eye(n, dtype=dtype)).unsqueeze(0).repeat(n, 1, 1)
    scores = x @ x.t()
    tiled = scores.unsqueeze(1).repeat(1, n, 1)  # [q, i, j] = s_qj
    differences = tiled - tiled.permute(0, 2, 1)  # [q, i, j] = s_qj − s_qi
    rank_all = torch.sum(clamped_sigmoid(differences, temperature) * off_diag, dim=-1) + 1

    # Ranks among the query's own group (the query included), from per-group score blocks.
    blocks = x.view(classes, group, dim)
    group_off_diag = (1.0 - torch.eye(group, dtype=dtype)).unsqueeze(0).unsqueeze(0).repeat(classes, group, 1, 1)
    group_scores = torch.bmm(blocks, blocks.permute(0, 2, 1))
    group_tiled = group_scores.unsqueeze(2).repeat(1, 1, group, 1)  # [c, q, i, j] = s_qj
    group_differences = group_tiled - group_tiled.permute(0, 1, 3, 2)
    rank_pos = torch.sum(clamped_sigmoid(group_differences, temperature) * group_off_diag, dim=-1) + 1

    ap = torch.zeros(1, dtype=dtype)
    for c in range(classes):
        rows = slice(c * group, (c + 1) * group)
        ratio_sum = torch.sum(rank_pos[c] / rank_all[rows, rows])
        ap = ap + (ratio_sum / group) / n
    return (1 - ap)[0]


def paper(x, labels, temperature):
    """The paper's AP_q over the rest of the batch, averaged over queries with a positive."""
    n = x.shape[0]
    labels = [int(v) for v in labels]
    scores = x @ x.t()
    total, queries = torch.zeros((), dtype=x.dtype), 0
    for q in range(n):
        others = [j for j in range(n) if j != q]
        positives = [j for j in others if labels[j] == labels[q]]
        if not positives:
            continue
        ap_q = torch.zeros((), dtype=x.dtype)
        for i in positives:
            g = torch.sigmoid((scores[q] - scores[q, i]) / temperature)  # G(s_qj − s_qi) for every j
            above_pos = sum(g[j] for j in positives if j != i)
            above_all = sum(g[j] for j in others if j != i)
            ap_q = ap_q + (1 + above_pos) / (1 + above_all)
        total = total + ap_q / len(positives)
        queries += 1
    if queries == 0:
        return torch.zeros((), dtype=x.dtype)
    return 1 - total / queries


def with_gradient(fn, x, *args):
    """`fn(x, *args)` and d/dx by autograd, as (float, numpy array)."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    value = fn(t, *args)
    if not value.requires_grad:  # no query with a positive: a constant 0
        return float(value), torch.zeros_like(t).numpy()
    value.backward()
    return float(value.detach()), t.grad.numpy()
