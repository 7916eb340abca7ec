"""The node checker's chunked screens (ir/node_checker.py `_edges_hold`,
`_scopes_hold`) decide exactly what its per-edge rules decide: on real node
circuits and on many one-entry corruptions of them, the screened check and
the exact one (screen=False) both pass or raise the same rule and message,
with one chunk and with chunks of a few rows; the verify pass hands the
tensors it decoded to the node passes of the Model it checked."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir
from pccompiler.errors import CheckError
from pccompiler.ir.checker import _Tensors, is_logic
from pccompiler.ir.node_checker import check_node_model
from pccompiler.ir.nodes import PRODUCT, TENSOR_FIELDS, node_arrays, set_nodes

from tests.logic.circuits import random_cnf_sdd, shared_sdd


def _outcome(model, screen: bool):
    """None when the node rules hold, else (rule, message) of the first error."""
    try:
        check_node_model(model, _Tensors(model.tensors), is_logic(model), screen=screen)
    except CheckError as exc:
        return exc.rule, str(exc)
    return None


def _with_arrays(model, arrays):
    """A copy of `model` whose NodeCircuit holds `arrays`."""
    out = ir.pcir.Model()
    out.CopyFrom(model)
    del out.tensors[:]
    set_nodes(out, arrays)
    return out


def _corruptions(arrays, rng, count):
    """`count` copies of the arrays, each with one entry changed: a child
    id (also -1), a scope end, or the order of one product's children (which keeps
    the circuit valid)."""
    fan = arrays.fan_in()
    products = np.flatnonzero((arrays.kind == PRODUCT) & (fan > 1))
    for i in range(count):
        kids = arrays.child_ids.copy()
        lo, hi = arrays.scope_lo.copy(), arrays.scope_hi.copy()
        what = i % 5
        if what == 0:                                 # another child, maybe not below
            e = int(rng.integers(len(kids)))
            kids[e] = int(rng.integers(len(arrays.kind)))
        elif what == 4:
            kids[int(rng.integers(len(kids)))] = -1
        elif what == 1:
            v = int(rng.integers(len(lo)))
            lo[v] = max(0, int(lo[v]) + int(rng.choice([-1, 1])))
        elif what == 2:
            v = int(rng.integers(len(hi)))
            hi[v] = int(hi[v]) + int(rng.choice([-1, 1]))
        else:                                         # reversed children: still valid
            p = int(rng.choice(products))
            a, b = int(arrays.child_offsets[p]), int(arrays.child_offsets[p + 1])
            kids[a:b] = kids[a:b][::-1]
        yield replace(arrays, child_ids=kids, scope_lo=lo, scope_hi=hi)


def _circuits(tmp_path):
    yield pc.from_sdd(shared_sdd("seq_fun"), form="nodes")
    path, _, _ = random_cnf_sdd(tmp_path, np.random.default_rng(5), 10, 20)
    yield pc.from_sdd(path, form="nodes")


@pytest.mark.parametrize("chunk", [None, 5])
def test_screened_check_equals_the_exact_rules(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr("pccompiler.ir.node_checker.SCREEN_MIN_EDGES", 0)   # small circuits too
    if chunk:
        monkeypatch.setattr("pccompiler.ir.nodes.CHUNK", chunk)
    rng = np.random.default_rng(0)
    failed = kept = 0
    for model in _circuits(tmp_path):
        assert _outcome(model, True) is None and _outcome(model, False) is None
        arrays = node_arrays(model)
        for bad in _corruptions(arrays, rng, 60):
            changed = _with_arrays(model, bad)
            got, want = _outcome(changed, True), _outcome(changed, False)
            assert got == want
            failed += want is not None
            kept += want is None
    assert failed >= 40 and kept >= 20          # both sides of the screens were reached


def test_products_with_children_out_of_scope_order_pass(monkeypatch):
    """Every product's children reversed: the chain fails everywhere, the
    exact sorted rule on those products passes them."""
    monkeypatch.setattr("pccompiler.ir.node_checker.SCREEN_MIN_EDGES", 0)
    model = pc.from_sdd(shared_sdd("sudoku_4"), form="nodes")
    arrays = node_arrays(model)
    kids, off, fan = arrays.child_ids.copy(), arrays.child_offsets, arrays.fan_in()
    for p in np.flatnonzero((arrays.kind == PRODUCT) & (fan > 1)):
        kids[off[p]:off[p + 1]] = kids[off[p]:off[p + 1]][::-1]
    flipped = _with_arrays(model, replace(arrays, child_ids=kids))
    assert _outcome(flipped, True) is None
    ir.check(flipped)


def test_verify_hands_its_decoded_tensors_to_the_node_passes_of_that_model_only():
    """The verify pass keeps the checker's decoded tensors for the Model it
    checked: the node passes read them (equal to a fresh decode), and a
    different Model gets None (it decodes its own)."""
    from pccompiler.passes.manager import PassContext
    from pccompiler.passes.node_layout import model_arrays
    from pccompiler.passes.verify import checked_tensors, verify

    model = pc.from_sdd(shared_sdd("road_r"), form="nodes")
    other = pc.from_sdd(shared_sdd("road_r"), form="nodes")
    ctx = PassContext(model=model)
    verify(model, ctx)
    held = checked_tensors(model, ctx)
    assert held is not None and checked_tensors(other, ctx) is None
    fresh, reused = node_arrays(model), model_arrays(model, ctx)
    for field in TENSOR_FIELDS:
        np.testing.assert_array_equal(getattr(reused, field), getattr(fresh, field))
        assert np.shares_memory(getattr(reused, field), held[getattr(model.nodes, field)])
