"""The node layout's tables of all partitions at once (passes/helpers/node_tables.py)
equal the per-partition construction they replace; small layers become one
partition and large ones keep their fan-in classes; the importer's node-form
Model passes ir.check (why file-to-executable callers may skip `verify`)."""

from __future__ import annotations

import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir
from pccompiler.passes.helpers.node_tables import (MERGE_PADDING, backward_tables, fan_class,
                                                   layer_classes, padded_tables)
from pccompiler.ir.nodes import PRODUCT, SUM, NodeArrays, stable_argsort
from pccompiler.passes.helpers import node_levels as levels_module
from pccompiler.passes.helpers.node_levels import (levels_by_id_chunks, levels_by_kahn,
                                                   levels_by_stages, node_levels,
                                                   parents_by_child, scope_stages)
from pccompiler.passes.manager import compile_model

from tests.logic.circuits import SHARED, random_cnf_sdd, shared_sdd


def _naive_tables(values, lens, run_len, width, pad):
    out, v, row = [], 0, 0
    for n, w, p in zip(run_len, width, pad):
        t = np.full((n, w), p, dtype=np.int64)
        for i in range(n):
            t[i, :lens[row]] = values[v:v + lens[row]]
            v += lens[row]
            row += 1
        out.append(t)
    return out


def test_padded_tables_equal_row_by_row_padding():
    rng = np.random.default_rng(3)
    run_len = np.array([3, 1, 4, 2, 5])
    lens = rng.integers(0, 5, size=run_len.sum())
    lens[:3] = 2                                        # run 0 needs no padding (a view)
    starts = np.cumsum(run_len) - run_len
    width = np.maximum.reduceat(lens, starts) + np.array([0, 0, 1, 0, 2])
    values = rng.integers(10, 99, size=lens.sum())
    pad = np.array([1, 0, 1, 0, 7])
    got = padded_tables(values, lens, run_len, width, pad, np.int32)
    want = _naive_tables(values, lens, run_len, width, pad)
    assert [g.dtype for g in got] == [np.int32] * 5
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mask_min", [1, 40, 10 ** 9])
def test_padded_tables_mask_fill_equals_the_scatter(monkeypatch, seed, mask_min):
    """Padded runs filled through a mask (runs of >= MASK_FILL_MIN entries),
    by the one scatter, or both in one call, give the row-by-row tables."""
    from pccompiler.passes.helpers import node_tables
    monkeypatch.setattr(node_tables, "MASK_FILL_MIN", mask_min)
    rng = np.random.default_rng(seed)
    run_len = rng.integers(1, 30, size=int(rng.integers(1, 9)))
    lens = rng.integers(0, 6, size=run_len.sum())
    starts = np.cumsum(run_len) - run_len
    width = np.maximum.reduceat(lens, starts) + rng.integers(0, 3, size=len(run_len))
    exact = rng.random(len(run_len)) < 0.3            # some runs need no padding
    for r in np.flatnonzero(exact):
        lens[starts[r]:starts[r] + run_len[r]] = width[r]
    values = rng.integers(10, 99, size=lens.sum())
    pad = rng.integers(0, 3, size=len(run_len))
    got = padded_tables(values, lens, run_len, width, pad, np.int64)
    for g, w in zip(got, _naive_tables(values, lens, run_len, width, pad)):
        np.testing.assert_array_equal(g, w)


def test_layer_classes_merge_small_layers_only():
    fan = np.r_[np.full(10, 2), np.full(10, 7),                  # layer 0: small, mixed
                np.full(3000, 1), np.full(3000, 8)]              # layer 1: large, mixed
    layer = np.r_[np.zeros(20, dtype=np.int64), np.ones(6000, dtype=np.int64)]
    cls = layer_classes(layer, fan)
    assert (cls[:20] == 0).all()                                  # one partition
    np.testing.assert_array_equal(cls[20:], fan_class(fan[20:]))  # padding 3000 * 7 > limit
    assert (layer_classes(layer, fan, limit=10 ** 6) == 0).all()
    np.testing.assert_array_equal(layer_classes(layer, fan, limit=-1), fan_class(fan))
    assert MERGE_PADDING < 3000 * 7


@pytest.mark.parametrize("chunk", [None, 5, 64])
def test_layer_classes_in_chunks_equal_the_whole_array_rule(chunk, monkeypatch):
    """Rows interleaved over layers (int32 layers, as plan_nodes passes
    them), counted a chunk of rows at a time (ir.nodes.CHUNK made small):
    the classes of the whole-array rule, layer by layer."""
    if chunk:
        monkeypatch.setattr("pccompiler.ir.nodes.CHUNK", chunk)
    rng = np.random.default_rng(11)
    layer = rng.integers(0, 6, size=700).astype(np.int32)
    fan = rng.integers(0, 40, size=700)
    fan[layer == 2] = 2                                   # a layer of one width
    for limit in (-1, 0, 200, 2000, 10 ** 6):
        want = fan_class(fan)
        for lay in range(6):
            at = layer == lay
            if at.any() and at.sum() * 2.0 ** want[at].max() - fan[at].sum() <= limit:
                want[at] = 0
        got = layer_classes(layer, fan, limit)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


def test_backward_tables_list_each_childs_parents_in_its_layer():
    # layer 0: parents 10, 11 over children 2, 3; layer 1: parent 12 over 2
    layer = np.array([0, 0, 0, 1])
    pslot = np.array([10, 10, 11, 12])
    cslot = np.array([3, 2, 3, 2])
    param = np.array([100, 101, 102, 103])
    bt = backward_tables(layer, pslot, cslot, param, num_slots=20, sdt=np.int32)
    assert bt.layer.tolist() == [0, 1]                   # one partition per small layer
    np.testing.assert_array_equal(bt.cblock_slots[0], [2, 3])
    np.testing.assert_array_equal(bt.num_parents[0], [1, 2])
    np.testing.assert_array_equal(bt.parent_slots[0], [[10, 0], [10, 11]])
    np.testing.assert_array_equal(bt.param_starts[0], [[101, 0], [100, 102]])
    np.testing.assert_array_equal(bt.parent_slots[1], [[12]])


@pytest.mark.parametrize("name", SHARED)
def test_imported_node_models_pass_the_checker(name):
    """from_sdd's node form is valid by construction: compiling it with
    verify=False (pc.compile(check=False)) skips nothing that could fail."""
    ir.check(pc.from_sdd(shared_sdd(name), form="nodes"))


def test_compile_without_verify_gives_the_same_layout(tmp_path):
    pytest.importorskip("pysdd")
    path, _, _ = random_cnf_sdd(tmp_path, np.random.default_rng(5), 8, 14)
    model = pc.from_sdd(path, form="nodes")
    ir.check(model)
    a = compile_model(model).layout
    b = compile_model(model, verify=False)
    assert [r.name for r in b.report.records] == ["layerize", "layout"]
    assert a.SerializeToString(deterministic=True) == \
        b.layout.SerializeToString(deterministic=True)
    ir.check_layout(b.layout, model, deep=True)


@pytest.mark.parametrize("n, high", [(0, 1), (1, 0), (1000, 3), (5000, 10 ** 6), (300, 2 ** 60),
                                     (3000, 2 ** 16), (3000, 2 ** 24 - 1), (3000, 2 ** 24),
                                     (3000, 2 ** 40), (1 << 18, 2 ** 46)])
def test_stable_argsort_is_numpys_stable_order(n, high):
    keys = np.random.default_rng(n).integers(0, high + 1, size=n)
    np.testing.assert_array_equal(stable_argsort(keys), np.argsort(keys, kind="stable"))
    np.testing.assert_array_equal(stable_argsort(keys.astype(np.int32) if high < 2 ** 31
                                                 else keys), np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("n, edges, dtype", [(1, 0, np.int32), (7, 40, np.int32),
                                            (3000, 9000, np.int64), (20, 5, np.int64)])
def test_parents_by_child_is_the_stable_reverse_csr(n, edges, dtype):
    rng = np.random.default_rng(edges)
    fan = np.bincount(rng.integers(0, n, size=edges), minlength=n)   # repeats and zeros
    kids = rng.integers(0, n, size=int(fan.sum())).astype(dtype)
    want = np.repeat(np.arange(n), fan)[np.argsort(kids, kind="stable")]
    got = parents_by_child(kids, fan, n)
    assert got.dtype == np.intp
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("alternate", [True, False])
def test_node_levels_equal_the_longest_path_node_by_node(alternate):
    """Kahn's steps give the per-node rule: one above the deepest child,
    raised to the node's parity (products odd, sums even) with `alternate`."""
    rng = np.random.default_rng(3)
    n, inputs = 400, 40
    fan = np.r_[np.zeros(inputs, dtype=np.int64), rng.integers(1, 5, size=n - inputs)]
    kids = np.concatenate([rng.integers(0, i, size=f) for i, f in enumerate(fan) if f])
    kind = np.r_[np.zeros(inputs, dtype=np.uint8), rng.choice([PRODUCT, SUM], size=n - inputs)]
    off = np.r_[0, np.cumsum(fan)]
    a = NodeArrays(kind=kind.astype(np.uint8), child_offsets=off, child_ids=kids.astype(np.int32),
                   **{f: np.zeros(0) for f in ("sum_weights", "input_vars", "input_params",
                                               "variable_order", "scope_lo", "scope_hi",
                                               "roots")})
    want = np.zeros(n, dtype=np.int64)
    for v in range(inputs, n):
        top = int(want[kids[off[v]:off[v + 1]]].max()) + 1
        if alternate and top % 2 != int(kind[v] == PRODUCT):
            top += 1
        want[v] = top
    np.testing.assert_array_equal(node_levels(a, alternate), want)


@pytest.mark.parametrize("name", SHARED + ["random"])
@pytest.mark.parametrize("alternate", [True, False])
def test_levels_by_scope_stages_equal_kahns(name, alternate, tmp_path):
    """An imported SDD's scopes order its edges: the stage batches give
    Kahn's levels, node for node."""
    path = (random_cnf_sdd(tmp_path, np.random.default_rng(5), 10, 25)[0] if name == "random"
            else shared_sdd(name))
    a = ir.nodes.node_arrays(pc.from_sdd(path, form="nodes"))
    got = levels_by_stages(a, alternate)
    assert got is not None and got.dtype == np.int32
    np.testing.assert_array_equal(got, levels_by_kahn(a, alternate))
    np.testing.assert_array_equal(node_levels(a, alternate), got)


@pytest.mark.parametrize("pair_split", [1, 50])
@pytest.mark.parametrize("alternate", [True, False])
def test_levels_by_stages_large_and_small_batches_equal_kahns(pair_split, alternate,
                                                               monkeypatch):
    """With PAIR_SPLIT lowered, every batch (1) or some (50) take the large
    batches' way (two-child rows apart, chunks), the rest the small ones'
    (children gathered once, parity by ((top + 1 + even) | 1) - even):
    Kahn's levels either way, on seq_fun and 4-grid."""
    monkeypatch.setattr(levels_module, "PAIR_SPLIT", pair_split)
    for name in ("seq_fun", "4-grid"):
        a = ir.nodes.node_arrays(pc.from_sdd(shared_sdd(name), form="nodes"))
        np.testing.assert_array_equal(levels_by_stages(a, alternate),
                                      levels_by_kahn(a, alternate))


@pytest.mark.parametrize("name", SHARED + ["random"])
@pytest.mark.parametrize("alternate", [True, False])
@pytest.mark.parametrize("step", [None, 7, 300])
def test_levels_by_id_chunks_equal_kahns(name, alternate, step, tmp_path):
    """Node levels by id chunks (the way of circuits of more than one chunk
    of edges): in one chunk, chunks of a few rows (most children in earlier
    chunks) and of 300 edges, an imported SDD's ids and scopes order its
    reads, so the way never steps aside, and its levels are Kahn's."""
    path = (random_cnf_sdd(tmp_path, np.random.default_rng(5), 10, 25)[0] if name == "random"
            else shared_sdd(name))
    a = ir.nodes.node_arrays(pc.from_sdd(path, form="nodes"))
    got = levels_by_id_chunks(a, alternate, step)
    assert got is not None and got.dtype == np.int32
    np.testing.assert_array_equal(got, levels_by_kahn(a, alternate))


@pytest.mark.parametrize("scale", [1, 10 ** 7])
def test_chunk_groups_are_the_stable_runs_of_each_key(scale):
    """The id chunks' groups: positions in stable key order (those of key
    -1 anywhere), one run per key >= 0, ascending, key -1 left out; keys ranked through a table of
    the values present, or (keys far above the chunk's length: wide
    scopes) through np.unique."""
    rng = np.random.default_rng(2)
    key = rng.integers(-1, 40, size=500) * scale
    key[key < 0] = -1
    order, groups = levels_module._chunk_groups(key.astype(np.int64))
    stable = np.argsort(key, kind="stable")
    np.testing.assert_array_equal(order[key[order] >= 0], stable[key[stable] >= 0])
    want = sorted({int(k) for k in key if k >= 0})
    assert [k for k, _, _ in groups] == want
    for k, g0, g1 in groups:
        np.testing.assert_array_equal(order[g0:g1], np.flatnonzero(key == k))


def test_node_levels_takes_id_chunks_beyond_one_chunk(monkeypatch):
    """node_levels takes the id chunks once the edges exceed CHUNK (made
    small here), with Kahn's result."""
    a = ir.nodes.node_arrays(pc.from_sdd(shared_sdd("seq_fun"), form="nodes"))
    taken = []
    real = levels_module.levels_by_id_chunks
    monkeypatch.setattr(levels_module, "CHUNK", 500)
    monkeypatch.setattr(levels_module, "levels_by_id_chunks",
                        lambda *args: taken.append(1) or real(*args))
    np.testing.assert_array_equal(node_levels(a), levels_by_kahn(a))
    assert taken


def _chain(kinds, kids_of, lo, hi):
    fan = np.array([len(k) for k in kids_of])
    return NodeArrays(kind=np.array(kinds, dtype=np.uint8), child_offsets=np.r_[0, np.cumsum(fan)],
                      child_ids=np.array([c for k in kids_of for c in k], dtype=np.int32),
                      sum_weights=np.zeros(0), input_vars=np.zeros(0), input_params=np.zeros(0),
                      variable_order=np.zeros(0), scope_lo=np.array(lo), scope_hi=np.array(hi),
                      roots=np.zeros(0))


@pytest.mark.parametrize("case", ["one-child product", "sum of a sum", "no scopes"])
def test_levels_fall_back_to_kahn_where_scopes_do_not_order_the_edges(case):
    """A product of one child (same scope) or a sum of a sum breaks the
    stage order: scope_stages says so and node_levels takes Kahn's steps."""
    # inputs 0, 1 over x0; input 2 over x1; 3 = sum(0, 1); 4 = product(3, 2)
    kinds = [0, 0, 0, SUM, PRODUCT]
    kids = [[], [], [], [0, 1], [3, 2]]
    lo, hi = [0, 0, 1, 0, 0], [1, 1, 2, 1, 2]
    if case == "one-child product":
        kinds, kids, lo, hi = kinds + [PRODUCT], kids + [[4]], lo + [0], hi + [2]
    elif case == "sum of a sum":
        kinds, kids, lo, hi = kinds + [SUM, SUM], kids + [[4], [5, 4]], lo + [0, 0], hi + [2, 2]
    else:
        lo = hi = []
    a = _chain(kinds, kids, lo, hi)
    assert levels_by_stages(a) is None
    if lo:
        assert scope_stages(a) is None
    np.testing.assert_array_equal(node_levels(a), levels_by_kahn(a))
    assert node_levels(a)[4] == 3
    # by id chunks: the outer sum of a sum (two children) is in a group
    # before the inner one (one child), so reads it PENDING and the way
    # steps aside; a one-child product comes in the group after the
    # two-child product of its scope that it reads, so is levelled right
    got = levels_by_id_chunks(a)
    if case == "one-child product":
        np.testing.assert_array_equal(got, levels_by_kahn(a))
    else:
        assert got is None


def test_id_chunks_with_a_child_after_its_parent():
    """Ids not topological (unchecked arrays): within one chunk the stages
    still order the reads, so the levels are Kahn's; with the child in a
    later chunk it is read PENDING and the way gives None."""
    # 0, 1 over x0, 2 over x1; 3 = product(4, 2) over x0..x1; 4 = sum(0, 1) over x0
    a = _chain([0, 0, 0, PRODUCT, SUM], [[], [], [], [4, 2], [0, 1]],
               [0, 0, 1, 0, 0], [1, 1, 2, 2, 1])
    np.testing.assert_array_equal(levels_by_id_chunks(a), levels_by_kahn(a))
    assert levels_by_id_chunks(a, step=1) is None


def test_fan_class_is_the_ceiling_of_log2():
    fan = np.array([0, 1, 2, 3, 4, 5, 8, 9, 16, 17, 1000])
    np.testing.assert_array_equal(fan_class(fan), [0, 0, 1, 2, 2, 3, 3, 4, 4, 5, 10])
    assert fan_class(np.zeros(0, dtype=np.int64)).shape == (0,)


def _naive_backward(layer, pslot, cslot, param):
    """Per layer: children ascending, each child's parents in edge order;
    partitions by fan_class of the parent count when the layer pads more
    than MERGE_PADDING entries, else one (the rule of layer_classes)."""
    parts = []
    for li in np.unique(layer):
        sel = layer == li
        kids = np.unique(cslot[sel])
        rows = {c: [(p, w) for p, w, cc in zip(pslot[sel], param[sel], cslot[sel]) if cc == c]
                for c in kids}
        counts = np.array([len(rows[c]) for c in kids])
        cls = fan_class(counts)
        if len(kids) * 2 ** cls.max() - counts.sum() <= MERGE_PADDING:
            cls[:] = 0
        for c in np.unique(cls):
            ks = kids[cls == c]
            width = max(len(rows[k]) for k in ks)
            ps = np.zeros((len(ks), width), dtype=np.int64)
            ws = np.zeros((len(ks), width), dtype=np.int64)
            for i, k in enumerate(ks):
                ps[i, :len(rows[k])] = [p for p, _ in rows[k]]
                ws[i, :len(rows[k])] = [w for _, w in rows[k]]
            parts.append((li, ks, ps, ws))
    return parts


def test_backward_tables_split_a_large_layer_by_parent_count():
    rng = np.random.default_rng(7)
    # layer 0 small; layer 1: 3000 children of 1 parent and 300 of 5-8 parents
    edges = [(0, 10 + i % 3, 500 + i % 4) for i in range(12)]
    edges += [(1, 20 + i, 4000 + i) for i in range(3000)]
    edges += [(1, 20 + int(p), 9000 + c) for c in range(300)
              for p in rng.choice(2000, int(rng.integers(5, 9)), replace=False)]
    edges.sort(key=lambda e: (e[0], e[1]))                  # parents in slot order
    layer, pslot, cslot = (np.array(x) for x in zip(*edges))
    param = np.arange(len(edges)) + 100
    bt = backward_tables(layer, pslot, cslot, param, num_slots=20000, sdt=np.int32)
    want = _naive_backward(layer, pslot, cslot, param)
    assert len(bt.layer) == len(want) == 3                  # layer 1 keeps two classes
    for i, (li, ks, ps, ws) in enumerate(want):
        assert bt.layer[i] == li
        np.testing.assert_array_equal(bt.cblock_slots[i], ks)
        np.testing.assert_array_equal(bt.parent_slots[i], ps)
        np.testing.assert_array_equal(bt.param_starts[i], ws)
        np.testing.assert_array_equal(bt.num_parents[i], (ps > 0).sum(axis=1))


@pytest.mark.parametrize("chunk", [1, 3, 64, 1 << 20])
def test_gather_ranges_is_concat_ranges_in_chunks(chunk, monkeypatch):
    """ir.nodes.gather_ranges (rows cut into chunks of about CHUNK entries)
    gathers, scatters, maps and strides exactly as one concat_ranges index."""
    import pccompiler.ir.nodes as nodes
    monkeypatch.setattr(nodes, "CHUNK", chunk)
    rng = np.random.default_rng(chunk)
    lens = rng.integers(0, 9, 200)
    starts = rng.integers(0, 100, 200)
    src = rng.integers(0, 1000, 300)
    idx = nodes.concat_ranges(starts, lens)
    np.testing.assert_array_equal(nodes.gather_ranges(src, starts, lens), src[idx])
    table = rng.integers(0, 50, 1000)
    np.testing.assert_array_equal(nodes.gather_ranges(src, starts, lens, through=table),
                                  table[src[idx]])
    strided = np.repeat(starts, lens) + 2 * nodes.concat_ranges(np.zeros_like(lens), lens)
    np.testing.assert_array_equal(nodes.gather_ranges(src, starts, lens, stride=2), src[strided])
    perm = rng.permutation(200)
    dest = (np.cumsum(lens[perm]) - lens[perm])[np.argsort(perm)]
    out, want = np.full(int(lens.sum()), -1), np.full(int(lens.sum()), -1)
    want[nodes.concat_ranges(dest, lens)] = src[idx]
    nodes.gather_ranges(src, starts, lens, out=out, dest=dest)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("source", [np.int32, np.int64, np.uint8])
def test_add_index_tensor_writes_what_add_tensor_writes(dtype, source):
    """helpers/edit.add_index_tensor (the node layout's tensors) gives the
    Tensor ir.add_tensor gives for the array cast to `dtype`: 2-D, empty,
    strided and negative entries included."""
    from pccompiler.ir import pcir
    from pccompiler.ir.tensors import add_tensor
    from pccompiler.passes.helpers.edit import add_index_tensor
    rng = np.random.default_rng(3)
    arrays = [rng.integers(-5 if source != np.uint8 else 0, 200, (7, 3)).astype(source),
              np.zeros((0, 4), dtype=source), np.arange(20, dtype=source)[::3],
              rng.integers(0, 9, 11).astype(source).reshape(11, 1)]
    for i, array in enumerate(arrays):
        want, got = pcir.Layout(), pcir.Layout()
        add_tensor(want.tensors, np.asarray(array, dtype=dtype), f"t{i}")
        add_index_tensor(got.tensors, array, f"t{i}", dtype)
        assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)
