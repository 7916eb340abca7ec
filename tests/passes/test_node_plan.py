"""passes/node_layout.plan_nodes: its runs (from the counts of the
(layer, class) keys) and the per-position fan-ins and weight starts
(gathered into slot order once) equal the general construction from the
sorted keys and per-node arrays that it replaced."""

from __future__ import annotations

import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir
from pccompiler.ir.nodes import SUM, stable_argsort
from pccompiler.passes.helpers.node_levels import node_levels
from pccompiler.passes.helpers.node_tables import layer_classes
from pccompiler.passes.node_layout import RESERVED, plan_nodes

from tests.logic.circuits import SHARED, random_cnf_sdd, shared_sdd


def _general_plan(a):
    """The runs, slots and slot-order arrays as the general code made them:
    the keys sorted and cut where they change, every array per node, then
    gathered through the order."""
    fan = a.fan_in()
    level = node_levels(a)
    layer_key = 2 * level.astype(np.int64) + (a.kind == SUM)
    run_key = layer_key * 64 + layer_classes(layer_key, fan)
    order = stable_argsort(run_key)
    slot = np.empty(a.num_nodes, dtype=np.int64)
    slot[order] = 2 + np.arange(a.num_nodes)
    key_o = run_key[order]
    cut = np.flatnonzero(key_o[1:] != key_o[:-1]) + 1
    run_start, run_end = np.r_[0, cut], np.r_[cut, a.num_nodes]
    lkeys, run_layer = np.unique(key_o[run_start] // 64, return_inverse=True)
    sums = a.kind == SUM
    weight_start = np.zeros(a.num_nodes, dtype=np.int64)
    weight_start[sums] = np.cumsum(fan[sums]) - fan[sums]
    fan_o = fan[order]
    return dict(order=order, slot=slot, run_start=run_start, run_end=run_end,
                run_layer=run_layer, layer_level=lkeys // 2, fan_o=fan_o,
                wstart_o=(RESERVED + weight_start[order])[sums[order]],
                run_max=np.array([fan_o[s:e].max() for s, e in zip(run_start, run_end)]),
                run_min=np.array([fan_o[s:e].min() for s, e in zip(run_start, run_end)]),
                run_fan=np.array([fan_o[s:e].sum() for s, e in zip(run_start, run_end)]))


def _check(a):
    got, want = plan_nodes(a), _general_plan(a)
    sums_o = (a.kind == SUM)[got.order]
    for name, value in want.items():
        have = getattr(got, name)[sums_o] if name == "wstart_o" else getattr(got, name)
        np.testing.assert_array_equal(have, value, err_msg=name)
    assert got.slot.dtype == np.int32                  # the slot dtype, not int64


@pytest.mark.parametrize("name", SHARED)
def test_plan_nodes_matches_the_general_construction_on_shared_sdds(name):
    _check(ir.nodes.node_arrays(pc.from_sdd(shared_sdd(name), form="nodes")))


@pytest.mark.parametrize("seed", range(4))
def test_plan_nodes_matches_the_general_construction_on_random_sdds(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path, _, _ = random_cnf_sdd(tmp_path, rng, int(rng.integers(6, 12)), int(rng.integers(8, 30)))
    _check(ir.nodes.node_arrays(pc.from_sdd(path, form="nodes")))


def test_structure_hash_on_a_thread_gives_the_inline_layout(monkeypatch):
    """The layout pass's structure hash computed beside it (a thread) gives
    the Layout bytes of the inline hash, and the thread's error reaches the
    caller."""
    from pccompiler.passes import node_layout
    from pccompiler.passes.manager import compile_model
    model = pc.from_sdd(shared_sdd("road_r"), form="nodes")
    monkeypatch.setattr(node_layout, "HASH_BESIDE", False)
    inline = compile_model(model).layout.SerializeToString(deterministic=True)
    monkeypatch.setattr(node_layout, "HASH_BESIDE", True)
    monkeypatch.setattr(node_layout, "HASH_BESIDE_MIN_EDGES", 0)
    seen = []
    real = ir.structure_hash
    monkeypatch.setattr(ir, "structure_hash", lambda *a, **k: seen.append(
        __import__("threading").current_thread().name) or real(*a, **k))
    beside = compile_model(model).layout.SerializeToString(deterministic=True)
    assert beside == inline and seen == ["pcc-structure-hash"]

    def broken(*a, **k):
        raise ValueError("hash failed")
    monkeypatch.setattr(ir, "structure_hash", broken)
    with pytest.raises(ValueError, match="hash failed"):
        compile_model(model)
