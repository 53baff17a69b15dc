"""A direct, literal transcription of the official FAPPY Caffe layer's loops (REFERENCE §2).

Plain Python loops over levels, anchors, pairs and nodes, on purpose: no prefix sums, no
vectorisation, nothing shared with embedrank's implementation. Returns the loss and
d loss / d embeddings (through s_ij = x_i·x_j) for both weightings:
- "reference": the Caffe layer's running total, divided by each level's positive-pair count and
  halved after each level (coarse to fine), so coarse levels end up divided by the counts of all
  finer levels too; a level without positive pairs divides by 1;
- "halving": the paper's intent, sum of ½, ¼, … (finest first) times each level's mean;
- "finest": the finest level's mean L_δ alone (for checks of the two above).
"""

import math

import numpy as np


def levels(delta):
    """The reference loop `for (d = 2; d >= delta; d /= 2)`."""
    out, d = [], 2.0
    while d >= delta:
        out.append(d)
        d /= 2.0
    return out


def node_split(s, d):
    """Left node c and the weights (on c, on c+1) of similarity s on the grid t_m = -1 + m*d."""
    cells = int(round(2.0 / d))
    c = min(int(math.floor((s + 1.0) / d)), cells - 1)
    t_c = -1.0 + c * d
    t_c1 = -1.0 + (c + 1) * d
    return c, (t_c1 - s) / d, (s - t_c) / d


def fappy(x, labels, delta=1e-4, weighting="reference"):
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    sim = [[min(max(float(np.dot(x[i], x[j])), -1.0), 1.0) for j in range(n)] for i in range(n)]
    lv = levels(delta)
    total_loss = 0.0
    total_diff = [[0.0] * n for _ in range(n)]  # d loss / d s_ij, per ordered pair
    for li, d in enumerate(lv):
        nodes = int(round(2.0 / d)) + 1
        # Histograms of each anchor's negatives, normalised by their count.
        hist = []
        for a in range(n):
            h = [0.0] * nodes
            negs = [k for k in range(n) if labels[k] != labels[a]]
            for k in negs:
                c, wl, wr = node_split(sim[a][k], d)
                h[c] += wl / len(negs)
                h[c + 1] += wr / len(negs)
            hist.append(h)
        level_sum = 0.0
        level_diff = [[0.0] * n for _ in range(n)]
        pairs = 0
        for i in range(n):
            for j in range(i + 1, n):
                if labels[i] != labels[j]:
                    continue
                s = sim[i][j]
                if s > 1.0 - d:
                    continue
                pairs += 1
                b, A, B = node_split(s, d)
                for a in (i, j):
                    h = hist[a]
                    fpp = 0.0
                    for m in range(b, nodes):
                        fpp += A * h[m]
                    for m in range(b + 1, nodes):
                        fpp += B * h[m]
                    level_sum += fpp
                    # d FPP / d s_ij through the interpolation weights.
                    level_diff[i][j] += -h[b] / d
                    # d FPP / d s_ak for every negative k of the anchor.
                    negs = [k for k in range(n) if labels[k] != labels[a]]
                    for k in negs:
                        c, _, _ = node_split(sim[a][k], d)
                        for m, sign in ((c, -1.0), (c + 1, 1.0)):
                            if m < b:
                                g = 0.0
                            elif m == b:
                                g = A
                            else:
                                g = A + B
                            level_diff[a][k] += sign * g / (d * len(negs))
        if weighting == "reference":
            divisor = pairs if pairs > 0 else 1
            total_loss = 0.5 * (total_loss + level_sum) / divisor
            for p in range(n):
                for q in range(n):
                    total_diff[p][q] = 0.5 * (total_diff[p][q] + level_diff[p][q]) / divisor
        else:
            if weighting == "finest":
                weight = 1.0 if li == len(lv) - 1 else 0.0
            else:
                weight = 0.5 ** (len(lv) - li)
            if pairs > 0:
                total_loss += weight * level_sum / pairs
                for p in range(n):
                    for q in range(n):
                        total_diff[p][q] += weight * level_diff[p][q] / pairs
    grad = np.zeros_like(x)
    for p in range(n):
        for q in range(n):
            if p == q:
                continue
            s_raw = float(np.dot(x[p], x[q]))
            if -1.0 <= s_raw < 1.0:  # the clamp passes gradient
                grad[p] += total_diff[p][q] * x[q]
                grad[q] += total_diff[p][q] * x[p]
    return total_loss, grad
