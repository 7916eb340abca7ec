"""Small valid pcir.Models for tests, built with the ir.make_* helpers.

Every factory returns a fresh, normalized Model that passes `ir.check`, with
one root group of one node. They share one shape (4 variables, 10 groups):

    g0..g3  input groups over x0..x3, K nodes each
    g4      product(g0, g1)   K nodes        g5  product(g2, g3)   K nodes
    g6      sum over g4       K nodes        g7  sum over g5       K nodes
    g8      product(g6, g7)   K nodes (child_index is a random permutation)
    g9      root: sum over g8, 1 node, dense

The edge pattern of g6 and g7 and the input distribution vary by factory.
Random values come from `seed`, so a factory call is reproducible.

    from tests.factories import small_dense_model
    model = small_dense_model(seed=0)
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.ir import pcir

NUM_VARS = 4
K = 4            # nodes per inner group
BLOCK = 2        # block size of the block-sparse factory


def _normalized_rows(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    w = rng.random((rows, cols)) + 0.05
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def _sparse_edges(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Random sorted unique (row, col) pairs with at least one per row."""
    mask = rng.random((rows, cols)) < 0.4
    mask[np.arange(rows), rng.integers(0, cols, rows)] = True
    return np.argwhere(mask).astype(np.int64)


def _sum_tensors(rng: np.random.Generator, name: str, pattern: int, rows: int, cols: int):
    """(tensors, edges name, weights name) of a sum group with that pattern."""
    if pattern == pcir.DENSE:
        return [ir.make_tensor(f"{name}.weights", _normalized_rows(rng, rows, cols))], "", \
            f"{name}.weights"
    if pattern == pcir.BLOCK_SPARSE:
        edges = _sparse_edges(rng, rows // BLOCK, cols // BLOCK)
        w = rng.random((len(edges), BLOCK, BLOCK)) + 0.05
        row_sums = np.zeros((rows // BLOCK, BLOCK))
        np.add.at(row_sums, edges[:, 0], w.sum(axis=2))
        w = (w / row_sums[edges[:, 0]][:, :, None]).astype(np.float32)
    else:
        edges = _sparse_edges(rng, rows, cols)
        w = rng.random(len(edges)) + 0.05
        w = (w / np.bincount(edges[:, 0], weights=w)[edges[:, 0]]).astype(np.float32)
    return [ir.make_tensor(f"{name}.edges", edges), ir.make_tensor(f"{name}.weights", w)], \
        f"{name}.edges", f"{name}.weights"


def _input_params(rng: np.random.Generator, dist: int, num_cats: int) -> np.ndarray:
    if dist == pcir.CATEGORICAL_DIST:
        return _normalized_rows(rng, K, num_cats)
    if dist == pcir.BERNOULLI_DIST:
        return rng.uniform(0.05, 0.95, (K, 1)).astype(np.float32)
    return np.stack([rng.normal(0, 1, K), rng.uniform(0.5, 2.0, K)], axis=1).astype(np.float32)


def build_model(seed: int = 0, pattern: int = pcir.DENSE, dist: int = pcir.CATEGORICAL_DIST,
                num_cats: int = 3, tied: bool = False, name: str = "") -> pcir.Model:
    """The shared 10-group shape with the given sum pattern (g6, g7), input
    distribution and, if `tied`, ties g2 -> g0, g3 -> g1 and g7 -> g6."""
    rng = np.random.default_rng(seed)
    kind = {pcir.CATEGORICAL_DIST: pcir.CATEGORICAL, pcir.BERNOULLI_DIST: pcir.BINARY,
            pcir.GAUSSIAN_DIST: pcir.REAL}[dist]
    cats = num_cats if dist == pcir.CATEGORICAL_DIST else 2
    variables = [ir.make_variable(f"x{v}", kind, cats) for v in range(NUM_VARS)]
    tie_pairs = [(2, 0), (3, 1), (7, 6)] if tied else []
    tied_ids = {g for g, _ in tie_pairs}
    groups, tensors = [], []
    for v in range(NUM_VARS):
        params = "" if v in tied_ids else f"g{v}.params"
        if params:
            tensors.append(ir.make_tensor(params, _input_params(rng, dist, cats)))
        groups.append(ir.make_input_group(v, v, dist, K, params, name=f"in{v}"))
    pair_index = np.stack([np.arange(K), np.arange(K)], axis=1)
    for gid, kids in ((4, (0, 1)), (5, (2, 3))):
        tensors.append(ir.make_tensor(f"g{gid}.index", pair_index))
        groups.append(ir.make_product_group(gid, kids, K, kids, f"g{gid}.index"))
    for gid, child, scope in ((6, 4, (0, 1)), (7, 5, (2, 3))):
        made, edges, weights = _sum_tensors(rng, f"g{gid}", pattern, K, K)
        if gid in tied_ids:          # share g6's structure, own no weights
            edges, weights = ("g6.edges" if pattern != pcir.DENSE else ""), ""
        else:
            tensors.extend(made)
        groups.append(ir.make_sum_group(gid, [child], K, scope, pattern, weights, edges,
                                        BLOCK if pattern == pcir.BLOCK_SPARSE else 0))
    index = np.stack([rng.permutation(K), rng.permutation(K)], axis=1)
    tensors.append(ir.make_tensor("g8.index", index))
    groups.append(ir.make_product_group(8, (6, 7), K, range(NUM_VARS), "g8.index"))
    tensors.append(ir.make_tensor("g9.weights", _normalized_rows(rng, 1, K)))
    groups.append(ir.make_sum_group(9, [8], 1, range(NUM_VARS), pcir.DENSE, "g9.weights",
                                    name="root"))
    return ir.make_model(variables, groups, [9], tensors, ties=tie_pairs, name=name)


def small_dense_model(seed: int = 0) -> pcir.Model:
    """Categorical inputs (3 categories), dense sums."""
    return build_model(seed, pcir.DENSE, name="dense")


def small_block_sparse_model(seed: int = 0) -> pcir.Model:
    """Categorical inputs, block-sparse sums g6, g7 (block size 2)."""
    return build_model(seed, pcir.BLOCK_SPARSE, name="block-sparse")


def small_sparse_model(seed: int = 0) -> pcir.Model:
    """Categorical inputs, sparse sums g6, g7 (random edges, each parent covered)."""
    return build_model(seed, pcir.SPARSE, name="sparse")


def tied_model(seed: int = 0, pattern: int = pcir.SPARSE) -> pcir.Model:
    """Ties g2 -> g0, g3 -> g1 (inputs) and g7 -> g6 (sums with equal edges)."""
    return build_model(seed, pattern, tied=True, name="tied")


def bernoulli_model(seed: int = 0) -> pcir.Model:
    """Binary variables with Bernoulli inputs, dense sums."""
    return build_model(seed, pcir.DENSE, pcir.BERNOULLI_DIST, name="bernoulli")


def gaussian_model(seed: int = 0) -> pcir.Model:
    """Real variables with Gaussian inputs (mean, std), dense sums."""
    return build_model(seed, pcir.DENSE, pcir.GAUSSIAN_DIST, name="gaussian")


def categorical_model(seed: int = 0, num_cats: int = 5) -> pcir.Model:
    """Categorical inputs with `num_cats` categories, block-sparse sums."""
    return build_model(seed, pcir.BLOCK_SPARSE, pcir.CATEGORICAL_DIST, num_cats,
                       name="categorical")


ALL_FACTORIES = {
    "dense": small_dense_model, "block_sparse": small_block_sparse_model,
    "sparse": small_sparse_model, "tied": tied_model, "bernoulli": bernoulli_model,
    "gaussian": gaussian_model, "categorical": categorical_model,
}


def naive_layout(model: pcir.Model) -> pcir.Layout:
    """A simple valid Layout of `model` for checker and dump tests.

    One layer per group in id order, block size 1 everywhere (each sum node is
    its own block; each child slot its own backward block). Not what the
    passes produce, but every invariant of ir.check_layout holds.
    """
    table = ir.tensor_table(model)
    owner = ir.tie_targets(model)
    depth = np.zeros(len(model.groups), dtype=np.int64)
    slot = np.zeros(len(model.groups), dtype=np.int64)
    layout = pcir.Layout(ir_version=ir.IR_VERSION, model_hash=ir.structure_hash(model),
                         pipeline="naive-test", compiler_version="test", max_block_size=1,
                         num_vars=len(model.variables))
    tensors, next_slot, sum_params, input_params = [], 2, 1, 0
    param_range: dict[int, tuple[int, int]] = {}
    for g in model.groups:
        slot[g.id] = next_slot
        next_slot += g.num_nodes
        n, s0 = g.num_nodes, int(slot[g.id])
        layer = layout.layers.add(slot_start=s0, num_slots=n, groups=[g.id])
        place = layout.placements.add(group=g.id, slot_start=s0)
        tied_class = owner[g.id] != g.id or any(t.target == g.id for t in model.ties)
        if g.kind == pcir.INPUT:
            layer.kind, layer.level = pcir.INPUT_LAYER, 0
            v = model.variables[g.input.variable]
            width = ir.params_per_node(g.input.dist, v.num_cats)
            if owner[g.id] not in param_range:
                param_range[g.id] = (input_params, n * width)
                input_params += n * width
            start, count = param_range[owner[g.id]]
            tensors += [ir.make_tensor(f"L{g.id}.vars", np.full(n, g.input.variable)),
                        ir.make_tensor(f"L{g.id}.pstarts", start + np.arange(n) * width)]
            layer.input_partitions.add(dist=g.input.dist, slot_start=s0, num_nodes=n,
                                       node_vars=f"L{g.id}.vars",
                                       node_param_starts=f"L{g.id}.pstarts",
                                       params_per_node=width, has_ties=tied_class)
        elif g.kind == pcir.PRODUCT:
            kids = list(g.product.children)
            depth[g.id] = 1 + depth[kids].max()
            layer.kind, layer.level = pcir.PRODUCT_LAYER, int(depth[g.id])
            index = table[g.product.child_index].astype(np.int64)
            tensors.append(ir.make_tensor(f"L{g.id}.kids", slot[kids][None, :] + index))
            layer.product_partitions.add(slot_start=s0, num_nodes=n, num_children=len(kids),
                                         child_slots=f"L{g.id}.kids")
            start, count = 0, 0
        else:
            kids = list(g.sum.children)
            depth[g.id] = 1 + depth[kids].max()
            layer.kind, layer.level = pcir.SUM_LAYER, int(depth[g.id])
            col_slots = np.concatenate([slot[c] + np.arange(model.groups[c].num_nodes)
                                        for c in kids])
            parents, cols = _node_edges(g, table, len(col_slots))
            counts = np.bincount(parents, minlength=n)
            offsets = np.concatenate([[0], np.cumsum(counts)])
            if owner[g.id] not in param_range:
                param_range[g.id] = (sum_params, len(parents))
                sum_params += len(parents)
            start, count = param_range[owner[g.id]]
            k = np.arange(len(parents)) - offsets[parents]
            child_slots = np.zeros((n, counts.max()), dtype=np.int64)
            child_slots[parents, k] = col_slots[cols]
            tensors += [ir.make_tensor(f"L{g.id}.bslots", s0 + np.arange(n)),
                        ir.make_tensor(f"L{g.id}.bcount", counts),
                        ir.make_tensor(f"L{g.id}.kids", child_slots),
                        ir.make_tensor(f"L{g.id}.pstarts", start + offsets[:-1])]
            layer.sum_partitions.add(block_size=1, num_blocks=n, max_children=child_slots.shape[1],
                                     block_slots=f"L{g.id}.bslots",
                                     block_num_children=f"L{g.id}.bcount",
                                     child_slots=f"L{g.id}.kids",
                                     block_param_starts=f"L{g.id}.pstarts",
                                     has_ties=tied_class, kernel="sparse")
            order = np.lexsort((parents, cols))
            ucols, first, per_col = np.unique(cols[order], return_index=True, return_counts=True)
            rank = np.arange(len(order)) - np.repeat(first, per_col)
            row = np.repeat(np.arange(len(ucols)), per_col)
            pslots = np.zeros((len(ucols), per_col.max()), dtype=np.int64)
            pparams = np.zeros_like(pslots)
            pslots[row, rank] = s0 + parents[order]
            pparams[row, rank] = start + offsets[parents[order]] + k[order]
            tensors += [ir.make_tensor(f"L{g.id}.cslots", col_slots[ucols]),
                        ir.make_tensor(f"L{g.id}.ccount", per_col),
                        ir.make_tensor(f"L{g.id}.pslots", pslots),
                        ir.make_tensor(f"L{g.id}.pparams", pparams)]
            layer.sum_backward_partitions.add(
                child_block_size=1, parent_block_size=1, num_blocks=len(ucols),
                max_parents=pslots.shape[1], cblock_slots=f"L{g.id}.cslots",
                cblock_num_parents=f"L{g.id}.ccount", parent_slots=f"L{g.id}.pslots",
                parent_param_starts=f"L{g.id}.pparams", kernel="sparse")
            place.block_size = 1
        place.param_start, place.param_count = start, count
    layout.num_slots, layout.num_sum_params = next_slot, sum_params
    layout.num_input_params = input_params
    layout.root_group = model.roots[0]
    layout.root_slot = int(slot[model.roots[0]])
    layout.tensors.extend(tensors)
    return layout


def _node_edges(g: pcir.Group, table, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(parent, child column) of every edge of a sum group, sorted by parent."""
    n = g.num_nodes
    if g.sum.pattern == pcir.DENSE:
        return np.repeat(np.arange(n), cols), np.tile(np.arange(cols), n)
    edges = table[g.sum.edges].astype(np.int64)
    if g.sum.pattern == pcir.SPARSE:
        return edges[:, 0], edges[:, 1]
    b = g.sum.block_size
    i = np.arange(b)
    parents = np.broadcast_to(edges[:, 0, None, None] * b + i[None, :, None], (len(edges), b, b))
    kids = np.broadcast_to(edges[:, 1, None, None] * b + i[None, None, :], (len(edges), b, b))
    parents, kids = parents.reshape(-1), kids.reshape(-1)
    order = np.lexsort((kids, parents))
    return parents[order], kids[order]
