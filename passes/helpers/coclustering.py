"""Find node orders that turn a shuffled sparse edge matrix into few dense blocks.

Rows (parents) and columns (children) are co-clustered on their adjacency
patterns: a row's signature is the set of columns it touches, hashed as a
wrapping sum of random 64-bit codes per column (equal sets give equal
hashes; different sets collide with probability 2^-64). Sorting by
signature makes rows with identical patterns contiguous. If the matrix is a
shuffled block-sparse matrix with complete B x B blocks, every class of
identical rows is a union of original row blocks, so its size is a multiple
of B and the sorted order is block-aligned again: exact recovery in
O(E log E). For noisy patterns the same sort is iterated on *block*
signatures (the set of current column blocks of a row, then the set of row
blocks of a column), keeping the order with the fewest blocks. Noisy
patterns (blocks with a few edges missing) defeat exact hashing, so a
second start clusters rows and columns by k-means on random projections of
their adjacency rows (rows of one block have nearly equal projections) and
the refinement continues from whichever start is better.
"""

from __future__ import annotations

import numpy as np

from pccompiler.passes.helpers.blocks import block_stats

# Largest points x clusters distance matrix k-means may build (~160 MB).
KMEANS_MAX_CELLS = 20_000_000


def _hash_sets(owner: np.ndarray, member: np.ndarray, num_owners: int,
               codes: np.ndarray) -> np.ndarray:
    """Wrapping uint64 sum of codes[member] per owner over unique (owner, member)."""
    pairs = np.unique(owner.astype(np.int64) * (len(codes)) + member)
    out = np.zeros(num_owners, dtype=np.uint64)
    np.add.at(out, pairs // len(codes), codes[pairs % len(codes)])
    return out


def _order(signature: np.ndarray, segment: np.ndarray, movable: np.ndarray) -> np.ndarray:
    """Stable order: by segment (child group), then signature where movable."""
    n = len(signature)
    idx = np.arange(n, dtype=np.uint64)
    key = np.where(movable, signature, idx)
    return np.lexsort((idx, key, ~movable, segment)).astype(np.int64) if n else idx.astype(np.int64)


def _kmeans_labels(points: np.ndarray, k: int, rng, iters: int = 12) -> np.ndarray:
    """Cluster labels of `points` [n, d] (Lloyd's k-means, k-means++ start)."""
    n = len(points)
    k = max(1, min(k, n))
    centers = [points[rng.integers(n)]]
    dist = ((points - centers[0]) ** 2).sum(1)
    for _ in range(1, k):                        # loop over clusters, not points
        total = dist.sum()
        if total <= 0:
            break
        centers.append(points[rng.choice(n, p=dist / total)])
        dist = np.minimum(dist, ((points - centers[-1]) ** 2).sum(1))
    centers = np.array(centers)
    for _ in range(iters):
        d2 = (points ** 2).sum(1)[:, None] - 2 * points @ centers.T + (centers ** 2).sum(1)
        labels = d2.argmin(1)
        counts = np.bincount(labels, minlength=len(centers))
        sums = np.zeros_like(centers)
        np.add.at(sums, labels, points)
        alive = counts > 0
        centers[alive] = sums[alive] / counts[alive, None]
    return labels


def _projection(owner: np.ndarray, member: np.ndarray, num_owners: int, num_members: int,
                rng, dims: int = 16) -> np.ndarray:
    """Random projection of each owner's 0/1 adjacency row, L2-normalised."""
    g = rng.standard_normal((num_members, dims))
    out = np.zeros((num_owners, dims))
    np.add.at(out, owner, g[member])
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norm > 0, norm, 1)


def co_cluster(edges: np.ndarray, num_rows: int, col_segments: np.ndarray, block: int,
               rows_movable: bool, cols_movable: np.ndarray, iters: int = 4, seed: int = 0,
               restarts: int = 3):
    """(row_perm, col_perm, blocks) minimising present blocks at `block`.

    col_segments: segment id of every column (columns never leave their
    segment, the child group); cols_movable: bool per column.
    New row i is old row row_perm[i]; same for columns.
    """
    rng = np.random.default_rng(seed)
    num_cols = len(col_segments)
    rows = edges[:, 0].astype(np.int64)
    cols = edges[:, 1].astype(np.int64)
    row_seg = np.zeros(num_rows, dtype=np.int64)
    row_mov = np.full(num_rows, bool(rows_movable))
    ident_r = np.arange(num_rows, dtype=np.int64)
    ident_c = np.arange(num_cols, dtype=np.int64)

    def count(rp, cp):
        ri, ci = np.empty_like(rp), np.empty_like(cp)
        ri[rp] = ident_r
        ci[cp] = ident_c
        return block_stats(np.stack([ri[rows], ci[cols]], 1), block, num_cols)[0]

    # Round 0: exact element patterns.
    row_perm = _order(_hash_sets(rows, cols, num_rows,
                                 rng.integers(0, 2**63, num_cols, dtype=np.uint64)),
                      row_seg, row_mov)
    col_perm = _order(_hash_sets(cols, rows, num_cols,
                                 rng.integers(0, 2**63, num_rows, dtype=np.uint64)),
                      col_segments, cols_movable)
    best = (count(row_perm, col_perm), row_perm, col_perm)
    # Start 2 (noise-tolerant): k-means on random projections, a few
    # restarts; skipped when the distance matrix would be too large.
    k_r, k_c = max(num_rows // block, 1), max(num_cols // block, 1)
    if num_rows * k_r <= KMEANS_MAX_CELLS and num_cols * k_c <= KMEANS_MAX_CELLS:
        for _ in range(restarts):
            row_lab = _kmeans_labels(_projection(rows, cols, num_rows, num_cols, rng), k_r, rng)
            col_lab = _kmeans_labels(_projection(cols, rows, num_cols, num_rows, rng), k_c, rng)
            km = (_order(row_lab.astype(np.uint64), row_seg, row_mov),
                  _order(col_lab.astype(np.uint64), col_segments, cols_movable))
            blocks = count(*km)
            if blocks < best[0]:
                best = (blocks, *km)
    row_perm, col_perm = best[1], best[2]
    def by_blocks(owner, member, member_perm, num_owners, num_members, segment, movable):
        """Owners ordered by the set of current member blocks they touch."""
        member_inv = np.empty_like(member_perm)
        member_inv[member_perm] = np.arange(num_members, dtype=np.int64)
        codes = rng.integers(0, 2**63, max(num_members // block, 1), dtype=np.uint64)
        return _order(_hash_sets(owner, member_inv[member] // block, num_owners, codes),
                      segment, movable)

    # Refinement: alternate on block signatures of the current order.
    for _ in range(iters):
        row_perm = by_blocks(rows, cols, col_perm, num_rows, num_cols, row_seg, row_mov)
        col_perm = by_blocks(cols, rows, row_perm, num_cols, num_rows, col_segments,
                             cols_movable)
        blocks = count(row_perm, col_perm)
        if blocks < best[0]:
            best = (blocks, row_perm, col_perm)
    return best[1], best[2], best[0]
