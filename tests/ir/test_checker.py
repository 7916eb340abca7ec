"""ir.check: every factory model passes; each rule catches its own breakage
and names the rule and the group at fault."""

from __future__ import annotations

import numpy as np
import pytest

from pccompiler import ir
from pccompiler.errors import CheckError
from pccompiler.ir import pcir
from tests import factories as F


def replace_tensor(model: pcir.Model, name: str, array) -> None:
    for t in model.tensors:
        if t.name == name:
            t.CopyFrom(ir.make_tensor(name, np.asarray(array)))
            return
    raise KeyError(name)


def tensor(model: pcir.Model, name: str) -> np.ndarray:
    return ir.tensor_table(model)[name].copy()


@pytest.mark.parametrize("name", sorted(F.ALL_FACTORIES))
def test_factory_models_pass(name):
    model = F.ALL_FACTORIES[name](seed=3)
    assert ir.check(model) == []
    assert ir.check(model, collect=True) == []
    assert len(model.roots) == 1 and model.groups[model.roots[0]].num_nodes == 1


# ---- breakages: (factory, mutation, rule, group)

def _set(attr_path, value):
    def mutate(m):
        obj = m
        *path, last = attr_path
        for p in path:
            obj = obj[p] if isinstance(p, int) else getattr(obj, p)
        setattr(obj, last, value)
    return mutate


def _scale_row(name, row, factor):
    def mutate(m):
        w = tensor(m, name)
        w[row] *= factor
        replace_tensor(m, name, w)
    return mutate


def _edit(name, fn):
    def mutate(m):
        replace_tensor(m, name, fn(tensor(m, name)))
    return mutate


def _negative_weight(w):
    w[0, 0], w[0, 1] = -0.1, w[0, 1] + w[0, 0] + 0.1
    return w


def _drop_parent0(m):
    e, w = tensor(m, "g6.edges"), tensor(m, "g6.weights")
    keep = e[:, 0] != 0
    replace_tensor(m, "g6.edges", e[keep])
    replace_tensor(m, "g6.weights", w[keep])


def _swap_edges(m):
    e = tensor(m, "g6.edges")
    e[[0, 1]] = e[[1, 0]]
    replace_tensor(m, "g6.edges", e)


def _own_edges_for_tied(m):
    e = tensor(m, "g6.edges")
    extra = np.array([[p, c] for p in range(4) for c in range(4)])
    m.tensors.append(ir.make_tensor("g7.edges", extra))
    m.groups[7].sum.edges = "g7.edges"
    assert len(extra) != len(e)


def _dup_tensor(m):
    m.tensors.append(ir.make_tensor("g4.index", np.zeros((4, 2), np.int64)))


def _truncate_bytes(m):
    m.tensors[0].raw_data = m.tensors[0].raw_data[:-4]


def _external(m):
    m.tensors[0].external.location = "x.data"


def _children(gid, kids):
    def mutate(m):
        g = m.groups[gid]
        field = g.sum.children if g.kind == pcir.SUM else g.product.children
        del field[:]
        field.extend(kids)
    return mutate


def _scope(gid, scope):
    def mutate(m):
        del m.groups[gid].scope[:]
        m.groups[gid].scope.extend(scope)
    return mutate


def _add_tie(group, target):
    def mutate(m):
        m.ties.add(group=group, target=target)
    return mutate


def _tie_unweighted(group, target):
    def mutate(m):
        m.groups[group].sum.weights = ""
        m.ties.add(group=group, target=target)
    return mutate


BREAKAGES = [
    # id, factory, mutation, rule, group
    ("version", F.small_dense_model, _set(["ir_version"], 99), "ir-version", None),
    ("version-old", F.small_dense_model, _set(["ir_version"], 0), "ir-version", None),
    ("group-id", F.small_dense_model, _set(["groups", 3, "id"], 7), "group-id", 3),
    ("kind", F.small_dense_model, _set(["groups", 2, "kind"], 0), "group-kind", 2),
    ("num-nodes", F.small_dense_model, _set(["groups", 9, "num_nodes"], 2 ** 41),
     "num-nodes", 9),
    ("num-nodes-zero", F.small_dense_model, _set(["groups", 5, "num_nodes"], 0),
     "num-nodes", 5),
    ("topo", F.small_dense_model, _children(4, [0, 5]), "topological-order", 4),
    ("no-children", F.small_dense_model, _children(8, []), "children", 8),
    ("scope-unsorted", F.small_dense_model, _scope(4, [1, 0]), "scope", 4),
    ("scope-range", F.small_dense_model, _scope(9, [0, 1, 2, 3, 4]), "scope", 9),
    ("input-scope", F.small_dense_model, _scope(0, [1]), "input-scope", 0),
    ("input-dist", F.small_dense_model, _set(["groups", 0, "input", "dist"],
                                             pcir.GAUSSIAN_DIST), "input-dist", 0),
    ("bernoulli-on-3-cats", F.small_dense_model, _set(["groups", 1, "input", "dist"],
                                                      pcir.BERNOULLI_DIST), "input-dist", 1),
    ("variable", F.small_dense_model, _set(["variables", 0, "num_cats"], 0), "variable", None),
    ("tensor-missing", F.small_dense_model, _set(["groups", 0, "input", "params"], "nope"),
     "tensor-missing", 0),
    ("tensor-dtype", F.small_dense_model, _edit("g4.index", lambda a: a.astype(np.float32)),
     "tensor-dtype", 4),
    ("tensor-shape", F.small_dense_model, _edit("g6.weights", lambda w: w[:, :3]),
     "tensor-shape", 6),
    ("param-shape", F.small_dense_model, _edit("g1.params", lambda p: p[:3]), "tensor-shape", 1),
    ("cat-negative", F.small_dense_model, _edit("g0.params", lambda p: np.where(
        np.arange(3) == 0, -0.1, p + 0.05)), "param-values", 0),
    ("cat-nan", F.small_dense_model, _edit("g2.params", lambda p: p * np.nan), "param-values", 2),
    ("cat-normalized", F.small_dense_model, _scale_row("g3.params", 2, 0.9),
     "normalized-params", 3),
    ("bernoulli-range", F.bernoulli_model, _edit("g1.params", lambda p: p + 1.0),
     "param-values", 1),
    ("gaussian-std", F.gaussian_model, _edit("g2.params", lambda p: p * [1, 0]),
     "param-values", 2),
    ("decomposability-overlap", F.small_dense_model, _children(8, [6, 6]),
     "decomposability", 8),
    ("decomposability-union", F.small_dense_model, _scope(4, [0, 1, 2]), "decomposability", 4),
    ("index-range", F.small_dense_model, _edit("g8.index", lambda a: a + 1), "index-range", 8),
    ("index-negative", F.small_dense_model, _edit("g4.index", lambda a: a - 1), "index-range", 4),
    ("smoothness", F.small_dense_model, _children(9, [8, 6]), "smoothness", 9),
    ("pattern", F.small_dense_model, _set(["groups", 6, "sum", "pattern"], 0), "edge-pattern", 6),
    ("block-size", F.small_block_sparse_model, _set(["groups", 6, "sum", "block_size"], 3),
     "block-size", 6),
    ("block-edges-range", F.small_block_sparse_model, _edit("g7.edges", lambda e: e + 1),
     "index-range", 7),
    ("block-shape", F.small_block_sparse_model, _edit("g6.weights", lambda w: w[:, :1]),
     "tensor-shape", 6),
    ("block-normalized", F.small_block_sparse_model, _scale_row("g6.weights", 0, 1.5),
     "normalized-weights", 6),
    ("sparse-range", F.small_sparse_model, _edit("g6.edges", lambda e: e * 2), "index-range", 6),
    ("sparse-sorted", F.small_sparse_model, _swap_edges, "edges-sorted", 6),
    ("sparse-coverage", F.small_sparse_model, _drop_parent0, "edge-coverage", 6),
    ("sparse-normalized", F.small_sparse_model, _scale_row("g7.weights", 3, 0.5),
     "normalized-weights", 7),
    ("dense-normalized", F.small_dense_model, _scale_row("g6.weights", 1, 0.5),
     "normalized-weights", 6),
    ("weight-negative", F.small_dense_model, _edit("g7.weights", _negative_weight),
     "weight-values", 7),
    ("weight-inf", F.small_sparse_model, _edit("g6.weights", lambda w: w + np.inf),
     "weight-values", 6),
    ("tie-missing-target", F.tied_model, _set(["ties", 0, "target"], 99), "tie-target", None),
    ("tie-chain", F.tied_model, _add_tie(6, 8), "tie-target", 7),
    ("tie-kind", F.small_dense_model, _tie_unweighted(7, 8), "tie-kind", 7),
    ("tie-kind-product", F.small_dense_model, _add_tie(5, 4), "tie-kind", 5),
    ("tie-shape", F.tied_model, _own_edges_for_tied, "tie-shape", 7),
    ("tie-params", F.tied_model, _set(["groups", 2, "input", "params"], "g0.params"),
     "tie-params", 2),
    ("roots-empty", F.small_dense_model, lambda m: m.ClearField("roots"), "roots", None),
    ("roots-range", F.small_dense_model, lambda m: m.roots.__setitem__(0, 10), "roots", None),
    ("tensor-name", F.small_dense_model, _dup_tensor, "tensor-name", None),
    ("tensor-bytes", F.small_dense_model, _truncate_bytes, "tensor-bytes", None),
    ("tensor-external", F.small_dense_model, _external, "tensor-external", None),
]


@pytest.mark.parametrize("case", BREAKAGES, ids=[c[0] for c in BREAKAGES])
def test_each_rule_catches_its_breakage(case):
    _, factory, mutate, rule, group = case
    model = factory(seed=1)
    mutate(model)
    errors = ir.check(model, collect=True)
    assert errors, "the broken model passed the checker"
    assert any(e.rule == rule and e.group == group for e in errors), \
        [(e.rule, e.group, str(e)) for e in errors]
    with pytest.raises(CheckError):
        ir.check(model)
    assert f"[{errors[0].rule}]" in str(errors[0])


def test_first_violation_is_raised_with_group_and_name():
    model = F.small_dense_model()
    model.groups[9].num_nodes = 2      # root weights are [1, 4]: shape error at g9
    with pytest.raises(CheckError) as info:
        ir.check(model)
    assert info.value.rule == "tensor-shape" and info.value.group == 9
    assert "'root'" in str(info.value)


def test_collect_reports_one_violation_per_broken_group():
    model = F.small_dense_model()
    _scale_row("g6.weights", 0, 2.0)(model)
    _scale_row("g7.weights", 1, 2.0)(model)
    _edit("g0.params", lambda p: -p)(model)
    found = sorted((e.rule, e.group) for e in ir.check(model, collect=True))
    assert found == [("normalized-weights", 6), ("normalized-weights", 7), ("param-values", 0)]


def test_huge_claims_cost_no_memory():
    """num_nodes of 10**12 on a sparse group with a few edges: the coverage
    rule answers from the edge count, without allocating per node."""
    model = F.small_sparse_model()
    model.groups[6].num_nodes = 10 ** 11
    errors = ir.check(model, collect=True)
    assert ("edge-coverage", 6) in {(e.rule, e.group) for e in errors}


def test_tolerance_is_1e5():
    model = F.small_dense_model()
    w = tensor(model, "g9.weights").astype(np.float64)
    replace_tensor(model, "g9.weights", w * (1 + 5e-6))
    ir.check(model)
    replace_tensor(model, "g9.weights", w * (1 + 5e-5))
    with pytest.raises(CheckError, match="normalized-weights"):
        ir.check(model)


@pytest.mark.parametrize("pattern", [pcir.DENSE, pcir.BLOCK_SPARSE, pcir.SPARSE])
def test_tied_models_of_each_pattern_pass(pattern):
    assert ir.check(F.tied_model(seed=2, pattern=pattern), collect=True) == []


@pytest.mark.parametrize("cols", [8, 2 ** 61])      # the key path and the overflow-safe path
def test_edge_list_order_rules(cols):
    from pccompiler.ir.checker import _check_edge_list

    group = pcir.Group(id=3, name="s")
    good = np.array([[0, 1], [0, 5], [1, 0], [2, 7]])
    _check_edge_list(group, good, 3, cols, "node")
    for bad, rule in ((good[[0, 2, 1, 3]], "edges-sorted"), (good[[0, 0, 2, 3]], "edges-sorted"),
                      (good[[0, 1, 3]], "edge-coverage"), (good - [0, 1], "index-range")):
        with pytest.raises(CheckError) as info:
            _check_edge_list(group, bad, 3, cols, "node")
        assert info.value.rule == rule and info.value.group == 3


def _float32_block_sparse(block=32, num_parents=4, num_children=6, seed=0):
    """A lowered block-sparse sum with float32 weights normalized in float64."""
    import pccompiler as pc
    rng = np.random.default_rng(seed)
    pairs = np.array([(p, c) for p in range(num_parents) for c in range(num_children)
                      if (p + c) % 3], np.int64)
    w = rng.random((len(pairs), block, block)) + 0.1
    totals = np.zeros((num_parents, block))
    np.add.at(totals, pairs[:, 0], w.sum(2))
    w = (w / totals[pairs[:, 0]][:, :, None]).astype(np.float32)
    x = pc.inputs(0, num_children * block, pc.Categorical(num_cats=3), seed=seed)
    big = pc.summate(x, num_nodes=num_parents * block, edges=pc.BlockSparse(pairs, block),
                     weights=w)
    model = pc.lower(pc.summate(big, num_nodes=1, seed=seed + 1), validate=False)
    name = next(g.sum.weights for g in model.groups
                if g.kind == pcir.SUM and g.sum.pattern == pcir.BLOCK_SPARSE)
    return model, name, pairs


def _scale_parent_row(model, name, pairs, row, factor):
    """Scale parent node `row` of block 0's weights (float64, back to float32)."""
    w = tensor(model, name).astype(np.float64)
    w[pairs[:, 0] == 0, row, :] *= factor
    replace_tensor(model, name, w.astype(np.float32))


def test_float32_block_rows_are_cleared_by_the_fast_sums_and_only_then():
    from pccompiler.ir.checker import _block_rows_clear
    model, name, pairs = _float32_block_sparse()
    starts = np.flatnonzero(np.r_[True, np.diff(pairs[:, 0]) != 0])
    w = tensor(model, name)
    assert w.dtype == np.float32 and _block_rows_clear(w, starts)
    assert ir.check(model) == []
    assert not _block_rows_clear(w.astype(np.float64), starts)        # exact sums only
    assert not _block_rows_clear(np.ones((1, 200, 200), np.float32) / 200, np.array([0]))
    # inside the tolerance but too close to its edge for the float32 bound:
    # the exact float64 sums decide, and pass it
    _scale_parent_row(model, name, pairs, 3, 1 + 9.7e-6)
    w = tensor(model, name)
    assert not _block_rows_clear(w, starts)
    assert ir.check(model) == []


def test_float32_block_row_off_by_more_than_the_tolerance_is_named():
    model, name, pairs = _float32_block_sparse()
    _scale_parent_row(model, name, pairs, 5, 1 + 3e-5)
    with pytest.raises(CheckError, match=r"parent node 5 sum to 1\.00003"):
        ir.check(model)
