"""Hand-made circuits with known answers for the pass tests (ir.make_* only)."""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.ir import pcir


def normalize_sparse(rng, edges: np.ndarray, rows: int) -> np.ndarray:
    w = rng.random(len(edges)) + 0.05
    return (w / np.bincount(edges[:, 0], weights=w, minlength=rows)[edges[:, 0]])


def block_mask(rng, row_blocks: int, col_blocks: int, keep: float) -> np.ndarray:
    """Random block mask with exactly round(keep * total) blocks, >= 1 per row block."""
    total = row_blocks * col_blocks
    n_keep = max(row_blocks, int(round(keep * total)))
    mask = np.zeros(total, dtype=bool)
    mask[np.arange(row_blocks) * col_blocks + rng.integers(0, col_blocks, row_blocks)] = True
    rest = rng.permutation(np.flatnonzero(~mask))[:n_keep - row_blocks]
    mask[rest] = True
    return mask.reshape(row_blocks, col_blocks)


def expand_blocks(mask: np.ndarray, block: int, fill: float = 1.0, rng=None) -> np.ndarray:
    """Element edges of the blocks in `mask` (each kept with prob `fill`), sorted."""
    dense = np.kron(mask, np.ones((block, block), dtype=bool))
    if fill < 1.0:
        dense &= rng.random(dense.shape) < fill
        rows = np.flatnonzero(mask.any(1).repeat(block))
        dense[rows, np.argmax(np.kron(mask, np.ones((block, block), bool))[rows], axis=1)] = True
    return np.argwhere(dense).astype(np.int64)


def two_level_model(edges: np.ndarray, num_nodes: int, num_children: int, seed: int = 0,
                    num_cats: int = 3) -> pcir.Model:
    """x0, x1 inputs (C nodes) -> product (C) -> sparse sum g3 (N) -> dense root g4."""
    rng = np.random.default_rng(seed)
    c, n = num_children, num_nodes
    variables = [ir.make_variable(f"x{v}", pcir.CATEGORICAL, num_cats) for v in range(2)]
    tensors, groups = [], []
    for v in range(2):
        p = rng.random((c, num_cats)) + 0.1
        tensors.append(ir.make_tensor(f"g{v}.params", (p / p.sum(1, keepdims=True))))
        groups.append(ir.make_input_group(v, v, pcir.CATEGORICAL_DIST, c, f"g{v}.params"))
    tensors.append(ir.make_tensor("g2.index", np.stack([np.arange(c), rng.permutation(c)], 1)))
    groups.append(ir.make_product_group(2, [0, 1], c, [0, 1], "g2.index"))
    tensors += [ir.make_tensor("g3.edges", edges),
                ir.make_tensor("g3.weights", normalize_sparse(rng, edges, n))]
    groups.append(ir.make_sum_group(3, [2], n, [0, 1], pcir.SPARSE, "g3.weights", "g3.edges"))
    w = rng.random((1, n)) + 0.1
    tensors.append(ir.make_tensor("g4.weights", w / w.sum()))
    groups.append(ir.make_sum_group(4, [3], 1, [0, 1], pcir.DENSE, "g4.weights"))
    return ir.make_model(variables, groups, [4], tensors, name="two-level")


def hmm_model(length: int, hidden: int, vocab: int, seed: int = 0, declare_ties: bool = True,
              shared_values: bool = True) -> pcir.Model:
    """A homogeneous HMM unrolled as a PC: emissions E_t (input), transitions Z_t
    (dense sums over the next step), products P_t = E_t * Z_t, root = initial sum."""
    rng = np.random.default_rng(seed)
    variables = [ir.make_variable(f"x{t}", pcir.CATEGORICAL, vocab) for t in range(length)]
    groups, tensors, ties = [], [], []

    def rows(r, c):
        w = rng.random((r, c)) + 0.05
        return w / w.sum(1, keepdims=True)
    emit, trans = rows(hidden, vocab), rows(hidden, hidden)
    first_e = first_z = None
    nxt = None
    for t in reversed(range(length)):
        gid = len(groups)
        tied = declare_ties and first_e is not None
        name = "" if tied else f"e{t}"
        if name:
            tensors.append(ir.make_tensor(name, emit if shared_values else rows(hidden, vocab)))
        groups.append(ir.make_input_group(gid, t, pcir.CATEGORICAL_DIST, hidden, name))
        if tied:
            ties.append((gid, first_e))
        first_e = gid if first_e is None else first_e
        e = gid
        if nxt is None:
            nxt = e
            continue
        gid = len(groups)
        scope = range(t + 1, length)
        tied = declare_ties and first_z is not None
        name = "" if tied else f"z{t}"
        if name:
            tensors.append(ir.make_tensor(name, trans if shared_values else rows(hidden, hidden)))
        groups.append(ir.make_sum_group(gid, [nxt], hidden, scope, pcir.DENSE, name))
        if tied:
            ties.append((gid, first_z))
        first_z = gid if first_z is None else first_z
        gid = len(groups)
        tensors.append(ir.make_tensor(f"p{t}.index", np.stack([np.arange(hidden)] * 2, 1)))
        groups.append(ir.make_product_group(gid, [e, gid - 1], hidden, range(t, length),
                                            f"p{t}.index"))
        nxt = gid
    gid = len(groups)
    tensors.append(ir.make_tensor("init", rows(1, hidden)))
    groups.append(ir.make_sum_group(gid, [nxt], 1, range(length), pcir.DENSE, "init"))
    return ir.make_model(variables, groups, [gid], tensors, ties=ties, name="hmm")


def reference_log_prob(model: pcir.Model, x, missing=None) -> np.ndarray:
    from pccompiler.backends.reference.evaluate import log_prob
    return np.asarray(log_prob(model, x, missing), dtype=np.float64)
