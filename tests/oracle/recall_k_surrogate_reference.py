"""The Recall@k surrogate (Patel, Tolias, Matas, CVPR 2022) in torch float64, for the oracle tests:
autograd gives the gradients, nothing is shared with embedrank's implementation.

- `official(x, num_id, ...)`: a literal transcription of what the official trainer computes
  (yash0307/RecallatK_surrogate, `src/losses.py` `RecallatK.forward` for one query, summed over
  every query by `src/main.py`'s `train_one_epoch`, SiMix off). Like the official code it reads
  the classes from the batch layout: `num_id` classes of `N / num_id` consecutive rows. It ranks
  the whole batch for each query, the query's self-score included. Run on the CPU in float64
  (the official code is on CUDA in float32).
- `paper(x, labels, ...)`: the same surrogate with the paper's retrieval set, query by query: the
  rest of the batch is ranked, the positives are the other rows of the query's label (any
  layout), and the mean runs over the queries that have one.
- `official_simix(x, num_id, rand, ...)`: the trainer with `--mixup 1`: `src/mixup.py`'s
  `pos_mixup` (transcribed line by line, `np.random.rand()` replaced by the callable `rand` so the
  test chooses the coefficients), then the loss above summed over every row of the mixed batch.

Both return a 0-d tensor. Defaults are the official `src/main.py`'s.
"""

import torch

K_VALS = (1, 2, 4, 8, 16)  # --k_vals_train
K_TEMPERATURES = (1, 2, 4, 8, 16)  # --k_temperatures
ANNEAL = 0.01  # --sigmoid_temperature


def sigmoid(tensor, temp=1.0):
    """The official `sigmoid`: exp(−t/temp) with its exponent clamped to [−50, 50]."""
    exponent = -tensor / temp
    exponent = torch.clamp(exponent, min=-50, max=50)
    return 1.0 / (1.0 + torch.exp(exponent))


def official_query(preds, q_id, num_id, k_vals, k_temperatures, anneal):
    """`RecallatK.forward(preds, q_id)`, line by line (`.cuda()` dropped, float64)."""
    dtype = preds.dtype
    batch_size = preds.shape[0]
    samples_per_class = int(batch_size / num_id)
    norm_vals = torch.tensor([min(k, (samples_per_class - 1)) for k in k_vals], dtype=dtype)
    group_num = int(q_id / samples_per_class)

    sim_all = (preds[q_id] * preds).sum(1)
    sim_all_g = sim_all.view(num_id, int(batch_size / num_id))
    sim_diff_all = sim_all.unsqueeze(-1) - sim_all_g[group_num, :].unsqueeze(0).repeat(batch_size, 1)
    sim_sg = sigmoid(sim_diff_all, temp=anneal)
    for i in range(samples_per_class):
        sim_sg[group_num * samples_per_class + i, i] = 0.0
    sim_all_rk = (1.0 + torch.sum(sim_sg, dim=0)).unsqueeze(dim=0)

    sim_all_rk[:, q_id % samples_per_class] = 0.0
    sim_all_rk = sim_all_rk.unsqueeze(dim=-1).repeat(1, 1, len(k_vals))
    k_tensor = torch.tensor(k_vals, dtype=dtype)
    k_tensor = k_tensor.unsqueeze(dim=0).unsqueeze(dim=0).repeat(1, samples_per_class, 1)
    sim_all_rk = k_tensor - sim_all_rk
    for given_k in range(0, len(k_vals)):
        sim_all_rk[:, :, given_k] = sigmoid(sim_all_rk[:, :, given_k], temp=float(k_temperatures[given_k]))

    sim_all_rk[:, q_id % samples_per_class, :] = 0.0
    k_vals_loss = torch.tensor(k_vals, dtype=dtype)
    k_vals_loss = k_vals_loss.unsqueeze(dim=0)
    recall = torch.sum(sim_all_rk, dim=1)
    recall = torch.minimum(recall, k_vals_loss)
    recall = torch.sum(recall, dim=0)
    recall = torch.div(recall, norm_vals)
    recall = torch.sum(recall) / len(k_vals)
    return (1.0 - recall) / batch_size


def official(x, num_id, k_vals=K_VALS, k_temperatures=K_TEMPERATURES, anneal=ANNEAL):
    """The trainer's loss on a class-sorted batch of `num_id` equal groups: the sum over queries."""
    batch_size = x.shape[0]
    assert batch_size % num_id == 0
    k_vals = [min(batch_size, k) for k in k_vals]  # RecallatK.__init__
    loss = 0.0
    for q in range(0, batch_size):
        loss += official_query(x, q, num_id, k_vals, k_temperatures, anneal)
    return loss


def pos_mixup(tensor, num_id, rand):
    """`src/mixup.py` `pos_mixup`: after each class group, one row `α·x_a + (1 − α)·x_b` per pair of
    the group, in the official order (groups of 3, 4 or 6 rows only, as there)."""
    order = {
        6: [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 2), (0, 3), (0, 4), (0, 5), (1, 3), (1, 4), (1, 5),
            (2, 4), (2, 5), (3, 5)],
        4: [(0, 1), (1, 2), (2, 3), (0, 3), (0, 2), (1, 3)],
        3: [(0, 1), (1, 2), (0, 2)],
    }
    batch_size = tensor.shape[0]
    num_pos = int(batch_size / num_id)
    fakes = []
    for i in range(0, batch_size, num_pos):
        # The official code spells each pair out (fake_1, fake_2, ...) in this order.
        for a, b in order[num_pos]:
            alpha = rand()
            fakes.append(torch.unsqueeze(alpha * tensor[i + a, :] + (1.0 - alpha) * tensor[i + b, :], 0))
    tensor_fake = torch.cat(fakes, dim=0)
    ind = num_pos
    num_fakes = len(order[num_pos])
    for i in range(0, tensor_fake.shape[0], num_fakes):
        tensor = torch.cat((tensor[:ind, :], tensor_fake[i:i + num_fakes, :], tensor[ind:, :]), dim=0)
        ind += num_pos + num_fakes
    return tensor


def official_simix(x, num_id, rand, k_vals=K_VALS, k_temperatures=K_TEMPERATURES, anneal=ANNEAL):
    """The trainer with `--mixup 1`: the loss of the mixed batch only, summed over all its rows;
    `RecallatK.__init__` lowered k to the original batch size (`opt.bs`)."""
    k_vals = [min(x.shape[0], k) for k in k_vals]
    output_mixup = pos_mixup(x, num_id, rand)
    loss = 0.0
    for q in range(0, output_mixup.shape[0]):
        loss += official_query(output_mixup, q, num_id, k_vals, k_temperatures, anneal)
    return loss


def paper(x, labels, k_vals=K_VALS, k_temperatures=K_TEMPERATURES, anneal=ANNEAL):
    """The surrogate with the paper's retrieval set (the rest of the batch), query by query."""
    n = x.shape[0]
    labels = [int(v) for v in labels]
    scores = x @ x.t()
    total, queries = torch.zeros((), dtype=x.dtype), 0
    for q in range(n):
        others = [j for j in range(n) if j != q]
        positives = [i for i in others if labels[i] == labels[q]]
        if not positives:
            continue
        zero = torch.zeros((), dtype=x.dtype)
        ranks = [1 + sum((torch.sigmoid((scores[q, j] - scores[q, i]) / anneal) for j in others if j != i), zero)
                 for i in positives]
        recall = torch.zeros((), dtype=x.dtype)
        for k, tau_k in zip(k_vals, k_temperatures):
            k = min(k, n)
            count = sum(torch.sigmoid((k - r) / tau_k) for r in ranks)
            recall = recall + torch.clamp(count, max=k) / min(k, len(positives))
        total = total + 1 - recall / len(k_vals)
        queries += 1
    return total / queries if queries else torch.zeros((), dtype=x.dtype)


def with_gradient(fn, x, *args, **kwargs):
    """`fn(x, *args, **kwargs)` and d/dx by autograd, as (float, numpy array)."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    value = fn(t, *args, **kwargs)
    if not value.requires_grad:  # nothing active: a constant
        return float(value), torch.zeros_like(t).numpy()
    value.backward()
    return float(value.detach()), t.grad.numpy()
