"""node_plan.build_node_plan (a small node layout's plan, a partition kind
at a time) gives the plan the partition-by-partition walk gives
(plan.NODE_PLAN = False), field for field: on the shared SDDs, random CNF
SDDs, and node layouts edited so that each check sends some partitions to
the general part builders (equal neighbouring sum blocks, backward pairs
listing one parent set, a row-tile part, shared parameter rows)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from pccompiler.backends.triton import node_plan, plan
from tests.triton.test_plan_build_fast import _node_layout

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from logic_fx import _digest  # noqa: E402


def _digest_of(built) -> str:
    h = hashlib.sha256()
    _digest(built, h)
    return h.hexdigest()


def _both(layout, monkeypatch) -> tuple[str, str]:
    """Digests of build_plan by node_plan and by the walk (fresh tables)."""
    fast = _digest_of(plan.build_plan(layout, "cpu"))
    with monkeypatch.context() as m:
        m.setattr(plan, "NODE_PLAN", False)
        walk = _digest_of(plan.build_plan(layout, "cpu"))
    return fast, walk


def _set(layout, name: str, array: np.ndarray) -> None:
    """Overwrite tensor `name`'s bytes (same dtype and shape)."""
    from pccompiler import ir
    tensor = next(t for t in layout.tensors if t.name == name)
    old = ir.to_numpy(tensor)
    tensor.raw_data = np.ascontiguousarray(array, dtype=old.dtype.newbyteorder("<")).tobytes()


def _table(layout, name):
    from pccompiler import ir
    return np.array(ir.to_numpy(next(t for t in layout.tensors if t.name == name)))


@pytest.mark.parametrize("name", ["sudoku_4", "4-grid", "seq_fun", "road_r"]
                         + [f"random{s}" for s in range(8)])
def test_node_plan_matches_the_walk(name, tmp_path, monkeypatch):
    layout = _node_layout(name, tmp_path)
    from pccompiler import ir
    assert node_plan.build_node_plan(layout, ir.tensor_table(layout)) is not None
    fast, walk = _both(layout, monkeypatch)
    assert fast == walk


def _sum_partitions(layout, at_least: int):
    return [sp for layer in layout.layers for sp in layer.sum_partitions
            if sp.num_blocks >= at_least]


def _backward_partitions(layout, at_least: int):
    return [bp for layer in layout.layers for bp in layer.sum_backward_partitions
            if bp.num_blocks >= at_least]


@pytest.mark.parametrize("name", ["sudoku_4", "seq_fun"])
def test_equal_neighbouring_sum_blocks_take_sum_part(name, tmp_path, monkeypatch):
    """Block 1 given block 0's children: that partition goes through
    plan.sum_part (its neighbours may share a run); the plan is the walk's."""
    layout = _node_layout(name, tmp_path)
    sp = _sum_partitions(layout, 2)[0]
    cs, nc = _table(layout, sp.child_slots), _table(layout, sp.block_num_children)
    cs[1], nc[1] = cs[0], nc[0]
    _set(layout, sp.child_slots, cs)
    _set(layout, sp.block_num_children, nc)
    calls = []
    real = plan.sum_part
    monkeypatch.setattr(plan, "sum_part", lambda *a, **k: calls.append(a[1][0]) or real(*a, **k))
    fast = _digest_of(plan.build_plan(layout, "cpu"))
    assert _table(layout, sp.block_slots)[0] in calls     # the edited partition's first block
    monkeypatch.setattr(plan, "NODE_PLAN", False)
    assert fast == _digest_of(plan.build_plan(layout, "cpu"))


def test_a_row_tile_part_leaves_the_node_plan(tmp_path, monkeypatch):
    """A partition of 16 or more blocks, all with one child list, is one run
    of 16+ rows: a row-tile part, whose node flows leave the plain plan;
    build_node_plan declines and the walk builds."""
    layout = _node_layout("seq_fun", tmp_path)
    sp = _sum_partitions(layout, 16)[0]
    cs, nc = _table(layout, sp.child_slots), _table(layout, sp.block_num_children)
    cs[:], nc[:] = cs[0], nc[0]
    _set(layout, sp.child_slots, cs)
    _set(layout, sp.block_num_children, nc)
    from pccompiler import ir
    assert node_plan.build_node_plan(layout, ir.tensor_table(layout)) is None
    fast, walk = _both(layout, monkeypatch)
    assert fast == walk


@pytest.mark.parametrize("gaps", [False, True])
@pytest.mark.parametrize("name", ["sudoku_4", "4-grid", "seq_fun", "road_r"])
def test_backward_pairs_with_one_parent_set_take_sum_backward_part(name, gaps, tmp_path,
                                                                   monkeypatch):
    """Every aligned pair of a backward partition given one parent set (the
    second block's list reversed): parent_union may group them; with
    UNIONS_WITH_GAPS every partition goes through sum_backward_part. The
    plan is the walk's either way."""
    layout = _node_layout(name, tmp_path)
    monkeypatch.setattr(plan, "UNIONS_WITH_GAPS", gaps)
    bp = _backward_partitions(layout, 4)[0]
    ps, st = _table(layout, bp.parent_slots), _table(layout, bp.parent_param_starts)
    npar = _table(layout, bp.cblock_num_parents)
    for i in range(0, len(npar) - 1, 2):
        n = npar[i]
        npar[i + 1] = n
        ps[i + 1] = 0
        ps[i + 1, :n] = ps[i, :n][::-1]
        st[i + 1, :n] = st[i, :n][::-1]
    for field, array in ((bp.parent_slots, ps), (bp.parent_param_starts, st),
                         (bp.cblock_num_parents, npar)):
        _set(layout, field, array)
    fast, walk = _both(layout, monkeypatch)
    assert fast == walk


def test_shared_parameter_rows_take_the_walk(tmp_path, monkeypatch):
    """Two sum partitions with one parameter start (a tie): declined."""
    from pccompiler import ir
    layout = _node_layout("sudoku_4", tmp_path)
    a, b = _sum_partitions(layout, 1)[:2]
    starts = _table(layout, b.block_param_starts)
    starts[0] = _table(layout, a.block_param_starts)[0]
    _set(layout, b.block_param_starts, starts)
    assert node_plan.build_node_plan(layout, ir.tensor_table(layout)) is None
    fast, walk = _both(layout, monkeypatch)
    assert fast == walk


def test_layouts_of_other_forms_take_the_walk():
    """A group-form Layout (HCLT over 8 nltcs variables) is no node layout: None."""
    import pccompiler as pc
    from pccompiler import ir
    from pccompiler.data.debd import load_debd
    from pccompiler.passes.manager import compile_model
    data = load_debd("nltcs", "train")[:300, :8].astype(np.int64)
    model = pc.lower(pc.hclt(data, num_latents=4, num_cats=2, seed=0))
    layout = compile_model(model, backend="triton", verify=False).layout
    assert node_plan.build_node_plan(layout, ir.tensor_table(layout)) is None


@pytest.mark.parametrize("knob", ["CANDIDATES_MAX", "KEY_MAP_MAX", "WHOLE_ENTRIES_MAX"])
@pytest.mark.parametrize("name", ["sudoku_4", "random3"])
def test_the_fallbacks_inside_node_plan_give_the_same_plan(name, knob, tmp_path, monkeypatch):
    """Every candidate pair flagged without a comparison (sum_part searches
    them), duplicate product children found by a sort instead of the
    position map, or the whole plan walked (the entry bound): the walk's
    plan each time."""
    layout = _node_layout(name, tmp_path)
    monkeypatch.setattr(node_plan, knob, -1)
    fast, walk = _both(layout, monkeypatch)
    assert fast == walk


@pytest.mark.parametrize("seed", range(12))
def test_one_parent_unions_match_sum_backward_part(seed, tmp_path, monkeypatch):
    """Every one-parent backward partition of a node layout given runs of
    one parent (random lengths, some blocks without a parent, some changes
    of parent inside a run): _one_parent_unions answers for them all at
    once, sum_backward_part is not called for them, and the plan is the
    walk's."""
    layout = _node_layout(["sudoku_4", "seq_fun", "road_r"][seed % 3], tmp_path)
    rng = np.random.default_rng(seed)
    edited = 0
    for bp in _backward_partitions(layout, 2):
        if bp.max_parents != 1:
            continue
        nb = bp.num_blocks
        run = int(rng.choice([1, 2, 4, 8, 16, 128]))
        ps = np.repeat(rng.integers(2, 50, size=-(-nb // run)), run)[:nb]
        change = rng.random(nb) < float(rng.choice([0.0, 0.05]))
        ps[change] = rng.integers(2, 50, size=int(change.sum()))
        npar = (rng.random(nb) < float(rng.choice([1.0, 0.95]))).astype(np.int32)
        ps[npar == 0] = 0
        _set(layout, bp.parent_slots, ps.reshape(nb, 1))
        _set(layout, bp.cblock_num_parents, npar)
        edited += 1
    assert edited
    calls = []
    real = plan.sum_backward_part
    monkeypatch.setattr(plan, "sum_backward_part",
                        lambda *a, **k: calls.append(a[4].shape) or real(*a, **k))
    fast = _digest_of(plan.build_plan(layout, "cpu"))
    assert all(shape[1] != 1 for shape in calls)         # one-parent lists: none came here
    monkeypatch.setattr(plan, "NODE_PLAN", False)
    assert fast == _digest_of(plan.build_plan(layout, "cpu"))


@pytest.mark.parametrize("seed", range(40))
def test_one_parent_unions_match_parent_union(seed):
    """_one_parent_unions over random one-parent partitions laid end to end
    (runs of every length, many blocks without a parent, so that unions of
    G and 2G can read as many rows) gives plan.parent_union's answer for
    each partition whose pairs pass its checks."""
    rng = np.random.default_rng(seed)
    nbs = [int(x) for x in rng.integers(2, 70, size=int(rng.integers(1, 8)))]
    slots, counts, starts, chosen = [], [], [], []
    for nb in nbs:
        run = int(rng.choice([1, 2, 3, 4, 8, 64]))
        ps = np.repeat(rng.integers(2, 30, size=-(-nb // run)), run)[:nb]
        npar = (rng.random(nb) < float(rng.choice([1.0, 0.7, 0.3]))).astype(np.int64)
        ps[npar == 0] = 0
        pairs = np.arange(0, nb - 1, 2)
        chosen.append(bool(npar.sum() and (npar[pairs] == npar[pairs + 1]).all()
                           and (ps[pairs] == ps[pairs + 1]).all()))
        slots.append(ps)
        counts.append(npar)
        starts.append(rng.integers(0, 1000, size=nb))
    got = node_plan._one_parent_unions(np.concatenate(counts).astype(np.int32),
                                       np.concatenate(slots).astype(np.int32),
                                       np.concatenate(starts), nbs, [1] * len(nbs),
                                       np.array(chosen))
    for i, (ps, npar, st) in enumerate(zip(slots, counts, starts)):
        want = plan.parent_union(ps[:, None], st[:, None], npar, 1)
        if not chosen[i] or want[0] == 1:
            assert i not in got
            continue
        g, union, union_starts, cnt = got[i]
        assert g == want[0]
        for a, b in zip((union, union_starts, cnt), want[1:]):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_one_parent_unions_keep_the_first_of_equal_reads():
    """Blocks 0-3 without a parent, 4-5 with one: runs of 2 and of 4 both
    read one parent row; parent_union keeps G = 2 (the first), and so
    does _one_parent_unions."""
    npar = np.array([0, 0, 0, 0, 1, 1], dtype=np.int32)
    slots = np.array([0, 0, 0, 0, 7, 7], dtype=np.int32)
    starts = np.arange(6, dtype=np.int64)
    want = plan.parent_union(slots[:, None], starts[:, None], npar, 1)
    got = node_plan._one_parent_unions(npar, slots, starts, [6], [1], np.array([True]))
    assert want[0] == 2 and got[0][0] == 2
