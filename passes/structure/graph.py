"""Shared pieces of the structure changes: decoding a group's sum edges,
breaking ties, and assembling the new Model.

A changed sum group is always written as SPARSE (sorted, unique (parent,
child column) pairs with one weight each); the passes re-detect blocks.
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.errors import PCError
from pccompiler.ir import pcir
from pccompiler.ir.model_view import sum_edge_list
from pccompiler.ir.nodes import is_node_model
from pccompiler.passes.helpers.edit import child_offsets, copy_without_tensors, index_dtype


def require_groups(model: pcir.Model, what: str) -> None:
    """Refuse a node-form Model (ir/nodes.py): the structure changes work on
    groups, and a node-form logic circuit has none."""
    if is_node_model(model):
        raise PCError(f"{what}: {model.name or 'this model'} is a node-form circuit "
                      f"({model.nodes.num_nodes} nodes, no groups); {what} works on group "
                      "circuits: import it with `pcc import FILE --form groups` (the "
                      "default) or `pc.from_sdd(path, form='groups')`")


def untie_model(model: pcir.Model) -> pcir.Model:
    """`model` with its ties broken: every tied group gets its own copy of
    its target's parameter tensor (and of the edge list its pattern needs,
    if it had none), and `ties` is emptied. The distribution is unchanged;
    the groups no longer share parameters or statistics. A model without
    ties is returned as is.

    Why structure changes break ties: pruning removes a node where no kept
    edge reaches it, which differs between the copies of a tied class (the
    first and the last step of an HMM are reached differently), and growing
    with noise perturbs each copy on its own; keeping the class identical
    would forbid both. Tied edges are still ranked together: the flow
    accumulator of a tie class sums its members' flows, and
    `pccompiler.train.prune_grow.edge_flows` gives every member that sum.
    """
    if not model.ties:
        return model
    out = pcir.Model()
    out.CopyFrom(model)
    del out.ties[:]
    table = ir.tensor_table(model)
    used = {t.name for t in model.tensors}
    for tie in model.ties:
        g, target = out.groups[tie.group], model.groups[tie.target]
        if g.kind == pcir.INPUT and not g.input.params:
            g.input.params = fresh_name(f"g{g.id}.params", used)
            out.tensors.append(ir.from_numpy(np.ascontiguousarray(table[target.input.params]),
                                             g.input.params))
        elif g.kind == pcir.SUM:
            if not g.sum.weights:
                g.sum.weights = fresh_name(f"g{g.id}.weights", used)
                out.tensors.append(ir.from_numpy(np.ascontiguousarray(table[target.sum.weights]),
                                                 g.sum.weights))
            if target.sum.edges and not g.sum.edges:
                g.sum.edges = fresh_name(f"g{g.id}.edges", used)
                out.tensors.append(ir.from_numpy(np.ascontiguousarray(table[target.sum.edges]),
                                                 g.sum.edges))
    return out


def edges_of(model: pcir.Model, g: pcir.Group, table: ir.TensorTable,
             values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(parents, child columns, values) of every stored edge of sum group g;
    values default to the weights, else `values` has the weight tensor's shape."""
    if values is None:
        values = np.asarray(table[g.sum.weights])
    sizes = [int(model.groups[c].num_nodes) for c in g.sum.children]
    return sum_edge_list(g, table, values, sizes)


def child_group_of(model: pcir.Model, g: pcir.Group, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in g.sum.children, node index in that child group) of each column."""
    offs = child_offsets(model, g)
    j = np.searchsorted(offs, cols, side="right") - 1
    return j, cols - offs[j]


def normalised_sparse(parents: np.ndarray, cols: np.ndarray, weights: np.ndarray, num_nodes: int,
                      dtype, renormalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(edges [E, 2] sorted by (parent, column), weights renormalised per
    parent unless `renormalise` is False: then they are stored as given)."""
    order = np.lexsort((cols, parents))
    parents, cols, w = parents[order], cols[order], np.asarray(weights, np.float64)[order]
    if renormalise:
        w = w / np.bincount(parents, weights=w, minlength=num_nodes)[parents]
    edges = np.stack([parents, cols], axis=1)
    return edges.astype(index_dtype(int(edges.max(initial=0)))), w.astype(dtype)


def fresh_name(base: str, used: set[str]) -> str:
    """`base`, or `base.N` for the first N that is not in `used` (then added)."""
    name, n = base, 1
    while name in used:
        name, n = f"{base}.{n}", n + 1
    used.add(name)
    return name


def rebuild(model: pcir.Model, groups: list[pcir.Group], arrays: dict[str, np.ndarray],
            roots: list[int]) -> pcir.Model:
    """A Model with `groups` (ids already final) and `roots`; tensors named by
    the groups come from `arrays` where given, else from `model` unchanged,
    in `model`'s order (new names last)."""
    new = copy_without_tensors(model)
    del new.groups[:]
    new.groups.extend(groups)
    del new.roots[:]
    new.roots.extend(roots)
    used = set()
    for g in groups:
        if g.kind == pcir.INPUT:
            used.add(g.input.params)
        elif g.kind == pcir.PRODUCT:
            used.add(g.product.child_index)
        else:
            used.update([g.sum.weights, g.sum.edges])
    used.discard("")
    pending = dict(arrays)
    for t in model.tensors:
        if t.name not in used:
            continue
        array = pending.pop(t.name, None)
        new.tensors.append(t if array is None else ir.from_numpy(np.ascontiguousarray(array), t.name))
    new.tensors.extend(ir.from_numpy(np.ascontiguousarray(a), n) for n, a in pending.items())
    return new
