"""Convert a pccompiler Model (the IR) into PyJuice 2.6.3 nodes.

The race harness (bench/race.py) must time both libraries on the *same*
distribution, so this module rebuilds our circuit with PyJuice's public
construction API (`juice.inputs`, `juice.multiply`, `juice.summate`,
`ns.duplicate(..., tie_params=True)`) and loads OUR parameters into it.
Nothing is learned or re-initialised on the PyJuice side; nothing is copied
back (no `pyjuice_params_to_ours` is needed).

What PyJuice requires, and what we do about it:

* Block sizes. Every PyJuice node vector has a power-of-2 `block_size`; the
  children of one product or one sum must share it, and a product's own
  block size is its children's. We give every group a block size by
  union-find over these "must be equal" constraints (plus ties: a duplicate
  keeps its source's sizes), then take per class the largest power of 2
  that divides every member's `num_nodes`, capped by `max_block_size` and,
  for a BLOCK_SPARSE sum of block b, by the largest power of 2 dividing b.
  A class that meets a 1-node group (a root) therefore gets block size 1.
* Products. PyJuice products take sums or inputs as children, never
  products: a product child of a product is flattened (its index composed
  into the parent's). `child_index` becomes block edges `[N/bs, k]` when it
  is block aligned, otherwise PyJuice's node-level `sparse_edges=True`.
* Sums. PyJuice sums take products as children: an input child or a sum
  child is wrapped in a 1-child product (PyJuice wraps input children the
  same way itself; doing it here keeps `duplicate` type checks happy).
  Each wrapper adds `num_nodes` product edges, as in PyJuice's own count.
  DENSE sums use PyJuice's default all-pairs block edges; BLOCK_SPARSE
  blocks are split into PyJuice blocks when the class block size is smaller;
  SPARSE edges are grouped into the (parent block, child block) pairs that
  contain them, the missing entries get weight 0 and a `zero_param_mask`
  (so the distribution is the same, but PyJuice stores and computes the
  padded blocks).
* Ties. The first group of a tie class (in topological order) is built with
  the owner's parameters; the others are `duplicate(..., tie_params=True)`.
* Root. `model.roots[0]`; a non-sum root is wrapped in an identity sum.
* Compile-time. `juice.compile` inserts its own pass-through sums where
  product depths differ below a sum; these change neither the distribution
  nor our parameters, but add edges to `pc.num_edges`.

Only Categorical and Bernoulli inputs (Bernoulli as Categorical(2) with rows
[1-p, p]) are supported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

import pyjuice as juice
from pyjuice.nodes.distributions import Categorical

from pccompiler import ir
from pccompiler.ir import pcir

__all__ = ["Bridge", "convert", "to_pyjuice", "assign_block_sizes", "pyjuice_edge_count",
           "max_pow2_divisor"]


def max_pow2_divisor(n: int) -> int:
    """Largest power of 2 dividing n (PyJuice's `max_cdf_power_of_2`)."""
    n = int(n)
    return n & -n if n > 0 else 1


@dataclass
class Bridge:
    """The PyJuice twin of a Model.

    root: the root node vector to hand to `juice.compile`.
    nodes: group id -> its PyJuice node vector (products only when they were
        materialised, i.e. used by a sum or as the root).
    block_sizes: group id -> the PyJuice block size chosen for it.
    num_wrappers / wrapper_edges: 1-child products added in front of sum
        children that are inputs or sums (and the identity sum over a
        non-sum root): edges PyJuice has that the Model does not.
    """
    root: object
    nodes: dict[int, object] = field(default_factory=dict)
    block_sizes: dict[int, int] = field(default_factory=dict)
    num_wrappers: int = 0
    wrapper_edges: int = 0


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _flat_product(model: pcir.Model, table, gid: int, cache: dict) -> tuple[list[int], np.ndarray]:
    """(non-product children, index [N, k]) of product `gid` with product
    children flattened: PyJuice products cannot take product children."""
    if gid in cache:
        return cache[gid]
    g = model.groups[gid]
    index = np.asarray(table[g.product.child_index], dtype=np.int64)
    children: list[int] = []
    columns: list[np.ndarray] = []
    for j, c in enumerate(g.product.children):
        if model.groups[c].kind == pcir.PRODUCT:
            sub_children, sub_index = _flat_product(model, table, c, cache)
            children.extend(sub_children)
            columns.append(sub_index[index[:, j]])
        else:
            children.append(int(c))
            columns.append(index[:, j:j + 1])
    cache[gid] = (children, np.concatenate(columns, axis=1))
    return cache[gid]


def assign_block_sizes(model: pcir.Model, max_block_size: int = 1024) -> dict[int, int]:
    """group id -> PyJuice block size (see the module docstring for the rules)."""
    if max_block_size < 1 or max_block_size & (max_block_size - 1):
        raise ValueError(f"max_block_size must be a power of 2, got {max_block_size}")
    table = ir.tensor_table(model)
    groups = model.groups
    uf = _UnionFind(len(groups))
    flat: dict = {}
    caps: dict[int, int] = {}   # group id -> extra cap (block-sparse)

    def cap(gid: int, value: int) -> None:
        caps[gid] = min(caps.get(gid, value), value)

    for g in groups:
        if g.kind == pcir.PRODUCT:
            for c in _flat_product(model, table, g.id, flat)[0]:
                uf.union(g.id, c)
        elif g.kind == pcir.SUM:
            children = list(g.sum.children)
            for c in children[1:]:
                uf.union(children[0], c)
            if g.sum.pattern == pcir.BLOCK_SPARSE:
                b = max_pow2_divisor(g.sum.block_size)
                cap(g.id, b)
                cap(children[0], b)
    for tie in model.ties:
        uf.union(tie.group, tie.target)
        g, t = groups[tie.group], groups[tie.target]
        if g.kind == pcir.SUM:
            uf.union(g.sum.children[0], t.sum.children[0])
    size: dict[int, int] = {}
    for g in groups:
        root = uf.find(g.id)
        limit = min(max_pow2_divisor(g.num_nodes), caps.get(g.id, max_block_size), max_block_size)
        size[root] = min(size.get(root, max_block_size), limit)
    return {g.id: size[uf.find(g.id)] for g in groups}


def _input_params(model: pcir.Model, table, g: pcir.Group) -> tuple[int, np.ndarray | None]:
    """(num_cats, params [N, num_cats] or None when tied) of an input group."""
    if g.input.dist == pcir.CATEGORICAL_DIST:
        num_cats = int(model.variables[g.input.variable].num_cats)
        params = table[g.input.params] if g.input.params else None
        if params is not None:
            num_cats = params.shape[1]
        return num_cats, params
    if g.input.dist == pcir.BERNOULLI_DIST:
        if not g.input.params:
            return 2, None
        p = np.asarray(table[g.input.params], dtype=np.float64).reshape(-1, 1)
        return 2, np.concatenate([1.0 - p, p], axis=1)
    raise NotImplementedError(f"group {g.id} ({g.name!r}): distribution {g.input.dist} has no "
                              f"PyJuice bridge (Categorical and Bernoulli only)")


def _sum_blocks(g: pcir.Group, table, bs: int, cbs: int, num_cols: int
                ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """PyJuice (edge_ids [2, E] or None for all pairs, params [E, bs, cbs],
    zero mask or None) of an untied sum group."""
    n = g.num_nodes
    n_blk, c_blk = n // bs, num_cols // cbs
    if g.sum.pattern == pcir.DENSE:
        w = np.asarray(table[g.sum.weights], dtype=np.float32)
        params = w.reshape(n_blk, bs, c_blk, cbs).transpose(0, 2, 1, 3).reshape(-1, bs, cbs)
        return None, torch.tensor(params), None
    edges = np.asarray(table[g.sum.edges], dtype=np.int64)
    w = np.asarray(table[g.sum.weights], dtype=np.float32)
    if g.sum.pattern == pcir.BLOCK_SPARSE:
        b = g.sum.block_size
        rp, rc = b // bs, b // cbs
        sub = w.reshape(len(edges), rp, bs, rc, cbs).transpose(0, 1, 3, 2, 4).reshape(-1, bs, cbs)
        par = (edges[:, 0, None, None] * rp + np.arange(rp)[None, :, None]).repeat(rc, axis=2)
        chi = (edges[:, 1, None, None] * rc + np.arange(rc)[None, None, :]).repeat(rp, axis=1)
        par, chi = par.reshape(-1), chi.reshape(-1)
        order = np.lexsort((chi, par))
        edge_ids = np.stack([par[order], chi[order]])
        return torch.from_numpy(edge_ids), torch.tensor(sub[order]), None
    # SPARSE: group node edges into the PyJuice blocks that hold them.
    key = (edges[:, 0] // bs) * c_blk + edges[:, 1] // cbs
    blocks, inverse = np.unique(key, return_inverse=True)
    params = np.zeros((len(blocks), bs, cbs), dtype=np.float32)
    present = np.zeros((len(blocks), bs, cbs), dtype=bool)
    params[inverse, edges[:, 0] % bs, edges[:, 1] % cbs] = w
    present[inverse, edges[:, 0] % bs, edges[:, 1] % cbs] = True
    edge_ids = np.stack([blocks // c_blk, blocks % c_blk])
    return torch.from_numpy(edge_ids), torch.from_numpy(params), torch.from_numpy(~present)


def convert(model: pcir.Model, max_block_size: int = 1024) -> Bridge:
    """Build the PyJuice node DAG of `model` with our parameters loaded."""
    table = ir.tensor_table(model)
    groups = model.groups
    sizes = assign_block_sizes(model, max_block_size)
    owners = ir.tie_targets(model)
    flat: dict = {}
    bridge = Bridge(root=None, block_sizes=sizes)
    source: dict[int, object] = {}      # tie owner id -> first PyJuice vector of the class

    def node(gid: int):
        """The PyJuice vector of a group, materialising products lazily."""
        if gid not in bridge.nodes:
            g = groups[gid]
            if g.kind != pcir.PRODUCT:
                raise RuntimeError(f"group {gid} used before it was built")
            children, index = _flat_product(model, table, gid, flat)
            bridge.nodes[gid] = _product(g, [node(c) for c in children], index, sizes[gid])
        return bridge.nodes[gid]

    def sum_child(gid: int):
        ns = node(gid)
        if groups[gid].kind == pcir.PRODUCT:
            return ns
        bridge.num_wrappers += 1
        bridge.wrapper_edges += groups[gid].num_nodes
        return juice.multiply(ns)

    for g in groups:
        owner = owners.get(g.id, g.id)
        bs = sizes[g.id]
        if g.kind == pcir.INPUT:
            num_cats, _ = _input_params(model, table, g)
            if owner in source:
                ns = source[owner].duplicate(int(g.input.variable), tie_params=True)
            else:
                _, params = _input_params(model, table, groups[owner])
                ns = juice.inputs(int(g.input.variable), num_node_blocks=g.num_nodes // bs,
                                  block_size=bs, dist=Categorical(num_cats=num_cats),
                                  params=torch.from_numpy(np.array(params, dtype=np.float32)))
                source[owner] = ns
            bridge.nodes[g.id] = ns
        elif g.kind == pcir.SUM:
            chs = [sum_child(int(c)) for c in g.sum.children]
            if owner in source:
                ns = source[owner].duplicate(*chs, tie_params=True)
            else:
                num_cols = sum(groups[c].num_nodes for c in g.sum.children)
                cbs = sizes[g.sum.children[0]]
                edge_ids, params, zero_mask = _sum_blocks(groups[owner], table, bs, cbs, num_cols)
                ns = juice.summate(*chs, num_node_blocks=g.num_nodes // bs, block_size=bs,
                                   edge_ids=edge_ids)
                if zero_mask is not None:
                    ns.set_zero_param_mask(zero_mask)
                ns.set_params(params, normalize=False)
                source[owner] = ns
            bridge.nodes[g.id] = ns
    root_id = int(model.roots[0])
    bridge.root = node(root_id)
    if groups[root_id].kind != pcir.SUM:
        bridge.root = _identity_sum(sum_child(root_id), sizes[root_id])
        bridge.wrapper_edges += groups[root_id].num_nodes * sizes[root_id]
    return bridge


def to_pyjuice(model: pcir.Model, max_block_size: int = 1024):
    """The PyJuice root node vector of `model` (our parameters loaded)."""
    return convert(model, max_block_size).root


def _product(g: pcir.Group, chs: list, index: np.ndarray, bs: int):
    """A PyJuice product with block edges when `index` is block aligned."""
    n, k = index.shape
    blocks = index.reshape(n // bs, bs, k)
    aligned = (np.all(blocks[:, 0, :] % bs == 0)
               and np.array_equal(blocks - blocks[:, :1, :],
                                  np.broadcast_to(np.arange(bs)[None, :, None], blocks.shape)))
    if aligned:
        return juice.multiply(*chs, edge_ids=torch.from_numpy(blocks[:, 0, :] // bs))
    return juice.multiply(*chs, edge_ids=torch.from_numpy(np.ascontiguousarray(index)),
                          sparse_edges=True)


def _identity_sum(child, bs: int):
    """Sum block i -> child block i with identity weights (a pass-through)."""
    nb = child.num_node_blocks
    edge_ids = torch.arange(nb).repeat(2, 1)
    ns = juice.summate(child, num_node_blocks=nb, block_size=bs, edge_ids=edge_ids)
    ns.set_params(torch.eye(bs).repeat(nb, 1, 1), normalize=False)
    return ns


def pyjuice_edge_count(root) -> int:
    """Edges of a PyJuice node DAG before compilation (PyJuice's counting:
    sum block edges x bs x ch_bs + product nodes x children; inputs 0)."""
    return int(sum(ns.num_edges for ns in root))
