"""ir.check_layout on the naive layouts of the factory models, and one
breakage per layout rule."""

from __future__ import annotations

import numpy as np
import pytest

from pccompiler import ir
from pccompiler.errors import CheckError
from pccompiler.ir import pcir
from tests import factories as F


@pytest.mark.parametrize("name", sorted(F.ALL_FACTORIES))
def test_naive_layouts_pass(name):
    model = F.ALL_FACTORIES[name](seed=4)
    layout = F.naive_layout(model)
    assert ir.check_layout(layout, model) == []
    assert ir.check_layout(layout) == []          # model-free checks alone


def _tensor(layout, name):
    return ir.tensor_table(layout)[name].copy()


def _replace(layout, name, array):
    for t in layout.tensors:
        if t.name == name:
            t.CopyFrom(ir.make_tensor(name, array))


def _edit(name, fn):
    def mutate(layout, model):
        _replace(layout, name, fn(_tensor(layout, name)))
    return mutate


def _reorder_layers(layout, model):
    layers = list(layout.layers)
    copies = [pcir.Layer() for _ in layers]
    for c, l in zip(copies, layers):
        c.CopyFrom(l)
    copies[0], copies[4] = copies[4], copies[0]   # product g4 before input g0
    del layout.layers[:]
    layout.layers.extend(copies)


def _overlap_writer(layout, model):
    layer = layout.layers[5]                      # product g5 moved onto g4's slots
    layer.slot_start = layout.layers[4].slot_start
    layer.product_partitions[0].slot_start = layer.slot_start


def _set(fn):
    def mutate(layout, model):
        fn(layout)
    return mutate


def _duplicate_child_block(layout, model):
    name = layout.layers[6].sum_backward_partitions[0].cblock_slots
    _edit(name, lambda c: np.where(np.arange(len(c)) == 1, c[0], c))(layout, model)


LAYOUT_BREAKAGES = [
    ("version", _set(lambda l: setattr(l, "ir_version", 7)), "ir-version", True),
    ("header", _set(lambda l: setattr(l, "num_slots", 1)), "layout-header", True),
    ("hash", _set(lambda l: setattr(l, "model_hash", "0" * 64)), "model-hash", True),
    ("placement-missing", _set(lambda l: l.placements.pop()), "placement", True),
    ("param-reserved", _set(lambda l: setattr(l.placements[6], "param_start", 0)),
     "param-range", True),
    ("tie-placement", _set(lambda l: setattr(l.placements[2], "param_start", 3)),
     "param-range", True),
    ("layer-kind", _set(lambda l: setattr(l.layers[3], "kind", 0)), "layer-kind", True),
    ("layer-wrong-group", _set(lambda l: l.layers[4].groups.append(0)), "layer-kind", True),
    ("layer-range", _set(lambda l: setattr(l.layers[9], "num_slots", 10 ** 6)),
     "slot-range", True),
    ("read-before-write", _reorder_layers, "read-before-write", False),
    ("two-writers", _overlap_writer, "slot-writers", False),
    ("product-index", _edit("L8.kids", lambda k: k + 10 ** 6), "index-range", True),
    ("input-vars", _edit("L1.vars", lambda v: v + 4), "index-range", True),
    ("input-params", _edit("L3.pstarts", lambda p: p + 10 ** 6), "index-range", True),
    ("sum-padding", _edit("L6.kids", lambda k: np.where(k == 0, 5, k)), "padding", True),
    ("sum-params", _edit("L7.pstarts", lambda p: p + 10 ** 6), "index-range", True),
    ("sum-shape", _edit("L9.kids", lambda k: k[:, :2]), "tensor-shape", True),
    ("sum-dtype", _edit("L9.bcount", lambda k: k.astype(np.float32)), "tensor-dtype", True),
    ("backward-overlap", _duplicate_child_block, "flow-writers", True),
    ("backward-parents", _edit("L6.pslots", lambda p: p + 1), "index-range", True),
    ("root", _set(lambda l: setattr(l, "root_slot", 2)), "root", True),
]


@pytest.mark.parametrize("case", LAYOUT_BREAKAGES, ids=[c[0] for c in LAYOUT_BREAKAGES])
def test_each_layout_rule_catches_its_breakage(case):
    _, mutate, rule, with_model = case
    model = F.tied_model(seed=5)
    layout = F.naive_layout(model)
    mutate(layout, model)
    errors = ir.check_layout(layout, model if with_model else None, collect=True)
    assert rule in {e.rule for e in errors}, [str(e) for e in errors]
    with pytest.raises(CheckError):
        ir.check_layout(layout, model if with_model else None)


def test_interval_reads_across_writers():
    """A read interval may span the writes of several earlier layers, but not
    a gap, a slot of its own layer or of a later one."""
    from pccompiler.ir.layout_checker import _check_dataflow, _Plan

    def plan_with(read_start, read_len, reader):
        plan = _Plan()
        plan.write(np.array([2]), 4, 0, "layer 0")        # slots 2..5
        plan.write(np.array([6]), 4, 1, "layer 1")        # slots 6..9
        plan.write(np.array([12]), 2, 2, "layer 2")       # slots 12..13 (10, 11 unwritten)
        plan.read(np.array([0, 1]), 1, reader, "reader")
        plan.read(np.array([read_start]), read_len, reader, "reader")
        return plan

    _check_dataflow(plan_with(5, 2, 2))                   # 5 (layer 0) + 6 (layer 1)
    _check_dataflow(plan_with(0, 10, 3))                  # reserved slots count as written
    for start, length, reader in ((5, 2, 1), (8, 3, 3), (12, 1, 2), (13, 2, 3)):
        with pytest.raises(CheckError, match="read-before-write"):
            _check_dataflow(plan_with(start, length, reader))


def test_claimed_huge_slot_counts_allocate_nothing():
    model = F.small_dense_model()
    layout = F.naive_layout(model)
    layout.num_slots = 2 ** 47
    layout.layers[9].num_slots = 2 ** 46      # claims, no data behind them
    # consistent claims, but no layer writes those slots: a backend would
    # allocate values [2**47, B] from them, so the checker refuses the claim
    # (and allocates nothing itself)
    errors = ir.check_layout(layout, model, collect=True)
    assert [e.rule for e in errors] == ["layout-size"]
    layout.layers[9].num_slots = 2 ** 47
    with pytest.raises(CheckError, match="slot-range"):
        ir.check_layout(layout, model)


def _zero_first_block(layout, model):
    _edit("L6.bcount", lambda c: np.where(np.arange(len(c)) == 0, 0, c))(layout, model)
    _edit("L6.kids", lambda k: np.where(np.arange(len(k))[:, None] == 0, 0, k))(layout, model)


DEEP_BREAKAGES = [
    ("layer-gap", _set(lambda l: setattr(l.layers[2], "num_slots", 5)), "layer-slots"),
    ("fan-in", _zero_first_block, "fan-in"),
    ("real-child-reserved", _edit("L6.kids", lambda k: np.where(k > 1, 1, k)), "padding"),
    ("reserved-weights", _edit("L6.pstarts", lambda p: np.where(p == p.min(), 0, p)),
     "param-range"),
    ("backward-plan", _edit("L7.pparams", lambda p: np.where(p > 0, p.max() + p[p > 0].min() - p,
                                                             p)), "backward-plan"),
]


@pytest.mark.parametrize("case", DEEP_BREAKAGES, ids=[c[0] for c in DEEP_BREAKAGES])
def test_each_deep_rule_catches_its_breakage(case):
    """deep=True adds the rules of ir/layout_rules_deep.py; the basic rules
    pass these layouts."""
    _, mutate, rule = case
    model = F.tied_model(seed=5)
    layout = F.naive_layout(model)
    mutate(layout, model)
    assert ir.check_layout(layout, model) == []
    errors = ir.check_layout(layout, model, collect=True, deep=True)
    assert rule in {e.rule for e in errors}, [str(e) for e in errors]
    with pytest.raises(CheckError, match=rule):
        ir.check_layout(layout, model, deep=True)


def test_deep_check_finds_a_slot_without_writer():
    from pccompiler.ir.layout_rules_deep import check_layer_tiling
    layout = F.naive_layout(F.small_dense_model())
    starts = np.array([0, 2, 10])
    check_layer_tiling(layout, starts, np.array([2, 10, layout.num_slots]))
    with pytest.raises(CheckError, match="slot-writers"):
        check_layer_tiling(layout, starts, np.array([2, 9, layout.num_slots]))
