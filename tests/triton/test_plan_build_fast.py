"""The plan builder's fast paths give what the general code gives
(bench/results/logic_fx-cpu-2026-12-07.md): parent unions of equal sets
by one row sort, the compact remap's block check by one gather, run
tables that skip the run search when list changes alone rule runs out,
tie flags from one np.unique, the remap's readers' rule for all product
partitions at once, and its early rejection from read counts per
partition (bench/results/logic_plan-cpu-2026-12-07.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pccompiler.backends.common.block_runs import variable_runs
from pccompiler.backends.triton import plan, scratch


def _lists(rng, nb: int, p: int, run: int, share: float):
    """[nb, p] parent lists (padded with 0 after npar entries, shuffled
    within the row) where aligned runs of `run` blocks list one set with
    probability `share`."""
    psl = np.zeros((nb, p), dtype=np.int64)
    pps = np.zeros((nb, p), dtype=np.int64)
    npar = np.zeros(nb, dtype=np.int64)
    for head in range(0, nb, run):
        n = int(rng.integers(1, p + 1))
        base = rng.choice(np.arange(2, 60), n, replace=False)
        for b in range(head, min(head + run, nb)):
            s = base if rng.random() < share else rng.choice(np.arange(2, 60), n,
                                                              replace=False)
            s = rng.permutation(s)
            psl[b, :n], pps[b, :n], npar[b] = s, rng.integers(0, 1000, n), n
    return psl, pps, npar


@pytest.mark.parametrize("seed", range(40))
def test_equal_set_runs_match_the_general_search(seed):
    rng = np.random.default_rng(seed)
    nb = int(rng.integers(2, 40))
    run = int(rng.choice([1, 2, 4, 8, 16]))
    psl, pps, npar = _lists(rng, nb, int(rng.integers(1, 6)), run, float(rng.choice([0.5, 1.0])))
    if seed % 7 == 0:                       # a parent twice in one list
        psl[0, :2] = 9 if npar[0] >= 2 else psl[0, :2]
    bs = int(rng.choice([1, 2, 16]))
    want = plan._parent_union_search(psl, pps, npar, bs, plan.GROUP_MAX_ROWS, False)
    got = plan.parent_union(psl, pps, npar, bs)
    assert got[0] == want[0]
    for a, b in zip(got[1:], want[1:]):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_equal_set_runs_take_the_longest_run():
    psl = np.array([[5, 7], [7, 5], [5, 7], [7, 5], [9, 0], [9, 0], [9, 0], [9, 0]])
    pps = np.arange(16).reshape(8, 2)
    npar = np.array([2, 2, 2, 2, 1, 1, 1, 1])
    g, slots, starts, counts = plan.parent_union(psl, pps, npar, 1)
    assert g == 4 and counts.tolist() == npar.tolist()
    assert slots.tolist() == [[5, 7]] * 4 + [[9, 0]] * 4
    assert starts.tolist() == [[0, 1], [3, 2], [4, 5], [7, 6]] + [[8, -1], [10, -1],
                                                                   [12, -1], [14, -1]]


def _run_table_general(lists, counts, block_size, group):
    """run_table without its shortcut: variable_runs always."""
    if lists.shape[0] < 2:
        return group, None
    starts = variable_runs(lists, counts, block_size, plan.GROUP_MAX_ROWS)
    if lists.shape[0] / (starts.size - 1) < plan.RUN_GAIN * group:
        return group, None
    return 1 << (int(np.diff(starts).max()) - 1).bit_length(), starts


@pytest.mark.parametrize("seed", range(60))
def test_run_table_shortcut_matches_variable_runs(seed):
    """run_table skips variable_runs when the changes of child list alone
    make too many runs; it must answer what the full search answers."""
    rng = np.random.default_rng(seed)
    nb, k = int(rng.integers(1, 60)), int(rng.integers(1, 4))
    heads = rng.random(nb) < float(rng.choice([0.05, 0.3, 0.6, 1.0]))
    ids = np.cumsum(heads)                      # blocks of one id share one list
    lists = rng.integers(2, 9, size=(int(ids.max()) + 2, k))[ids]
    counts = rng.integers(1, k + 1, size=int(ids.max()) + 2)[ids]
    bs = int(rng.choice([1, 2, 16]))
    group = int(rng.choice([1, 2, 4]))
    got, want = plan.run_table(lists, counts, bs, group), _run_table_general(lists, counts, bs,
                                                                              group)
    assert got[0] == want[0]
    assert (got[1] is None) == (want[1] is None)
    if got[1] is not None:
        assert np.array_equal(got[1], want[1])


@pytest.mark.parametrize("seed", range(30))
def test_first_occurrence_flags_ties_as_isin_does(seed):
    """build_plan's tie flag per partition, from one np.unique, against
    np.isin of each partition's keys in the repeated ones."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 8, size=int(rng.integers(1, 9)))
    if seed % 2:        # distinct keys (no ties: the shortcut), else many repeats
        values = rng.permutation(1000)[:int(sizes.sum())]
        keys = np.split(values, np.cumsum(sizes)[:-1])
    else:
        keys = [rng.integers(0, 40, size=int(n)) for n in sizes]
    firsts, shares = plan._first_occurrence(keys)
    allk = np.concatenate(keys)
    uniq, first, counts = np.unique(allk, return_index=True, return_counts=True)
    want_first = np.zeros(allk.size, dtype=bool)
    want_first[first] = True
    assert np.array_equal(np.concatenate(firsts), want_first)
    assert shares == [bool(np.isin(k, uniq[counts > 1]).any()) for k in keys]


def _moves_per_partition(products, read_by_product, unread, min_layer, max_layer):
    """The compact remap's readers' rule, one partition at a time."""
    out = []
    for li, start, n in products:
        rows = np.arange(start, start + n)
        if read_by_product[rows].any():
            continue
        live = rows[~unread[rows]]
        if live.size and ((min_layer[live] == li + 1) & (max_layer[live] == li + 1)).all():
            out.append((li, start, n, rows, live))
    return out


def _products(rng, layers: int) -> tuple[list[tuple[int, int, int]], int]:
    """Product partitions (layer, start, n) from slot 2 on, gaps between
    them, and the first slot after the last."""
    products, cursor = [], 2
    for _ in range(int(rng.integers(1, 12))):
        n = int(rng.integers(0, 15))
        products.append((int(rng.integers(0, layers)), cursor, n))
        cursor += n + int(rng.integers(0, 4))
    return products, cursor


@pytest.mark.parametrize("seed", range(40))
def test_readable_moves_match_the_per_partition_rule(seed):
    rng = np.random.default_rng(seed)
    num_slots, layers = 200, 6
    products, cursor = _products(rng, layers)
    read_by_product = rng.random(num_slots) < float(rng.choice([0.0, 0.02, 0.2]))
    max_layer = np.where(rng.random(num_slots) < 0.2, -1, rng.integers(0, layers + 1, num_slots))
    min_layer = np.where(rng.random(num_slots) < 0.8, max_layer,
                         rng.integers(0, layers + 1, num_slots))
    unread = max_layer < 0
    if seed % 2:       # mostly movable: every read row read by the next layer only
        for li, start, n in products:
            keep = ~unread[start:start + n]
            min_layer[start:start + n][keep] = max_layer[start:start + n][keep] = li + 1
    got = scratch._readable_moves(products, read_by_product, unread, min_layer, max_layer)
    want = _moves_per_partition(products, read_by_product, unread, min_layer, max_layer)
    assert [g[:3] for g in got] == [w[:3] for w in want]
    for g, w in zip(got, want):
        assert np.array_equal(g[3], w[3]) and np.array_equal(g[4], w[4])


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("seed", range(40))
def test_readable_partitions_by_read_counts_match_the_per_row_rule(seed, whole, monkeypatch):
    """scratch.readable_partitions (reads counted per partition through a
    row -> partition map, the remap's early rejection) passes the product
    partitions that _readable_moves passes over per-row first and last
    sum reader layers, as compact_remap builds them; both with the counts
    of all partitions in one bincount (`whole`, small layouts) and
    partition by partition (WHOLE_READS_MAX = -1)."""
    if not whole:
        monkeypatch.setattr(scratch, "WHOLE_READS_MAX", -1)
    rng = np.random.default_rng(seed)
    num_slots, layers = 300, 6
    products, cursor = _products(rng, layers)
    sum_layers = sorted(int(x) for x in rng.integers(0, layers, int(rng.integers(0, 9))))
    if seed % 2:      # mostly movable: each sum reads only the previous layer's products
        rows_of = {li: np.concatenate([np.arange(s, s + n) for pl, s, n in products if pl == li]
                                      + [np.zeros(1, dtype=np.int64)]) for li in range(layers)}
        sum_children = [rng.choice(rows_of[max(li - 1, 0)], size=int(rng.integers(1, 30)))
                        for li in sum_layers]
    else:
        sum_children = [rng.integers(0, cursor + 5, int(rng.integers(1, 30))) for _ in sum_layers]
    sum_children = [c.astype(np.int32 if seed % 3 else np.int64) for c in sum_children]
    share = float(rng.choice([0.0, 0.05]))       # product children that are product rows
    product_children = [np.where(rng.random(m) < share, rng.integers(2, cursor, m),
                                 rng.integers(0, 2, m))       # else padding / inputs' slots 0, 1
                        for m in rng.integers(0, 20, len(products))]
    min_layer = np.full(num_slots, np.iinfo(np.int64).max, dtype=np.int64)
    max_layer = np.full(num_slots, -1, dtype=np.int64)
    if sum_children:
        cs = np.concatenate(sum_children).astype(np.int64)
        lis = np.repeat(sum_layers, [c.size for c in sum_children]).astype(np.int64)
        np.minimum.at(min_layer, cs[cs > 1], lis[cs > 1])
        np.maximum.at(max_layer, cs[cs > 1], lis[cs > 1])
    pc = np.concatenate(product_children)
    read_by_product = np.zeros(num_slots, dtype=bool)
    read_by_product[pc[pc > 1]] = True
    want = scratch._readable_moves(products, read_by_product, max_layer < 0, min_layer, max_layer)
    ok = scratch.readable_partitions(products, sum_children, sum_layers, product_children,
                                     num_slots, layers)
    assert [p for p, keep in zip(products, ok) if keep] == [w[:3] for w in want]


@pytest.mark.parametrize("seed", range(24))
def test_has_duplicates_matches_unique_counts(seed):
    """plan._has_duplicates (a bool mark over a narrow value range, a sort
    over a wide one), for int32 and int64 slots, against np.unique."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    wide = seed % 3 == 0                     # values spread past 4 * n + 1024: the sort
    hi = 10 ** 8 if wide else int(rng.integers(1, 3 * n + 2))
    lo = int(rng.integers(0, 50)) if seed % 2 else 0
    if seed % 4 == 1:                        # distinct values
        a = lo + rng.permutation(max(hi, n))[:n]
    else:
        a = rng.integers(lo, lo + hi, size=n)
    for dtype in (np.int32, np.int64):
        got = plan._has_duplicates(a.astype(dtype))
        assert got == (np.unique(a).size < a.size), (seed, dtype)


def test_product_part_atomic_flag_in_the_slots_own_dtype():
    """product_part reads int32 child slots as they are: a shared child
    (padding slot 1 aside) makes the part atomic, for int32 and int64."""
    import torch
    shared = np.array([[2, 3], [4, 3], [5, 1]])
    single = np.array([[2, 3], [4, 1], [5, 1]])
    for dtype in (np.int32, np.int64):
        assert plan.product_part(10, shared.astype(dtype), torch.device("cpu")).atomic
        assert not plan.product_part(10, single.astype(dtype), torch.device("cpu")).atomic


def test_a_triton_compile_leaves_its_heap_to_the_plan_build(monkeypatch):
    """compile_model keeps the retained heap's free pages for a backend that
    builds plans on first use (triton), and the plan build opens its own
    block, which returns them; the torch backend's compile returns them at
    once (ir/heap.py)."""
    import pccompiler as pc
    from pccompiler.ir import heap
    from tests.logic.circuits import shared_sdd
    model = pc.from_sdd(shared_sdd("sudoku_4"), form="nodes")
    seen, real = [], heap.retained_heap
    monkeypatch.setattr(heap, "retained_heap", lambda enabled=True, release=True: seen.append(
        release) or real(enabled, release))
    circuit = pc.compile(model, backend="triton", device="cpu", check=False)
    assert seen == [False]
    circuit.engine.fast_plan
    assert seen[1:] and all(seen[1:])
    seen.clear()
    pc.compile(model, backend="torch", check=False)
    assert seen == [True]


@pytest.mark.parametrize("seed", range(40))
def test_whole_array_first_writers_match_the_walk(seed, monkeypatch):
    """writers.first_writer_stores in whole-array steps (small plans, no
    forgotten region, no fresh rows) flags what the layer-by-layer walk
    flags (WHOLE_ROWS_MAX = -1: every plan walks): writers of no rows,
    rows listed twice by one writer, the root written first."""
    from pccompiler.backends.triton import writers as writers_mod
    rng = np.random.default_rng(seed)
    num_slots = int(rng.integers(3, 40))
    writers = [[(rng.integers(0, num_slots, int(rng.integers(0, 6))).astype(
                    np.int32 if seed % 2 else np.int64), bool(rng.random() < 0.8))
                for _ in range(int(rng.integers(0, 4)))] for _ in range(int(rng.integers(0, 6)))]
    first = tuple(int(r) for r in rng.integers(0, num_slots, int(rng.integers(0, 3))))
    got = writers_mod.first_writer_stores(writers, num_slots, first)
    monkeypatch.setattr(writers_mod, "WHOLE_ROWS_MAX", -1)
    assert got == writers_mod.first_writer_stores(writers, num_slots, first)


def _marks(built) -> list:
    """Every field the writer rules set, per part and on the plan."""
    out = [built.zero_all, built.zero_rows.tolist(),
           None if built.ratio_rows is None else built.ratio_rows.tolist()]
    for lp in built.layers:
        out.append([(p.store, p.ratio_out) for p in lp.products])
        out.append([p.store for p in lp.sum_backwards])
        out.append([p.ratio_by_writer for p in lp.sums])
    return out


def _node_layout(name, tmp_path):
    import pccompiler as pc
    from pccompiler.passes.manager import compile_model
    from tests.logic.circuits import random_cnf_sdd, shared_sdd
    if name.startswith("random"):
        rng = np.random.default_rng(int(name[6:]))
        path = random_cnf_sdd(tmp_path, rng, int(rng.integers(6, 14)), int(rng.integers(8, 40)))[0]
    else:
        path = shared_sdd(name)
    return compile_model(pc.from_sdd(path, form="nodes"), backend="triton", verify=False).layout


@pytest.mark.parametrize("name", ["sudoku_4", "4-grid", "seq_fun", "road_r"]
                         + [f"random{s}" for s in range(6)])
def test_plain_writer_marks_match_the_walk(name, tmp_path, monkeypatch):
    """A node layout's plan takes writer_marks.mark_plain_writers (store
    flags, zero rows, log-ratio rows in whole-array steps); the general
    walk of mark_first_writers / mark_ratio_rows sets the same marks."""
    from pccompiler.backends.triton import writer_marks
    layout = _node_layout(name, tmp_path)
    fast = plan.build_plan(layout, "cpu")
    assert writer_marks.is_plain(fast)
    monkeypatch.setattr(plan, "mark_plain_writers", lambda *a: False)
    general = plan.build_plan(layout, "cpu")
    assert _marks(fast) == _marks(general)
    flags = [p.store for lp in fast.layers for p in lp.products + lp.sum_backwards]
    if name in ("sudoku_4", "seq_fun"):          # both outcomes occur
        assert any(flags) and not all(flags)


@pytest.mark.parametrize("seed", range(40))
def test_sum_parts_without_equal_neighbours_skip_the_run_searches(seed, monkeypatch):
    """sum_part answers group 1 and no runs, without shared_run and
    run_table, when no two consecutive blocks share their children; the
    searches give the same part (one block, distinct lists, some equal
    neighbours, runs of equal lists)."""
    rng = np.random.default_rng(seed)
    nb, k = int(rng.integers(1, 40)), int(rng.integers(1, 5))
    ids = np.cumsum(rng.random(nb) < float(rng.choice([0.2, 0.9, 1.0])))
    lists = rng.integers(2, 50, size=(int(ids.max()) + 1, k))[ids].astype(np.int32)
    counts = rng.integers(1, k + 1, size=int(ids.max()) + 1)[ids].astype(np.int32)
    args = (int(rng.choice([1, 2])), np.arange(nb, dtype=np.int32) + 2, counts, lists,
            np.arange(nb, dtype=np.int64) * k, "cpu")
    got = plan.sum_part(*args)
    want_group = plan.shared_run(lists.astype(np.int64), counts.astype(np.int64), args[0])
    want = plan.run_table(lists.astype(np.int64), counts.astype(np.int64), args[0], want_group)
    assert (got.group, got.runs is None) == (want[0], want[1] is None)
    if got.runs is not None:
        assert np.array_equal(got.runs.numpy(), want[1])
    # the fields besides: as a part made with the searches' answer (monkeypatched in)
    monkeypatch.setattr(plan, "equal_neighbours", lambda *a: np.ones(max(nb - 1, 0), dtype=bool))
    want = plan.sum_part(*args)
    assert (got.group, got.runs is None) == (want.group, want.runs is None)
    if got.runs is not None:
        assert torch.equal(got.runs, want.runs)
    for name in ("block_slots", "block_num_children", "child_slots", "block_param_starts",
                 "owner_blocks"):
        assert torch.equal(getattr(got, name), getattr(want, name))


@pytest.mark.parametrize("name", ["sudoku_4", "random1"])
def test_the_engine_adopts_the_layout_pass_arrays(name, tmp_path, monkeypatch):
    """pc.compile hands the node layout pass's index arrays to the triton
    engine's tensor table (CompileResult.layout_arrays): its plans decode no
    tensor, and every array equals what ir.to_numpy reads from the Layout
    (dtype, shape, bytes, read-only)."""
    import pccompiler as pc
    from pccompiler.ir import helpers, tensors
    from tests.logic.circuits import random_cnf_sdd, shared_sdd
    path = (random_cnf_sdd(tmp_path, np.random.default_rng(1), 10, 25)[0]
            if name.startswith("random") else shared_sdd(name))
    model = pc.from_sdd(path, form="nodes")
    from pccompiler.passes.manager import compile_model
    assert compile_model(model, verify=False).layout_arrays is None      # kept only when asked
    circuit = pc.compile(model, backend="triton", device="cpu", check=False)
    decoded = []
    real = helpers.to_numpy
    monkeypatch.setattr(helpers, "to_numpy", lambda *a, **k: decoded.append(a) or real(*a, **k))
    engine = circuit.engine
    engine.fast_plan, engine.plan
    assert decoded == []
    table = engine.layout_table
    for t in engine.layout.tensors:
        got, want = table[t.name], tensors.to_numpy(t)
        assert (got.dtype, got.shape) == (want.dtype, want.shape), t.name
        assert got.tobytes() == want.tobytes() and not got.flags.writeable, t.name


@pytest.mark.parametrize("seed", range(60))
def test_one_parent_lists_match_the_general_search(seed):
    """parent_union of one-parent lists (a logic circuit's node-flow
    partitions), some blocks without a parent, runs of every length: the
    equal-set search (run limit from the changes of set) agrees with the
    general one."""
    rng = np.random.default_rng(seed)
    nb = int(rng.integers(2, 300))
    run = int(rng.choice([1, 2, 3, 4, 8, 16, 64]))
    heads = rng.integers(2, 40, size=-(-nb // run))
    psl = np.repeat(heads, run)[:nb].reshape(nb, 1).astype(np.int64)
    change = rng.random(nb) < float(rng.choice([0.0, 0.02, 0.3]))
    psl[change, 0] = rng.integers(2, 40, size=int(change.sum()))
    npar = (rng.random(nb) < float(rng.choice([1.0, 0.9]))).astype(np.int64)
    psl[npar == 0] = 0
    pps = rng.integers(0, 1000, size=(nb, 1))
    want = plan._parent_union_search(psl, pps, npar, 1, plan.GROUP_MAX_ROWS, False)
    got = plan.parent_union(psl, pps, npar, 1)
    assert got[0] == want[0]
    for a, b in zip(got[1:], want[1:]):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_layer_parts_list_each_layers_partitions_once(tmp_path):
    """TensorTable.layer_parts: every layer's partitions as lists of the
    Layout's own messages, listed once per table and Layout (the engine,
    the compact remap and the plan share them), listed again for another
    Layout."""
    from pccompiler import ir
    from pccompiler.ir import pcir
    layout = _node_layout("sudoku_4", tmp_path)
    table = ir.tensor_table(layout)
    parts = table.layer_parts(layout)
    assert parts is table.layer_parts(layout) and len(parts) == len(layout.layers)
    for (layer, inputs, products, sums, backs), want in zip(parts, layout.layers):
        assert layer == want
        assert inputs == list(want.input_partitions)
        assert products == list(want.product_partitions)
        assert sums == list(want.sum_partitions)
        assert backs == list(want.sum_backward_partitions)
    other = pcir.Layout()
    other.CopyFrom(layout)
    other.layers[0].input_partitions[0].num_nodes += 1
    assert table.layer_parts(other)[0][1][0].num_nodes == parts[0][1][0].num_nodes + 1
