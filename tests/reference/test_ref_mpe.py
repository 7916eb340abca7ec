"""MPE of the reference interpreter (max-product semantics), checked by
brute-force enumeration:

- on deterministic circuits (decision-tree shaped: each sum's children
  disagree on one variable), the max-product completion is the exact MPE;
- on any circuit, the returned value equals the largest max-product value
  over all completions, and the returned assignment attains it.
"""

from __future__ import annotations

import numpy as np
import pytest

import pccompiler as pc
from pccompiler.backends import reference as ref
from tests.reference.random_circuits import completions, random_circuit

CATS = (3, 2, 2, 3)


def decision_tree(vs: list[int], cats, rng) -> pc.Group:
    """A deterministic circuit: sum over c of [x_v = c] * subtree_c(rest)."""
    v = vs[0]
    if len(vs) == 1:
        return pc.inputs(v, 1, pc.Categorical(cats[v]), rng=rng)
    products = []
    for c in range(cats[v]):
        indicator = pc.inputs(v, 1, pc.Categorical(cats[v], params=np.eye(cats[v])[c:c + 1]))
        products.append(pc.multiply(indicator, decision_tree(vs[1:], cats, rng)))
    return pc.summate(*products, num_nodes=1, rng=rng)


def _masks(rng, n, num_vars):
    masks = rng.random((n, num_vars)) < 0.6
    masks[0] = True
    masks[1] = False
    return masks


@pytest.mark.parametrize("seed", [0, 1])
def test_mpe_is_exact_on_deterministic_circuits(seed):
    rng = np.random.default_rng(seed)
    model = pc.lower(decision_tree(list(range(len(CATS))), CATS, rng))
    x = np.stack([rng.integers(0, c, 12) for c in CATS], axis=1)
    missing = _masks(rng, len(x), len(CATS))
    assignment, value = ref.mpe(model, x, missing)
    assert np.all(assignment[~missing] == x[~missing])
    for row in range(len(x)):
        best = ref.log_prob(model, completions(x[row], missing[row], CATS)).max()
        assert abs(value[row] - best) < 1e-9
        assert abs(ref.log_prob(model, assignment[row:row + 1])[0] - best) < 1e-9


@pytest.mark.parametrize("pattern", ["dense", "block_sparse", "sparse"])
def test_mpe_maximizes_the_max_product_value(pattern):
    rng = np.random.default_rng(3)
    model = pc.lower(random_circuit(8, pattern, CATS))
    root = model.roots[0]
    x = np.stack([rng.integers(0, c, 10) for c in CATS], axis=1)
    missing = _masks(rng, len(x), len(CATS))
    assignment, value = ref.mpe(model, x, missing)
    assert np.all(assignment[~missing] == x[~missing])
    for row in range(len(x)):
        full = completions(x[row], missing[row], CATS)
        max_product = ref.log_prob_groups(model, full, semiring="max")[root][:, 0]
        assert abs(value[row] - max_product.max()) < 1e-9
        own = ref.log_prob_groups(model, assignment[row:row + 1], semiring="max")[root][0, 0]
        assert abs(own - value[row]) < 1e-9
        # one induced tree's value bounds the likelihood from below
        assert ref.log_prob(model, assignment[row:row + 1])[0] >= value[row] - 1e-12


def test_mpe_of_gaussian_mixture_picks_the_best_mode():
    g = pc.inputs(0, 2, pc.Gaussian(mean=np.array([-3.0, 4.0]), std=np.array([1.0, 0.2])))
    c = pc.inputs(1, 2, pc.Categorical(3, params=np.array([[.7, .2, .1], [.1, .1, .8]])))
    model = pc.lower(pc.summate(pc.multiply(g, c), num_nodes=1, weights=[[0.6, 0.4]]))
    assignment, value = ref.mpe(model, np.zeros((1, 2)), np.array([[True, True]]))
    # component 1: 0.4 * N(4; 4, 0.2) * 0.8 beats 0.6 * N(-3; -3, 1) * 0.7
    np.testing.assert_allclose(assignment, [[4.0, 2.0]])
    expected = np.log(0.4 * 0.8) - np.log(0.2) - 0.5 * np.log(2 * np.pi)
    assert abs(value[0] - expected) < 1e-12
