"""ir.check_layout(deep=True) rejects broken layouts (so its passes elsewhere mean something),
and node permutations stay correct with several readers and ties."""

import numpy as np
import pytest

from pccompiler import ir, passes
from pccompiler.backends.reference.layout_interp import layout_log_prob
from pccompiler.errors import CheckError
from pccompiler.ir import pcir
from tests.passes.circuits import block_mask, expand_blocks, normalize_sparse, \
    reference_log_prob


def _replace(layout, name, fn):
    for t in layout.tensors:
        if t.name == name:
            t.CopyFrom(ir.from_numpy(fn(ir.to_numpy(t, copy=True)), name))
            return
    raise KeyError(name)


def _layout():
    return passes.compile_model(_multi_reader_model(seed=4))


def _first(layout, kind):
    for layer in layout.layers:
        parts = getattr(layer, kind)
        if len(parts):
            return parts[0]


@pytest.mark.parametrize("mutation, rule", [
    ("child_after", "read-before-write"),
    ("two_writers", "slot-writers"),      # (passes/validate.py named it "one-writer")
    ("param_out", "index-range"),         # ("param-range" there; ir's name for a tensor index)
    ("padding", "padding"),
    ("backward_drop", "backward-plan"),
    ("input_param", "index-range"),       # ("param-range" there)
])
def test_broken_layouts_are_rejected(mutation, rule):
    result = _layout()
    layout = pcir.Layout()
    layout.CopyFrom(result.layout)
    sp = next(p for layer in layout.layers for p in layer.sum_partitions if p.num_blocks > 1)
    if mutation == "child_after":
        _replace(layout, sp.child_slots, lambda a: np.where(a > 1, layout.num_slots - 1, a))
    elif mutation == "two_writers":
        _replace(layout, sp.block_slots, lambda a: np.full_like(a, a[0]))
    elif mutation == "param_out":
        _replace(layout, sp.block_param_starts, lambda a: a + layout.num_sum_params)
    elif mutation == "padding":
        sp.max_children += 1
        _replace(layout, sp.child_slots, lambda a: np.concatenate(
            [a, np.full((a.shape[0], 1), 5, a.dtype)], 1))
    elif mutation == "backward_drop":
        bp = _first(layout, "sum_backward_partitions")
        _replace(layout, bp.parent_param_starts, lambda a: np.where(a > 0, a + 1, a))
    elif mutation == "input_param":
        ip = _first(layout, "input_partitions")
        _replace(layout, ip.node_param_starts, lambda a: a + layout.num_input_params)
    with pytest.raises(CheckError) as info:
        ir.check_layout(layout, result.model, deep=True)
    assert info.value.rule == rule, str(info.value)
    ir.check_layout(result.layout, result.model, deep=True)   # the original is fine


def _multi_reader_model(seed=0, tied_copy=False):
    """g2 (product) is read by the shuffled sparse g3 AND by a dense sum g4;
    with tied_copy, g5 shares g3's edges and weights (a tie class)."""
    rng = np.random.default_rng(seed)
    n, c = 64, 64
    edges = expand_blocks(block_mask(rng, 2, 2, 0.5), 32)
    rows, cols = rng.permutation(n), rng.permutation(c)
    edges = np.stack([rows[edges[:, 0]], cols[edges[:, 1]]], 1)
    edges = edges[np.lexsort((edges[:, 1], edges[:, 0]))]
    variables = [ir.make_variable(f"x{v}", pcir.CATEGORICAL, 3) for v in range(2)]
    groups, tensors = [], []
    for v in range(2):
        p = rng.random((c, 3)) + 0.1
        tensors.append(ir.make_tensor(f"g{v}.params", p / p.sum(1, keepdims=True)))
        groups.append(ir.make_input_group(v, v, pcir.CATEGORICAL_DIST, c, f"g{v}.params"))
    tensors.append(ir.make_tensor("g2.index", np.stack([np.arange(c), rng.permutation(c)], 1)))
    groups.append(ir.make_product_group(2, [0, 1], c, [0, 1], "g2.index"))
    tensors += [ir.make_tensor("g3.edges", edges),
                ir.make_tensor("g3.weights", normalize_sparse(rng, edges, n))]
    groups.append(ir.make_sum_group(3, [2], n, [0, 1], pcir.SPARSE, "g3.weights", "g3.edges"))
    w = rng.random((n, c)) + 0.1
    tensors.append(ir.make_tensor("g4.weights", w / w.sum(1, keepdims=True)))
    groups.append(ir.make_sum_group(4, [2], n, [0, 1], pcir.DENSE, "g4.weights"))
    children, ties = [3, 4], []
    if tied_copy:
        groups.append(ir.make_sum_group(5, [2], n, [0, 1], pcir.SPARSE, "", "g3.edges"))
        children, ties = [3, 4, 5], [(5, 3)]
    root = len(groups)
    w = rng.random((1, len(children) * n)) + 0.1
    tensors.append(ir.make_tensor("root.weights", w / w.sum()))
    groups.append(ir.make_sum_group(root, children, 1, [0, 1], pcir.DENSE, "root.weights"))
    return ir.make_model(variables, groups, [root], tensors, ties=ties, name="multi-reader")


def test_permutation_with_a_second_dense_reader():
    model = _multi_reader_model()
    # tile_dense=false: the recovered 32-blocks unpriced (priced, this group's 64
    # rows share 32 columns: one 64-row tile, no permutation of g2)
    result = passes.compile_model(model, options={"detect-block-sparsity": {"tile_dense": False}},
                                  check_each=True)
    g3 = result.model.groups[3]
    assert g3.sum.pattern == pcir.BLOCK_SPARSE and g3.sum.block_size == 32
    assert len(ir.tensor_table(result.model)[g3.sum.edges]) == 2
    x = np.random.default_rng(0).integers(0, 3, (9, 2))
    np.testing.assert_allclose(layout_log_prob(result.model, result.layout, x),
                               reference_log_prob(model, x), atol=1e-10)


def test_tied_groups_are_not_permuted():
    model = _multi_reader_model(tied_copy=True)
    ir.check(model)
    result = passes.compile_model(model, check_each=True)
    # neither g3 (tie owner) nor its tied copy may be permuted, so the shuffled
    # 32-blocks are not recovered; both groups keep one identical structure
    g3, g5 = result.model.groups[3].sum, result.model.groups[5].sum
    assert g3.block_size < 32 and (g3.pattern, g3.block_size, g3.edges) == \
        (g5.pattern, g5.block_size, g5.edges)
    notes = " ".join(n for r in result.report.records for n in r.notes)
    assert "permutation" not in notes
    x = np.random.default_rng(1).integers(0, 3, (5, 2))
    np.testing.assert_allclose(layout_log_prob(result.model, result.layout, x),
                               reference_log_prob(model, x), atol=1e-10)
