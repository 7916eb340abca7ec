"""Lowering builder groups to a pcir.Model: topological ids, shared groups
once, variables and their kinds, tensors and ties, depth and size."""

from __future__ import annotations

import time

import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir
from pccompiler.errors import BuildError

pcir = ir.pcir


def test_structure_of_a_small_model():
    a = pc.inputs(0, 4, pc.Categorical(3), seed=0)
    b = pc.inputs(2, 4, pc.Bernoulli(), seed=1)
    p = pc.multiply(a, b)
    s1 = pc.summate(p, num_nodes=2, edges=pc.Sparse([[0, 0], [1, 1], [1, 3]]), seed=0)
    s2 = pc.summate(p, num_nodes=2, edges=pc.BlockSparse([[0, 1]], 2), seed=0)
    root = pc.summate(s1, s2, num_nodes=1, seed=0, name="root")
    model = pc.lower(root, name="small")
    assert model.name == "small" and list(model.roots) == [5]
    kinds = [g.kind for g in model.groups]
    assert kinds == [pcir.INPUT, pcir.INPUT, pcir.PRODUCT, pcir.SUM, pcir.SUM, pcir.SUM]
    for g in model.groups:
        assert g.id == list(model.groups).index(g)
        children = list(g.product.children) + list(g.sum.children)
        assert all(c < g.id for c in children)
    assert [(v.kind, v.num_cats) for v in model.variables] == \
        [(pcir.CATEGORICAL, 3), (pcir.BINARY, 2), (pcir.BINARY, 2)]
    assert list(model.groups[2].scope) == [0, 2] and model.groups[5].name == "root"
    table = ir.tensor_table(model)
    assert model.groups[3].sum.pattern == pcir.SPARSE and model.groups[3].sum.edges == "g3.edges"
    assert model.groups[4].sum.block_size == 2
    np.testing.assert_array_equal(table["g3.edges"], [[0, 0], [1, 1], [1, 3]])
    np.testing.assert_array_equal(table["g2.index"], np.stack([np.arange(4)] * 2, 1))
    assert table["g2.index"].dtype == np.int32
    np.testing.assert_array_equal(table["g0.params"], a.params)
    np.testing.assert_array_equal(table["g4.weights"], s2.weights)


def test_ties_are_emitted_and_targets_own_the_tensor():
    a = pc.inputs(0, 3, pc.Categorical(4), seed=0)
    b = pc.inputs(1, 3, pc.Categorical(4), tie=a)
    s = pc.summate(pc.multiply(a, b), num_nodes=3, seed=0)
    s2 = pc.summate(pc.multiply(a, b), num_nodes=3, tie=s)
    model = pc.lower(pc.summate(s, s2, num_nodes=1, seed=0))
    ties = {(t.group, t.target) for t in model.ties}
    assert ties == {(1, 0), (5, 3)}
    assert model.groups[1].input.params == "" and model.groups[5].sum.weights == ""
    names = {t.name for t in model.tensors}
    assert "g1.params" not in names and "g5.weights" not in names


def test_tie_to_a_group_outside_the_circuit():
    """If the builder's tie target is not lowered, a lowered member owns the tensor."""
    outside = pc.inputs(7, 2, pc.Bernoulli(), seed=0)
    a = pc.inputs(0, 2, pc.Bernoulli(), tie=outside)
    b = pc.inputs(1, 2, pc.Bernoulli(), tie=outside)
    model = pc.lower(pc.summate(pc.multiply(a, b), num_nodes=1, seed=0))
    assert [(t.group, t.target) for t in model.ties] == [(1, 0)]
    np.testing.assert_array_equal(ir.tensor_table(model)["g0.params"], outside.params)
    assert len(model.variables) == 2


def test_shared_groups_are_lowered_once():
    a = pc.inputs(0, 2, pc.Bernoulli(), seed=0)
    b = pc.inputs(1, 2, pc.Bernoulli(), seed=0)
    p = pc.multiply(a, b)
    s1, s2 = pc.summate(p, num_nodes=2, seed=0), pc.summate(p, num_nodes=2, seed=1)
    model = pc.lower(pc.summate(s1, s2, num_nodes=1, seed=0))
    assert len(model.groups) == 6


def test_variable_kinds():
    g = pc.inputs(0, 2, pc.Gaussian(), seed=0)
    c = pc.inputs(1, 2, pc.Categorical(2), seed=0)
    b = pc.inputs(1, 2, pc.Bernoulli(), seed=0)
    root = pc.summate(pc.multiply(g, c), pc.multiply(g, b), num_nodes=1, seed=0)
    model = pc.lower(root, num_vars=3)
    assert [v.kind for v in model.variables] == [pcir.REAL, pcir.CATEGORICAL, pcir.BINARY]
    assert model.variables[1].num_cats == 2
    with pytest.raises(BuildError, match="num_vars=1"):
        pc.lower(root, num_vars=1)


def test_conflicting_categories_are_refused():
    c3 = pc.inputs(0, 2, pc.Categorical(3), seed=0)
    c4 = pc.inputs(0, 2, pc.Categorical(4), seed=0)
    with pytest.raises(BuildError, match="variable 0 is categorical with 4"):
        pc.lower(pc.summate(c3, c4, num_nodes=1, seed=0))
    g = pc.inputs(0, 2, pc.Gaussian(), seed=0)
    with pytest.raises(BuildError, match="variable 0"):
        pc.lower(pc.summate(c3, g, num_nodes=1, seed=0))


def test_depth_ten_thousand_without_recursion():
    group = pc.inputs(0, 2, pc.Bernoulli(), seed=0)
    for step in range(10_000):
        group = pc.summate(group, num_nodes=2, seed=step)
    model = pc.lower(pc.summate(group, num_nodes=1, seed=0), validate=False)
    assert len(model.groups) == 10_002
    assert list(model.groups[-1].sum.children) == [10_000]


def test_lowering_a_million_edges_is_vectorized():
    a = pc.inputs(0, 1000, pc.Categorical(4), seed=0)
    b = pc.inputs(1, 1000, pc.Categorical(4), seed=1)
    s = pc.summate(pc.multiply(a, b), num_nodes=1000, seed=0, dtype=np.float32)
    start = time.perf_counter()
    model = pc.lower(pc.summate(s, num_nodes=1, seed=0), validate=False)
    assert time.perf_counter() - start < 2.0
    weights = ir.tensor_table(model)["g3.weights"]
    assert weights.shape == (1000, 1000) and weights.dtype == np.float32


def test_lowered_models_pass_the_checker():
    from tests.reference.random_circuits import random_circuit
    for pattern in ("dense", "block_sparse", "sparse"):
        ir.check(pc.lower(random_circuit(0, pattern), validate=False))


def test_root_must_be_a_group():
    with pytest.raises(BuildError, match="root must be a pc group"):
        pc.lower("not a group")


def test_pc_lower_stays_the_function_after_the_module_is_imported():
    """`import pccompiler.frontend.lowering` must not shadow `pc.lower` (a submodule
    import binds its name on the package)."""
    import importlib

    import pccompiler
    importlib.import_module("pccompiler.frontend.lowering")
    assert callable(pccompiler.lower) and pccompiler.lower.__name__ == "lower"
