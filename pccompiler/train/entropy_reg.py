"""Entropy-regularised M-step: per sum node, the weights that maximise the
expected complete log-likelihood plus tau times their entropy, so EM on small
data keeps mixtures from collapsing onto one child."""

from __future__ import annotations

import torch



def _per_key_sum(values: torch.Tensor, key: torch.Tensor, num_keys: int) -> torch.Tensor:
    """[num_keys]: the sum of `values` over the entries of each key."""
    return torch.zeros(num_keys, dtype=values.dtype, device=values.device).index_add_(
        0, key, values)


def entropy_regularised(a: torch.Tensor, b: torch.Tensor, key: torch.Tensor, num_keys: int,
                        outer: int = 30, inner: int = 4) -> torch.Tensor:
    """Per node k, the maximiser of sum_j a_j log t_j + b_k H(t) over the
    simplex (j over the entries with key k; a >= 0 with a positive sum per
    node, b >= 0 per entry, equal within a node).

    Stationarity: a_j / t_j - b log t_j = c_k (one constant per node). For a
    given c each t_j follows from a few Newton steps on u = log t_j (the
    left side is convex and decreasing in u); c is found by Newton steps on
    sum_j t_j(c) = 1 (decreasing in c). b = 0 gives t = a / sum a."""
    a, b = a.double(), b.double()
    total = _per_key_sum(a, key, num_keys)
    u = torch.log((a / total[key]).clamp_min(1e-300)).clamp_min(-700.0)
    # c from the b = 0 solution, averaged per node
    cnt = _per_key_sum(torch.ones_like(a), key, num_keys)
    c_ent = a * torch.exp(-u) - b * u
    c = _per_key_sum(c_ent, key, num_keys)
    c = (c / cnt.clamp_min(1))[key]
    for _ in range(outer):
        for _ in range(inner):
            ae = a * torch.exp(-u)
            u = u + (ae - b * u - c) / (ae + b).clamp_min(1e-300)
            u = u.clamp(-700.0, 700.0)
        t = torch.exp(u)
        ae = a * torch.exp(-u)
        dt_dc = -t / (ae + b).clamp_min(1e-300)
        s = _per_key_sum(t, key, num_keys) - 1.0
        ds = _per_key_sum(dt_dc, key, num_keys)
        c = c - (s / ds.clamp_max(-1e-300))[key]
        if float(s.abs().max()) < 1e-12:
            break
    for _ in range(inner):
        ae = a * torch.exp(-u)
        u = (u + (ae - b * u - c) / (ae + b).clamp_min(1e-300)).clamp(-700.0, 700.0)
    t = torch.exp(u)
    norm = _per_key_sum(t, key, num_keys)
    return t / norm[key]


def apply_entropy_reg(circuit, tau: float, pseudocount: float) -> None:
    """Entropy regularisation of the next EM update (Liu & Van den Broeck's
    `entropy_reg`): per sum node and categorical input node, the M-step
    maximises sum_j n_j log t_j + b H(t) with n_j the expected counts plus
    the pseudocount spread over the node's parameters and b = tau * (the
    node's total flow + pseudocount): the node's expected count stands in for
    the authors' top-down reach probability times the data count (equal when
    the model's marginals match the data's). Works on any engine with the
    common flow buffers: the flows are rewritten so that the engine's own
    `em_update` (with the same pseudocount and any step size) lands on the
    regularised optimum. Nodes with an exactly-zero parameter (pass-throughs'
    identity blocks) and nodes without flow are left to plain EM. Call after
    the flows are accumulated (and softening restored), before em_update."""
    if not tau:
        return
    eng = circuit.engine
    idx = eng.index
    with torch.no_grad():
        for params, flows, key in ((eng.sum_params, eng.sum_param_flows, idx.sum_param_parent),
                                   (eng.input_params, eng.input_param_flows,
                                    idx.input_param_row)):
            sel = torch.nonzero(key >= 0).squeeze(1)
            if sel.numel() == 0:
                continue
            k = key[sel]
            nk = int(key.max()) + 1
            f = flows[sel].double()
            cnt = _per_key_sum(torch.ones_like(f), k, nk)
            tot = _per_key_sum(f, k, nk)
            zero = _per_key_sum((params.data[sel] <= 0).double(), k, nk)
            ok = ((cnt > 1) & (zero == 0) & (tot + pseudocount > 0))[k]
            if not bool(ok.any()):
                continue
            s2, k2 = sel[ok], k[ok]
            a = (f[ok] + pseudocount / cnt[k2]).clamp_min(0.0)
            b = tau * (tot[k2] + pseudocount)
            t = entropy_regularised(a, b, k2, nk)
            # em_update computes (f' + pc / n) / (sum f' + pc); with
            # f' = t (T + pc) - pc / n the sum stays T and the result is t.
            new = t * (tot[k2] + pseudocount) - pseudocount / cnt[k2]
            flows[s2] = new.to(flows.dtype)
