"""The plan of a small node layout, built a partition kind at a time.

`plan.build_plan` walks the partitions one by one: per partition a
handful of numpy checks (equal neighbouring sum blocks, duplicate product
children, equal parent pairs in the backward) and a copy per index array
into its own tensor. A logic circuit's node layout (`form: nodes`) has
30-130 partitions of a few hundred rows each, where those calls cost more
than the arithmetic (2.3 ms of sudoku_4's 8 ms build). Here every check
runs once over all partitions of a kind (a segment id per row or entry),
and each index field of a kind is copied once, all partitions' arrays end
to end, into one array whose slices the parts hold (`_joined`, `_views`,
torch's split_with_sizes: a fraction of a copy and a tensor per array).

Partitions the checks flag go through plan.py's own part builders: a sum
partition with two neighbouring blocks that read the same children
through `sum_part`, a node-flow partition whose aligned pairs may list one
parent set through `sum_backward_part`, or, with one parent column (the
usual case in a logic circuit), through `_one_parent_unions`, its search
for all such partitions at once. The plan is the one `build_plan` makes,
field for field (tests/triton/test_node_plan.py). Layouts this module
does not cover (no node form, ties, blocks wider than one row, int64
slots, compact or fused plans, more than WHOLE_ENTRIES_MAX index entries,
a row-tile part) return None and take the general walk.
"""

from __future__ import annotations

import numpy as np
import torch

from pccompiler import ir
from pccompiler.backends.triton import plan as P
from pccompiler.backends.triton.writer_marks import Walk, walk_of
from pccompiler.ir import pcir
from pccompiler.passes.helpers.node_tables import segment_ranks

# Index entries (all partitions' tables together) up to which the plan is
# built here: the buffers are a copy of them all, and the general walk's
# per-partition calls cost nothing next to 10^7 entries.
WHOLE_ENTRIES_MAX = 1 << 20


def _segments(sizes) -> np.ndarray:
    """The segment id of every entry of segments of `sizes` laid end to end."""
    return np.repeat(np.arange(len(sizes)), sizes)


def _joined(table, names: list[str], dtype) -> np.ndarray:
    """The tensors `names` of `table`, flattened and laid end to end in one
    fresh array of `dtype` (the parts' tensors are slices of it)."""
    if not names:
        return np.zeros(0, dtype=dtype)
    return np.concatenate([table[n].reshape(-1) for n in names]).astype(dtype, copy=False)


def _views(array: np.ndarray, rows: list[int], cols: list[int]) -> list[torch.Tensor]:
    """Tensors over consecutive [rows[i], cols[i]] blocks of `array`."""
    out, start = [], 0
    for r, c in zip(rows, cols):
        out.append(torch.from_numpy(array[start:start + r * c].reshape(r, c)))
        start += r * c
    return out


def _repeats(keys: list[np.ndarray]) -> bool:
    """Whether some parameter start occurs twice in `keys` (build_plan's
    `_first_occurrence` then flags ties), by plan._has_duplicates: a byte
    per value over their range, not a sort."""
    return bool(keys) and P._has_duplicates(np.concatenate(keys))


def _row_sums(flat: np.ndarray, widths: list[int], rows: list[int],
              counts: np.ndarray | None = None) -> np.ndarray:
    """Per row of the [rows[i], widths[i]] tables laid end to end in `flat`,
    the sum of its first counts[r] entries (all of them without `counts`);
    float64, exact for these slot sums (< 2^53)."""
    row_len = np.repeat(widths, rows)
    row_of = _segments(row_len)
    if counts is not None:
        col = segment_ranks(row_len)
        flat = np.where(col < counts[row_of], flat, 0)
    return np.bincount(row_of, weights=flat, minlength=row_len.size)


def _headers(layout: pcir.Layout, table: ir.TensorTable
             ) -> tuple[list, list, list, list] | None:
    """One pass over the partitions: (sums, inputs, backs) as (layer,
    partition) pairs and the product partitions of each layer; None when
    the layout is not one this module covers (module docstring)."""
    meta = layout.metadata
    if meta.get("form") != "nodes" or meta.get("slot_dtype", "int32") != "int32":
        return None
    sums, inputs, products, backs = [], [], [], []
    for li, (_, layer_inputs, layer_products, layer_sums, layer_backwards) in \
            enumerate(table.layer_parts(layout)):
        for ip in layer_inputs:
            if ip.has_ties:
                return None
            inputs.append((li, ip))
        products.append(layer_products)
        for sp in layer_sums:
            if sp.block_size != 1 or sp.has_ties or "tile_rows" in sp.kernel_options:
                return None
            sums.append((li, sp))
        for bp in layer_backwards:
            if bp.child_block_size != 1 or bp.parent_block_size != 1:
                return None
            backs.append((li, bp))
    return sums, inputs, products, backs


def build_node_plan(layout: pcir.Layout, table: ir.TensorTable
                    ) -> tuple[P.TritonPlan, Walk] | None:
    """The host plan of `layout` (build_plan's, before its store flags,
    merged sums and upload) and its writers (a writer_marks.Walk, for the
    store flags), or None when the layout is not one this module covers."""
    headers = _headers(layout, table)
    if headers is None:
        return None
    sums, inputs, products, backs = headers
    sum_keys = [table[sp.block_param_starts].reshape(-1) for _, sp in sums]
    in_keys = [table[ip.node_param_starts].reshape(-1) for _, ip in inputs]
    if _repeats(sum_keys) or _repeats(in_keys):
        return None                 # parameter rows shared across partitions: ties
    if sum(sp.num_blocks * sp.max_children for _, sp in sums) > WHOLE_ENTRIES_MAX:
        return None
    plan_layers = [P.LayerPlan(kind=int(layer.kind)) for layer, *_ in table.layer_parts(layout)]
    for (li, ip), ps in zip(inputs, in_keys):
        plan_layers[li].inputs.append(P.input_part(
            P.DIST_CODES[ip.dist], int(ip.slot_start), int(ip.params_per_node),
            table[ip.node_vars].reshape(-1), ps, P._HOST, False, np.ones(ps.size, dtype=bool)))
    built = _sum_parts(sums, sum_keys, table)
    if built is None:
        return None
    parts, sum_rows, sum_sizes = built
    for (li, _), part in zip(sums, parts):
        plan_layers[li].sums.append(part)
    rows_of: dict[int, np.ndarray] = {}       # id(part) -> the rows it writes, as built
    for li, part, rows in _product_parts(products, table, int(layout.num_slots)):
        plan_layers[li].products.append(part)
        rows_of[id(part)] = rows
    for li, part, rows in _backward_parts(backs, table):
        plan_layers[li].sum_backwards.append(part)
        rows_of[id(part)] = rows
    for lp in plan_layers:
        if len(lp.products) > 1:
            lp.products.sort(key=lambda p: p.slot_start)
    plan = P.TritonPlan(int(layout.num_slots), int(layout.root_slot), plan_layers)
    return plan, walk_of(plan_layers, lambda part: rows_of[id(part)], sum_rows, sum_sizes)


# Candidate pairs of neighbouring sum blocks (equal count and slot sum) up to
# which _equal_neighbours compares their lists; past it their partitions
# are flagged as they are (sum_part then searches)
CANDIDATES_MAX = 64


def _equal_neighbours(children: np.ndarray, counts: np.ndarray, nbs: list[int],
                      ks: list[int]) -> np.ndarray:
    """bool per sum partition: two neighbouring blocks list the same
    children (padded rows, as plan.equal_neighbours compares them) and
    counts. Pairs with equal counts and child-slot sums are the candidates;
    their rows are compared one by one."""
    row_sum = _row_sums(children, ks, nbs)            # padding (slot 0) included
    maybe = (counts[1:] == counts[:-1]) & (row_sum[1:] == row_sum[:-1])
    maybe[np.cumsum(nbs)[:-1] - 1] = False           # the pair spans two partitions
    seg = _segments(nbs)
    flagged = np.zeros(len(nbs), dtype=bool)
    pairs = np.flatnonzero(maybe)
    if pairs.size > CANDIDATES_MAX:
        flagged[seg[pairs]] = True
        return flagged
    widths = np.repeat(ks, nbs)
    first = np.cumsum(widths) - widths
    for r, k, at in zip(pairs.tolist(), widths[pairs].tolist(), first[pairs].tolist()):
        if np.array_equal(children[at:at + k], children[at + k:at + 2 * k]):
            flagged[seg[r]] = True
    return flagged


def _sum_parts(sums: list, keys: list[np.ndarray], table) -> tuple | None:
    """(parts, their block slots end to end as int64, block counts): the
    part `plan.sum_part` builds of each sum partition. Partitions where two
    neighbouring blocks may read the same children (equal count and
    child-slot sum) go through sum_part itself; None when one of those
    becomes a row-tile part (its node flows then leave the plain plan)."""
    if not sums:
        return [], np.zeros(0, dtype=np.int64), []
    nbs = [int(sp.num_blocks) for _, sp in sums]
    ks = [int(sp.max_children) for _, sp in sums]
    children = _joined(table, [sp.child_slots for _, sp in sums], np.int32)
    counts = _joined(table, [sp.block_num_children for _, sp in sums], np.int32)
    flagged = _equal_neighbours(children, counts, nbs, ks)
    owners = segment_ranks(np.asarray(nbs)).astype(np.int32)
    tensor = torch.from_numpy
    block_slots = _joined(table, [sp.block_slots for _, sp in sums], np.int32)
    slots_t = tensor(block_slots).split_with_sizes(nbs)
    counts_t = tensor(counts).split_with_sizes(nbs)
    starts_t = tensor(np.concatenate(keys).astype(np.int64, copy=False)).split_with_sizes(nbs)
    owners_t = tensor(owners).split_with_sizes(nbs)
    out = []
    for i, (cs, (_, sp)) in enumerate(zip(_views(children, nbs, ks), sums)):
        options = {k: sp.kernel_options[k] for k in sp.kernel_options}
        if flagged[i]:
            part = P.sum_part(1, table[sp.block_slots].reshape(-1), counts_t[i].numpy(),
                              cs.numpy(), keys[i], P._HOST, False,
                              np.ones(nbs[i], dtype=bool), options)
            if P.is_tile_part(part):
                return None
        else:
            part = P.SumKernelPart(1, nbs[i], ks[i], slots_t[i], counts_t[i], cs,
                                   starts_t[i], False, owners_t[i], options)
        out.append(part)
    return out, block_slots.astype(np.int64), nbs


def _product_parts(products: list[list], table, num_slots: int) -> list:
    """(layer, part, rows it writes) per product launch: a layer's adjacent
    partitions (`products[li]`) merged as build_plan merges them
    (`merge_product_runs`), each atomic when a child slot other than the
    padding slot 1 occurs twice in it (`product_part`'s test, for all
    launches in one sort)."""
    runs = []
    for li, layer_parts in enumerate(products):
        parts = [(int(pp.slot_start), table[pp.child_slots].reshape(int(pp.num_nodes),
                                                                    int(pp.num_children)))
                 for pp in layer_parts]
        runs += [(li, start, cs) for start, cs in (P.merge_product_runs(parts)
                                                   if len(parts) > 1 else parts)]
    if not runs:
        return []
    rows = [cs.shape[0] for _, _, cs in runs]
    cols = [cs.shape[1] for _, _, cs in runs]
    flat = np.concatenate([cs.reshape(-1) for _, _, cs in runs]).astype(np.int32, copy=False)
    atomic = _repeated_in_segment(flat, _segments(np.multiply(rows, cols)), len(runs), num_slots)
    out, first = [], 0
    for (li, start, _), r, c, cs, flag in zip(runs, rows, cols, _views(flat, rows, cols),
                                              atomic.tolist()):
        out.append((li, P.ProductKernelPart(start, r, c, cs, flag), flat[first:first + r * c]))
        first += r * c
    return out


# Segments x slots up to which _repeated_in_segment marks (segment, slot)
# keys in a position map (no sort; only the written entries are touched)
KEY_MAP_MAX = 1 << 24


def _repeated_in_segment(slots: np.ndarray, seg: np.ndarray, count: int, num_slots: int
                         ) -> np.ndarray:
    """bool per segment 0..count-1: some slot other than 1 occurs twice among
    its entries. Each (segment, slot) key's entries write their positions
    into a map; an entry that does not read its own position back shares
    its key (whichever write lands last). A sort where the map would be
    too large."""
    real = np.flatnonzero(slots != 1)
    keys = seg[real] * num_slots + slots[real]
    atomic = np.zeros(count, dtype=bool)
    if count * num_slots <= KEY_MAP_MAX:
        where = np.empty(count * num_slots, dtype=np.int64)
        where[keys] = real
        atomic[seg[real[where[keys] != real]]] = True
    else:
        keys.sort()
        atomic[keys[1:][keys[1:] == keys[:-1]] // num_slots] = True
    return atomic


def _backward_parts(backs: list, table) -> list:
    """(layer, part, rows it writes) per node-flow partition `backs`. `plan.parent_union` keeps a
    partition's lists as they are unless it has two blocks, some parent,
    and every aligned pair of blocks (2i, 2i + 1) has equal parent counts
    and parent-slot sums; those partitions (and any without parent
    columns) go through `sum_backward_part` itself, or, with one parent
    column, through `_one_parent_unions`; the others are its plain answer
    (group 1, the lists as given)."""
    if not backs:
        return []
    nbs = [int(bp.num_blocks) for _, bp in backs]
    ps = [int(bp.max_parents) for _, bp in backs]
    npar = _joined(table, [bp.cblock_num_parents for _, bp in backs], np.int32)
    slots = _joined(table, [bp.parent_slots for _, bp in backs], np.int32)
    row_sum = _row_sums(slots, ps, nbs, npar)         # parent_union's `real` entries
    seg = _segments(nbs)
    local = segment_ranks(np.asarray(nbs))
    heads = np.flatnonzero((local % 2 == 0) & (local + 1 < np.repeat(nbs, nbs)))
    unequal = (npar[heads] != npar[heads + 1]) | (row_sum[heads] != row_sum[heads + 1])
    broken = np.zeros(len(backs), dtype=bool)
    broken[seg[heads][unequal]] = True
    parents = np.bincount(seg, weights=npar, minlength=len(backs))
    general = ((parents > 0) & (np.array(nbs) >= 2) & ~broken) | (np.array(ps) == 0) \
        | P.UNIONS_WITH_GAPS
    starts = _joined(table, [bp.parent_param_starts for _, bp in backs], np.int64)
    one = general & (np.array(ps) == 1) & (not P.UNIONS_WITH_GAPS)
    unions = _one_parent_unions(npar, slots, starts, nbs, ps, one) if one.any() else {}
    tensor = torch.from_numpy
    cblocks = _joined(table, [bp.cblock_slots for _, bp in backs], np.int32)
    cslots_t = tensor(cblocks).split_with_sizes(nbs)
    npar_t = tensor(npar).split_with_sizes(nbs)
    out, first = [], 0
    for i, (sl, st, (li, bp)) in enumerate(zip(_views(slots, nbs, ps), _views(starts, nbs, ps),
                                                backs)):
        options = {k: bp.kernel_options[k] for k in bp.kernel_options}
        if i in unions:             # sum_backward_part's part over the runs' union
            g, union, union_starts, counts = unions[i]
            part = P.SumBackwardKernelPart(1, 1, nbs[i], 1, cslots_t[i], P._i32(counts, P._HOST),
                                           P._i32(union, P._HOST),
                                           P._i64(union_starts, P._HOST), options, group=g)
        elif general[i] and not one[i]:
            part = P.sum_backward_part(1, 1, cslots_t[i].numpy(), npar_t[i].numpy(), sl.numpy(),
                                       st.numpy(), P._HOST, options)
        else:
            part = P.SumBackwardKernelPart(1, 1, nbs[i], ps[i], cslots_t[i], npar_t[i], sl, st,
                                           options)
        out.append((li, part, cblocks[first:first + nbs[i]]))
        first += nbs[i]
    return out


def _one_parent_unions(npar: np.ndarray, slots: np.ndarray, starts: np.ndarray, nbs: list[int],
                       ps: list[int], chosen: np.ndarray) -> dict:
    """plan.parent_union of the `chosen` node-flow partitions (one parent
    column each; their aligned pairs passed its count and sum checks), all
    at once: {partition: (G, union slots [nb, 1], union starts [nb, 1],
    counts)} for those that group runs; the others keep their lists.
    `_equal_set_runs` for one-parent lists: a run of G blocks qualifies
    when G divides the position of every change of parent inside the
    partition (G <= the lowest set bit of each), and the qualifying G
    that reads the fewest parent rows (the first of equals) wins unless
    it reads more than UNION_MAX_READS of them. npar, slots, starts: every
    partition's arrays end to end (`_joined`)."""
    nb_all, p_all = np.asarray(nbs), np.asarray(ps)
    sel = np.flatnonzero(chosen)
    n = nb_all[sel]
    seg = _segments(n)
    local = segment_ranks(n)
    rows = np.repeat((np.cumsum(nb_all) - nb_all)[sel], n) + local
    entries = np.repeat((np.cumsum(nb_all * p_all) - nb_all * p_all)[sel], n) + local
    count = npar[rows].astype(np.int64)
    real = count > 0
    own = np.where(real, slots[entries].astype(np.int64), -1)
    change = np.flatnonzero(own[1:] != own[:-1]) + 1
    change = change[local[change] != 0]               # inside one partition
    limit = np.full(sel.size, np.iinfo(np.int64).max)
    np.minimum.at(limit, seg[change], local[change] & -local[change])
    total = np.bincount(seg, weights=count, minlength=sel.size)
    best_g, best_reads = np.ones(sel.size, dtype=np.int64), np.full(sel.size, np.inf)
    g = 2
    while g <= P.GROUP_MAX_ROWS:                     # one-row blocks
        ok = (g < 2 * n) & (g <= limit)
        if not ok.any():
            break
        head = local % g == 0
        reads = np.bincount(seg[head], weights=count[head], minlength=sel.size)
        better = ok & (reads < best_reads)
        best_g[better], best_reads[better] = g, reads[better]
        g *= 2
    out = {}
    first = np.cumsum(n) - n
    for j in np.flatnonzero((best_g > 1) & (best_reads <= P.UNION_MAX_READS * total)).tolist():
        lo, hi = int(first[j]), int(first[j] + n[j])
        out[int(sel[j])] = (int(best_g[j]), np.maximum(own[lo:hi], 0)[:, None],
                            np.where(real[lo:hi], starts[entries[lo:hi]], -1)[:, None],
                            count[lo:hi])
    return out
