"""The group objects of the builder API and the values they hold.

A group is `num_nodes` nodes of one kind over one scope; its parameters,
index matrix and edge list are numpy arrays. `pccompiler.frontend.builder` creates
and validates groups; this module only defines them (and the distribution
and edge-pattern descriptors passed to the builder).

Scopes are stored as packed bit sets (bit v = variable v, little-endian bit
order) so that the union and disjointness tests of deep circuits (an HMM of
10,000 steps) stay cheap; `group.scope` gives the sorted tuple of variables.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = [
    "Categorical", "Bernoulli", "Gaussian", "Distribution", "BlockSparse", "Sparse",
    "Group", "InputGroup", "ProductGroup", "SumGroup", "index_dtype",
    "bits_of_var", "bits_union", "bits_overlap", "bits_to_vars",
]

_uids = itertools.count()


# ---------------------------------------------------------------- distributions

@dataclass(eq=False)
class Categorical:
    """Categorical leaves over `num_cats` values; params [num_nodes, num_cats]
    rows non-negative summing to 1 (None: random)."""
    num_cats: int
    params: np.ndarray | None = None
    kind: str = field(default="categorical", init=False)


@dataclass(eq=False)
class Bernoulli:
    """Bernoulli leaves; params [num_nodes] or [num_nodes, 1] = P(X=1)."""
    params: np.ndarray | None = None
    kind: str = field(default="bernoulli", init=False)

    @property
    def num_cats(self) -> int:
        return 2


@dataclass(eq=False)
class Gaussian:
    """Gaussian leaves over a real variable; mean and std arrays [num_nodes]
    (both None: random; one None: 0 mean / unit std)."""
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    kind: str = field(default="gaussian", init=False)

    @property
    def num_cats(self) -> int:
        return 0


Distribution = Categorical | Bernoulli | Gaussian


@dataclass(eq=False)
class BlockSparse:
    """Block-sparse sum edges: `pairs` int [E, 2] of (parent block, child
    block); each pair is a full block_size x block_size block of edges."""
    pairs: np.ndarray
    block_size: int


@dataclass(eq=False)
class Sparse:
    """Arbitrary sum edges: `pairs` int [E, 2] of (parent node, child column);
    child columns number the nodes of the child groups concatenated."""
    pairs: np.ndarray


# ---------------------------------------------------------------- helpers

def index_dtype(max_value: int) -> type:
    """int32 where every value fits, else int64 (halves index memory)."""
    return np.int32 if max_value < 2**31 - 1 else np.int64


def bits_of_var(var: int) -> np.ndarray:
    bits = np.zeros(var // 8 + 1, dtype=np.uint8)
    bits[var // 8] = 1 << (var % 8)
    return bits


def bits_union(parts: Sequence[np.ndarray]) -> np.ndarray:
    out = np.zeros(max(len(p) for p in parts), dtype=np.uint8)
    for p in parts:
        out[: len(p)] |= p
    return out


def bits_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    n = min(len(a), len(b))
    return bool(np.any(a[:n] & b[:n]))


def bits_to_vars(bits: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.unpackbits(bits, bitorder="little")).astype(np.int64)


# ---------------------------------------------------------------- groups

class Group:
    """A group of `num_nodes` nodes of one kind over one scope.

    Attributes: `kind` ("input" | "product" | "sum"), `num_nodes`,
    `children` (tuple of Groups), `name`, `scope` (sorted tuple of variables),
    `uid` (creation order; unique in the process).
    """

    kind: str = ""

    def __init__(self, num_nodes: int, children: tuple, scope_bits: np.ndarray, name: str):
        self.num_nodes = int(num_nodes)
        self.children = tuple(children)
        self.scope_bits = scope_bits
        self.name = name or ""
        self.uid = next(_uids)
        self._tie: Group | None = None

    @property
    def scope(self) -> tuple[int, ...]:
        return tuple(bits_to_vars(self.scope_bits).tolist())

    @property
    def scope_array(self) -> np.ndarray:
        """The scope as a sorted int64 array."""
        return bits_to_vars(self.scope_bits)

    @property
    def label(self) -> str:
        """How errors name the group."""
        return f"{self.kind} group {self.name!r}" if self.name else f"{self.kind} group #{self.uid}"

    @property
    def tie_target(self) -> "Group | None":
        """The group owning this group's parameters (None if it owns them)."""
        owner = self._tie
        while owner is not None and owner._tie is not None:
            owner = owner._tie
        return owner

    def __repr__(self) -> str:
        scope = self.scope
        shown = scope if len(scope) <= 6 else f"({scope[0]}..{scope[-1]}, {len(scope)} vars)"
        return f"<{type(self).__name__} {self.label} num_nodes={self.num_nodes} scope={shown}>"


class InputGroup(Group):
    """Input nodes over one variable: `var`, `dist` (the Distribution object;
    its params live here, not there), `params` float [num_nodes, P]
    (categorical P = num_cats, Bernoulli P = 1, Gaussian P = 2: mean, std)."""

    kind = "input"

    def __init__(self, var: int, num_nodes: int, dist: Distribution, params: np.ndarray | None,
                 name: str):
        super().__init__(num_nodes, (), bits_of_var(var), name)
        self.var = int(var)
        self.dist = dist
        self._params = params

    @property
    def params(self) -> np.ndarray:
        owner = self.tie_target
        return owner._params if owner is not None else self._params

    @property
    def num_cats(self) -> int:
        return int(self.dist.num_cats)


class ProductGroup(Group):
    """Product nodes: node i multiplies node `index[i, j]` of `children[j]`."""

    kind = "product"

    def __init__(self, children: tuple, num_nodes: int, index: np.ndarray | None,
                 scope_bits: np.ndarray, name: str):
        super().__init__(num_nodes, children, scope_bits, name)
        self._index = index

    @property
    def one_to_one(self) -> bool:
        return self._index is None

    @property
    def index(self) -> np.ndarray:
        """int [num_nodes, num_children] (materialized for one-to-one)."""
        if self._index is None:
            col = np.arange(self.num_nodes, dtype=index_dtype(self.num_nodes))
            return np.repeat(col[:, None], len(self.children), axis=1)
        return self._index


class SumGroup(Group):
    """Sum nodes over the concatenated nodes of `children` (child columns).

    `pattern` is "dense" (weights [N, C]), "block_sparse" (`edges` [E, 2]
    block pairs, weights [E, B, B]) or "sparse" (`edges` [E, 2] node pairs,
    weights [E]); edges are sorted and unique.
    """

    kind = "sum"

    def __init__(self, children: tuple, num_nodes: int, pattern: str, edges: np.ndarray | None,
                 block_size: int, weights: np.ndarray | None, scope_bits: np.ndarray, name: str):
        super().__init__(num_nodes, children, scope_bits, name)
        self.pattern = pattern
        self.edges = edges
        self.block_size = int(block_size)
        self._weights = weights

    @property
    def num_child_columns(self) -> int:
        return sum(c.num_nodes for c in self.children)

    @property
    def child_sizes(self) -> tuple[int, ...]:
        return tuple(c.num_nodes for c in self.children)

    @property
    def weights(self) -> np.ndarray:
        owner = self.tie_target
        return owner._weights if owner is not None else self._weights
