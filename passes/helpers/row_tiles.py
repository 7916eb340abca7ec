"""Row tiles: a pruned sum group's rows run as dense [R x union] tiles.

A sum group pruned without structure (by EM flows, say) keeps a scattered
25% or 10% of its edges: no permutation makes square blocks of it cheaply
(co-clustering took 45 s per HCLT-32 recompile), and as one-row blocks
every parent re-reads its own children with a one-row dot. Here the rows
are ordered so that rows with similar child sets are neighbours (a
min-hash signature sort: linear in the edges plus one sort of the rows),
cut into tiles of R rows (`pieces`: a remainder in power-of-two tiles),
and every row of a tile gets the union of the tile's child columns,
missing edges as zero-weight pseudo-edges. The
group stays SPARSE in the IR (edges sorted, the pseudo-edges stored with
weight 0, which EM keeps at exactly 0 and gives no pseudocount); the
Layout runs its R consecutive one-row blocks with identical child lists as
one tile (the triton plan's `shared_run`: a tl.dot of [R x K] weights by
[K x batch] children, each child read once per tile).

Optionally the union is taken over aligned column blocks of `bc` child
columns (the tile's children are whole blocks), so the backward reads each
parent row once per block of bc children instead of once per child.

A cost model (`one_row_cost`, `grid_cost`) decides per group between the one-row form and
the tiles, and which (R, bc). The chosen (R, bc) of each tiled group is
recorded in `Model.metadata[ROW_TILES_KEY]` as "gid:R:bc" entries; the
layerize/layout passes read it back through `row_tiles`, which checks every
entry against the edges (a stale entry, from a Model edited since, is
ignored rather than trusted).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pccompiler.ir import pcir
from pccompiler.passes.helpers import blocks

ROW_TILES_KEY = "row_tiles"
DOT_ROWS = 16           # tl.dot's smallest M: a one-row block runs in a masked 16-row tile
MACS_PER_READ = 64.0    # see one_row_cost
# From bench/step_model.py's round H100 constants (3e12 B/s, 1e11 atomics/s,
# 1.5e14 tf32 / 2.5e13 fp32-FMA MAC/s), in fp32 value reads:
ATOMIC_READS = 7.5      # one atomic add to a distinct address
FMA_SLOWDOWN = 6.0      # a dot at "ieee" precision (blocks under 16 rows) against tf32
PAIR_READS = 2.0 * DOT_ROWS + 2.0   # per (child, parent row) pair of the per-pair node flows


@dataclass
class TileChoice:
    """What `choose_tiles` picked for one group."""
    rows: int                   # R, 0 = keep the one-row form
    cols: int                   # bc (column block of the union)
    order: np.ndarray | None    # new row i is old row order[i] (None: identity)
    cost: float                 # modeled cost of the choice
    rows_cost: float            # modeled cost of the one-row form
    stored: int                 # edges after padding


def one_row_cost(edges: int, macs_per_read: float = MACS_PER_READ) -> float:
    """Modeled work of a sum group in the one-row form, per batch column, in
    node-value reads.

    A sum layer on the GPU is bound by reading [rows, batch] tiles of node
    values; the tensor-core dot over them costs `macs_per_read`
    multiply-adds per value read (an H100 does ~500 dense TF32 TFLOP/s
    against ~3.3 TB/s of HBM and a few times that from L2: 60-300 MACs per
    fp32 value; 64 is the conservative end). The forward and the parameter
    flows read every edge's child once and multiply it by a masked 16-row
    dot on fp32 FMAs (`FMA_SLOWDOWN`: one-row blocks dot at "ieee"
    precision). The node flows run the per-(child block, parent row) kernel:
    each pair reads a 16-row [16 x batch] tile of parent flows and values
    for one real row (`PAIR_READS`); bench/step_model.py put that kernel at
    75-88% of a pruned HCLT's step (bench/results/sparse_step-cpu-2026-12-07.md)."""
    dot = DOT_ROWS * FMA_SLOWDOWN / macs_per_read
    return edges * (2.0 * (1.0 + dot) + PAIR_READS)


# Reads per batch column of the step model (bench/step_model.py: bytes at 3e12 B/s,
# tf32 dots at 1.5e14 and fp32-FMA dots at 2.5e13 MAC/s, 1e11 atomics/s), in fp32
# value reads: a multiply-add is this many reads.
MAC_TF32 = 0.005
MAC_FMA = 0.03
BATCH_TILE = 64         # samples per forward / tile-flow program: weights re-read per tile


def run_cost(rows, union, atomic) -> np.ndarray:
    """Modeled reads per batch column of one run of `rows` parent rows over
    `union` children through all three passes of a training step, as the
    triton kernels of a run do them (arrays broadcast):

    * forward: the children once per 128-row tile (blocks.PROGRAM_ROWS),
      the rows written, the [rows x union] weights once per 64-sample
      batch tile;
    * node flows through the tile (backends/triton/tile_flows.py): the
      rows' log ratios once per 64-child chunk, the weights, the children's
      values, and their flows stored, or added atomically (`ATOMIC_READS`
      each) where another run of the part reaches the same child;
    * parameter flows: per (32-row, 64-child) tile its 96 values per sample;
    * the dots of each pass: tf32 from 16 rows, masked 16-row fp32 dots under.

    The sum layers of a dense HCLT-128 are bound by these reads, not by the
    dots (bench/results/sparse_floor-cpu-2026-12-07.md): a run pays for its
    union and its rows, not for its stored weights."""
    rows = np.asarray(rows, dtype=np.float64)
    union = np.asarray(union, dtype=np.float64)
    fwd = union * np.ceil(rows / blocks.PROGRAM_ROWS) + rows + rows * union / BATCH_TILE
    flows = (rows * np.ceil(union / 64.0) + rows * union / BATCH_TILE
             + union * (2.0 + np.where(atomic, ATOMIC_READS, 1.0)))
    pflow = np.ceil(rows / 32.0) * np.ceil(union / 64.0) * 96.0
    dots = 3.0 * np.maximum(rows, DOT_ROWS) * union * np.where(rows < DOT_ROWS, MAC_FMA, MAC_TF32)
    return fwd + flows + pflow + dots


READS_COSTS = True      # False: the union / per-pair costs of round 2 (A/B runs, `_union_costs`)


def _union_dense_cost(n: int, cols: int, bp: int, bc: int, macs_per_read: float) -> float:
    """Round 2's DENSE cost (units of `one_row_cost`): forward and parameter
    flows read all columns once per parent block, node flows per (child
    block, parent block) pair; kept for A/B runs (READS_COSTS False)."""
    def dot(rows: int) -> float:
        return max(rows, DOT_ROWS) / macs_per_read * (FMA_SLOWDOWN if rows < DOT_ROWS else 1.0)
    blocks_p, blocks_c = -(-n // bp), -(-cols // bc)
    fwd = blocks_p * cols + n + n * cols * dot(bp) / bp
    pairs = blocks_p * blocks_c * (2.0 * max(bp, DOT_ROWS) + bc)
    return 2.0 * fwd + pairs + n * cols * dot(bp) / bp * max(bc, DOT_ROWS) / bc


def _union_tile_cost(union: np.ndarray, rows: np.ndarray, macs_per_read: float) -> float:
    """Round 2's tile cost: per tile its union in three passes plus one
    atomic per union column, its rows read four times (READS_COSTS False)."""
    dot = np.maximum(rows, DOT_ROWS) / macs_per_read * np.where(rows < DOT_ROWS, FMA_SLOWDOWN, 1.0)
    return float((union * (3.0 + ATOMIC_READS + 3.0 * dot) + 4.0 * rows).sum())


def dense_cost(n: int, cols: int, bp: int, bc: int,
               macs_per_read: float = MACS_PER_READ) -> float:
    """Modeled work of a sum group stored DENSE (missing edges as zero
    weights) with parent blocks of bp rows and child blocks of bc
    (blocks.group_block_sizes), in the units of `run_cost`. Its blocks all
    read every column, so the triton plan walks them as runs of up to 128
    rows (aligned runs, or plan.run_table's unequal ones for an odd size
    whose blocks are of 1 or 2 rows): `run_cost` per run. The node flows:
    blocks under 16 rows go through the tile (stored where the group is one
    run); larger blocks take the per-pair kernel, which reads every parent
    row once per child block of bc rows (at least a 16-row tile: an odd
    child size, bc = 1, reads them once per child). A group pruned by flows
    keeps few edges per row but its rows together reach nearly every
    column, so its tiles read what the dense group reads plus atomics
    (bench/step_model.py, HCLT-128 keep 0.1)."""
    if not READS_COSTS:
        return _union_dense_cost(n, cols, bp, bc, macs_per_read)
    runs = -(-n // blocks.RUN_ROWS)
    rows = n / runs
    cost = float(runs * run_cost(rows, cols, runs > 1))
    if bp >= DOT_ROWS:      # per-pair node flows in place of the tile's
        tile_flows = runs * float(rows * np.ceil(cols / 64.0) + rows * cols / BATCH_TILE
                                  + cols * (2.0 + (ATOMIC_READS if runs > 1 else 1.0)))
        pairs = -(-cols // bc) * (n + n * max(bc, DOT_ROWS) / 32.0) + 2.0 * cols
        cost += pairs - tile_flows
    return cost


def block_sparse_cost(block_edges: np.ndarray, block: int) -> float:
    """Modeled work of a sum group stored BLOCK_SPARSE at `block` (its
    (parent block, child block) pairs `block_edges`), in the units of
    `run_cost`, as the triton kernels of a block-sparse part run it:

    * forward and parameter flows: each parent block is a run of `block`
      rows over the union of its child blocks (`run_cost`'s forward,
      parameter-flow and dot terms; blocks under 16 rows dot in a masked
      16-row tile on fp32 FMAs);
    * node flows: the per-pair kernel (backends/triton/sum_backward.py): per
      (child block, parent block) pair a [16+ x batch] tile of the parent
      rows' log ratios and their [16+ x 16+] weights (per 32-sample batch
      tile), one dependent trip each; per child block its values read and
      flows written once.

    So a block pays per pair for at least 16 parent rows: a group pruned by
    flows whose blocks of 2, 4 or 8 rows pass the padding tolerance costs
    tens of times its DENSE store (HCLT-128 at keep 0.25 on the H100:
    bench/results/sparse_floor-h100-2026-12-07.md)."""
    if len(block_edges) == 0:
        return 0.0
    parents = np.asarray(block_edges[:, 0], dtype=np.int64)
    union = np.bincount(parents)[np.unique(parents)] * float(block)     # per parent block
    rows = float(block)
    fwd = (union * np.ceil(rows / blocks.PROGRAM_ROWS) + rows + rows * union / BATCH_TILE).sum()
    pflow = (np.ceil(rows / 32.0) * np.ceil(union / 64.0) * 96.0).sum()
    tile = max(rows, DOT_ROWS)
    mac = MAC_FMA if rows < DOT_ROWS else MAC_TF32
    pairs = len(block_edges)
    child_rows = len(np.unique(block_edges[:, 1])) * rows
    flows = pairs * (tile + tile * tile / 32.0) + 2.0 * child_rows
    dots = mac * (2.0 * tile * union.sum() + pairs * tile * tile)
    return float(fwd + pflow + flows + dots)


def pieces(length: int, size: int) -> np.ndarray:
    """Lengths of the pieces that cover `length` items: whole pieces of
    `size`, then the rest in descending powers of two (31 at 16: 16, 8, 4,
    2, 1), so a group whose pruning removed a node still tiles, and every
    piece is a power of two that the kernels' aligned runs accept."""
    rest = length % size
    bits = [1 << b for b in range(rest.bit_length() - 1, -1, -1) if rest >> b & 1]
    return np.array([size] * (length // size) + bits, dtype=np.int64)


@dataclass
class TileGrid:
    """Row tiles and column blocks of one sum group at nominal (R, bc)."""
    tile_of_row: np.ndarray     # [n]
    tile_rows: np.ndarray       # [T]
    tile_start: np.ndarray      # [T] first row
    block_of_col: np.ndarray    # [C]
    block_cols: np.ndarray      # [NB]
    block_start: np.ndarray     # [NB] first column


def _starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


# The rows past the last whole R-row tile: as one-row tiles (True) or in
# descending powers of two (False: 8, 4, 2, 1 for 15). One-row tiles pad
# nothing and join one partition per layer with every other one-row tile,
# where the powers of two cost a partition (three launches) per size and
# layer (bench/step_model.py, HCLT-128 keep 0.1).
REST_AS_ONE_ROW = True


@lru_cache(maxsize=4096)
def _row_pieces(n: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if REST_AS_ONE_ROW and rows > 1:
        whole = n // rows
        tile_rows = np.array([rows] * whole + [1] * (n - whole * rows), dtype=np.int64)
    else:
        tile_rows = pieces(n, rows)
    out = (np.repeat(np.arange(len(tile_rows)), tile_rows), tile_rows, _starts(tile_rows))
    for a in out:
        a.setflags(write=False)
    return out


@lru_cache(maxsize=4096)
def _col_pieces(child_sizes: tuple, bc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    block_cols = np.concatenate([pieces(m, bc) for m in child_sizes] or [[]]).astype(np.int64)
    out = (np.repeat(np.arange(len(block_cols)), block_cols), block_cols, _starts(block_cols))
    for a in out:
        a.setflags(write=False)
    return out


def tile_grid(n: int, child_sizes, rows: int, bc: int) -> TileGrid:
    """Rows cut into `pieces(n, rows)`; each child group's columns into
    `pieces(size, bc)` (a column block never straddles two child groups:
    the backward reads a block as consecutive slots). Cached by shape: the
    arrays are read only."""
    return TileGrid(*_row_pieces(int(n), int(rows)),
                    *_col_pieces(tuple(int(m) for m in child_sizes), int(bc)))


def _row_starts(parents: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(parents, minlength=n))]).astype(np.int64)


def minhash_order(edges: np.ndarray, n: int, cols: int, hashes: int = 3,
                  seed: int = 0) -> np.ndarray:
    """Rows sorted by `hashes` min-hash values of their child sets.

    Two rows share a min-hash with probability equal to the Jaccard
    similarity of their child sets, so sorting by the signature puts rows
    with overlapping children next to each other. Linear in the edges plus
    one lexsort of the rows; edges must be sorted by row."""
    starts = _row_starts(edges[:, 0].astype(np.int64), n)
    nonempty = starts[1:] > starts[:-1]
    rng = np.random.default_rng(seed)
    keys = []
    for _ in range(hashes):
        rank = rng.permutation(cols)[edges[:, 1].astype(np.int64)]
        key = np.full(n, cols, dtype=np.int64)
        if len(edges):
            key[nonempty] = np.minimum.reduceat(rank, starts[:-1][nonempty])
        keys.append(key)
    return np.lexsort(keys[::-1]).astype(np.int64)


def grid_cost(occ: np.ndarray, grid: TileGrid, macs_per_read: float) -> tuple[float, int]:
    """(modeled cost, stored weights) of tiles with block occupancy occ [T, NB]
    (float), in the units of `run_cost`: each tile is a run of its rows over
    its union (column blocks, bc > 1, only pad it), whose node flows add
    atomically where another tile of the group reads one of its columns."""
    union = occ @ grid.block_cols                                      # [T] columns per tile
    rows = grid.tile_rows
    stored = rows * union
    if not READS_COSTS:
        return _union_tile_cost(union, rows, macs_per_read), int(stored.sum())
    shared = (occ * (occ.sum(axis=0) > 1)[None, :]).any(axis=1)     # a column in two tiles
    cost = run_cost(rows, union, shared).sum()
    return float(cost), int(stored.sum())


TILE_ROWS = (1, 16, 32, 64, 128)
MAX_OCCUPANCY = 1 << 24     # tiles x columns above which a group is not tried


def choose_tiles(model: pcir.Model, g: pcir.Group, edges: np.ndarray, may_permute: bool,
                 tile_rows=TILE_ROWS, tile_cols=(1, 2, 4, 8, 16, 32, 64, 128),
                 macs_per_read: float = MACS_PER_READ) -> TileChoice:
    """The cheapest of the one-row form and row tiles (R, bc) for sum group g.

    Row orders tried: the current one and (if the rows may move) the
    min-hash order; R up to the power of two above num_nodes (`pieces` cuts
    the rows). R = 1 (tiles of one row, no padding) differs from the one-row
    form in the node flows: they run through the tile (one atomic add per
    edge) instead of the per-pair kernel. Per (order, R) one boolean [tiles, columns] occupancy
    map of the edges; per bc a column reduction of it: linear in the edges
    plus tiles x columns."""
    n = int(g.num_nodes)
    child_sizes = [int(model.groups[c].num_nodes) for c in g.sum.children]
    cols = sum(child_sizes)
    e = len(edges)
    rows_cost = one_row_cost(e, macs_per_read)
    best = TileChoice(0, 1, None, rows_cost, rows_cost, e)
    sizes_r = [r for r in tile_rows if r < 2 * n]     # 16 for 15 rows: tiles of 8, 4, 2, 1
    if not sizes_r or e == 0 or n * cols > MAX_OCCUPANCY:
        return best
    orders = [None] + ([minhash_order(edges, n, cols)] if may_permute else [])
    parents = edges[:, 0].astype(np.int64)
    colz = edges[:, 1].astype(np.int64)
    for order in orders:
        row_of_edge = parents
        if order is not None:
            inv = np.empty(n, dtype=np.int64)
            inv[order] = np.arange(n)
            row_of_edge = inv[parents]
        for r in sizes_r:
            rgrid = tile_grid(n, child_sizes, r, 1)
            occ1 = np.zeros((len(rgrid.tile_rows), cols), dtype=bool)
            occ1[rgrid.tile_of_row[row_of_edge], colz] = True
            seen = set()
            for c in tile_cols:
                grid = tile_grid(n, child_sizes, r, c)
                if len(grid.block_cols) in seen:     # bc past every child size: same grid
                    continue
                seen.add(len(grid.block_cols))
                occ = np.logical_or.reduceat(occ1, grid.block_start, axis=1) if c > 1 else occ1
                cost, stored = grid_cost(occ.astype(np.float64), grid, macs_per_read)
                if cost < best.cost:
                    best = TileChoice(r, c, order, cost, rows_cost, stored)
    return best


def tile_edges(edges: np.ndarray, grid: TileGrid) -> tuple[np.ndarray, np.ndarray]:
    """(new edges sorted by (row, column), gather into the old edges, -1 for
    a zero-weight pseudo-edge): every row of a tile gets every column of
    every column block that any row of the tile uses. Old edges must be
    sorted and unique; none is dropped."""
    parents = edges[:, 0].astype(np.int64)
    colz = edges[:, 1].astype(np.int64)
    cols = len(grid.block_of_col)
    nb = len(grid.block_cols)
    num_tiles = len(grid.tile_rows)
    pairs = np.unique(grid.tile_of_row[parents] * nb + grid.block_of_col[colz])
    pt, pb = pairs // nb, pairs % nb
    span = grid.block_cols[pb]
    tile_col = np.repeat(grid.block_start[pb], span) + (
        np.arange(int(span.sum()), dtype=np.int64) - np.repeat(_starts(span), span))
    width = np.bincount(np.repeat(pt, span), minlength=num_tiles).astype(np.int64)
    per_tile = width * grid.tile_rows
    tile_of = np.repeat(np.arange(num_tiles, dtype=np.int64), per_tile)
    local = np.arange(int(per_tile.sum()), dtype=np.int64) - np.repeat(_starts(per_tile), per_tile)
    w = width[tile_of]
    new_rows = grid.tile_start[tile_of] + local // w
    new_cols = tile_col[_starts(width)[tile_of] + local % w]
    # every old edge sits in its row's tile, so search the old keys among the new ones
    new_key = new_rows * cols + new_cols
    gather = np.full(len(new_key), -1, dtype=np.int64)
    gather[np.searchsorted(new_key, parents * cols + colz)] = np.arange(len(parents))
    return np.stack([new_rows, new_cols], axis=1), gather


def encode(tiles: dict[int, tuple[int, int]]) -> str:
    return ",".join(f"{gid}:{r}:{c}" for gid, (r, c) in sorted(tiles.items()))


def _decode(text: str) -> dict[int, tuple[int, int]]:
    out = {}
    for item in filter(None, text.split(",")):
        parts = item.split(":")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            out[int(parts[0])] = (int(parts[1]), int(parts[2]))
    return out


def is_tiled(edges: np.ndarray, grid: TileGrid) -> bool:
    """Whether sorted, unique sparse `edges` already form complete tiles of
    `grid`: every row of a tile has the child columns of the tile's first
    row, and those make whole column blocks. Linear in the edges."""
    n = len(grid.tile_of_row)
    parents = edges[:, 0].astype(np.int64)
    colz = edges[:, 1].astype(np.int64)
    if len(edges) and (parents.max() >= n or colz.max() >= len(grid.block_of_col)):
        return False
    starts = _row_starts(parents, n)
    deg = np.diff(starts)
    first = grid.tile_start[grid.tile_of_row]                  # first row of each row's tile
    if not np.array_equal(deg, deg[first]):
        return False
    k = np.arange(len(edges), dtype=np.int64) - starts[parents]
    if not np.array_equal(colz, colz[starts[first[parents]] + k]):
        return False
    # whole blocks: a row's edges in block b number block_cols[b] (edges are unique)
    block = grid.block_of_col[colz]
    _, inv, count = np.unique(parents * len(grid.block_cols) + block, return_inverse=True,
                              return_counts=True)
    return bool(np.array_equal(count[inv], grid.block_cols[block]))


def row_tiles(model: pcir.Model, table) -> dict[int, tuple[int, int]]:
    """{sum gid: (R, bc)} of the recorded row tiles that still hold: the group
    is SPARSE, owns its weights, and its edges form complete tiles of its
    `tile_grid` (`is_tiled`)."""
    recorded = _decode(model.metadata.get(ROW_TILES_KEY, ""))
    out = {}
    for gid, (r, c) in recorded.items():
        if gid >= len(model.groups):
            continue
        g = model.groups[gid]
        if g.kind != pcir.SUM or g.sum.pattern != pcir.SPARSE or not g.sum.edges:
            continue
        if not g.sum.weights or r < 1 or c < 1:
            continue
        sizes = [int(model.groups[k].num_nodes) for k in g.sum.children]
        if is_tiled(np.asarray(table[g.sum.edges]), tile_grid(int(g.num_nodes), sizes, r, c)):
            out[gid] = (r, c)
    return out
