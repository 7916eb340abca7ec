"""Block arithmetic shared by partition-blocks, detect-block-sparsity and layout.

All functions are vectorized over edge arrays; nothing loops over edges.
"""

from __future__ import annotations

import math

import numpy as np

from pccompiler.ir import pcir
from pccompiler.passes.helpers.edit import child_offsets, index_dtype
from pccompiler.passes.helpers.rewrites import apply_gather


def pow2_divisor(n: int, limit: int) -> int:
    """The largest power of two <= limit that divides n (1 for n = 0 or odd n)."""
    if n <= 0 or limit < 1:
        return 1
    low = n & -n
    cap = 1 << (int(limit).bit_length() - 1)
    return int(min(low, cap))


RUN_BLOCK = 16     # DENSE groups of >= 16 rows whose power-of-two block is smaller take 1
RUN_ROWS = 128     # rows of one run of the triton plan (plan.GROUP_MAX_ROWS)
# rows of one program's row tile (the kernels' TILE_M, at most 128): a run
# longer than this reads its children once per tile (row_tiles.run_cost)
PROGRAM_ROWS = 128


def dense_block_sizes(n: int, child_gcd: int, limit: int) -> tuple[int, int]:
    """(parent block, child block) of a DENSE group of n rows whose child
    group sizes have gcd child_gcd: the largest powers of two dividing them,
    except one-row parent blocks where n >= RUN_BLOCK and either the parent
    block is under RUN_BLOCK (an odd size: a pruned group stored DENSE, 126
    rows) or the child block is and n <= RUN_ROWS (127 children: the per-pair
    node flows would read every parent once per child). The triton plan
    walks one-row blocks with one child list as one run of the group's rows
    (plan.run_table), node flows through the tile, in one partition per
    layer, where blocks of 2, 4, 8 rows would each take partitions of their own."""
    bp, bc = pow2_divisor(n, limit), pow2_divisor(child_gcd, limit)
    small = min(RUN_BLOCK, pow2_divisor(1 << 62, limit))   # a block limit under 16 is a choice
    if RUN_BLOCK <= n and (bp < small or (bc < small and n <= RUN_ROWS)):
        bp = 1
    return bp, bc


def child_gcd(model: pcir.Model, g: pcir.Group) -> int:
    """gcd of the child group sizes: a child block must not straddle two groups."""
    return int(math.gcd(*[int(x) for x in np.diff(child_offsets(model, g))]))


def group_block_sizes(model: pcir.Model, g: pcir.Group, limit: int) -> tuple[int, int]:
    """(parent block size, child block size) the layout uses for sum group g.

    Dense: parent blocks of the largest power of two dividing num_nodes and
    child blocks of the largest dividing every child size. Block-sparse:
    the group's block size; child blocks may be finer when a block straddles
    child groups. Sparse: 1 and 1.
    """
    if g.sum.pattern == pcir.DENSE:
        return dense_block_sizes(int(g.num_nodes), child_gcd(model, g), limit)
    if g.sum.pattern == pcir.BLOCK_SPARSE:
        b = int(g.sum.block_size)
        return b, pow2_divisor(math.gcd(b, child_gcd(model, g)), limit)
    return 1, 1


def candidate_block(model: pcir.Model, g: pcir.Group, limit: int) -> int:
    """Largest power-of-two block that fits g's rows and every child group."""
    return pow2_divisor(math.gcd(int(g.num_nodes), child_gcd(model, g)), limit)


def block_stats(edges: np.ndarray, block: int, num_cols: int) -> tuple[int, int]:
    """(number of present block pairs, number of edges) of `edges` at `block`."""
    ncb = num_cols // block
    key = (edges[:, 0] // block).astype(np.int64) * ncb + edges[:, 1] // block
    return int(len(np.unique(key))), int(len(edges))


def padding_floor(edges: np.ndarray, block: int) -> float:
    """A lower bound on the padding (padded slots / edges) of the edges in
    block x block tiles under every row and column permutation: a row with
    d edges touches at least ceil(d / block) tiles of its block row, each
    block row holds `block` rows, so the tiles cover at least
    block * sum_rows ceil(d / block) slots (likewise by columns). Lets
    detect-block-sparsity skip co-clustering where no permutation can
    reach its tolerance (logic circuits: one or two edges per row)."""
    n = len(edges)
    if n == 0:
        return 0.0
    floor = 0
    for axis in (0, 1):
        _, deg = np.unique(edges[:, axis], return_counts=True)
        floor = max(floor, int(block * (-(-deg // block)).sum()))
    return (floor - n) / n


def blockify(edges: np.ndarray, weights: np.ndarray | None, block: int, num_cols: int):
    """Sparse edges -> (block edges [U, 2], block weights [U, B, B] or None, gather).

    Missing positions of present blocks become zero-weight pseudo-edges
    (gather index -1). Block edges come out sorted and unique.
    """
    ncb = num_cols // block
    key = (edges[:, 0] // block).astype(np.int64) * ncb + edges[:, 1] // block
    uniq, inv = np.unique(key, return_inverse=True)
    block_edges = np.stack([uniq // ncb, uniq % ncb], axis=1)
    block_edges = block_edges.astype(index_dtype(int(block_edges.max(initial=0))))
    pos = inv.astype(np.int64) * block * block + (edges[:, 0] % block) * block \
        + edges[:, 1] % block
    gather = np.full(len(uniq) * block * block, -1, dtype=np.int64)
    gather[pos] = np.arange(len(edges))
    new_w = None
    if weights is not None:
        new_w = apply_gather(weights, gather, (len(uniq), block, block))
    return block_edges, new_w, gather


def unblockify(block_edges: np.ndarray, block: int) -> np.ndarray:
    """Block edges -> the element edges they cover, in block-major order
    (e, i, j) so that element k of the result is weights.ravel()[k]."""
    i = np.arange(block)
    rows = block_edges[:, 0].astype(np.int64)[:, None, None] * block + i[None, :, None]
    cols = block_edges[:, 1].astype(np.int64)[:, None, None] * block + i[None, None, :]
    rows, cols = np.broadcast_arrays(rows, cols)
    return np.stack([rows.ravel(), cols.ravel()], axis=1)
