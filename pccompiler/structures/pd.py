"""Poon-Domingos (PD) structures over images (PyJuice 2.6.3's `PD`).

The image (any number of axes, e.g. 28 x 28) is cut by split points into
axis-aligned regions. Every region that contains a split point gets, for
every axis and every interior split point, a product of the two halves
(one-to-one pairing of K nodes); the region's sum mixes these products.
Regions are shared (memoized), so the circuit is a DAG. A region with no
interior split point is a leaf region: one K-node input group per pixel,
multiplied one-to-one, then a block-diagonal sum (block size `block_size`).

Sums: the whole image has one root node mixing all its products; a region
with at most `max_prod_block_conns` products is a dense K x (s K) sum; with
more, each parent block connects to all blocks of `max_prod_block_conns`
randomly chosen products (block-sparse). With `pyjuice_layers` (default),
the pass-through sums PyJuice's compiler inserts where a product is
shallower than its sum are added too, so edge counts agree with PyJuice.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pccompiler.frontend import builder as pcb
from pccompiler.errors import BuildError
from pccompiler.structures.common import (INPUT_DISTS, Layering, check_positive, make_inputs,
                                          max_pow2_divisor)

Region = tuple[tuple[int, ...], tuple[int, ...]]


def pd_block_size(num_latents: int) -> int:
    """PyJuice's default PD block size: min(16 or 32, largest 2^k | K)."""
    return min(16 if num_latents <= 32 else 32, max_pow2_divisor(num_latents))


def split_points_of(data_shape: Sequence[int], split_intervals=None,
                    split_points: Sequence[Sequence[int]] | None = None) -> list[list[int]]:
    """Split points per axis: multiples of the interval strictly inside."""
    axes = len(data_shape)
    if split_intervals is not None:
        if isinstance(split_intervals, (int, np.integer)):
            split_intervals = (int(split_intervals),) * axes
        if len(split_intervals) != axes or any(int(i) < 1 for i in split_intervals):
            raise BuildError(f"pd: split_intervals {tuple(split_intervals)} must give one positive "
                             f"interval per axis of data_shape {tuple(data_shape)}")
        return [list(range(int(i), int(d), int(i))) for i, d in zip(split_intervals, data_shape)]
    if split_points is None:
        raise BuildError("pd: pass split_intervals or split_points")
    if len(split_points) != axes:
        raise BuildError(f"pd: split_points has {len(split_points)} axes, data_shape {axes}")
    for axis, points in enumerate(split_points):
        bad = [p for p in points if not 0 < p < data_shape[axis]]
        if bad:
            raise BuildError(f"pd: split points {bad} of axis {axis} are outside (0, {data_shape[axis]})")
    return [sorted(int(p) for p in points) for points in split_points]


def region_vars(region: Region, data_shape: Sequence[int]) -> np.ndarray:
    """Sorted variable ids (row-major pixel index) of a region."""
    ranges = [np.arange(s, e) for s, e in zip(*region)]
    grids = np.meshgrid(*ranges, indexing="ij")
    return np.sort(np.ravel_multi_index([g.ravel() for g in grids], tuple(data_shape)))


def region_splits(region: Region, points: list[list[int]]) -> list[tuple[Region, Region]]:
    """The (lower, upper) halves of every interior split, axis by axis."""
    out = []
    starts, ends = region
    for axis, axis_points in enumerate(points):
        for sp in axis_points:
            if starts[axis] < sp < ends[axis]:
                low = (starts, ends[:axis] + (sp,) + ends[axis + 1:])
                high = (starts[:axis] + (sp,) + starts[axis + 1:], ends)
                out.append((low, high))
    return out


def pd(data_shape: Sequence[int], num_latents: int, split_intervals=None, *,
       split_points: Sequence[Sequence[int]] | None = None, max_split_depth: int | None = None,
       max_prod_block_conns: int = 4, input_dist: str = "categorical", num_cats: int = 256,
       block_size: int | None = None, seed: int = 0, dtype: type = np.float32,
       pyjuice_layers: bool = True) -> pcb.SumGroup:
    """Build a PD circuit over prod(data_shape) variables; returns the root.

    data_shape: e.g. (28, 28); variable id = row-major pixel index.
    num_latents: K, nodes per region sum.
    split_intervals: int or per-axis ints (28 with 7 -> split points 7, 14, 21);
        or give `split_points` per axis.
    max_split_depth: regions deeper than this many splits become leaf
        regions (PyJuice 2.6.3 never increments its depth counter, so there
        it only acts when < 1; None = no limit, the same in both).
    max_prod_block_conns: products a parent block may mix before the sum
        becomes block-sparse over randomly chosen products.
    input_dist, num_cats: leaf distribution (categorical over num_cats,
        bernoulli or gaussian).
    block_size: sum block size (default: PyJuice's, see pd_block_size).
    seed, dtype: random parameters (and random product choices).
    pyjuice_layers: add PyJuice's compile-time pass-through sums.
    """
    check_positive(num_latents=num_latents, max_prod_block_conns=max_prod_block_conns)
    if input_dist not in INPUT_DISTS:
        raise BuildError(f"pd: input_dist must be one of {INPUT_DISTS}, got {input_dist!r}")
    data_shape = tuple(int(d) for d in data_shape)
    if not data_shape or min(data_shape) < 1:
        raise BuildError(f"pd: data_shape must be positive sizes, got {data_shape}")
    points = split_points_of(data_shape, split_intervals, split_points)
    bs = pd_block_size(num_latents) if block_size is None else int(block_size)
    if bs < 1 or num_latents % bs:
        raise BuildError(f"pd: block_size {bs} must divide num_latents {num_latents}")
    num_blocks = num_latents // bs
    rng = np.random.default_rng(seed)
    layers = Layering(block_size=bs, rng=rng, dtype=dtype, pyjuice_layers=pyjuice_layers)
    root_region: Region = ((0,) * len(data_shape), data_shape)
    memo: dict[Region, pcb.Group] = {}

    def name_of(region: Region) -> str:
        return "r" + "x".join(f"{s}:{e}" for s, e in zip(*region))

    def leaf_region(region: Region) -> pcb.Group:
        leaves = [make_inputs(int(v), num_latents, input_dist, num_cats, rng, dtype, name=f"x{v}")
                  for v in region_vars(region, data_shape)]
        prod = layers.multiply(*leaves, name=name_of(region) + ".p")
        diag = np.repeat(np.arange(num_blocks)[:, None], 2, axis=1)
        return layers.summate([prod], num_latents, edges=pcb.BlockSparse(diag, bs),
                              name=name_of(region))

    def construct(region: Region, depth: int) -> pcb.Group:
        if region in memo:
            return memo[region]
        splits = [] if max_split_depth is not None and depth > max_split_depth else \
            region_splits(region, points)
        if not splits:
            memo[region] = leaf_region(region)
            return memo[region]
        prods = [layers.multiply(construct(low, depth + 1), construct(high, depth + 1),
                                 name=f"{name_of(region)}.p{i}")
                 for i, (low, high) in enumerate(splits)]
        if region == root_region:
            group = layers.summate(prods, 1, name="root")
        elif len(prods) <= max_prod_block_conns:
            group = layers.summate(prods, num_latents, name=name_of(region))
        else:
            chosen = np.argsort(rng.random((num_blocks, len(prods))), axis=1)[:, :max_prod_block_conns]
            parents = np.repeat(np.arange(num_blocks), max_prod_block_conns * num_blocks)
            children = (chosen[:, :, None] * num_blocks + np.arange(num_blocks)[None, None, :]).ravel()
            pairs = np.stack([parents, children], axis=1)
            group = layers.summate(prods, num_latents, edges=pcb.BlockSparse(pairs, bs),
                                   name=name_of(region))
        memo[region] = group
        return group

    return construct(root_region, 1)


def pd_num_edges(data_shape: Sequence[int], num_latents: int, split_intervals=None, *,
                 split_points=None, max_prod_block_conns: int = 4, block_size: int | None = None,
                 pyjuice_layers: bool = True) -> int:
    """PyJuice's edge count of `pd(...)`, from the region recursion alone
    (no parameters are drawn), so large sizes count in milliseconds."""
    data_shape = tuple(int(d) for d in data_shape)
    points = split_points_of(data_shape, split_intervals, split_points)
    k = num_latents
    bs = pd_block_size(k) if block_size is None else int(block_size)
    root_region: Region = ((0,) * len(data_shape), data_shape)
    depth_of: dict[Region, int] = {}
    total = 0

    def visit(region: Region) -> int:
        nonlocal total
        if region in depth_of:
            return depth_of[region]
        splits = region_splits(region, points)
        if not splits:
            total += k * int(np.prod([e - s for s, e in zip(*region)])) + k * bs
            depth_of[region] = 1
            return 1
        prod_depths = [1 + max(visit(low), visit(high)) for low, high in splits]
        s, d = len(prod_depths), max(prod_depths)
        total += 2 * k * s
        if region == root_region:
            total += k * s
        else:
            total += k * k * min(s, max_prod_block_conns)
        if pyjuice_layers:
            total += sum(k * bs + k for pd_ in prod_depths if pd_ < d)
        depth_of[region] = d
        return d

    visit(root_region)
    return total
