"""Work-item tables of the persistent small-batch forward (persistent_kernel.py).

At batch 1 a forward is a chain of dependent layers (HCLT-128: 89 of them,
~5 us each as separate launches, bench/results/latency-h100-2026-12-06.md).
The persistent kernel runs the whole forward in ONE launch: each program
claims work items in order and waits, inside the kernel, until the items
its inputs come from are done. This module turns a Layout into the items:

* input items: up to `wide` leaf rows of one partition (categorical log
  p[var, x], Bernoulli, Gaussian; a missing variable marginalises to 0);
* product items: up to `wide` rows of a product partition that cannot be
  folded (fusion.py: read by another product, the root, or too wide);
* sum items: up to `rows` rows of one sum block over all its children,
  whose values are read through the block's grand-slot table (fusion.py:
  a folded product's value is the sum of its children's, added on load),
  so folded products cost no item and no level.

Every item gets a *level*: 1 + the highest level of the items that write the
rows it reads (inputs 0). Items are numbered by level; an item of level L
waits for the done-counter of level L-1 to reach that level's item count,
which (by induction) means every lower level is done. Item numbers only
wait on lower numbers, so the scheme needs no co-residency of programs and
runs under TRITON_INTERPRET=1, where programs run one after another.

Node values use the Layout's own slots (the plan of the all-node queries,
no scratch region: a row is never overwritten within a forward), so the
root row is read where `engine.plan` puts it. The tables depend on the
circuit and (rows, wide) only, not on the batch (the kernel's batch tile is
B_MAX), and are built with numpy per partition, never per node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pccompiler import ir
from pccompiler.backends.triton.fusion import plan_fusion
from pccompiler.backends.triton.plan import DIST_CODES
from pccompiler.errors import BackendError
from pccompiler.ir import pcir

B_MAX = 16          # largest batch the kernel takes (its batch tile; tl.dot needs >= 16)
ROWS = 16           # sum rows per kernel tile (tl.dot, >= 16, a power of two)
CHUNK = 128         # children gathered at once (>= 16; longer lists: online log-sum-exp)
WIDE = 256          # input / product rows per item
SPREAD = 0          # sum items a level keeps before runs of tiles merge; 0: the programs
GRID_PER_SM = 1     # programs per SM; GRID overrides when > 0
GRID = 0
NUM_WARPS = 4
POLL_ATOMIC = True  # wait with acquire atomics (else volatile loads + one acquire)
SPIN_LIMIT = 1 << 22    # polls without progress before a wait gives up (a bug; > 1 s)
MODES = ("auto", "on", "off")
MAX_ARITY = 8       # products folded into sum items (the kernel's eight grand-slot vectors)

# Columns of the int64 item table (one row per item).
KIND, LEVEL, WAIT_N, SLOT, NROWS, OFF, ARG_A, ARG_B, ARG_C = range(9)
FIELDS = 9
INPUT, PRODUCT, SUM = 0, 1, 2


def check_mode(value: object) -> str:
    """The `persistent` option: "auto" (small batches of supported circuits),
    "on" (always, or BackendError) or "off"; True / False read as on / off."""
    if value is True or value is False:
        return "on" if value else "off"
    if isinstance(value, str) and value.lower() in MODES:
        return value.lower()
    raise BackendError(f"persistent must be one of {MODES} (or True / False), not {value!r}")


def unsupported_reason(layout: pcir.Layout) -> str | None:
    """Why the persistent forward cannot run this layout, or None: a leaf
    distribution without an input item (a future one; every distribution
    of DIST_CODES has one)."""
    for li, layer in enumerate(layout.layers):
        for pi, ip in enumerate(layer.input_partitions):
            if ip.dist not in DIST_CODES:
                return (f"layer {li} input partition {pi} has distribution {ip.dist}; the "
                        f"persistent forward reads {sorted(DIST_CODES)} only")
    return None


@dataclass
class PersistentTables:
    """The items of one circuit (host numpy until `to`)."""
    items: torch.Tensor         # int64 [n_items, FIELDS]
    table: torch.Tensor         # int64: leaf vars / param starts, product children, grand slots
    level_counts: np.ndarray    # int64 [n_levels]: items per level
    arity: int                  # width of the grand-slot rows (fusion.py's A)
    rows: int
    wide: int
    num_slots: int
    root_slot: int

    @property
    def n_items(self) -> int:
        return int(self.items.shape[0])

    @property
    def depth(self) -> int:
        """Levels: the chain of in-kernel waits."""
        return int(self.level_counts.size)

    def summary(self) -> dict:
        kinds = np.bincount(self.items[:, KIND].cpu().numpy(), minlength=3)
        return {"items": self.n_items, "input_items": int(kinds[INPUT]),
                "product_items": int(kinds[PRODUCT]), "sum_items": int(kinds[SUM]),
                "levels": self.depth, "rows": self.rows, "wide": self.wide,
                "arity": self.arity, "max_items_per_level": int(self.level_counts.max())}


class _Builder:
    """Accumulates item rows and table segments, partition by partition."""

    def __init__(self, num_slots: int):
        self.level = np.full(num_slots, -1, dtype=np.int64)   # slots 0, 1: constants
        self.items: list[np.ndarray] = []
        self.blocks: list[np.ndarray] = []     # sum blocks: level, slot, bs, grand at, ps, nc
        self.table: list[np.ndarray] = []
        self.size = 0

    def segment(self, a: np.ndarray) -> int:
        """Append a table segment; its first index."""
        start = self.size
        self.table.append(np.asarray(a, dtype=np.int64).ravel())
        self.size += self.table[-1].size
        return start

    def add(self, kind: int, level, slot, nrows, off, a=0, b=0, c=0) -> None:
        """Item rows, one per entry of `slot` (scalars broadcast)."""
        n = np.size(slot)
        self.items.append(np.stack([np.broadcast_to(np.asarray(x, dtype=np.int64), (n,))
                                    for x in (kind, level, 0, slot, nrows, off, a, b, c)],
                                   axis=1))


def _row_chunks(n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(first row, row count) of each chunk of `width` rows among n."""
    first = np.arange(0, n, width, dtype=np.int64)
    return first, np.minimum(width, n - first)


def _add_sum_items(bld: _Builder, rows: int, spread: int) -> None:
    """Sum items: a block's rows in runs of p * `rows` (whole tiles of the
    kernel), p per level the largest power of two that leaves the level at
    least `spread` items (1 where it has fewer tiles), at most a block. The
    kernel gathers a run's children once for all its tiles, and every item
    costs a claim and a table read, so a wide level takes few long items
    and a narrow one (the top of a tree) many short ones."""
    if not bld.blocks:
        return
    level, slot, bs, at, ps, nc = np.concatenate(bld.blocks).T
    tiles = -(-bs // rows)
    per_level = np.bincount(level, weights=tiles).astype(np.int64)
    most = np.zeros_like(per_level)
    np.maximum.at(most, level, tiles)          # the longest block of each level, in tiles
    p = np.ones_like(per_level)
    grow = (per_level // 2 >= spread) & (2 <= most)
    while grow.any():                          # a few doublings (log2 of a block's tiles)
        p = np.where(grow, 2 * p, p)
        grow = (per_level // (2 * p) >= spread) & (2 * p <= most)
    width = np.minimum(p[level] * rows, -(-bs // rows) * rows)      # rows per item, per block
    count = -(-bs // width)
    blk = np.repeat(np.arange(level.size), count)
    first = (np.arange(blk.size) - np.repeat(np.cumsum(count) - count, count)) * width[blk]
    bld.add(SUM, level[blk], slot[blk] + first, np.minimum(width[blk], bs[blk] - first),
            at[blk], ps[blk] + first, bs[blk], nc[blk])


def build_tables(layout: pcir.Layout, rows: int | None = None, wide: int | None = None,
                 spread: int | None = None) -> PersistentTables:
    """The items of `layout` (see the module docstring); rows / wide None:
    ROWS / WIDE read at call time; spread None: SPREAD, or 132 (an H100's
    SMs) when that is 0 (`tables_for` passes the programs of a device; see
    `_add_sum_items`). Raises BackendError for leaves the kernel does not
    read (`unsupported_reason`)."""
    rows = ROWS if rows is None else int(rows)
    wide = WIDE if wide is None else int(wide)
    spread = (SPREAD or 132) if spread is None else int(spread)
    if rows < 16 or rows & (rows - 1) or wide < 1 or wide & (wide - 1):
        raise BackendError(f"persistent: rows ({rows}) must be a power of two >= 16 and "
                           f"wide ({wide}) a power of two")
    why = unsupported_reason(layout)
    if why is not None:
        raise BackendError(f"persistent forward: {why}")
    t = ir.tensor_table(layout)
    arr = lambda name, shape: np.asarray(t[name], dtype=np.int64).reshape(shape)  # noqa: E731
    fusion = plan_fusion(layout, max_arity=MAX_ARITY)
    grand = fusion.grand.astype(np.int64)
    bld = _Builder(int(layout.num_slots))
    for li, layer in enumerate(layout.layers):
        for ip in layer.input_partitions:
            n, start = int(ip.num_nodes), int(ip.slot_start)
            if n == 0:
                continue
            bld.level[start:start + n] = 0
            first, count = _row_chunks(n, wide)
            var_at = bld.segment(arr(ip.node_vars, (n,)))
            ps_at = bld.segment(arr(ip.node_param_starts, (n,)))
            bld.add(INPUT, np.zeros_like(first), start + first, count, var_at + first,
                    ps_at + first, int(ip.params_per_node), DIST_CODES[ip.dist])
        for pi, pp in enumerate(layer.product_partitions):
            n, k, start = int(pp.num_nodes), int(pp.num_children), int(pp.slot_start)
            if n == 0:
                continue
            cs = arr(pp.child_slots, (n, k))
            below = bld.level[cs].max(axis=1) if k else np.full(n, -1, dtype=np.int64)
            if (li, pi) in fusion.fused:       # read through its readers' grand slots
                bld.level[start:start + n] = below
                continue
            bld.level[start:start + n] = below + 1
            first, count = _row_chunks(n, wide)
            at = bld.segment(cs)
            bld.add(PRODUCT, np.maximum.reduceat(below + 1, first),
                    start + first, count, at + first * k, 0, k)
        for sp in layer.sum_partitions:
            nb, k, bs = int(sp.num_blocks), int(sp.max_children), int(sp.block_size)
            if nb == 0:
                continue
            g = grand[arr(sp.child_slots, (nb, k))]         # [nb, K, A]
            block_level = bld.level[g].reshape(nb, -1).max(axis=1) + 1
            slots = arr(sp.block_slots, (nb,))
            bld.level[(slots[:, None] + np.arange(bs)).ravel()] = np.repeat(block_level, bs)
            at = bld.segment(g) + np.arange(nb) * k * grand.shape[1]
            bld.blocks.append(np.stack([block_level, slots, np.full(nb, bs), at,
                                        arr(sp.block_param_starts, (nb,)),
                                        arr(sp.block_num_children, (nb,))], axis=1))
    _add_sum_items(bld, rows, spread)
    items = np.concatenate(bld.items) if bld.items else np.zeros((0, FIELDS), dtype=np.int64)
    # dense level numbers, items sorted by level (stable: layout order within)
    uniq, dense = np.unique(items[:, LEVEL], return_inverse=True)
    items[:, LEVEL] = dense
    items = items[np.argsort(dense, kind="stable")]
    counts = np.bincount(items[:, LEVEL], minlength=uniq.size).astype(np.int64)
    items[:, WAIT_N] = np.where(items[:, LEVEL] > 0, counts[np.maximum(items[:, LEVEL] - 1, 0)], 0)
    table = np.concatenate(bld.table) if bld.table else np.zeros(1, dtype=np.int64)
    return PersistentTables(torch.from_numpy(np.ascontiguousarray(items)),
                            torch.from_numpy(table), counts, int(grand.shape[1]), rows, wide,
                            int(layout.num_slots), int(layout.root_slot))


def programs(device: torch.device) -> int:
    """GRID when set, else GRID_PER_SM programs per SM (2 under the
    interpreter, so that tests see more than one program)."""
    if GRID > 0:
        return GRID
    if device.type == "cuda":
        return GRID_PER_SM * torch.cuda.get_device_properties(device).multi_processor_count
    return 2


def default_grid(device: torch.device, n_items: int) -> int:
    """`programs`, at most n_items (a program without an item only claims)."""
    return max(1, min(programs(device), max(n_items, 1)))


def tables_for(engine, rows: int | None = None, wide: int | None = None,
               spread: int | None = None) -> PersistentTables:
    """The engine's tables for (rows, wide, spread), built once and cached on the
    engine (`persistent_tables`), on its device."""
    if spread is None:
        spread = SPREAD if SPREAD > 0 else programs(engine.device)
    key = (ROWS if rows is None else int(rows), WIDE if wide is None else int(wide), int(spread))
    cache = engine.persistent_tables
    if key not in cache:
        tabs = build_tables(engine.layout, *key)
        tabs.items = tabs.items.to(engine.device)
        tabs.table = tabs.table.to(engine.device)
        cache[key] = tabs
    return cache[key]
