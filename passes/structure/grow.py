"""Growing a circuit by copying nodes (Dang, Liu & Van den Broeck,
"Sparse Probabilistic Circuits via Pruning and Growing", NeurIPS 2022).

`grow_model(model, factor, noise, seed)` does exactly this:

- Every group of n nodes becomes a group of factor x n nodes: copy k of
  node i is node k x n + i (copy 0 is the original). Root groups that no
  group reads are not copied (the circuit keeps one distribution).
- Input node copies get the original's parameters; product node copy k
  multiplies copy k of each of the original's children.
- Every sum edge (n, c) with weight w becomes the factor x factor edges
  from each copy of n to each copy of c, each of weight w / factor (zero
  -weight pseudo-edges are dropped). Changed sum groups are written SPARSE.

By induction every copy of a node computes the original's value, so at
noise 0 the distribution is unchanged. Then, with eps ~ N(0, 1) drawn per
parameter from `numpy.random.default_rng(seed)`: every sum weight is
multiplied by max(1 + noise x eps, 1e-6) and each node's weights
renormalised (at noise 0 the weights w / factor are stored as they are,
so the grown circuit computes exactly what the original does when factor is
a power of two); categorical rows likewise; Bernoulli p is multiplied by the
same kind of factor and clipped to [1e-6, 1 - 1e-6]; a Gaussian mean moves
by noise x eps x its standard deviation. noise = 0 draws nothing and
leaves every parameter exact.
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.errors import PCError
from pccompiler.ir import pcir
from pccompiler.passes.helpers.edit import index_dtype, readers
from pccompiler.passes.structure.graph import (child_group_of, edges_of, fresh_name,
                                               normalised_sparse, rebuild, require_groups,
                                               untie_model)


def _factors(shape, noise: float, rng) -> np.ndarray | float:
    if noise == 0:
        return 1.0
    return np.maximum(1.0 + noise * rng.standard_normal(shape), 1e-6)


def _grow_inputs(g: pcir.Group, params: np.ndarray, copies: int, noise: float, rng) -> np.ndarray:
    p = np.tile(np.asarray(params, np.float64), (copies, 1))
    if noise == 0:
        return p.astype(params.dtype)
    if g.input.dist == pcir.CATEGORICAL_DIST:
        p = p * _factors(p.shape, noise, rng)
        p /= p.sum(axis=1, keepdims=True)
    elif g.input.dist == pcir.BERNOULLI_DIST:
        p = np.clip(p * _factors(p.shape, noise, rng), 1e-6, 1 - 1e-6)
    elif g.input.dist == pcir.GAUSSIAN_DIST:
        p[:, 0] += noise * rng.standard_normal(len(p)) * p[:, 1]
    return p.astype(params.dtype)


def grow_model(model: pcir.Model, factor: int = 2, noise: float = 0.0, seed: int = 0
               ) -> pcir.Model:
    """The grown Model (module docstring); `factor` >= 1 copies per node."""
    require_groups(model, "grow")
    if int(factor) != factor or factor < 1:
        raise PCError(f"grow: factor must be an integer >= 1, not {factor}")
    if noise < 0:
        raise PCError(f"grow: noise must be >= 0, not {noise}")
    model = untie_model(model)
    factor = int(factor)
    rng = np.random.default_rng(seed)
    table = ir.tensor_table(model)
    read = readers(model)
    copies = {g.id: 1 if (g.id in model.roots and not read[g.id]) else factor
              for g in model.groups}
    used = {t.name for t in model.tensors}
    groups, arrays = [], {}
    for g in model.groups:
        ng = pcir.Group()
        ng.CopyFrom(g)
        n, f = int(g.num_nodes), copies[g.id]
        ng.num_nodes = n * f
        groups.append(ng)
        if g.kind == pcir.INPUT:
            arrays[g.input.params] = _grow_inputs(g, np.asarray(table[g.input.params]), f,
                                                  noise, rng)
        elif g.kind == pcir.PRODUCT:
            index = np.asarray(table[g.product.child_index], dtype=np.int64)
            sizes = np.array([model.groups[c].num_nodes for c in g.product.children], np.int64)
            grown = (index[None] + np.arange(f)[:, None, None] * sizes).reshape(n * f, -1)
            arrays[g.product.child_index] = grown.astype(index_dtype(int(grown.max(initial=0))))
        elif g.kind == pcir.SUM:
            _grow_sum(model, g, ng, table, copies, factor, noise, rng, arrays, used)
    return rebuild(model, groups, arrays, list(model.roots))


def _grow_sum(model, g, ng, table, copies, factor, noise, rng, arrays, used) -> None:
    parents, cols, w = edges_of(model, g, table)
    nz = w > 0
    parents, cols, w = parents[nz], cols[nz], w[nz]
    j, local = child_group_of(model, g, cols)
    sizes = np.array([model.groups[c].num_nodes for c in g.sum.children], np.int64)
    grown_sizes = sizes * np.array([copies[c] for c in g.sum.children], np.int64)
    offs = np.concatenate([[0], np.cumsum(grown_sizes)])
    f = copies[g.id]
    k = np.arange(f)[:, None, None]                      # parent copy
    kc = np.arange(factor)[None, :, None]                # child copy
    new_p = np.broadcast_to(k * int(g.num_nodes) + parents, (f, factor, len(w))).ravel()
    new_c = np.broadcast_to(offs[j] + kc * sizes[j] + local, (f, factor, len(w))).ravel()
    new_w = np.broadcast_to(w / factor, (f, factor, len(w))).ravel()
    new_w = new_w * _factors(new_w.shape, noise, rng)
    edges, weights = normalised_sparse(new_p, new_c, new_w, int(ng.num_nodes),
                                       np.asarray(table[g.sum.weights]).dtype, noise > 0)
    ng.sum.pattern, ng.sum.block_size = pcir.SPARSE, 0
    if not g.sum.edges:
        ng.sum.edges = fresh_name(f"{g.sum.weights}.edges", used)
    arrays[ng.sum.edges] = edges
    arrays[g.sum.weights] = weights
