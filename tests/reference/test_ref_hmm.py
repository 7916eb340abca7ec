"""A homogeneous HMM written with the builder (ties share the transition
and emission parameters across time) equals the textbook forward algorithm."""

from __future__ import annotations

import numpy as np

import pccompiler as pc
from pccompiler import ir
from pccompiler.backends import reference as ref

T, H, M = 6, 3, 4   # steps, hidden states, observed categories


def hmm_parameters(seed: int):
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.ones(H))
    trans = rng.dirichlet(np.ones(H), size=H)     # trans[i, j] = p(z_t+1 = j | z_t = i)
    emit = rng.dirichlet(np.ones(M), size=H)      # emit[i, k] = p(x_t = k | z_t = i)
    return pi, trans, emit


def hmm_circuit(pi, trans, emit) -> pc.Group:
    """Backward recursion: node i of h_t is p(x_t.. | z_t = i)."""
    emissions = [pc.inputs(0, H, pc.Categorical(M, params=emit), name="emit0")]
    emissions += [pc.inputs(t, H, pc.Categorical(M), tie=emissions[0], name=f"emit{t}")
                  for t in range(1, T)]
    h = emissions[T - 1]
    first_transition = None
    for t in range(T - 2, -1, -1):
        if first_transition is None:
            step = first_transition = pc.summate(h, num_nodes=H, weights=trans, name=f"trans{t}")
        else:
            step = pc.summate(h, num_nodes=H, tie=first_transition, name=f"trans{t}")
        h = pc.multiply(emissions[t], step, name=f"h{t}")
    return pc.summate(h, num_nodes=1, weights=pi[None, :], name="initial")


def forward_algorithm(pi, trans, emit, x, missing) -> np.ndarray:
    """log p(x_observed) by the scaled forward recursion, per row."""
    out = np.empty(len(x))
    for row in range(len(x)):
        def e(t):
            return np.ones(H) if missing[row, t] else emit[:, x[row, t]]
        alpha = pi * e(0)
        log_scale = 0.0
        for t in range(1, T):
            alpha = (alpha @ trans) * e(t)
            s = alpha.sum()
            log_scale += np.log(s)
            alpha /= s
        out[row] = log_scale + np.log(alpha.sum())
    return out


def test_hmm_equals_forward_algorithm():
    pi, trans, emit = hmm_parameters(0)
    model = pc.lower(hmm_circuit(pi, trans, emit))
    assert len(model.ties) == (T - 1) + (T - 2)
    rng = np.random.default_rng(1)
    x = rng.integers(0, M, size=(50, T))
    missing = rng.random(x.shape) < 0.3
    missing[0] = False
    np.testing.assert_allclose(ref.log_prob(model, x, missing),
                               forward_algorithm(pi, trans, emit, x, missing), rtol=0, atol=1e-9)


def test_hmm_tie_really_shares_parameters():
    """Changing the tie target's tensor changes every time step."""
    pi, trans, emit = hmm_parameters(2)
    model = pc.lower(hmm_circuit(pi, trans, emit))
    other = hmm_parameters(3)[1]
    owner = next(g for g in model.groups if g.name == f"trans{T - 2}")
    tensor = next(t for t in model.tensors if t.name == owner.sum.weights)
    tensor.CopyFrom(ir.make_tensor(tensor.name, other))
    x = np.random.default_rng(4).integers(0, M, size=(10, T))
    no_missing = np.zeros(x.shape, dtype=bool)
    np.testing.assert_allclose(ref.log_prob(model, x),
                               forward_algorithm(pi, other, emit, x, no_missing), atol=1e-9)
