"""Small Models that exercise every case the PyJuice bridge handles."""

from __future__ import annotations

import numpy as np

import pccompiler as pc
from pccompiler.ir import pcir


def kitchen_sink() -> pcir.Model:
    """4 variables x 3 categories, 8 nodes per group, with: aligned and
    unaligned products, a product of products, a block-sparse sum (block 4),
    a dense sum over an input, a sparse sum over a sum, a tied sum, a tied
    input on another variable, and a 1-node dense root."""
    rng = np.random.default_rng(0)
    cat = pc.Categorical(num_cats=3)
    x0 = pc.inputs(0, 8, cat, seed=1)
    x1 = pc.inputs(1, 8, cat, seed=2)
    x2 = pc.inputs(2, 8, cat, seed=3)
    x3 = pc.inputs(3, 8, cat, tie=x0)                       # tied input, other variable
    p01 = pc.multiply(x0, x1)                               # block aligned
    perm = np.stack([rng.permutation(8), rng.permutation(8)], axis=1)
    p01_perm = pc.multiply(x0, x1, index=perm)              # not aligned: sparse edges
    s0 = pc.summate(x0, num_nodes=8, seed=4)                # input child: wrapped
    m = pc.multiply(s0, x1)
    pairs = np.array([[0, 0], [0, 3], [0, 4], [1, 1], [1, 2], [1, 5]])
    s01 = pc.summate(p01, p01_perm, m, num_nodes=8, edges=pc.BlockSparse(pairs, 4), seed=5)
    s01t = pc.summate(p01, p01_perm, m, num_nodes=8, tie=s01)
    p23 = pc.multiply(x2, x3)
    s23 = pc.summate(p23, num_nodes=8, seed=6)
    sparse_pairs = np.array([[i, j] for i in range(8) for j in range(8) if (i + 2 * j) % 3 != 0])
    s23b = pc.summate(s23, num_nodes=8, edges=pc.Sparse(sparse_pairs), seed=7)  # sum of a sum
    q = pc.multiply(s01, s23b)
    q2 = pc.multiply(s01t, s23)
    p0123 = pc.multiply(p01, p23)                           # product of products: flattened
    root = pc.summate(q, q2, p0123, num_nodes=1, seed=8)
    return pc.lower(root)


def hmm_chain(length: int = 5, latents: int = 4, emits: int = 6) -> pcir.Model:
    """A homogeneous HMM built like PyJuice's `HMM`: one emission table and
    one transition matrix, every other step tied to them."""
    emit = pc.inputs(length - 1, latents, pc.Categorical(num_cats=emits), seed=0)
    first = pc.summate(emit, num_nodes=latents, seed=1)
    curr = first
    for var in range(length - 2, -1, -1):
        x = pc.inputs(var, latents, pc.Categorical(num_cats=emits), tie=emit)
        prod = pc.multiply(x, curr)
        if var == 0:
            return pc.lower(pc.summate(prod, num_nodes=1, seed=2))
        curr = pc.summate(prod, num_nodes=latents, tie=first)
    raise AssertionError("length must be at least 2")


def random_data(model: pcir.Model, batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cats = np.array([v.num_cats for v in model.variables])
    return (rng.random((batch, len(cats))) * cats).astype(np.int64)


def small_structures() -> dict[str, pcir.Model]:
    """Tiny versions of the race's structures (pccompiler.structures)."""
    import networkx as nx
    tree = nx.Graph([(0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (0, 6)])
    return {
        "hclt": pc.lower(pc.hclt(None, 8, num_cats=3, tree=tree, seed=0)),
        "pd": pc.lower(pc.pd((4, 4), 8, split_intervals=2, num_cats=3, seed=0)),
        "rat_spn": pc.lower(pc.rat_spn(8, 4, 2, 2, num_cats=3, seed=0)),
        "hmm": pc.lower(pc.hmm(5, 4, 6, seed=0)),
    }
