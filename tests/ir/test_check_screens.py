"""The vectorised screens (ir/group_screen.py, ir/layout_screen.py) change
nothing but speed: on randomly broken models and layouts, `ir.check` and
`ir.check_layout` return the same violations (rule, group, message, in the
same order) and raise the same first one with the screens as with every
group and layer sent through the exact rules."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir
from pccompiler.errors import CheckError
from pccompiler.ir import checker, group_screen, layout_checker, pcir
from tests import factories as F


def _hclt_model(seed: int = 0) -> pcir.Model:
    """A small HCLT: many small dense groups, categorical inputs."""
    tree = nx.path_graph(9)
    tree.add_edges_from([(4, 9), (9, 10), (2, 11)])
    return pc.lower(pc.hclt(None, 4, num_cats=5, tree=tree, seed=seed))


MODELS = {**{name: f for name, f in F.ALL_FACTORIES.items()}, "hclt": _hclt_model}


def _screens_off(monkeypatch) -> None:
    def all_flagged(model, table, shapes, ties, logic):
        return np.ones(len(model.groups), dtype=bool), []
    monkeypatch.setattr(checker, "screen_groups", all_flagged)
    monkeypatch.setattr(layout_checker, "placements_hold", lambda *a: None)

    def layers_flagged(layout, *a):
        n = len(layout.layers)
        return np.ones(n, dtype=bool), [[]] * n, [[]] * n
    monkeypatch.setattr(layout_checker, "screen_layers", layers_flagged)


def _outcome(fn) -> tuple:
    collected = [(e.rule, e.group, str(e)) for e in fn(True)]
    try:
        fn(False)
        first = None
    except CheckError as exc:
        first = (exc.rule, exc.group, str(exc))
    return collected, first


def _both(fn, monkeypatch) -> tuple[tuple, tuple]:
    fast = _outcome(fn)
    with monkeypatch.context() as m:
        _screens_off(m)
        exact = _outcome(fn)
    return fast, exact


# ---- random model breakages

def _tensors(model):
    return {t.name: t for t in model.tensors}


def _break_tensor(model, rng):
    t = list(model.tensors)[rng.integers(len(model.tensors))]
    array = ir.tensor_table(model)[t.name].copy()
    flat = array.reshape(-1)
    if not flat.size:
        return
    i = rng.integers(flat.size)
    choice = rng.integers(7)
    if array.dtype.kind == "f":
        if choice == 0:
            flat[i] = np.nan
        elif choice == 1:
            flat[i] = -flat[i] - 0.01
        elif choice == 2:
            flat[i] *= 1 + 3e-5          # off by more than the tolerance
        elif choice == 3:
            flat[i] += 2e-6              # within the tolerance: passes
        elif choice == 4:
            array = array.astype(np.float64)
        elif choice == 5:
            array = array.T.copy() if array.ndim == 2 else array.reshape(1, -1)
        else:
            array = array.astype(np.int64)
    else:
        if choice < 3:
            flat[i] = -1 if choice == 0 else flat[i] + 10 ** choice
        elif choice == 3:
            array = array.astype(np.float32)
        elif choice == 4:
            array = array[:-1] if len(array) > 1 else array
        else:
            flat[i] = 0
    t.CopyFrom(ir.make_tensor(t.name, array))


def _break_group(model, rng):
    g = model.groups[rng.integers(len(model.groups))]
    choice = rng.integers(10)
    if choice == 0:
        g.num_nodes = int(rng.choice([0, 2 ** 41, g.num_nodes + 1]))
    elif choice == 1 and len(g.scope) > 1:
        g.scope[0], g.scope[1] = g.scope[1], g.scope[0]
    elif choice == 2:
        g.scope.append(len(model.variables) + int(rng.integers(2)))
    elif choice == 3 and g.kind != pcir.INPUT:
        kids = g.sum.children if g.kind == pcir.SUM else g.product.children
        kids[0] = int(rng.choice([g.id, -1, max(g.id - 1, 0)]))
    elif choice == 4 and g.kind == pcir.INPUT:
        g.input.dist = int(rng.choice([0, pcir.GAUSSIAN_DIST, pcir.BERNOULLI_DIST]))
    elif choice == 5 and g.kind == pcir.INPUT:
        g.input.variable = (g.input.variable + 1) % len(model.variables)
    elif choice == 6 and g.kind == pcir.SUM:
        g.sum.pattern = int(rng.choice([0, pcir.SPARSE, pcir.DENSE]))
    elif choice == 7:
        g.kind = int(rng.choice([0, pcir.SUM, pcir.PRODUCT]))
    elif choice == 8 and g.kind != pcir.PRODUCT:
        target = model.groups[rng.integers(len(model.groups))]
        model.ties.add(group=g.id, target=target.id)
        if rng.integers(2):
            if g.kind == pcir.INPUT:
                g.input.params = ""
            else:
                g.sum.weights = ""
    else:
        g.id = g.id + 1


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("seed", range(30))
def test_model_screen_changes_nothing(name, seed, monkeypatch):
    rng = np.random.default_rng(seed)
    model = MODELS[name](seed=seed % 3)
    for _ in range(1 + seed % 3):
        (_break_tensor if rng.integers(2) else _break_group)(model, rng)
    if seed % 4 == 0:
        model.metadata[checker.SEMANTICS_KEY] = checker.LOGIC_SEMANTICS
    fast, exact = _both(lambda collect: ir.check(model, collect=collect), monkeypatch)
    assert fast == exact


def test_valid_models_pass_the_screen():
    """Every group of a valid model is cleared (else the screen saves nothing)."""
    for name, make in MODELS.items():
        model = make(seed=1)
        table = checker._Tensors(model.tensors)
        shapes: dict = {}
        checker.check_tensor_bytes(model.tensors, shapes=shapes)
        ties = {t.group: t.target for t in model.ties}
        flagged, _ = group_screen.screen_groups(model, table, shapes, ties, False)
        patterns = np.array([g.sum.pattern if g.kind == pcir.SUM else pcir.DENSE
                             for g in model.groups])
        # block-sparse and sparse sums always take the exact rules
        assert not flagged[patterns == pcir.DENSE].any(), name


def test_screen_never_clears_a_row_off_by_more_than_the_tolerance():
    """Rows summing to 1 + 1.01e-5 in float64 are refused, with the screen,
    for float32 and float64 weights (the screen sums float32 in float32)."""
    model = _hclt_model()
    group = next(g for g in model.groups if g.kind == pcir.SUM and g.num_nodes > 1)
    w = ir.tensor_table(model)[group.sum.weights].astype(np.float64)
    w[1] *= (1 + 1.01e-5) / w[1].sum()
    for dtype in (np.float32, np.float64):
        for t in model.tensors:
            if t.name == group.sum.weights:
                t.CopyFrom(ir.make_tensor(t.name, w.astype(dtype)))
        err = abs(ir.tensor_table(model)[group.sum.weights][1].sum(dtype=np.float64) - 1)
        errors = ir.check(model, collect=True)
        assert (err > checker.NORMALIZATION_TOL) == any(
            e.rule == "normalized-weights" and e.group == group.id for e in errors)


# ---- random layout breakages

def _layout_for(name, model):
    if name == "hclt":
        return pc.compile(model, backend="torch", device="cpu", cache=False).layout
    return F.naive_layout(model)


def _break_layout(layout, rng):
    choice = rng.integers(6)
    if choice < 3 and len(layout.tensors):
        t = layout.tensors[rng.integers(len(layout.tensors))]
        array = ir.tensor_table(layout)[t.name].copy()
        flat = array.reshape(-1)
        zeros = np.flatnonzero(flat == 0)
        if zeros.size and rng.integers(3) == 0:      # often padding: must stay 0
            flat[zeros[rng.integers(zeros.size)]] = int(rng.choice([1, 2]))
        elif flat.size:
            i = rng.integers(flat.size)
            flat[i] = int(rng.choice([-1, 0, 1, flat[i] + 1, 2 ** 30]))
        if choice == 2:
            array = array.astype(np.float32)
        t.CopyFrom(ir.make_tensor(t.name, array))
    elif choice == 3 and len(layout.placements):
        p = layout.placements[rng.integers(len(layout.placements))]
        field = ["group", "slot_start", "param_start", "param_count", "block_size"][
            rng.integers(5)]
        setattr(p, field, getattr(p, field) + int(rng.choice([-1, 1, 7])))
    elif choice == 4:
        layer = layout.layers[rng.integers(len(layout.layers))]
        parts = [*layer.input_partitions, *layer.product_partitions, *layer.sum_partitions,
                 *layer.sum_backward_partitions]
        part = parts[rng.integers(len(parts))] if parts else layer
        fields = [f.name for f, v in part.ListFields() if isinstance(v, int)]
        if fields:
            f = fields[rng.integers(len(fields))]
            setattr(part, f, getattr(part, f) + int(rng.choice([-1, 1])))
    else:
        layer = layout.layers[rng.integers(len(layout.layers))]
        layer.slot_start += int(rng.choice([-1, 1]))


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("seed", range(30))
def test_layout_screen_changes_nothing(name, seed, monkeypatch):
    rng = np.random.default_rng(100 + seed)
    model = MODELS[name](seed=seed % 2)
    layout = _layout_for(name, model)
    for _ in range(1 + seed % 2):
        _break_layout(layout, rng)
    with_model = seed % 3 != 0
    fast, exact = _both(lambda collect: ir.check_layout(
        layout, model if with_model else None, collect=collect), monkeypatch)
    assert fast == exact


@pytest.mark.parametrize("name", sorted(MODELS))
def test_valid_layouts_pass_the_screens(name):
    model = MODELS[name](seed=0)
    layout = _layout_for(name, model)
    assert layout_checker.placements_hold(
        layout, model, layout_checker.group_fields(model)) is not None
    assert ir.check_layout(layout, model) == []


@pytest.mark.parametrize("name", ["block_sparse", "sparse", "tied"])
@pytest.mark.parametrize("field", ["child_slots", "parent_slots", "parent_param_starts"])
def test_padding_breakages_agree(name, field, monkeypatch):
    """A non-zero padding entry (a block with fewer children or parents than
    the partition's width) is refused alike with and without the screens."""
    model = MODELS[name](seed=0)
    layout = _layout_for(name, model)
    table = ir.tensor_table(layout)
    broken = 0
    for layer in layout.layers:
        parts = layer.sum_partitions if field == "child_slots" else \
            layer.sum_backward_partitions
        for part in parts:
            counts = table[part.block_num_children if field == "child_slots"
                           else part.cblock_num_parents]
            rows = np.flatnonzero(counts < (part.max_children if field == "child_slots"
                                            else part.max_parents))
            if not rows.size:
                continue
            name_ = getattr(part, field)
            array = table[name_].copy()
            array[rows[0], -1] = 2
            for t in layout.tensors:
                if t.name == name_:
                    t.CopyFrom(ir.make_tensor(name_, array))
            broken += 1
            break
        if broken:
            break
    assert broken, "the fixture has no padding to break"
    fast, exact = _both(lambda collect: ir.check_layout(layout, model, collect=collect),
                        monkeypatch)
    assert fast == exact
    assert "padding" in {rule for rule, _, _ in fast[0]}


def test_batched_input_messages_keep_their_order(monkeypatch):
    """Small input groups' values are checked in batches, one per (dist,
    width) in order of first appearance among *all* groups: g0 (width 3,
    valid) puts width 3 first, so g2's error comes before g1's (width 4)
    although only g1 and g2 are flagged."""
    model = F.build_model(seed=0)
    rng = np.random.default_rng(0)
    for v in (1, 3):
        model.variables[v].num_cats = 4
        rows = rng.random((model.groups[v].num_nodes, 4))
        replace = ir.make_tensor(f"g{v}.params", rows / rows.sum(axis=1, keepdims=True))
        next(t for t in model.tensors if t.name == f"g{v}.params").CopyFrom(replace)
    assert ir.check(model) == []
    for v in (1, 2):
        t = next(t for t in model.tensors if t.name == f"g{v}.params")
        rows = ir.tensor_table(model)[t.name].copy()
        rows[0, 0] = -0.5
        t.CopyFrom(ir.make_tensor(t.name, rows))
    fast, exact = _both(lambda collect: ir.check(model, collect=collect), monkeypatch)
    assert fast == exact
    assert [group for _, group, _ in fast[0]] == [2, 1] and fast[1][1] == 2
