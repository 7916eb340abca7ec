"""The builder API: circuits as a DAG of node *groups*.

    import pccompiler as pc
    x = pc.inputs(var=0, num_nodes=32, dist=pc.Categorical(num_cats=4), seed=0)
    y = pc.inputs(var=1, num_nodes=32, dist=pc.Bernoulli(), seed=1)
    p = pc.multiply(x, y)                        # node i = x[i] * y[i]
    s = pc.summate(p, num_nodes=1, seed=2)        # dense mixture
    model = pc.lower(s)

A call creates one group: `num_nodes` nodes of one kind over one scope, held
as numpy arrays (parameters, index matrices, edge lists), never as one Python
object per node or edge, so a 100M-edge circuit costs thousands of objects.
Everything the IR checker would refuse is refused here first, with a
BuildError that names the group, because the user's line of code is where a
mistake is cheapest to fix.

The group classes and the distribution / edge descriptors live in
`pccompiler.frontend.groups` and are re-exported here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pccompiler.errors import BuildError
from pccompiler.frontend.groups import (Bernoulli, BlockSparse, Categorical, Distribution, Gaussian, Group,
                               InputGroup, ProductGroup, Sparse, SumGroup, bits_of_var,
                               bits_overlap, bits_union, index_dtype)

__all__ = [
    "Categorical", "Bernoulli", "Gaussian", "BlockSparse", "Sparse",
    "Group", "InputGroup", "ProductGroup", "SumGroup",
    "inputs", "multiply", "summate", "tie", "index_dtype", "NORMALIZATION_TOL",
]

# Tolerance on "sums to 1" (the IR checker's rule uses the same).
NORMALIZATION_TOL = 1e-5


# ---------------------------------------------------------------- helpers

def _make_rng(rng: np.random.Generator | int | None, seed: int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is not None:
        return np.random.default_rng(rng)
    return np.random.default_rng(seed)


def _int_array(values, what: str, group: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size == 0 and arr.dtype.kind not in "iu":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise BuildError(f"{group}: {what} must be an integer array, got dtype {arr.dtype}")
    return arr


def _float_array(values, what: str, group: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu":
        raise BuildError(f"{group}: {what} must be a float array, got dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise BuildError(f"{group}: {what} contains NaN or infinite values")
    return arr


# ---------------------------------------------------------------- inputs

def _input_params(dist: Distribution, num_nodes: int, rng: np.random.Generator,
                  label: str) -> np.ndarray:
    """The [num_nodes, P] parameter array of an input group, validated."""
    if isinstance(dist, Categorical):
        k = int(dist.num_cats)
        if k < 1:
            raise BuildError(f"{label}: Categorical num_cats must be >= 1, got {dist.num_cats}")
        if dist.params is None:
            raw = rng.uniform(0.1, 1.0, size=(num_nodes, k))
            return raw / raw.sum(axis=1, keepdims=True)
        params = _float_array(dist.params, "Categorical params", label)
        if params.shape != (num_nodes, k):
            raise BuildError(f"{label}: Categorical params must have shape "
                             f"[{num_nodes}, {k}], got {list(params.shape)}")
        if np.any(params < 0):
            raise BuildError(f"{label}: Categorical params must be non-negative")
        sums = params.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1) > NORMALIZATION_TOL)
        if bad.size:
            raise BuildError(f"{label}: Categorical params row {bad[0]} sums to {sums[bad[0]]:.6g}, "
                             f"not 1 ({bad.size} rows unnormalized)")
        return params
    if isinstance(dist, Bernoulli):
        if dist.params is None:
            return rng.uniform(0.05, 0.95, size=(num_nodes, 1))
        params = _float_array(dist.params, "Bernoulli params", label)
        if params.shape == (num_nodes,):
            params = params[:, None]
        if params.shape != (num_nodes, 1):
            raise BuildError(f"{label}: Bernoulli params must have shape [{num_nodes}] or "
                             f"[{num_nodes}, 1], got {list(params.shape)}")
        if np.any((params < 0) | (params > 1)):
            raise BuildError(f"{label}: Bernoulli params must lie in [0, 1]")
        return params
    if isinstance(dist, Gaussian):
        if dist.mean is None and dist.std is None:
            return np.stack([rng.normal(0.0, 1.0, num_nodes),
                             rng.uniform(0.5, 1.5, num_nodes)], axis=1)
        mean = np.zeros(num_nodes) if dist.mean is None else \
            _float_array(dist.mean, "Gaussian mean", label)
        std = np.ones(num_nodes) if dist.std is None else \
            _float_array(dist.std, "Gaussian std", label)
        for what, arr in (("mean", mean), ("std", std)):
            if arr.shape != (num_nodes,):
                raise BuildError(f"{label}: Gaussian {what} must have shape [{num_nodes}], "
                                 f"got {list(arr.shape)}")
        if np.any(std <= 0):
            raise BuildError(f"{label}: Gaussian std must be > 0")
        return np.stack([mean, std], axis=1).astype(np.result_type(mean, std), copy=False)
    raise BuildError(f"{label}: dist must be pc.Categorical, pc.Bernoulli or pc.Gaussian, "
                     f"got {type(dist).__name__}")


def inputs(var: int, num_nodes: int, dist: Distribution, *, tie: InputGroup | None = None,
           rng: np.random.Generator | int | None = None, seed: int | None = None,
           name: str = "") -> InputGroup:
    """`num_nodes` input nodes over variable `var` with distribution `dist`.

    With `tie=other`, the group shares `other`'s parameters (same dist,
    num_cats and num_nodes; the variable may differ: homogeneous HMM
    emissions). Random parameters come from `rng` (a Generator or a seed) or
    `seed`.
    """
    label = f"input group {name!r}" if name else f"input group over var {var}"
    if not isinstance(var, (int, np.integer)) or var < 0:
        raise BuildError(f"{label}: var must be a non-negative int, got {var!r}")
    if not isinstance(num_nodes, (int, np.integer)) or num_nodes < 1:
        raise BuildError(f"{label}: num_nodes must be a positive int, got {num_nodes!r}")
    if not isinstance(dist, (Categorical, Bernoulli, Gaussian)):
        raise BuildError(f"{label}: dist must be pc.Categorical, pc.Bernoulli or pc.Gaussian, "
                         f"got {type(dist).__name__}")
    if tie is not None:
        given = [getattr(dist, a, None) is not None for a in ("params", "mean", "std")]
        if any(given):
            raise BuildError(f"{label}: a tied group uses its target's parameters; "
                             "do not pass parameters with tie=")
        group = InputGroup(var, num_nodes, dist, None, name)
        _tie(group, tie)
        return group
    params = _input_params(dist, int(num_nodes), _make_rng(rng, seed), label)
    return InputGroup(var, num_nodes, dist, params, name)


# ---------------------------------------------------------------- products

def _check_children(children: Sequence, what: str, label: str) -> tuple:
    if len(children) == 1 and isinstance(children[0], (list, tuple)):
        children = children[0]
    if not children:
        raise BuildError(f"{label}: {what} needs at least one child group")
    for c in children:
        if not isinstance(c, Group):
            raise BuildError(f"{label}: children must be pc groups, got {type(c).__name__}")
    return tuple(children)


def multiply(*children: Group, index: np.ndarray | None = None, name: str = "") -> ProductGroup:
    """A product group over children with pairwise disjoint scopes.

    Without `index`, all children have the same num_nodes N and node i
    multiplies node i of every child. With `index` int [N, len(children)],
    node i multiplies node index[i, j] of children[j].
    """
    label = f"product group {name!r}" if name else "product group"
    children = _check_children(children, "multiply", label)
    scope_bits = np.zeros(0, dtype=np.uint8)
    for b, child in enumerate(children):     # one pass against the running union
        if bits_overlap(scope_bits, child.scope_bits):
            a = next(a for a in range(b) if bits_overlap(children[a].scope_bits, child.scope_bits))
            common = sorted(set(children[a].scope) & set(child.scope))
            raise BuildError(f"{label}: children {a} ({children[a].label}) and {b} "
                             f"({child.label}) share variables {common[:8]}; "
                             "a product needs disjoint scopes (decomposability)")
        scope_bits = bits_union([scope_bits, child.scope_bits])
    if index is None:
        sizes = {c.num_nodes for c in children}
        if len(sizes) != 1:
            raise BuildError(f"{label}: one-to-one pairing needs children with equal num_nodes, "
                             f"got {[c.num_nodes for c in children]}; pass index=")
        return ProductGroup(children, children[0].num_nodes, None, scope_bits, name)
    index = _int_array(index, "index", label)
    if index.ndim != 2 or index.shape[1] != len(children) or index.shape[0] < 1:
        raise BuildError(f"{label}: index must have shape [num_nodes, {len(children)}], "
                         f"got {list(index.shape)}")
    sizes = np.array([c.num_nodes for c in children])
    bad = (index < 0) | (index >= sizes[None, :])
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise BuildError(f"{label}: index[{row}, {col}] = {index[row, col]} is out of range "
                         f"[0, {sizes[col]}) of child {col} ({children[col].label})")
    index = index.astype(index_dtype(int(sizes.max())), copy=False)
    return ProductGroup(children, index.shape[0], index, scope_bits, name)


# ---------------------------------------------------------------- sums

def _sorted_unique_pairs(pairs: np.ndarray, label: str, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Sort (parent, child) pairs; returns (pairs, permutation or None if sorted)."""
    order = None
    if len(pairs) > 1:
        key_sorted = np.all((pairs[1:, 0] > pairs[:-1, 0]) |
                            ((pairs[1:, 0] == pairs[:-1, 0]) & (pairs[1:, 1] > pairs[:-1, 1])))
        if not key_sorted:
            order = np.lexsort((pairs[:, 1], pairs[:, 0]))
            pairs = pairs[order]
        dup = np.flatnonzero(np.all(pairs[1:] == pairs[:-1], axis=1))
        if dup.size:
            raise BuildError(f"{label}: {what} pair {pairs[dup[0]].tolist()} appears twice")
    return pairs, order


def _parent_sums(pattern: str, weights: np.ndarray, edges: np.ndarray | None, num_nodes: int,
                 block_size: int) -> np.ndarray:
    """Per parent node, the sum of its edge weights (float64)."""
    if pattern == "dense":
        return weights.sum(axis=1, dtype=np.float64)
    if pattern == "sparse":
        return np.bincount(edges[:, 0], weights=weights, minlength=num_nodes)
    row_sums = weights.sum(axis=2, dtype=np.float64)           # [E, B]
    parents = edges[:, :1] * block_size + np.arange(block_size)[None, :]
    return np.bincount(parents.ravel(), weights=row_sums.ravel(), minlength=num_nodes)


def _normalize(pattern: str, weights: np.ndarray, edges: np.ndarray | None, num_nodes: int,
               block_size: int, sums: np.ndarray, in_place: bool) -> np.ndarray:
    """Divide each parent's weights by their sum (in place for arrays the
    builder made itself; never for the caller's array)."""
    safe = np.where(sums > 0, sums, 1.0)
    if pattern == "dense":
        scale = safe[:, None]
    elif pattern == "sparse":
        scale = safe[edges[:, 0]]
    else:
        parents = edges[:, :1] * block_size + np.arange(block_size)[None, :]
        scale = safe[parents][:, :, None]
    if in_place:
        weights /= scale.astype(weights.dtype, copy=False)
        return weights
    return (weights / scale).astype(weights.dtype, copy=False)


def summate(*children: Group, num_nodes: int, edges: BlockSparse | Sparse | None = None,
            weights: np.ndarray | None = None, tie: "SumGroup | None" = None,
            normalize: bool = False, rng: np.random.Generator | int | None = None,
            seed: int | None = None, dtype: type = np.float64, name: str = "") -> SumGroup:
    """A sum group of `num_nodes` mixtures over children with one common scope.

    edges: None (dense: every parent to every child column),
    pc.BlockSparse(pairs, block_size) or pc.Sparse(pairs).
    weights: dense [N, C], block-sparse [E, B, B], sparse [E]; None draws
    random normalized weights (of `dtype`). Each parent's weights must sum
    to 1 unless `normalize=True`. With `tie=other`, the group shares
    `other`'s weights (and its edges when `edges` is None).
    """
    label = f"sum group {name!r}" if name else "sum group"
    children = _check_children(children, "summate", label)
    if not isinstance(num_nodes, (int, np.integer)) or num_nodes < 1:
        raise BuildError(f"{label}: num_nodes must be a positive int, got {num_nodes!r}")
    num_nodes = int(num_nodes)
    for j, c in enumerate(children[1:], start=1):
        if not np.array_equal(c.scope_bits, children[0].scope_bits):
            raise BuildError(f"{label}: child {j} ({c.label}) has scope {c.scope[:8]} but child 0 "
                             f"({children[0].label}) has scope {children[0].scope[:8]}; "
                             "a sum needs one common scope (smoothness)")
    scope_bits = children[0].scope_bits
    num_cols = sum(c.num_nodes for c in children)
    if tie is not None and weights is not None:
        raise BuildError(f"{label}: a tied group uses its target's weights; "
                         "do not pass weights with tie=")
    if tie is not None and edges is None:
        if not isinstance(tie, SumGroup):
            raise BuildError(f"{label}: tie target must be a sum group, got {tie!r}")
        group = SumGroup(children, num_nodes, tie.pattern, tie.edges, tie.block_size, None,
                         scope_bits, name)
        _tie(group, tie)
        return group

    pattern, pairs, block_size = "dense", None, 0
    if isinstance(edges, BlockSparse):
        pattern, block_size = "block_sparse", int(edges.block_size)
        if block_size < 1 or num_nodes % block_size or num_cols % block_size:
            raise BuildError(f"{label}: block_size {edges.block_size} must divide num_nodes "
                             f"{num_nodes} and the child column count {num_cols}")
        limits = (num_nodes // block_size, num_cols // block_size)
        pairs = edges.pairs
    elif isinstance(edges, Sparse):
        pattern, limits, pairs = "sparse", (num_nodes, num_cols), edges.pairs
    elif edges is not None:
        raise BuildError(f"{label}: edges must be None, pc.BlockSparse or pc.Sparse, "
                         f"got {type(edges).__name__}")
    order = None
    if pairs is not None:
        what = "edge"
        pairs = _int_array(pairs, "edge pairs", label)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] < 1:
            raise BuildError(f"{label}: edge pairs must have shape [E, 2] with E >= 1, "
                             f"got {list(pairs.shape)}")
        for col, lim, role in ((0, limits[0], "parent"), (1, limits[1], "child")):
            bad = np.flatnonzero((pairs[:, col] < 0) | (pairs[:, col] >= lim))
            if bad.size:
                raise BuildError(f"{label}: edge pair {bad[0]} = {pairs[bad[0]].tolist()} has "
                                 f"{role} {'block ' if block_size else ''}{pairs[bad[0], col]} "
                                 f"out of range [0, {lim})")
        pairs, order = _sorted_unique_pairs(pairs, label, what)
        pairs = pairs.astype(index_dtype(max(limits)), copy=False)

    shape = {"dense": (num_nodes, num_cols),
             "block_sparse": (0 if pairs is None else len(pairs), block_size, block_size),
             "sparse": (0 if pairs is None else len(pairs),)}[pattern]
    if tie is not None:
        group = SumGroup(children, num_nodes, pattern, pairs, block_size, None, scope_bits, name)
        _tie(group, tie)
        return group
    if weights is None:
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise BuildError(f"{label}: dtype must be float32 or float64, got {np.dtype(dtype)}")
        generator = _make_rng(rng, seed)
        # Drawn directly in `dtype` and scaled in place: a 100M-edge float32
        # group costs its 400 MB once, not a float64 temporary besides.
        weights = generator.random(size=shape, dtype=np.dtype(dtype).type)
        weights *= 0.95
        weights += 0.05
        normalize = owned = True
    else:
        owned = False
        weights = _float_array(weights, "weights", label)
        if weights.shape != shape:
            raise BuildError(f"{label}: {pattern} weights must have shape {list(shape)}, "
                             f"got {list(weights.shape)}")
        if order is not None:
            weights = weights[order]
        if np.any(weights < 0):
            raise BuildError(f"{label}: weights must be non-negative")
    sums = _parent_sums(pattern, weights, pairs, num_nodes, block_size)
    if normalize:
        empty = np.flatnonzero(sums <= 0)
        if empty.size:
            raise BuildError(f"{label}: parent node {empty[0]} has no edge of positive weight")
        weights = _normalize(pattern, weights, pairs, num_nodes, block_size, sums, owned)
    else:
        bad = np.flatnonzero(np.abs(sums - 1) > NORMALIZATION_TOL)
        if bad.size:
            raise BuildError(f"{label}: weights of parent node {bad[0]} sum to {sums[bad[0]]:.6g}, "
                             f"not 1 ({bad.size} parents unnormalized); pass normalize=True")
    return SumGroup(children, num_nodes, pattern, pairs, block_size, weights, scope_bits, name)


# ---------------------------------------------------------------- ties

def _tie(group: Group, target: Group) -> None:
    """Make `group` share `target`'s parameters, after checking shapes."""
    if not isinstance(target, Group):
        raise BuildError(f"{group.label}: tie target must be a pc group, got {type(target).__name__}")
    owner = target.tie_target or target
    if owner is group:
        raise BuildError(f"{group.label}: cannot tie a group to itself (tie cycle)")
    if type(owner) is not type(group):
        raise BuildError(f"{group.label}: cannot tie a {group.kind} group to {owner.label}")
    if owner.num_nodes != group.num_nodes:
        raise BuildError(f"{group.label}: num_nodes {group.num_nodes} differs from tie target "
                         f"{owner.label} ({owner.num_nodes})")
    if isinstance(group, InputGroup):
        if group.dist.kind != owner.dist.kind or group.num_cats != owner.num_cats:
            raise BuildError(f"{group.label}: dist {group.dist.kind}({group.num_cats}) differs "
                             f"from tie target {owner.label} ({owner.dist.kind}({owner.num_cats}))")
    elif isinstance(group, SumGroup):
        if group.child_sizes != owner.child_sizes:
            raise BuildError(f"{group.label}: child group sizes {group.child_sizes} differ from "
                             f"tie target {owner.label} ({owner.child_sizes})")
        if group.pattern != owner.pattern or group.block_size != owner.block_size:
            raise BuildError(f"{group.label}: edge pattern {group.pattern}/{group.block_size} "
                             f"differs from tie target {owner.label} "
                             f"({owner.pattern}/{owner.block_size})")
        if (group.edges is None) != (owner.edges is None) or (
                group.edges is not None and not np.array_equal(group.edges, owner.edges)):
            raise BuildError(f"{group.label}: edges differ from tie target {owner.label}")
    else:
        raise BuildError(f"{group.label}: only input and sum groups can be tied")
    group._tie = owner
    if isinstance(group, InputGroup):
        group._params = None
    elif isinstance(group, SumGroup):
        group._weights = None
        group.edges = owner.edges


def tie(group: Group, target: Group) -> Group:
    """Make `group` share `target`'s parameters (same kind and shape);
    returns `group`. Its own parameters are dropped."""
    _tie(group, target)
    return group
