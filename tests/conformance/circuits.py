"""The circuits the conformance suite runs: hand-made ones covering every
edge pattern, tie and input distribution, plus small standard structures
(when pccompiler.structures provides them).

Each entry is a function () -> pcir.Model, kept small enough that exact
enumeration over all assignments is cheap (discrete ones).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

import pccompiler as pc
from pccompiler import structures
from pccompiler.ir import pcir


def _vtree_pair(x, y, n: int, seed: int, **summate_kw):
    """sum_n( x * y ) with n nodes (x, y input or sum groups of n nodes)."""
    return pc.summate(pc.multiply(x, y), num_nodes=n, seed=seed, **summate_kw)


def dense() -> pcir.Model:
    """Categorical inputs, dense sums, two child groups under one sum."""
    cat = pc.Categorical(num_cats=3)
    x = [pc.inputs(v, 4, cat, seed=10 + v) for v in range(4)]
    p01 = pc.multiply(x[0], x[1])
    p01b = pc.multiply(x[0], x[1], index=np.array([[i, (i + 1) % 4] for i in range(4)]))
    s01 = pc.summate(p01, p01b, num_nodes=4, seed=1)
    s23 = _vtree_pair(x[2], x[3], 4, seed=2)
    return pc.lower(pc.summate(pc.multiply(s01, s23), num_nodes=1, seed=3))


def block_sparse() -> pcir.Model:
    """Bernoulli inputs, a block-sparse sum (block 4) over two child groups."""
    x = [pc.inputs(v, 8, pc.Bernoulli(), seed=20 + v) for v in range(4)]
    p = pc.multiply(x[0], x[1])
    q = pc.multiply(x[0], x[1], index=np.stack([np.arange(8), np.arange(8)[::-1]], 1))
    pairs = np.array([[0, 0], [0, 3], [1, 1], [1, 2], [1, 3]])
    s = pc.summate(p, q, num_nodes=8, edges=pc.BlockSparse(pairs, 4), seed=4)
    t = _vtree_pair(x[2], x[3], 8, seed=5)
    return pc.lower(pc.summate(pc.multiply(s, t), num_nodes=1, seed=6))


def sparse() -> pcir.Model:
    """Categorical inputs and sparse sums with uneven fan-in."""
    cat = pc.Categorical(num_cats=2)
    x = [pc.inputs(v, 6, cat, seed=30 + v) for v in range(3)]
    p = pc.multiply(x[0], x[1])
    rng = np.random.default_rng(7)
    pairs = np.array([(i, j) for i in range(5) for j in range(6) if rng.random() < 0.4 or j == i])
    s = pc.summate(p, num_nodes=5, edges=pc.Sparse(pairs), seed=7)
    q = pc.multiply(s, pc.inputs(2, 5, cat, seed=33))
    root_pairs = np.array([[0, 0], [0, 2], [0, 3]])
    return pc.lower(pc.summate(q, num_nodes=1, edges=pc.Sparse(root_pairs), seed=8))


def tied() -> pcir.Model:
    """Tied sum and input groups (an HMM-like homogeneous chain)."""
    cat = pc.Categorical(num_cats=3)
    e0 = pc.inputs(0, 4, cat, seed=40)
    e1 = pc.inputs(1, 4, cat, tie=e0)
    e2 = pc.inputs(2, 4, cat, tie=e0)
    e3 = pc.inputs(3, 4, cat, tie=e0)
    s01 = pc.summate(pc.multiply(e0, e1), num_nodes=4, seed=41)
    s23 = pc.summate(pc.multiply(e2, e3), num_nodes=4, tie=s01)
    return pc.lower(pc.summate(pc.multiply(s01, s23), num_nodes=1, seed=42))


def bernoulli_mixed() -> pcir.Model:
    """Bernoulli and categorical inputs under one mixture."""
    a = pc.inputs(0, 3, pc.Bernoulli(), seed=50)
    b = pc.inputs(1, 3, pc.Categorical(num_cats=4), seed=51)
    c = pc.inputs(2, 3, pc.Bernoulli(), seed=52)
    return pc.lower(pc.summate(pc.multiply(a, b, c), num_nodes=1, seed=53))


def gaussian() -> pcir.Model:
    """Gaussian inputs over real variables."""
    x = [pc.inputs(v, 4, pc.Gaussian(), seed=60 + v) for v in range(3)]
    s = _vtree_pair(x[0], x[1], 4, seed=61)
    return pc.lower(pc.summate(pc.multiply(s, x[2]), num_nodes=1, seed=62))


def _pruned_sum(children, n: int, keep: float, seed: int):
    """A sum of n nodes over `children` keeping a random `keep` share of the
    edges (and one per row), like a sum group after pruning by flows."""
    cols = sum(int(c.num_nodes) for c in children)
    rng = np.random.default_rng(seed)
    mask = rng.random((n, cols)) < keep
    mask[np.arange(n), rng.integers(0, cols, n)] = True
    return pc.summate(*children, num_nodes=n, edges=pc.Sparse(np.argwhere(mask)), seed=seed)


def pruned_tiles() -> pcir.Model:
    """Pruned sums of 23 and 20 nodes (odd sizes: tiles of 16 + 4 + 2 + 1 rows
    and column blocks split by child group) that detect-block-sparsity runs
    as row tiles over zero-weight pseudo-edges (passes/helpers/row_tiles.py)."""
    cat = pc.Categorical(num_cats=2)
    x = [pc.inputs(v, 24, cat, seed=70 + v) for v in range(4)]
    p = pc.multiply(x[0], x[1])
    q = pc.multiply(x[0], x[1], index=np.stack([np.arange(24), np.arange(24)[::-1]], 1))
    s = _pruned_sum([p, q], 23, 0.3, seed=71)
    t = _pruned_sum([pc.multiply(x[2], x[3])], 23, 0.15, seed=72)
    u = _pruned_sum([pc.multiply(s, t)], 20, 0.4, seed=73)
    return pc.lower(pc.summate(u, num_nodes=1, seed=74))


HAND_MADE: dict[str, Callable[[], pcir.Model]] = {
    "dense": dense, "block_sparse": block_sparse, "sparse": sparse, "tied": tied,
    "bernoulli_mixed": bernoulli_mixed, "gaussian": gaussian, "pruned_tiles": pruned_tiles,
}


def _structures() -> dict[str, Callable[[], pcir.Model]]:
    """Small standard structures (HCLT, PD, RAT-SPN, HMM)."""
    found: dict[str, Callable[[], pcir.Model]] = {}
    rng = np.random.default_rng(0)
    data = (rng.random((200, 6)) < 0.4).astype(np.int64)
    data[:, 1] = data[:, 0] ^ (rng.random(200) < 0.1)
    recipes = {
        "hclt": lambda: structures.hclt(data, num_latents=4, seed=0),
        # 16-node blocks: the sum layers take the tensor-core path at full
        # tiles, where the dot precision (tf32, bf16) actually applies
        "hclt_wide": lambda: structures.hclt(data, num_latents=16, seed=0),
        "pd": lambda: structures.pd((2, 3), num_latents=4, split_intervals=1, num_cats=2, seed=0),
        "rat_spn": lambda: structures.rat_spn(6, num_latents=4, depth=2, num_repetitions=2,
                                              num_cats=2, seed=0),
        "hmm": lambda: structures.hmm(4, num_latents=4, num_emits=3, seed=0),
    }
    for name, make in recipes.items():
        def build(make=make):
            out = make()
            return out if isinstance(out, pcir.Model) else pc.lower(out)
        found[name] = build
    return found


def all_circuits() -> dict[str, Callable[[], pcir.Model]]:
    return {**HAND_MADE, **_structures()}


def random_data(model: pcir.Model, n: int, seed: int = 0) -> np.ndarray:
    """Uniform categories / standard normals per variable kind."""
    rng = np.random.default_rng(seed)
    cols = []
    for v in model.variables:
        if v.kind == pcir.REAL:
            cols.append(rng.normal(0, 1.2, n))
        else:
            cols.append(rng.integers(0, v.num_cats, n).astype(np.float64))
    x = np.stack(cols, 1)
    return x if any(v.kind == pcir.REAL for v in model.variables) else x.astype(np.int64)


def all_assignments(model: pcir.Model) -> np.ndarray:
    """Every joint assignment of a discrete model [prod(num_cats), V]."""
    cats = [int(v.num_cats) for v in model.variables]
    grids = np.meshgrid(*[np.arange(c) for c in cats], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], 1).astype(np.int64)


def is_discrete(model: pcir.Model) -> bool:
    return all(v.kind != pcir.REAL for v in model.variables)
