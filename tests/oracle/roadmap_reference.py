"""ROADMAP (Ramzi et al., NeurIPS 2021) in torch float64, for the oracle tests: autograd gives the
gradients, nothing is shared with embedrank's implementation.

- `official(x, labels, ...)`: a literal transcription of what the official trainer computes
  (elias-ramzi/ROADMAP at its last commit, config `loss=roadmap`): `scores = x·xᵀ` and the label
  matrix go through `SupAP` (`roadmap/losses/smooth_rank_ap.py`: `step_rank` as the rank
  approximation inside `SmoothRankAP.quick_forward`, with its N×N×N tensors and its masked
  in-place assignments; its `torch.heaviside` among positives is applied to a detached copy,
  since torch implements no derivative for it: the step's gradient, 0), the embeddings through `CalibrationLoss` (`calibration_loss.py`: PML's
  `ContrastiveLoss` on `DotProductSimilarity`, all pairs, `AvgNonZeroReducer` on each part,
  the parts summed), and the trainer (`engine/base_update.py`) sums `weight · loss`. The
  calibration part is written out step by step as PML 2.9 computes it, on the rows as given
  (PML's similarity normalises them first: on unit rows that is the identity, and
  `test_roadmap_reference.py` checks the transcription against PML itself there).
- `paper(x, labels, ...)`: the same rank approximation and calibration with the paper's
  retrieval set, query by query: the rest of the batch is ranked, the positives are the other
  rows of the query's label, and the AP mean runs over the queries that have one.

Both return a 0-d tensor.
"""

import torch

DEFAULTS = dict(tau=0.01, rho=100.0, offset=1.44, delta=0.05, start=0.5, pos_margin=0.9, neg_margin=0.6,
                ap_weight=1.0, calibration_weight=1.0)


def tau_sigmoid(tensor, tau):
    """The official temperature sigmoid: exp(−t/τ) with its exponent clamped to [−50, 50]."""
    exponent = (-tensor / tau).clamp(-50, 50)
    return 1.0 / (1.0 + exponent.exp())


def label_matrix(labels):
    """`create_label_matrix`: [a, b] = 1 where the labels (or, for a matrix, the rows' entries) agree."""
    if labels.ndim == 1:
        return (labels.view(-1, 1) == labels.view(1, -1)).to(torch.float64)
    size = labels.size(0)
    return (labels.view(size, size, 1) == labels.view(size, 1, size)).to(torch.float64)


def step_rank(tens, target, tau, rho, offset, delta, start):
    """The official `step_rank` (quick path): H⁻ on the negatives, the Heaviside among positives."""
    tens = tens.clone()
    mask = target.unsqueeze(target.ndim - 1).bool()  # [q, ·, j] = j is a positive of q
    target = label_matrix(target).bool() & mask  # [q, i, j]: i and j both positives of q
    pos_mask = tens > 0
    neg_mask = ~pos_mask
    margin_mask = tens > delta
    low = ~target & pos_mask & ~margin_mask
    high = ~target & pos_mask & margin_mask
    tens[low] = start + tau_sigmoid(tens[low], tau)
    tens[high] = rho * (tens[high] - delta) + offset
    tens[~target & neg_mask] = tau_sigmoid(tens[~target & neg_mask], tau)
    # torch has no derivative for heaviside (autograd raises); a step's is 0 off its jump.
    tens[target] = torch.heaviside(tens[target].detach(), torch.tensor(1.0, dtype=tens.dtype))
    return tens


def sup_ap_quick_forward(scores, target, tau, rho, offset, delta, start):
    """`SmoothRankAP.quick_forward` with `step_rank`, then `1 − ap.mean()` (return type 1-mAP)."""
    n = target.size(0)
    mask = 1.0 - torch.eye(n, dtype=scores.dtype).unsqueeze(0)
    sim_diff = scores.unsqueeze(1) - scores.unsqueeze(1).permute(0, 2, 1)  # [q, i, j] = s_qj − s_qi
    sim_diff_sigmoid = step_rank(sim_diff, target, tau, rho, offset, delta, start)
    sim_all_rk = torch.sum(sim_diff_sigmoid * mask, dim=-1) + 1
    pos_mask = target - torch.eye(n, dtype=scores.dtype)  # broadcast as [·, i, j]
    sim_pos_rk = (torch.sum(sim_diff_sigmoid * pos_mask, dim=-1) + target) * target
    ap = (sim_pos_rk / sim_all_rk).sum(1) * (1 / target.sum(1))
    return 1 - ap.mean()


def calibration(x, labels, pos_margin, neg_margin):
    """PML 2.9 `ContrastiveLoss` with a dot-product similarity on the rows as given."""
    mat = x @ x.t()
    matches = labels.view(-1, 1) == labels.view(1, -1)
    diffs = ~matches
    matches.fill_diagonal_(False)
    a1, p = torch.where(matches)  # every ordered positive pair
    a2, n = torch.where(diffs)  # every ordered negative pair
    total = torch.zeros((), dtype=x.dtype)
    for dists, hinge in ((mat[a1, p], lambda d: pos_margin - d), (mat[a2, n], lambda d: d - neg_margin)):
        if len(dists) == 0:
            continue
        losses = torch.relu(hinge(dists))
        nonzero = losses > 0  # AvgNonZeroReducer
        if nonzero.sum() > 0:
            total = total + losses[nonzero].mean()
        else:
            total = total + losses.sum() * 0
    return total


def official(x, labels, tau=0.01, rho=100.0, offset=1.44, delta=0.05, start=0.5, pos_margin=0.9,
             neg_margin=0.6, ap_weight=1.0, calibration_weight=1.0):
    """The official trainer's loss on a batch: calibration and SupAP, weighted and summed."""
    labels = torch.as_tensor(labels)
    scores = x @ x.t()
    target = label_matrix(labels)
    sup_ap = sup_ap_quick_forward(scores, target, tau, rho, offset, delta, start)
    return calibration_weight * calibration(x, labels, pos_margin, neg_margin) + ap_weight * sup_ap


def h_neg(d, tau, rho, offset, delta, start):
    """H⁻ of one difference, branch by branch (x = 0 and x = δ belong to the left branch)."""
    if d > delta:
        return rho * (d - delta) + offset
    if d > 0:
        return start + tau_sigmoid(d, tau)
    return tau_sigmoid(d, tau)


def paper(x, labels, tau=0.01, rho=100.0, offset=1.44, delta=0.05, start=0.5, pos_margin=0.9,
          neg_margin=0.6, ap_weight=1.0, calibration_weight=1.0):
    """The paper's retrieval set, query by query, plus the same calibration."""
    n = x.shape[0]
    labels_list = [int(v) for v in labels]
    scores = x @ x.t()
    total, queries = torch.zeros((), dtype=x.dtype), 0
    for q in range(n):
        others = [j for j in range(n) if j != q]
        positives = [j for j in others if labels_list[j] == labels_list[q]]
        if not positives:
            continue
        negatives = [j for j in others if labels_list[j] != labels_list[q]]
        ap_q = torch.zeros((), dtype=x.dtype)
        for i in positives:
            rank_pos = 1 + sum(1 for j in positives if j != i and scores[q, j] >= scores[q, i])
            rank_neg = sum((h_neg(scores[q, j] - scores[q, i], tau, rho, offset, delta, start) for j in negatives),
                           torch.zeros((), dtype=x.dtype))
            ap_q = ap_q + rank_pos / (rank_pos + rank_neg)
        total = total + ap_q / len(positives)
        queries += 1
    sup_ap = 1 - total / queries if queries else torch.zeros((), dtype=x.dtype)
    cal = calibration(x, torch.as_tensor(labels), pos_margin, neg_margin)
    return calibration_weight * cal + ap_weight * sup_ap


def with_gradient(fn, x, *args, **kwargs):
    """`fn(x, *args, **kwargs)` and d/dx by autograd, as (float, numpy array)."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    value = fn(t, *args, **kwargs)
    if not value.requires_grad:  # nothing active: a constant
        return float(value), torch.zeros_like(t).numpy()
    value.backward()
    return float(value.detach()), t.grad.numpy()
