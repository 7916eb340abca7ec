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

from pccompiler.ir.nodes import chunk_bounds, concat_ranges, stable_argsort

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
    """The partition class of every row (uint8): fan_class(lens), or 0 for
    every row of a layer whose padding to one width is at most `limit`
    entries (bounded from above by class counts: a row of class c has <=
    2^c). Classes, their counts per (layer, class) and the fan-in totals
    per layer are made a chunk of rows at a time from a uint8 class table
    (temporaries in cache: the whole-array int64 classes, keys and float
    weights of 13M rows cost 0.5-1.1 s at 10^6 SDD nodes, this ~0.2 s)."""
    cls = np.zeros(len(lens), dtype=np.uint8)
    if not len(lens):
        return cls
    table = fan_class(np.arange(int(lens.max(initial=1)) + 1)).astype(np.uint8)
    layers = int(layer.max()) + 1
    count = np.zeros(layers * 64, dtype=np.int64)
    total = np.zeros(layers, dtype=np.int64)
    for a, b in chunk_bounds(len(lens)):
        part, at = lens[a:b], layer[a:b]
        np.take(table, part, out=cls[a:b])
        key = at.astype(np.int64)
        key *= 64
        key += cls[a:b]
        count += np.bincount(key, minlength=layers * 64)
        np.add.at(total, at, part)          # (bincount's weights: a float copy, slower)
    count = count.reshape(layers, 64)
    top = 63 - np.argmax(count[:, ::-1] > 0, axis=1)             # highest class present
    small = count.sum(axis=1) * 2.0 ** top - total <= limit
    if small.all():
        cls[:] = 0
    elif small.any():
        for a, b in chunk_bounds(len(lens)):
            cls[a:b][small[layer[a:b]]] = 0
    return cls


def segment_ranks(lens: np.ndarray) -> np.ndarray:
    """The rank of every entry inside its segment, for segments of `lens`
    entries laid back to back (int64 [sum(lens)])."""
    lens = lens.astype(np.int64, copy=False)
    return np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)


# A padded run of at least this many entries is filled through a mask of its
# real entries (a bool per entry, written in order) instead of the scatter of
# all smaller runs, whose int64 positions cost ~24 bytes an entry to make and
# scatter randomly: 0.5-0.9 s of the layout pass at 10^6 SDD nodes. Below it
# the one scatter saves the mask's numpy calls per run (small circuits).
MASK_FILL_MIN = 1 << 16


def padded_tables(values: np.ndarray, lens: np.ndarray, run_len: np.ndarray,
                  width: np.ndarray, pad: np.ndarray, dtype) -> list[np.ndarray]:
    """One [run_len[r], width[r]] table per run r. Rows are laid back to
    back, run after run; row i holds the next lens[i] entries of `values`
    and then pad[r] (width[r] >= every lens of the run).

    A run whose rows all have `width` entries (fan-in classes 1 and 2, most
    of a logic circuit) is a view of `values`; only the other runs are
    padded, in one buffer: a large run through a mask of its real entries,
    the others by one scatter."""
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
    for r, b, n, w in zip(mixed.tolist(), base.tolist(), m_len.tolist(), m_width.tolist()):
        tables[r] = buf[b:b + n * w].reshape(n, w)
        if n * w >= MASK_FILL_MIN:
            row_lens = lens[rstart[r]:rstart[r] + n]
            tables[r][np.arange(w) < row_lens[:, None]] = values[voff[r]:voff[r] + vlen[r]]
    few = np.flatnonzero(size < MASK_FILL_MIN)
    if len(few):
        _scatter_rows(buf, base[few], m_len[few], m_width[few],
                      lens[concat_ranges(rstart[mixed[few]], m_len[few])],
                      values[concat_ranges(voff[mixed[few]], vlen[mixed[few]])])
    return tables


def _scatter_rows(buf: np.ndarray, base: np.ndarray, run_len: np.ndarray, width: np.ndarray,
                  row_lens: np.ndarray, values: np.ndarray) -> None:
    """Write the rows of runs at `base` in `buf` (run r: run_len[r] rows of
    width[r]), row i its first row_lens[i] entries from `values` in order,
    by one scatter."""
    run_of_row = np.repeat(np.arange(len(base)), run_len)
    row_base = base[run_of_row] + segment_ranks(run_len) * width[run_of_row]
    buf[np.repeat(row_base, row_lens) + segment_ranks(row_lens)] = values


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
    by class (layer_classes of the parent counts).

    Most children of a logic circuit have one parent in a layer (11.5M of
    11.6M (layer, child) groups at 10^6 SDD nodes), so class 0: only the
    groups of several parents are classified (`_lifted`) and moved behind
    their layer's class-0 groups (`_move_lifted`), the partitions come from
    per-layer counts (`_partitions`), and every edge array is gathered once,
    through the composed order. Fresh 10^7-entry arrays cost more in page
    faults than in arithmetic on a VM (~3 ms per MB inside a compile), so
    none is made that the tables do not need."""
    layer = np.asarray(layer)
    if layer.dtype.kind not in "iu":
        layer = layer.astype(np.int64)
    n = len(layer)
    key = np.multiply(layer, num_slots, dtype=_key_dtype(layer, num_slots))
    key += cslot
    order = _edge_order(key)
    del key
    child = np.asarray(cslot)[order]          # the sort keeps `layer` as it is
    # the layer's own dtype: a search of int32 layers for int64 values would
    # first copy all 10^7 of them to int64
    edge_cuts = np.searchsorted(layer, np.arange(int(layer[-1]) + 2 if n else 1,
                                                 dtype=layer.dtype))
    starts = np.ones(n, dtype=bool)
    np.not_equal(child[1:], child[:-1], out=starts[1:])
    starts[edge_cuts[:-1]] = True                  # a layer's first edge starts a group
    first = np.flatnonzero(starts)
    del starts
    counts = np.empty(len(first), dtype=np.int64)
    np.subtract(first[1:], first[:-1], out=counts[:-1])
    counts[-1:] = n - first[-1:]
    group_cuts = np.searchsorted(first, edge_cuts)
    multi = np.flatnonzero(counts > 1)
    lifted, lifted_cls = _lifted(layer[first[multi]], multi, counts, group_cuts)
    uniq = child[first].astype(sdt, copy=False)
    lifted_layer = layer[first[lifted]]
    if len(lifted):
        order, uniq, counts = _move_lifted(order, uniq, counts, first, lifted, lifted_layer,
                                           lifted_cls, edge_cuts, group_cuts)
    pstart, pkey = _partitions(group_cuts, lifted_layer, lifted_cls)
    plen = np.diff(np.r_[pstart, len(counts)])
    width = np.maximum.reduceat(counts, pstart) if len(counts) else counts
    zero = np.zeros(len(pstart), dtype=np.int64)
    cuts = np.r_[pstart, len(counts)].tolist()
    return BackwardTables(
        layer=pkey // 64,
        min_parents=np.minimum.reduceat(counts, pstart) if len(counts) else counts,
        max_parents=width,
        cblock_slots=[uniq[a:b] for a, b in zip(cuts[:-1], cuts[1:])],
        num_parents=[counts[a:b] for a, b in zip(cuts[:-1], cuts[1:])],
        parent_slots=padded_tables(np.asarray(pslot)[order], counts, plen, width, zero, sdt),
        param_starts=padded_tables(np.asarray(param)[order], counts, plen, width, zero,
                                   np.int64))


# Keys with at most one descent per this many are stably ordered by numpy's
# own stable kind (timsort, which merges ascending runs): the sum edges come
# parent by parent, each parent's children in slot order, so their (layer,
# child) keys of 10^7 edges are long runs (0.13 s, against 0.9 s for
# stable_argsort's packed sort, at 10^6 SDD nodes). Both give the one
# stable order.
RUN_SORT_MIN_RUN = 8


def _key_dtype(layer: np.ndarray, num_slots: int):
    """int32 for the (layer, child slot) keys when every key fits (half the
    bytes to make and sort; a stable order is the same in any dtype), else
    int64."""
    top = (int(layer[-1]) + 1) * num_slots if len(layer) else 0      # layers ascend
    return np.int32 if top < 2 ** 31 else np.int64


def _edge_order(key: np.ndarray) -> np.ndarray:
    """The stable order (int64 indices) of the non-negative int32/int64 `key`."""
    if len(key) > 1 and np.count_nonzero(key[1:] < key[:-1]) * RUN_SORT_MIN_RUN <= len(key):
        return np.argsort(key, kind="stable")
    return stable_argsort(key)


def _lifted(multi_layer: np.ndarray, multi: np.ndarray, counts: np.ndarray,
            group_cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, classes): the (layer, child) groups whose class under
    layer_classes(group layers, counts) is not 0, and those classes,
    computed from the groups of two or more parents alone (`multi`, of
    layers `multi_layer`): a group of one parent is class 0, and so is
    every group of a layer merged into one partition. The same per-layer
    counts, totals and merge rule as layer_classes (`group_cuts`: the
    first group of each layer, and the group count)."""
    if not len(multi):
        return multi, multi
    layers = int(multi_layer[-1]) + 1
    rows = np.diff(group_cuts[:layers + 1])
    cls = fan_class(counts[multi])
    count = np.bincount(multi_layer * 64 + cls, minlength=layers * 64).reshape(layers, 64)
    count[:, 0] += rows - np.bincount(multi_layer, minlength=layers)
    total = rows + np.bincount(multi_layer, weights=counts[multi] - 1, minlength=layers)
    top = 63 - np.argmax(count[:, ::-1] > 0, axis=1)             # highest class present
    small = count.sum(axis=1) * 2.0 ** top - total <= MERGE_PADDING
    keep = ~small[multi_layer]
    return multi[keep], cls[keep]


def _move_lifted(order, uniq, counts, first, lifted, lifted_layer, lifted_cls, edge_cuts,
                 group_cuts):
    """(order, uniq, counts) with the groups in the stable order of (layer,
    class): per layer its class-0 groups as they are, then its `lifted`
    groups by class; `order` (the edges' positions in the input) with
    them. In place, layer by layer, and only in layers with lifted groups:
    no fresh array of the whole length."""
    by = np.argsort(lifted_layer * 64 + lifted_cls, kind="stable")
    moved = lifted[by]
    moved_edges = concat_ranges(first[moved], counts[moved])
    moved_counts = counts[moved]
    keep_edges = np.ones(len(order), dtype=bool)
    keep_edges[moved_edges] = False
    keep_groups = np.ones(len(counts), dtype=bool)
    keep_groups[lifted] = False
    lifted_cut = np.searchsorted(lifted_layer[by], np.arange(len(edge_cuts)))
    edges_cut = np.r_[0, np.cumsum(moved_counts)][lifted_cut]
    _to_layer_ends(order, keep_edges, edge_cuts, order[moved_edges], edges_cut)
    _to_layer_ends(uniq, keep_groups, group_cuts, uniq[moved], lifted_cut)
    _to_layer_ends(counts, keep_groups, group_cuts, moved_counts, lifted_cut)
    return order, uniq, counts


def _to_layer_ends(values: np.ndarray, keep: np.ndarray, cuts: np.ndarray, moved: np.ndarray,
                   moved_cuts: np.ndarray) -> None:
    """In each segment i of `values` (between consecutive `cuts`) that has
    moved entries, the kept entries (`keep`) in order, then `moved`'s
    segment i (between consecutive `moved_cuts`), in place."""
    for i in np.flatnonzero(np.diff(moved_cuts)).tolist():
        lo, hi = int(cuts[i]), int(cuts[i + 1])
        kept = values[lo:hi][keep[lo:hi]]
        values[lo:lo + len(kept)] = kept
        values[lo + len(kept):hi] = moved[moved_cuts[i]:moved_cuts[i + 1]]


def _partitions(group_cuts: np.ndarray, lifted_layer: np.ndarray, lifted_cls: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(first group, layer * 64 + class) of every partition, the groups in
    (layer, class) order: per layer with groups one class-0 partition
    unless all its groups are lifted, then one per class of its lifted
    groups (`lifted_layer`, `lifted_cls`: any order)."""
    layers = len(group_cuts) - 1
    key = np.sort(lifted_layer * 64 + lifted_cls)
    lifted_cut = np.searchsorted(key, np.arange(layers + 1) * 64)
    rows0 = np.diff(group_cuts) - np.diff(lifted_cut)          # class-0 groups per layer
    has0 = np.flatnonzero(rows0 > 0)
    new = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else lifted_cut[:0]
    new_layer = key[new] // 64
    starts = np.r_[group_cuts[has0],
                   group_cuts[new_layer] + rows0[new_layer] + new - lifted_cut[new_layer]]
    keys = np.r_[has0 * 64, key[new]]
    by = np.argsort(starts, kind="stable")
    return starts[by].astype(np.int64), keys[by].astype(np.int64)
