"""Small random circuits built with the builder API, and brute-force
enumeration helpers, for the reference-backend tests.

`random_circuit(seed, pattern)` builds a region tree over a few variables:
every leaf region has a categorical or Bernoulli input group and a second
input group tied to the first leaf group of the same distribution; every
inner region has a cross-product group (explicit index matrix, K*K nodes)
and a one-to-one product group, mixed by a sum group over both (two child
groups) with the given edge pattern, plus a second sum group tied to the
first sum group of its shape. Small enough to enumerate every assignment.
"""

from __future__ import annotations

import itertools

import numpy as np

import pccompiler as pc

K = 2   # nodes per region group


def _edges(rng: np.random.Generator, pattern: str, num_nodes: int, num_cols: int):
    if pattern == "dense":
        return None
    block = 2 if pattern == "block_sparse" else 1
    rows, cols = num_nodes // block, num_cols // block
    mask = rng.random((rows, cols)) < 0.5
    mask[np.arange(rows), rng.integers(0, cols, rows)] = True
    pairs = np.argwhere(mask)
    return pc.BlockSparse(pairs, block) if pattern == "block_sparse" else pc.Sparse(pairs)


def random_circuit(seed: int, pattern: str = "dense", cats=(3, 2, 2, 3)) -> pc.Group:
    """Root (1 node) of a random smooth, decomposable circuit over len(cats)
    variables (num_cats 2 variables use Bernoulli leaves)."""
    rng = np.random.default_rng(seed)
    first_input: dict = {}
    first_sum: dict = {}

    def leaf(v: int) -> list:
        def dist():
            return pc.Bernoulli() if cats[v] == 2 else pc.Categorical(cats[v])
        a = pc.inputs(v, K, dist(), rng=rng, name=f"in{v}")
        owner = first_input.setdefault(cats[v], a)
        if owner is a:
            b = pc.inputs(v, K, dist(), rng=rng, name=f"in{v}b")
        else:   # shares parameters with a leaf of another variable
            b = pc.inputs(v, K, dist(), tie=owner, name=f"in{v}b")
        return [a, b]

    def region(vs: list) -> list:
        if len(vs) == 1:
            return leaf(vs[0])
        mid = len(vs) // 2
        left, right = region(vs[:mid]), region(vs[mid:])
        cross = np.stack(np.meshgrid(np.arange(K), np.arange(K), indexing="ij"), -1).reshape(-1, 2)
        p1 = pc.multiply(left[0], right[0], index=cross)
        p2 = pc.multiply(left[1], right[1])
        cols = p1.num_nodes + p2.num_nodes
        s1 = pc.summate(p1, p2, num_nodes=K, edges=_edges(rng, pattern, K, cols), rng=rng)
        key = (pattern, p1.num_nodes, p2.num_nodes)
        owner = first_sum.setdefault(key, s1)
        if owner is s1:
            s2 = pc.summate(p1, p2, num_nodes=K, edges=_edges(rng, pattern, K, cols), rng=rng)
        else:
            s2 = pc.summate(p1, p2, num_nodes=K, tie=owner)
        return [s1, s2]

    top = region(list(range(len(cats))))
    return pc.summate(*top, num_nodes=1, rng=rng, name="root")


def all_assignments(cats) -> np.ndarray:
    """Every assignment of variables with `cats` categories: [prod(cats), V]."""
    return np.array(list(itertools.product(*[range(c) for c in cats])), dtype=np.int64)


def completions(row: np.ndarray, missing: np.ndarray, cats) -> np.ndarray:
    """Every completion of `row`'s missing entries: [n, V]."""
    choices = [range(c) if m else [int(x)] for x, m, c in zip(row, missing, cats)]
    return np.array(list(itertools.product(*choices)), dtype=np.int64)


def logsumexp(a: np.ndarray) -> float:
    m = np.max(a)
    return float(m + np.log(np.sum(np.exp(a - m)))) if np.isfinite(m) else float(m)
