"""Store flags, zero rows and log-ratio rows of a plain plan in whole-array
steps.

`plan.mark_first_writers` and `plan.mark_ratio_rows` walk a plan's writers
part by part: for each node-flow and product partition its rows as a fresh
numpy array, then a few numpy calls per part. On a logic circuit's node
layout (87 layers and ~140 partitions for seq_fun, a few hundred rows
each) those calls cost more than the arithmetic: a third of the plan's
build. A *plain* plan (one-row blocks, no row tiles, no fusion, no compact
scratch region: every node layout) has every writer's rows in two
concatenations (the node-flow partitions' child blocks and the products'
child slots), so each rule is one pass over them with a segment id per row.
The flags are those of the walk (tests/triton/test_plan_build_fast.py
compares both on the shared SDDs and random plans).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from pccompiler.backends.triton.writers import WHOLE_ROWS_MAX, late_rows


def is_plain(plan) -> bool:
    """Whether `mark_plain_writers` applies: no compact region, no row-tile
    flows, no folded products, one-row blocks everywhere."""
    if plan.scratch_start is not None:
        return False
    for lp in plan.layers:
        if lp.tile_flows or any(p.fused or p.fused_bwd for p in lp.products):
            return False
        if any(p.block_size != 1 for p in lp.sums):
            return False
        if any(p.child_block_size != 1 or p.fused_bwd for p in lp.sum_backwards):
            return False
    return True


class Walk:
    """A plain plan's writers in backward order (layers reversed; in a layer
    its node-flow partitions, then its products): `parts`, their rows laid
    end to end (`rows`, int64, padding included; `sizes` per part), and per
    part whether it is a product and whether it may store (`walk_of`), and
    the sum parts' block slots in plan order where the builder has them
    (`sum_rows`, `sum_sizes`; None: read off the plan)."""

    def __init__(self, parts: list, rows: np.ndarray, sizes, is_product: np.ndarray,
                 may: np.ndarray, sum_rows: np.ndarray | None = None, sum_sizes=None):
        self.parts, self.rows, self.sizes = parts, rows, sizes
        self.is_product, self.may = is_product, may
        self.sum_rows, self.sum_sizes = sum_rows, sum_sizes


def walk_of(layers: list, rows_of: Callable[[Any], np.ndarray] | None = None,
            sum_rows: np.ndarray | None = None, sum_sizes=None) -> Walk:
    """The Walk of a plain plan's `layers`. `rows_of(part)`: the rows a
    writer writes, flat (default: read off its tensor, a node-flow part's
    child blocks or a product's child slots, on the host); node_plan
    passes the arrays it cut the parts from."""
    parts, pieces, is_product, may = [], [], [], []
    for lp in reversed(layers):
        for part in lp.sum_backwards:
            parts.append(part)
            pieces.append(part.cblock_slots.reshape(-1).numpy() if rows_of is None
                          else rows_of(part))
            is_product.append(False)
            may.append(True)
        for part in lp.products:
            parts.append(part)
            pieces.append(part.child_slots.reshape(-1).numpy() if rows_of is None
                          else rows_of(part))
            is_product.append(True)
            may.append(not part.atomic)
    rows = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, dtype=np.int64)
    return Walk(parts, rows, [p.size for p in pieces], np.array(is_product, dtype=bool),
                np.array(may, dtype=bool), sum_rows, sum_sizes)


def mark_ratio_by_writer(sums: list, rows: np.ndarray, sizes: np.ndarray, ok: np.ndarray,
                         ratio: np.ndarray) -> None:
    """Sets each sum part's `ratio_by_writer` (it has rows, and `ok` holds
    for every one: `rows` all parts' rows end to end, `sizes` per part) and
    marks those parts' rows in `ratio`: mark_ratio_rows' rule for sum
    parts, one pass over all their rows."""
    seg = np.repeat(np.arange(len(sums)), sizes)
    bad = np.zeros(len(sums), dtype=bool)
    bad[seg[~ok[rows]]] = True
    by_writer = (sizes > 0) & ~bad
    ratio[rows[by_writer[seg]]] = True
    for part, flag in zip(sums, by_writer.tolist()):
        part.ratio_by_writer = flag


def mark_plain_writers(plan, device: torch.device, ratios: bool, zero_all_fraction: float,
                       walk: Walk | None = None) -> bool:
    """mark_first_writers (and, with `ratios`, mark_ratio_rows) on a plain
    plan (`is_plain`) of at most WHOLE_ROWS_MAX written rows; False (and
    nothing set) on any other plan. zero_all_fraction: plan.ZERO_ALL_FRACTION.
    `walk`: the plan's Walk where the caller has it (a plain plan then)."""
    if plan.num_slots > WHOLE_ROWS_MAX or (walk is None and not is_plain(plan)):
        return False      # a large plan walks (its writers' rows are as many, or more)
    walk = walk_of(plan.layers) if walk is None else walk
    if walk.rows.size > WHOLE_ROWS_MAX:
        return False
    parts, raw, is_product = walk.parts, walk.rows, walk.is_product
    n, num_slots, root = len(parts), plan.num_slots, plan.root_slot
    raw_seg = np.repeat(np.arange(n), walk.sizes)
    real = ~is_product[raw_seg] | (raw > 1)         # products' slots 0, 1 carry no flow
    rows, seg = raw[real], raw_seg[real]
    # a writer stores when every row it writes has it as first writer (the root: before the walk)
    store = walk.may & (late_rows(rows, seg, n, num_slots, (root,)) == 0)
    for part, flag in zip(parts, store.tolist()):
        part.store = flag
    stored = np.zeros(num_slots, dtype=bool)
    stored[root] = True
    stored[rows[store[seg]]] = True
    stored[:2] = False
    zero = np.flatnonzero(~stored)
    plan.zero_rows = torch.from_numpy(zero).to(device)
    plan.zero_all = zero.size > zero_all_fraction * num_slots
    if ratios:
        _mark_ratios(plan, device, walk, rows, seg, store)
    return True


def _mark_ratios(plan, device: torch.device, walk: Walk, rows: np.ndarray, seg: np.ndarray,
                 store: np.ndarray) -> None:
    """mark_ratio_rows on a plain plan: a sum part's rows take their ratio
    from their writer when every one has exactly one writer in the whole
    backward, a storing product; such a product then writes ratios if one
    of its rows takes them."""
    parts, is_product, num_slots = walk.parts, walk.is_product, plan.num_slots
    counts = np.bincount(rows, minlength=num_slots)
    by_store_product = np.zeros(num_slots, dtype=bool)
    by_store_product[rows[(store & is_product)[seg]]] = True
    ok = (counts == 1) & by_store_product
    sums = [part for lp in plan.layers for part in lp.sums]
    ratio = np.zeros(num_slots, dtype=bool)
    if sums:
        if walk.sum_rows is None:
            srows = torch.cat([p.block_slots.reshape(-1) for p in sums]).numpy().astype(np.int64)
            sizes = np.array([p.block_slots.numel() for p in sums], dtype=np.int64)
        else:
            srows, sizes = walk.sum_rows, np.asarray(walk.sum_sizes, dtype=np.int64)
        mark_ratio_by_writer(sums, srows, sizes, ok, ratio)
    hits = np.zeros(len(parts), dtype=bool)
    hits[seg[ratio[rows]]] = True
    for p in np.flatnonzero(is_product).tolist():
        parts[p].ratio_out = bool(store[p] and hits[p])
    plan.ratio_rows = torch.from_numpy(ratio.astype(np.uint8)).to(device) if ratio.any() \
        else None
