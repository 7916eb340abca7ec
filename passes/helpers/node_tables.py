"""The index tables of a node layout, built for all partitions at once.

A node-form Layout has one partition per (layer, fan-in class): 50-250 of
them on the shared SDDs, each with a padded child-slot table, and every sum
layer has backward tables of each child's parents. Built one partition at a
time, a dozen numpy calls per table cost more than the arrays' work on a
2k-node circuit (milliseconds of per-call overhead). Here the tables of a
kind are made together: a partition whose rows need no padding is a view of
the edge array, the padded ones come from one scatter into one buffer, so
the Python left per partition is its protobuf message. The tables are the same arrays
the per-partition code made (passes/node_layout.py writes them unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pccompiler.ir.nodes import concat_ranges, stable_argsort

# A layer whose rows (nodes, or children in the backward tables) all fit one
# partition with at most this many padding entries is one partition: a
# partition costs a kernel launch or a dozen torch ops (~50 us on a CPU),
# which 4096 padding entries per batch row do not. Large layers keep their
# fan-in classes (padding under half).
MERGE_PADDING = 4096


def fan_class(fan: np.ndarray) -> np.ndarray:
    """0 for fan-in <= 1, else ceil(log2(fan)): 1, 2, 3-4, 5-8, ...
    (int64: a lookup in a table indexed by the fan-in itself, one gather
    and no temporary the size of `fan`, no float log over every node)."""
    top = int(fan.max(initial=1))
    table = np.ceil(np.log2(np.maximum(np.arange(top + 1), 1))).astype(np.int64)
    return table[fan]


def layer_classes(layer: np.ndarray, lens: np.ndarray, limit: int = MERGE_PADDING
                  ) -> np.ndarray:
    """The partition class of every row: fan_class(lens), or 0 for every row
    of a layer whose padding to one width is at most `limit` entries
    (bounded from above by class counts: a row of class c has <= 2^c)."""
    cls = fan_class(lens)
    if not len(lens):
        return cls
    layers = int(layer.max()) + 1
    count = np.bincount(layer * 64 + cls, minlength=layers * 64).reshape(layers, 64)
    total = np.bincount(layer, weights=lens, minlength=layers)
    top = 63 - np.argmax(count[:, ::-1] > 0, axis=1)             # highest class present
    small = count.sum(axis=1) * 2.0 ** top - total <= limit
    if small.all() or not small.any():
        return np.zeros_like(cls) if small.all() else cls
    return np.where(small[layer], 0, cls)


def segment_ranks(lens: np.ndarray) -> np.ndarray:
    """The rank of every entry inside its segment, for segments of `lens`
    entries laid back to back (int64 [sum(lens)])."""
    lens = lens.astype(np.int64, copy=False)
    return np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)


def padded_tables(values: np.ndarray, lens: np.ndarray, run_len: np.ndarray,
                  width: np.ndarray, pad: np.ndarray, dtype) -> list[np.ndarray]:
    """One [run_len[r], width[r]] table per run r. Rows are laid back to
    back, run after run; row i holds the next lens[i] entries of `values`
    and then pad[r] (width[r] >= every lens of the run).

    A run whose rows all have `width` entries (fan-in classes 1 and 2, most
    of a logic circuit) is a view of `values`; only the other runs are
    scattered into a padded buffer, all of them by one scatter."""
    values = values.astype(dtype, copy=False)
    run_len = run_len.astype(np.int64, copy=False)
    width = width.astype(np.int64, copy=False)
    lens = lens.astype(np.int64, copy=False)
    if not len(run_len):
        return []
    rstart = np.cumsum(run_len) - run_len
    vlen = np.add.reduceat(lens, rstart) if len(lens) else run_len * 0
    voff = np.cumsum(vlen) - vlen
    exact = vlen == run_len * width
    mixed = np.flatnonzero(~exact)
    tables = [values[v:v + n * w].reshape(n, w) if ok else None for v, n, w, ok in
              zip(voff.tolist(), run_len.tolist(), width.tolist(), exact.tolist())]
    if not len(mixed):
        return tables
    m_len, m_width = run_len[mixed], width[mixed]
    size = m_len * m_width
    base = np.cumsum(size) - size
    buf = np.repeat(np.asarray(pad)[mixed].astype(dtype), size)
    run_of_row = np.repeat(np.arange(len(mixed)), m_len)
    row_base = base[run_of_row] + segment_ranks(m_len) * m_width[run_of_row]
    row_lens = lens[concat_ranges(rstart[mixed], m_len)]
    buf[np.repeat(row_base, row_lens) + segment_ranks(row_lens)] = \
        values[concat_ranges(voff[mixed], vlen[mixed])]
    for r, b, s, n, w in zip(mixed.tolist(), base.tolist(), size.tolist(), m_len.tolist(),
                             m_width.tolist()):
        tables[r] = buf[b:b + s].reshape(n, w)
    return tables


@dataclass
class BackwardTables:
    """Backward partitions of every sum layer: each child's parents in that
    layer, children bucketed by parent-count class (padding: slot 0, param 0)."""
    layer: np.ndarray             # layer index of each partition (ascending)
    min_parents: np.ndarray
    max_parents: np.ndarray
    cblock_slots: list            # per partition: child slots [m]
    num_parents: list             # per partition: parent counts [m]
    parent_slots: list            # per partition: [m, max_parents]
    param_starts: list            # per partition: [m, max_parents]


def backward_tables(layer: np.ndarray, pslot: np.ndarray, cslot: np.ndarray,
                    param: np.ndarray, num_slots: int, sdt) -> BackwardTables:
    """The backward partitions of the sum edges given in slot order of their
    parents (layer: the parent's layer, non-decreasing; pslot, cslot: parent
    and child slots; param: the edge's weight index). Within a layer the
    children ascend by slot, each child's parents by slot (a stable sort by
    (layer, child) keeps the parents' order); a layer's partitions ascend
    by class (layer_classes of the parent counts)."""
    key = layer.astype(np.int64) * num_slots + cslot
    o = stable_argsort(key)
    key, pslot, param = key[o], pslot[o], param[o]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else \
        np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[first, len(key)])
    glayer, uniq = key[first] // num_slots, key[first] % num_slots
    gkey = glayer * 64 + layer_classes(glayer, counts)
    in_order = not len(gkey) or bool((gkey[1:] >= gkey[:-1]).all())   # one class per layer
    g = np.arange(len(gkey)) if in_order else stable_argsort(gkey)
    pkey = gkey[g]
    pstart = np.flatnonzero(np.r_[True, pkey[1:] != pkey[:-1]]) if len(g) else first
    plen = np.diff(np.r_[pstart, len(g)])
    cnt = counts if in_order else counts[g]
    width = np.maximum.reduceat(cnt, pstart) if len(g) else cnt
    if not in_order:                         # the edges, child by child in partition order
        edges = concat_ranges(first[g], cnt)
        pslot, param = pslot[edges], param[edges]
    zero = np.zeros(len(pstart), dtype=np.int64)
    cuts = np.r_[pstart, len(g)].tolist()
    uniq_g = uniq[g].astype(sdt)
    return BackwardTables(
        layer=glayer[g[pstart]], min_parents=np.minimum.reduceat(cnt, pstart) if len(g) else cnt,
        max_parents=width,
        cblock_slots=[uniq_g[a:b] for a, b in zip(cuts[:-1], cuts[1:])],
        num_parents=[cnt[a:b] for a, b in zip(cuts[:-1], cuts[1:])],
        parent_slots=padded_tables(pslot, cnt, plen, width, zero, sdt),
        param_starts=padded_tables(param, cnt, plen, width, zero, np.int64))
