"""Per-group index arrays of sum layers (forward by parent block, backward by
child block), vectorized over edges. Used by layerize (fan-in counts, with
provisional slots) and layout (the real arrays).

Conventions (ir/pcir.proto, SumPartition / SumBackwardPartition): the
weight of parent i of block b and its k-th child is
sum_params[block_param_starts[b] + k * Bp + i].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pccompiler.ir import pcir


@dataclass
class ForwardBlocks:
    block_slots: np.ndarray      # int64 [nb]
    num_children: np.ndarray     # int64 [nb]
    child_slots: np.ndarray      # int64 [nb, maxK], padding 0
    param_starts: np.ndarray     # int64 [nb]


def column_slots(model: pcir.Model, g: pcir.Group, slot_of: np.ndarray) -> np.ndarray:
    """Slot of every child column of sum group g (child groups concatenated)."""
    return np.concatenate([slot_of[c] + np.arange(model.groups[c].num_nodes, dtype=np.int64)
                           for c in g.sum.children])


def _edge_ranks(parents: np.ndarray, num_parents: int):
    """(count per parent, first edge per parent, rank of each edge) for sorted edges."""
    counts = np.bincount(parents, minlength=num_parents).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(parents), dtype=np.int64) - first[parents]
    return counts, first, rank


def forward_blocks(g: pcir.Group, edges: np.ndarray | None, bp: int, slot_start: int,
                   colslot: np.ndarray, param_start: int) -> ForwardBlocks:
    """Forward blocks of sum group g placed at slot_start / param_start."""
    n, cols = int(g.num_nodes), len(colslot)
    if g.sum.pattern == pcir.DENSE:
        nb = n // bp
        return ForwardBlocks(slot_start + np.arange(nb, dtype=np.int64) * bp,
                             np.full(nb, cols, dtype=np.int64),
                             np.broadcast_to(colslot, (nb, cols)),
                             param_start + np.arange(nb, dtype=np.int64) * bp * cols)
    b = int(g.sum.block_size) if g.sum.pattern == pcir.BLOCK_SPARSE else 1
    nb = n // b
    pb = edges[:, 0].astype(np.int64)
    cb = edges[:, 1].astype(np.int64)
    counts, first, rank = _edge_ranks(pb, nb)
    kmax = int(counts.max(initial=0)) * b
    child = np.zeros((nb, kmax), dtype=np.int64)
    j = np.arange(b, dtype=np.int64)
    child[pb[:, None], rank[:, None] * b + j] = colslot[cb[:, None] * b + j]
    return ForwardBlocks(slot_start + np.arange(nb, dtype=np.int64) * b, counts * b, child,
                         param_start + first * b * b)


def backward_pairs(g: pcir.Group, edges: np.ndarray | None, bp: int, bc: int, slot_start: int,
                   colslot: np.ndarray, fwd_param_starts: np.ndarray):
    """(child block first slot, parent block first slot, param start) per pair.

    param start p means: weight of child j of the child block and parent i
    of the parent block is sum_params[p + j * bp + i].
    """
    n, cols = int(g.num_nodes), len(colslot)
    if g.sum.pattern == pcir.DENSE:
        nb, ncb = n // bp, cols // bc
        b_idx = np.repeat(np.arange(nb, dtype=np.int64), ncb)
        cb_idx = np.tile(np.arange(ncb, dtype=np.int64), nb)
        return (colslot[cb_idx * bc], slot_start + b_idx * bp,
                fwd_param_starts[b_idx] + cb_idx * bc * bp)
    b = int(g.sum.block_size) if g.sum.pattern == pcir.BLOCK_SPARSE else 1
    pb = edges[:, 0].astype(np.int64)
    cb = edges[:, 1].astype(np.int64)
    _, _, rank = _edge_ranks(pb, n // b)
    sub = b // bc
    s = np.arange(sub, dtype=np.int64)
    col0 = (cb[:, None] * b + s * bc).ravel()
    k0 = (rank[:, None] * b + s * bc).ravel()
    parent = np.repeat(slot_start + pb * b, sub)
    param = np.repeat(fwd_param_starts[pb], sub) + k0 * b
    return colslot[col0], parent, param


def _subset(fb: ForwardBlocks, mask: np.ndarray) -> ForwardBlocks:
    nc = fb.num_children[mask]
    return ForwardBlocks(fb.block_slots[mask], nc,
                         np.asarray(fb.child_slots)[mask][:, :int(nc.max(initial=0))],
                         fb.param_starts[mask])


def tiled_index(g: pcir.Group, edges: np.ndarray, grid, slot_start: int, colslot: np.ndarray,
                param_start: int) -> tuple[dict, dict]:
    """Index arrays of a row-tiled SPARSE group (passes/helpers/row_tiles.py,
    `grid` its TileGrid): ({tile rows: ForwardBlocks of the rows in tiles of
    that size}, {column block size: (child block slot, parent slot, param
    start) per (column block, row)}). The forward stays one block per row
    (parameters in edge order); a tile's rows are consecutive with equal
    child lists, which the kernels run as one tile. Each row holds whole
    column blocks, contiguous in its edge list, so the weights of block
    child j sit at the pair's param start + j (parent block size 1)."""
    fb = forward_blocks(g, edges, 1, slot_start, colslot, param_start)
    rows_of = grid.tile_rows[grid.tile_of_row]
    fwd = {int(r): _subset(fb, rows_of == r) for r in np.unique(rows_of)}
    pb = edges[:, 0].astype(np.int64)
    cb = edges[:, 1].astype(np.int64)
    _, _, rank = _edge_ranks(pb, int(g.num_nodes))
    blk = grid.block_of_col[cb]
    lead = cb == grid.block_start[blk]
    size = grid.block_cols[blk][lead]
    pairs = (colslot[cb[lead]], slot_start + pb[lead], fb.param_starts[pb[lead]] + rank[lead])
    bwd = {int(s): tuple(a[size == s] for a in pairs) for s in np.unique(size)}
    return fwd, bwd


def fan_in_split(values: np.ndarray, max_parts: int, tolerance: float = 0.05) -> list[tuple]:
    """Split blocks with fan-ins `values` into <= max_parts ranges [(lo, hi)].

    Minimises the padded entries sum(hi * count - sum of fan-ins) by dynamic
    programming over the sorted distinct fan-ins (vectorized over the split
    point); uses the fewest parts whose padding exceeds the best by at most
    `tolerance` x the real entries (another kernel launch must pay for
    itself). More than 1024 distinct values are first merged at quantiles.
    """
    if len(values) == 0:
        return []
    lo_all, hi_all = int(values.min()), int(values.max())
    if lo_all == hi_all or max_parts <= 1:
        return [(lo_all, hi_all)]
    uniq, cnt = np.unique(values, return_counts=True)
    if len(uniq) > 1024:
        edges = np.unique(np.quantile(uniq, np.linspace(0, 1, 1025), method="lower"))
        seg = np.searchsorted(edges, uniq, side="left")
        seg_hi = np.zeros(len(edges), dtype=np.int64)
        np.maximum.at(seg_hi, seg, uniq)
        seg_cnt = np.bincount(seg, weights=cnt, minlength=len(edges))
        seg_sum = np.bincount(seg, weights=uniq * cnt, minlength=len(edges))
        keep = seg_cnt > 0
        hi, c, s = seg_hi[keep].astype(float), seg_cnt[keep], seg_sum[keep]
    else:
        hi, c, s = uniq.astype(float), cnt.astype(float), (uniq * cnt).astype(float)
    d = len(hi)
    cc, cs = np.concatenate([[0], np.cumsum(c)]), np.concatenate([[0], np.cumsum(s)])
    parts = max(1, min(max_parts, d))
    inf = np.inf
    dp = np.full((parts + 1, d + 1), inf)
    arg = np.zeros((parts + 1, d + 1), dtype=np.int64)
    dp[0, 0] = 0.0
    for k in range(1, parts + 1):
        for j in range(1, d + 1):
            i = np.arange(j)         # the part covers distinct values i .. j-1
            cost = dp[k - 1, i] + hi[j - 1] * (cc[j] - cc[i]) - (cs[j] - cs[i])
            arg[k, j] = int(np.argmin(cost))
            dp[k, j] = cost[arg[k, j]]
    best = dp[1:, d].min()
    k = next(k for k in range(1, parts + 1) if dp[k, d] <= best + tolerance * cs[-1] + 1e-9)
    bounds, j = [], d
    while k > 0:
        i = arg[k, j]
        bounds.append((i, j))
        j, k = i, k - 1
    lo_vals = np.concatenate([[-np.inf], hi])
    out = []
    for i, j in reversed(bounds):
        lo = int(lo_vals[i]) + 1 if i > 0 else int(uniq[0])
        out.append((lo, int(hi[j - 1])))
    return out


def dense_batches(model: pcir.Model, gids, sizes) -> tuple[dict, list[int]]:
    """Split sum groups into batches of DENSE groups of one shape
    (num_nodes, child sizes, block sizes) and the rest (handled per group)."""
    batches: dict[tuple, list[int]] = {}
    rest: list[int] = []
    for gid in gids:
        g = model.groups[gid]
        if g.sum.pattern != pcir.DENSE:
            rest.append(gid)
            continue
        key = (int(g.num_nodes), tuple(int(model.groups[c].num_nodes) for c in g.sum.children),
               sizes[gid])
        batches.setdefault(key, []).append(gid)
    return batches, rest


def dense_batch_index(model: pcir.Model, key: tuple, gids: list[int], slot_of: np.ndarray,
                      param_of: np.ndarray):
    """Forward blocks and backward pairs of many DENSE groups of one shape at once.

    Same arrays as forward_blocks / backward_pairs per group, concatenated
    in `gids` order, built with one set of numpy calls for the whole batch.
    """
    n, child_sizes, (bp, bc) = key
    gids_a = np.asarray(gids, dtype=np.int64)
    kids = np.array([list(model.groups[g].sum.children) for g in gids], dtype=np.int64)
    local = np.concatenate([np.arange(s, dtype=np.int64) for s in child_sizes])
    colslot = np.repeat(slot_of[kids], child_sizes, axis=1) + local          # [G, C]
    cols, nb = colslot.shape[1], n // bp
    blocks = np.arange(nb, dtype=np.int64)
    slot0 = slot_of[gids_a][:, None]
    starts = param_of[gids_a][:, None] + blocks * bp * cols                   # [G, nb]
    fwd = ForwardBlocks((slot0 + blocks * bp).ravel(), np.full(len(gids) * nb, cols, np.int64),
                        np.repeat(colslot, nb, axis=0), starts.ravel())
    ncb = cols // bc
    b_idx = np.repeat(blocks, ncb)
    cb_idx = np.tile(np.arange(ncb, dtype=np.int64), nb)
    bwd = (colslot[:, cb_idx * bc].ravel(), (slot0 + b_idx * bp).ravel(),
           (starts[:, b_idx] + cb_idx * bc * bp).ravel())
    return fwd, bwd
