"""Entropy regularisation of the EM M-step (pccompiler.train.
apply_entropy_reg): the per-node solver against a brute-force grid search
over the simplex, b = 0 is the plain M-step, and the flow rewrite makes the
engine's own em_update land on the regularised optimum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.train import apply_entropy_reg, entropy_regularised, train_em


def _objective(t: np.ndarray, a: np.ndarray, b: float) -> np.ndarray:
    return (a * np.log(t)).sum(-1) - b * (t * np.log(t)).sum(-1)


def _solve(a, b) -> np.ndarray:
    a = torch.tensor(a, dtype=torch.float64)
    n = len(a)
    return entropy_regularised(a, torch.full((n,), float(b), dtype=torch.float64),
                               torch.zeros(n, dtype=torch.long), 1).numpy()


@pytest.mark.parametrize("a,b", [([5.0, 1.0, 0.05], 2.0), ([100.0, 3.0, 0.1], 50.0),
                                 ([0.3, 7.0, 2.0], 0.7), ([1.0, 1.0, 1.0], 3.0)])
def test_one_node_against_grid_search(a, b):
    a = np.array(a)
    g = np.linspace(1e-4, 1 - 1e-4, 1201)
    t1, t2 = np.meshgrid(g, g, indexing="ij")
    keep = 1 - t1 - t2 > 1e-6
    grid = np.stack([t1[keep], t2[keep], (1 - t1 - t2)[keep]], axis=1)
    values = _objective(grid, a, b)
    t = _solve(a, b)
    assert t.sum() == pytest.approx(1.0, abs=1e-12) and np.all(t > 0)
    assert _objective(t, a, b) >= values.max() - 1e-9             # at least as good as the grid
    np.testing.assert_allclose(t, grid[np.argmax(values)], atol=2e-3)
    # stationarity: a_j / t_j - b log t_j is one constant
    c = a / t - b * np.log(t)
    assert np.ptp(c) < 1e-6 * max(1.0, np.abs(c).max())


def test_zero_strength_is_the_plain_m_step_and_nodes_are_independent():
    a = torch.tensor([3.0, 1.0, 2.0, 2.0, 6.0], dtype=torch.float64)
    key = torch.tensor([0, 0, 1, 1, 1])
    b = torch.tensor([0.0, 0.0, 1.5, 1.5, 1.5], dtype=torch.float64)
    t = entropy_regularised(a, b, key, 2)
    np.testing.assert_allclose(t[:2].numpy(), [0.75, 0.25], atol=1e-12)
    np.testing.assert_allclose(t[2:].numpy(), _solve([2.0, 2.0, 6.0], 1.5), atol=1e-12)
    # more entropy than the unregularised estimate
    p = np.array([0.2, 0.2, 0.6])
    assert -(t[2:].numpy() * np.log(t[2:].numpy())).sum() > -(p * np.log(p)).sum()


def test_em_update_lands_on_the_regularised_optimum():
    data = np.random.default_rng(0).integers(0, 2, (64, 5))
    circuit = pc.compile(pc.lower(pc.hclt(data, 3, 2, dtype=np.float64, seed=1)),
                         backend="torch", device="cpu", dtype="float64")
    eng, tau, pcount = circuit.engine, 0.05, 0.1
    circuit.zero_flows()
    circuit.accumulate_flows(data)
    key = eng.index.sum_param_parent
    sel = torch.nonzero(key >= 0).squeeze(1)
    k = key[sel]
    nk = int(key.max()) + 1
    f = eng.sum_param_flows[sel].clone()
    cnt = torch.zeros(nk, dtype=f.dtype).index_add_(0, k, torch.ones_like(f))
    tot = torch.zeros(nk, dtype=f.dtype).index_add_(0, k, f)
    multi = (cnt > 1)[k]
    expect = entropy_regularised((f + pcount / cnt[k])[multi],
                                 tau * (tot[k] + pcount)[multi], k[multi], nk)
    apply_entropy_reg(circuit, tau, pcount)
    circuit.em_update(1.0, pcount)
    got = eng.sum_params[sel][multi]
    np.testing.assert_allclose(got.numpy(), expect.numpy(), atol=1e-10)


def test_train_em_with_entropy_reg_runs_and_keeps_distributions():
    data = np.random.default_rng(1).integers(0, 2, (80, 6))
    circuit = pc.compile(pc.lower(pc.hclt(data, 4, 2, seed=0)), backend="torch", device="cpu")
    train_em(circuit, data, data, epochs=2, batch_size=32, em="mini", step_size=0.5,
             pseudocount=0.1, entropy_reg=0.01, soften=0.99, soften_kernel="marginal")
    hist = train_em(circuit, data, data, epochs=2, em="full", pseudocount=0.1, entropy_reg=0.01)
    assert all(np.isfinite(h.valid_ll) for h in hist)
    x = np.array([[int(b) for b in f"{i:06b}"] for i in range(64)])
    assert float(torch.logsumexp(circuit.log_prob(x).double(), 0)) == pytest.approx(0.0, abs=1e-4)
