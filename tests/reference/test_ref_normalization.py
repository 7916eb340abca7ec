"""The reference interpreter computes a normalized distribution and exact
marginals: checked by enumerating every assignment of small random circuits
built with the builder (all three edge patterns, categorical and Bernoulli
leaves, index-matrix products, multi-child sums, ties), of the shared IR
factories, and of a Gaussian circuit by numerical integration."""

from __future__ import annotations

import numpy as np
import pytest

import pccompiler as pc
from pccompiler.backends import reference as ref
from pccompiler.errors import DataError
from tests import factories
from tests.reference.random_circuits import (all_assignments, completions, logsumexp,
                                             random_circuit)

CATS = (3, 2, 2, 3)
PATTERNS = ["dense", "block_sparse", "sparse"]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sums_to_one_over_all_assignments(pattern, seed):
    model = pc.lower(random_circuit(seed, pattern, CATS))
    assert len(model.ties) > 0
    total = np.exp(ref.log_prob(model, all_assignments(CATS))).sum()
    assert abs(total - 1.0) < 1e-9


@pytest.mark.parametrize("pattern", PATTERNS)
def test_marginalizing_everything_gives_log_one(pattern):
    model = pc.lower(random_circuit(3, pattern, CATS))
    x = np.zeros((4, len(CATS)), dtype=np.int64)
    lp = ref.log_prob(model, x, np.ones(x.shape, dtype=bool))
    assert np.all(np.abs(lp) < 1e-9)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_marginals_equal_explicit_sums(pattern):
    rng = np.random.default_rng(7)
    model = pc.lower(random_circuit(4, pattern, CATS))
    x = all_assignments(CATS)[rng.integers(0, np.prod(CATS), 30)]
    missing = rng.random(x.shape) < 0.5
    got = ref.log_prob(model, x, missing)
    for row in range(len(x)):
        full = completions(x[row], missing[row], CATS)
        want = logsumexp(ref.log_prob(model, full))
        assert abs(got[row] - want) < 1e-9


def test_edge_patterns_agree_on_the_same_weights():
    """One dense weight matrix stored as dense, sparse and block-sparse
    gives the same log-likelihoods."""
    rng = np.random.default_rng(0)
    a = pc.inputs(0, 4, pc.Categorical(3), rng=rng)
    b = pc.inputs(1, 4, pc.Categorical(3), rng=rng)
    prod = pc.multiply(a, b)
    w = rng.random((4, 4)) + 0.1
    w /= w.sum(axis=1, keepdims=True)
    pairs = np.argwhere(np.ones((4, 4), bool))
    blocks = np.argwhere(np.ones((2, 2), bool))
    block_w = w.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 2, 2)
    roots = [pc.summate(pc.summate(prod, num_nodes=4, weights=w), num_nodes=1, weights=[[.25] * 4]),
             pc.summate(pc.summate(prod, num_nodes=4, edges=pc.Sparse(pairs), weights=w.ravel()),
                        num_nodes=1, weights=[[.25] * 4]),
             pc.summate(pc.summate(prod, num_nodes=4, edges=pc.BlockSparse(blocks, 2),
                                   weights=block_w), num_nodes=1, weights=[[.25] * 4])]
    x = all_assignments((3, 3))
    values = [ref.log_prob(pc.lower(r), x) for r in roots]
    np.testing.assert_allclose(values[1], values[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(values[2], values[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("factory", [factories.small_dense_model, factories.small_sparse_model,
                                     factories.small_block_sparse_model, factories.tied_model,
                                     factories.bernoulli_model])
def test_ir_factory_models_are_normalized(factory):
    model = factory(seed=1)
    cats = [v.num_cats for v in model.variables]
    total = np.exp(ref.log_prob(model, all_assignments(cats))).sum()
    # the factories store float32 weights: normalized to ~1e-7 per node
    assert abs(total - 1.0) < 1e-5


def test_gaussian_density_integrates_to_one_and_marginalizes():
    """Mixed real/categorical circuit: integrate the real variable on a grid."""
    rng = np.random.default_rng(5)
    g = pc.inputs(0, 3, pc.Gaussian(mean=np.array([-1.0, 0.5, 2.0]), std=np.array([0.5, 1, .7])))
    c = pc.inputs(1, 3, pc.Categorical(2), rng=rng)
    root = pc.summate(pc.multiply(g, c), num_nodes=1, rng=rng)
    model = pc.lower(root)
    grid = np.linspace(-12, 12, 48001)
    for cat in (0, 1):
        x = np.stack([grid, np.full_like(grid, cat)], axis=1)
        dens = np.exp(ref.log_prob(model, x))
        integral = np.sum((dens[1:] + dens[:-1]) / 2 * np.diff(grid))
        marginal = ref.log_prob(model, np.array([[0.0, cat]]), np.array([[True, False]]))[0]
        assert abs(integral - np.exp(marginal)) < 1e-8
    x = np.array([[np.nan, 0.0], [np.nan, 1.0]])   # NaN = missing for float x
    assert abs(np.exp(ref.log_prob(model, x)).sum() - 1) < 1e-12


def test_log_prob_groups_matches_root_and_node_semantics():
    model = pc.lower(random_circuit(0, "sparse", CATS))
    x = all_assignments(CATS)[:5]
    values = ref.log_prob_groups(model, x)
    assert len(values) == len(model.groups)
    assert all(v.shape == (5, g.num_nodes) for v, g in zip(values, model.groups))
    np.testing.assert_array_equal(values[model.roots[0]][:, 0], ref.log_prob(model, x))


def test_underflow_is_avoided_per_node():
    """A node whose children are all far below another node's stays finite
    (the log-sum-exp shift is per node, not per row)."""
    a = pc.inputs(0, 2, pc.Categorical(2, params=np.array([[1e-300, 1 - 1e-300], [.5, .5]])))
    b = pc.inputs(1, 2, pc.Categorical(2, params=np.array([[1e-300, 1 - 1e-300], [.5, .5]])))
    prod = pc.multiply(a, b)
    model = pc.lower(pc.summate(pc.summate(prod, num_nodes=2, weights=np.eye(2)), num_nodes=1,
                                weights=[[.5, .5]]))
    values = ref.log_prob_groups(model, np.array([[0, 0]]))
    assert np.isclose(values[3][0, 0], 2 * np.log(1e-300))


def test_bad_data_is_refused_with_position():
    model = pc.lower(random_circuit(0, "dense", CATS))
    with pytest.raises(DataError, match=r"x\[1, 3\]"):
        ref.log_prob(model, np.array([[0, 0, 0, 0], [0, 0, 0, 3]]))
    with pytest.raises(DataError, match="shape"):
        ref.log_prob(model, np.zeros((2, 3), dtype=np.int64))
    # an out-of-range value is fine where it is missing
    lp = ref.log_prob(model, np.array([[0, 0, 0, 7]]), np.array([[False, False, False, True]]))
    assert np.isfinite(lp).all()
