"""Builder API: shapes, random parameters, ties, and every BuildError the
builder promises (each message names the group and the problem)."""

from __future__ import annotations

import numpy as np
import pytest

import pccompiler as pc
from pccompiler.errors import BuildError


def _leaves(num_nodes=4):
    a = pc.inputs(0, num_nodes, pc.Categorical(3), seed=0, name="a")
    b = pc.inputs(1, num_nodes, pc.Bernoulli(), seed=1, name="b")
    return a, b


def test_groups_expose_scope_size_kind_children():
    a, b = _leaves()
    p = pc.multiply(a, b, name="p")
    s = pc.summate(p, num_nodes=2, seed=0)
    assert (a.kind, p.kind, s.kind) == ("input", "product", "sum")
    assert a.scope == (0,) and p.scope == (0, 1) and s.scope == (0, 1)
    assert p.children == (a, b) and s.children == (p,)
    assert p.num_nodes == 4 and s.num_nodes == 2
    np.testing.assert_array_equal(p.index, np.stack([np.arange(4)] * 2, axis=1))
    np.testing.assert_allclose(s.weights.sum(axis=1), 1.0, atol=1e-12)
    assert a.params.shape == (4, 3) and b.params.shape == (4, 1)
    np.testing.assert_allclose(a.params.sum(axis=1), 1.0)
    assert np.all(a.params > 0)


def test_scope_of_large_variable_ids():
    x = pc.inputs(70_000, 1, pc.Bernoulli(), seed=0)
    y = pc.inputs(3, 1, pc.Bernoulli(), seed=0)
    assert pc.multiply(x, y).scope == (3, 70_000)


def test_random_parameters_are_reproducible():
    w1 = pc.summate(pc.inputs(0, 5, pc.Bernoulli(), seed=0), num_nodes=3, seed=42).weights
    w2 = pc.summate(pc.inputs(0, 5, pc.Bernoulli(), seed=0), num_nodes=3,
                    rng=np.random.default_rng(42)).weights
    np.testing.assert_array_equal(w1, w2)


def test_sparse_edges_are_sorted_with_their_weights():
    a, _ = _leaves()
    s = pc.summate(a, num_nodes=2, edges=pc.Sparse([[1, 3], [0, 2], [1, 0]]),
                   weights=np.array([0.25, 1.0, 0.75]))
    np.testing.assert_array_equal(s.edges, [[0, 2], [1, 0], [1, 3]])
    np.testing.assert_allclose(s.weights, [1.0, 0.75, 0.25])


def test_normalize_option_and_float32():
    a, _ = _leaves()
    s = pc.summate(a, num_nodes=2, weights=np.full((2, 4), 3.0, np.float32), normalize=True)
    assert s.weights.dtype == np.float32
    np.testing.assert_allclose(s.weights, 0.25)


def test_tie_shares_the_targets_arrays():
    a, b = _leaves()
    a2 = pc.inputs(2, 4, pc.Categorical(3), tie=a)
    assert a2.params is a.params and a2.tie_target is a
    p, p2 = pc.multiply(a, b), pc.multiply(a2, b)
    s = pc.summate(p, num_nodes=2, edges=pc.Sparse([[0, 0], [1, 1], [1, 2]]), seed=0)
    s2 = pc.summate(p, num_nodes=2, tie=s)
    assert s2.weights is s.weights and s2.pattern == "sparse"
    np.testing.assert_array_equal(s2.edges, s.edges)
    s3 = pc.summate(p, num_nodes=2, edges=pc.Sparse([[0, 0], [1, 1], [1, 2]]), seed=5)
    assert pc.tie(s3, s2) is s3 and s3.tie_target is s and s3.weights is s.weights


@pytest.mark.parametrize("make, message", [
    (lambda a, b: pc.multiply(a, a), "share variables"),
    (lambda a, b: pc.multiply(a, pc.inputs(1, 3, pc.Bernoulli(), seed=0)), "equal num_nodes"),
    (lambda a, b: pc.multiply(a, b, index=np.array([[0, 4]])), r"index\[0, 1\] = 4"),
    (lambda a, b: pc.multiply(a, b, index=np.array([0, 1])), "shape"),
    (lambda a, b: pc.multiply(a, b, index=np.array([[0.0, 1.0]])), "integer"),
    (lambda a, b: pc.summate(a, b, num_nodes=2), "common scope"),
    (lambda a, b: pc.summate(a, num_nodes=0), "positive"),
    (lambda a, b: pc.summate(a, num_nodes=2, weights=np.ones((2, 3)) / 3), r"shape \[2, 4\]"),
    (lambda a, b: pc.summate(a, num_nodes=2, weights=np.ones((2, 4)) / 3), "normalize=True"),
    (lambda a, b: pc.summate(a, num_nodes=2, weights=-np.ones((2, 4))), "non-negative"),
    (lambda a, b: pc.summate(a, num_nodes=2, weights=np.full((2, 4), np.nan)), "NaN"),
    (lambda a, b: pc.summate(a, num_nodes=2, edges=pc.Sparse([[0, 4]])), "child 4 out of range"),
    (lambda a, b: pc.summate(a, num_nodes=2, edges=pc.Sparse([[2, 0]])), "parent 2 out of range"),
    (lambda a, b: pc.summate(a, num_nodes=2, edges=pc.Sparse([[0, 1], [0, 1], [1, 0]])),
     "appears twice"),
    (lambda a, b: pc.summate(a, num_nodes=2, edges=pc.Sparse([0, 1])), r"shape \[E, 2\]"),
    (lambda a, b: pc.summate(a, num_nodes=2, edges=pc.Sparse([[0, 1]])), "no edge"),
    (lambda a, b: pc.summate(a, num_nodes=2, edges=pc.BlockSparse([[0, 0]], 3)), "must divide"),
    (lambda a, b: pc.summate(a, num_nodes=4, edges=pc.BlockSparse([[0, 2]], 2)),
     "child block 2 out of range"),
    (lambda a, b: pc.summate(a, num_nodes=2, edges=np.ones((2, 2))), "BlockSparse"),
    (lambda a, b: pc.inputs(0, 2, pc.Categorical(2, params=np.array([[.5, .4], [.5, .5]]))),
     "row 0 sums"),
    (lambda a, b: pc.inputs(0, 2, pc.Bernoulli(params=np.array([0.5, 1.5]))), r"\[0, 1\]"),
    (lambda a, b: pc.inputs(0, 2, pc.Gaussian(mean=np.zeros(2), std=np.zeros(2))), "std"),
    (lambda a, b: pc.inputs(0, 2, "categorical"), "dist must be"),
    (lambda a, b: pc.inputs(-1, 2, pc.Bernoulli()), "non-negative int"),
    (lambda a, b: pc.inputs(2, 4, pc.Categorical(4), tie=a), "differs from tie target"),
    (lambda a, b: pc.inputs(2, 5, pc.Categorical(3), tie=a), "num_nodes 5"),
    (lambda a, b: pc.inputs(2, 4, pc.Bernoulli(), tie=a), "differs from tie target"),
    (lambda a, b: pc.summate(a, num_nodes=4, tie=pc.summate(a, num_nodes=2, seed=0)),
     "num_nodes 4"),
    (lambda a, b: pc.summate(b, num_nodes=2, tie=pc.summate(a, num_nodes=2, seed=0),
                             edges=pc.Sparse([[0, 0], [1, 1]])), "edge pattern"),
    (lambda a, b: pc.tie(pc.multiply(a, b), pc.multiply(a, b)), "only input and sum"),
    (lambda a, b: pc.tie(a, a), "tie cycle"),
    (lambda a, b: pc.inputs(2, 4, pc.Categorical(3, params=a.params), tie=a), "with tie="),
    (lambda a, b: pc.summate(a, num_nodes=1, tie=pc.summate(a, num_nodes=1, seed=0),
                             weights=np.full((1, 4), .25)), "with tie="),
    (lambda a, b: pc.summate(a, num_nodes=2, tie=pc.summate(a, num_nodes=2, edges=pc.Sparse(
        [[0, 0], [1, 1]]), seed=0), edges=pc.Sparse([[0, 1], [1, 1]])), "edges differ"),
    (lambda a, b: pc.summate(a, num_nodes=2, dtype=np.float16), "float32 or float64"),
    (lambda a, b: pc.multiply(), "at least one child"),
])
def test_build_errors(make, message):
    a, b = _leaves()
    with pytest.raises(BuildError, match=message):
        make(a, b)


def test_errors_name_the_group():
    a, b = _leaves()
    with pytest.raises(BuildError, match="sum group 'mix'"):
        pc.summate(a, b, num_nodes=1, name="mix")
    with pytest.raises(BuildError, match="input group 'a'"):
        pc.multiply(a, a)
