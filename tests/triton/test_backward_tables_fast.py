"""The backward tables of the triton path's node-flow partitions
(passes/helpers/node_tables.backward_tables) equal those of the general
construction they replaced: one stable sort of every edge by (layer,
child), layer_classes of every (layer, child) group, one stable sort of
the groups by (layer, class), the edges gathered group by group. The fast
path orders nearly sorted keys by timsort, classifies only the groups of
several parents and moves only those (bench/results/logic_plan-cpu-2026-12-07.md)."""

from __future__ import annotations

import numpy as np
import pytest

from pccompiler.ir.nodes import concat_ranges
from pccompiler.passes.helpers.node_tables import (MERGE_PADDING, RUN_SORT_MIN_RUN,
                                                   backward_tables, layer_classes,
                                                   padded_tables)


def _general(layer, pslot, cslot, param, num_slots, sdt):
    """The general construction, array by array (min/max parents, layers,
    child slots, parent counts, padded parent slots and weight starts)."""
    key = layer.astype(np.int64) * num_slots + cslot
    o = np.argsort(key, kind="stable")
    key, pslot, param = key[o], pslot[o], param[o]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else \
        np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[first, len(key)])
    glayer, uniq = key[first] // num_slots, key[first] % num_slots
    gkey = glayer * 64 + layer_classes(glayer, counts)
    g = np.argsort(gkey, kind="stable")
    pkey, cnt = gkey[g], counts[g]
    pstart = np.flatnonzero(np.r_[True, pkey[1:] != pkey[:-1]]) if len(g) else first
    plen = np.diff(np.r_[pstart, len(g)])
    width = np.maximum.reduceat(cnt, pstart) if len(g) else cnt
    edges = concat_ranges(first[g], cnt)
    zero = np.zeros(len(pstart), dtype=np.int64)
    cuts = np.r_[pstart, len(g)].tolist()
    spans = list(zip(cuts[:-1], cuts[1:]))
    return dict(layer=glayer[g[pstart]], max_parents=width,
                min_parents=np.minimum.reduceat(cnt, pstart) if len(g) else cnt,
                cblock_slots=[uniq[g].astype(sdt)[a:b] for a, b in spans],
                num_parents=[cnt[a:b] for a, b in spans],
                parent_slots=padded_tables(pslot[edges], cnt, plen, width, zero, sdt),
                param_starts=padded_tables(param[edges], cnt, plen, width, zero, np.int64))


def _edges(rng, layers: int, sorted_children: bool):
    """Sum edges in parents' slot order: per layer some parents, each over
    distinct children; a few children shared by many parents, some layers
    large enough (over MERGE_PADDING padding) to keep their classes."""
    rows, slot = [], 1000
    for li in range(layers):
        big = rng.random() < 0.6
        parents = int(rng.integers(3000, 6000) if big else rng.integers(1, 40))
        shared = rng.choice(np.arange(1, 900), size=int(rng.integers(1, 60)), replace=False)
        for p in range(parents):
            n = int(rng.integers(1, 5))
            kids = rng.choice(shared, size=min(n, len(shared)), replace=False) \
                if rng.random() < 0.15 else slot + np.arange(n)
            slot += n
            kids = np.sort(kids) if sorted_children else rng.permutation(kids)
            rows += [(li, slot + 5000 + p, int(k)) for k in kids]
    layer, pslot, cslot = (np.array(x, dtype=np.int64) for x in zip(*rows))
    return layer, pslot, cslot, rng.integers(0, 10 ** 6, size=len(rows))


def _all_shared_layer(rng, li: int, parents: int = 3000):
    """A large layer whose every child has 2-9 parents: no class-0 group,
    so its first partition is a lifted class."""
    kids = np.arange(50, 50 + parents // 2)
    rows = [(li, 20000 + p, int(k)) for p in range(parents)
            for k in np.sort(rng.choice(kids, size=3, replace=False))]
    rows += [(li, 20000 + p, int(k)) for p, k in zip(range(0, 2 * len(kids), 2), kids)]
    rows += [(li, 20001 + p, int(k)) for p, k in zip(range(0, 2 * len(kids), 2), kids)]
    rows.sort(key=lambda r: r[1])
    layer, pslot, cslot = (np.array(x, dtype=np.int64) for x in zip(*rows))
    return layer, pslot, cslot, rng.integers(0, 10 ** 6, size=len(rows))


@pytest.mark.parametrize("seed", range(24))
def test_backward_tables_equal_the_general_construction(seed):
    rng = np.random.default_rng(seed)
    layer, pslot, cslot, param = _edges(rng, int(rng.integers(1, 6)), seed % 3 != 0)
    if seed % 5 == 2:                          # empty layers between, and one all shared
        extra = _all_shared_layer(rng, 2 * int(layer[-1]) + 3)
        layer, pslot, cslot, param = (np.r_[a * (2 if i == 0 else 1), b]
                                      for i, (a, b) in enumerate(zip((layer, pslot, cslot, param),
                                                                     extra)))
    if seed % 4 == 1:                          # a random edge order: the other sort
        keep = np.argsort(layer, kind="stable")
        cslot = cslot[keep][rng.permutation(len(keep))]
    num_slots = int(max(pslot.max(), cslot.max())) + 1
    sdt = np.int32 if seed % 2 else np.int64
    pslot, cslot = pslot.astype(sdt), cslot.astype(sdt)
    got = backward_tables(layer, pslot, cslot, param, num_slots, sdt)
    want = _general(layer, pslot, cslot, param, num_slots, sdt)
    assert len(got.layer) == len(want["layer"]) >= 1
    for name, value in want.items():
        have = getattr(got, name)
        for a, b in (zip(have, value) if isinstance(value, list) else [(have, value)]):
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), name


def test_the_cases_cover_both_sorts_and_split_and_merged_layers():
    """The generator above makes what the fast path branches on: keys in
    runs and in random order, layers split by class and layers merged."""
    seen = set()
    for seed in range(24):
        rng = np.random.default_rng(seed)
        layer, pslot, cslot, param = _edges(rng, int(rng.integers(1, 6)), seed % 3 != 0)
        if seed % 4 == 1:
            cslot = cslot[rng.permutation(len(cslot))]
        key = layer * (int(max(pslot.max(), cslot.max())) + 1) + cslot
        runs = np.count_nonzero(key[1:] < key[:-1]) * RUN_SORT_MIN_RUN <= len(key)
        seen.add("runs" if runs else "random")
        bt = backward_tables(layer, pslot, cslot, param, int(key.max()) + 1, np.int64)
        per_layer = np.bincount(bt.layer)
        seen.add("split" if (per_layer > 1).any() else "merged")
        if (per_layer == 1).any():
            seen.add("merged")
    assert seen == {"runs", "random", "split", "merged"}


def test_empty_and_single_edge():
    for n in (0, 1):
        layer = np.zeros(n, dtype=np.int64)
        z = np.arange(n, dtype=np.int64) + 3
        got = backward_tables(layer, z, z, z, 10, np.int32)
        want = _general(layer, z, z, z, 10, np.int32)
        assert np.array_equal(got.layer, want["layer"]) and len(got.cblock_slots) == n
    assert MERGE_PADDING > 0


@pytest.mark.parametrize("seed", range(8))
def test_int32_layers_and_keys_give_the_int64_tables(monkeypatch, seed):
    """backward_tables from int32 layers (sum_edges' array) with int32
    (layer, child) keys equals its run from int64 layers with int64 keys
    (a stable order is the same in any dtype); keys past 2^31 stay int64."""
    from pccompiler.passes.helpers import node_tables
    rng = np.random.default_rng(seed)
    layer, pslot, cslot, param = _edges(rng, int(rng.integers(1, 6)), seed % 2 == 0)
    if seed % 4 == 1:                          # a random edge order: the other sort
        cslot = cslot[rng.permutation(len(cslot))]
    num_slots = int(max(pslot.max(), cslot.max())) + 1
    pslot, cslot = pslot.astype(np.int32), cslot.astype(np.int32)
    assert node_tables._key_dtype(layer, num_slots) == np.int32
    assert node_tables._key_dtype(np.array([3]), 2 ** 29) == np.int64
    narrow = backward_tables(layer.astype(np.int32), pslot, cslot, param, num_slots, np.int32)
    monkeypatch.setattr(node_tables, "_key_dtype", lambda layer, num_slots: np.int64)
    wide = backward_tables(layer.astype(np.int64), pslot, cslot, param, num_slots, np.int32)
    for name in ("layer", "min_parents", "max_parents", "cblock_slots", "num_parents",
                 "parent_slots", "param_starts"):
        a, b = getattr(narrow, name), getattr(wide, name)
        for x, y in (zip(a, b) if isinstance(a, list) else [(a, b)]):
            assert x.dtype == y.dtype and np.array_equal(x, y), name
