"""Lowering: a builder group DAG -> a `pcir.Model`.

The walk is iterative (a 10,000-step HMM is 30,000 groups deep) and visits
each shared group once. Groups get ids in post-order, so every child id is
smaller than its parent's (the IR's topological rule). Work is per group:
parameter arrays go into Tensors as they are (one copy, into the protobuf
bytes), so lowering a 100M-edge circuit costs seconds and about the memory
of its tensors.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pccompiler import ir
from pccompiler.ir.tensors import add_external_tensor, add_tensor
from pccompiler.frontend.builder import Group, InputGroup, ProductGroup, SumGroup, index_dtype
from pccompiler.errors import BuildError

__all__ = ["lower", "Group", "topological_groups"]

pcir = ir.pcir
_DIST = {"categorical": pcir.CATEGORICAL_DIST, "bernoulli": pcir.BERNOULLI_DIST,
         "gaussian": pcir.GAUSSIAN_DIST}
_PATTERN = {"dense": pcir.DENSE, "block_sparse": pcir.BLOCK_SPARSE, "sparse": pcir.SPARSE}


def topological_groups(root: Group) -> list[Group]:
    """Every group reachable from `root`, children before parents, each once
    (post-order of an iterative depth-first walk; children in call order)."""
    if not isinstance(root, Group):
        raise BuildError(f"lower: root must be a pc group, got {type(root).__name__}")
    done: set[int] = set()
    order: list[Group] = []
    stack: list[tuple[Group, int]] = [(root, 0)]
    while stack:
        group, next_child = stack[-1]
        if next_child < len(group.children):
            stack[-1] = (group, next_child + 1)
            child = group.children[next_child]
            if id(child) not in done:
                stack.append((child, 0))
        else:
            stack.pop()
            if id(group) not in done:
                done.add(id(group))
                order.append(group)
    return order


def _variables(groups: Sequence[Group], num_vars: int | None,
               var_names: Sequence[str] | None) -> list[pcir.Variable]:
    """One Variable per id 0..max var; kinds from the input groups on it."""
    seen: dict[int, tuple[str, int, Group]] = {}   # var -> (family, num_cats, first group)
    binary_only: dict[int, bool] = {}
    for g in groups:
        if not isinstance(g, InputGroup):
            continue
        family = "real" if g.dist.kind == "gaussian" else "discrete"
        prev = seen.get(g.var)
        if prev is None:
            seen[g.var] = (family, g.num_cats, g)
            binary_only[g.var] = g.dist.kind == "bernoulli"
            continue
        if prev[0] != family or prev[1] != g.num_cats:
            raise BuildError(f"{g.label}: variable {g.var} is {g.dist.kind} with "
                             f"{g.num_cats} categories here but {prev[2].dist.kind} with "
                             f"{prev[1]} categories in {prev[2].label}")
        binary_only[g.var] &= g.dist.kind == "bernoulli"
    top = max(seen) + 1 if seen else 0
    if num_vars is None:
        num_vars = top
    elif num_vars < top:
        raise BuildError(f"lower: num_vars={num_vars} but the circuit uses variable {top - 1}")
    if var_names is not None and len(var_names) != num_vars:
        raise BuildError(f"lower: {len(var_names)} var_names for {num_vars} variables")
    out = []
    for v in range(num_vars):
        name = var_names[v] if var_names is not None else f"x{v}"
        family, num_cats, _ = seen.get(v, ("discrete", 2, None))
        if family == "real":
            out.append(ir.make_variable(name, pcir.REAL))
        elif binary_only.get(v, True):
            # Bernoulli-only variables (and variables no group reads) are binary.
            out.append(ir.make_variable(name, pcir.BINARY))
        else:
            out.append(ir.make_variable(name, pcir.CATEGORICAL, num_cats))
    return out


def _tie_owners(groups: Sequence[Group], ids: dict[int, int]) -> dict[int, int]:
    """IR id -> IR id of the group that holds its tie class's tensor.

    The builder's owner holds it when it is part of the lowered circuit;
    otherwise the first lowered member of the class takes its place.
    """
    owners: dict[int, int] = {}
    stand_in: dict[int, int] = {}
    for g in groups:
        owner = g.tie_target
        if owner is None:
            continue
        if id(owner) in ids:
            owners[ids[id(g)]] = ids[id(owner)]
        else:
            first = stand_in.setdefault(id(owner), ids[id(g)])
            if first != ids[id(g)]:
                owners[ids[id(g)]] = first
    return owners


def _float_tensor(array: np.ndarray) -> np.ndarray:
    if array.dtype not in (np.float32, np.float64, np.float16):
        array = array.astype(np.float64)
    return np.ascontiguousarray(array)


def _tensor_array(g: Group, attribute: str) -> np.ndarray:
    if attribute == "index":
        return g.index.astype(index_dtype(max(c.num_nodes for c in g.children)), copy=False)
    if attribute == "edges":
        return g.edges
    return _float_tensor(getattr(g, attribute))


def lower(root: Group, *, name: str = "", validate: bool = True, num_vars: int | None = None,
          var_names: Sequence[str] | None = None,
          metadata: dict[str, str] | None = None,
          arrays_out: dict[str, np.ndarray] | None = None,
          external: bool = False) -> pcir.Model:
    """Lower the circuit rooted at `root` to a Model (root = [root's id]).

    `num_vars` extends the variable list past the largest variable used;
    `validate` runs `ir.check` when the checker is available. `arrays_out`:
    a dict that receives {parameter tensor name: the builder's array its
    bytes were copied from}, no copy, so `pccompiler.compile` can hand the
    backend the arrays by reference (ir/external_arrays.py).
    `external=True` (needs `arrays_out`; `pccompiler.compile` of a group):
    those parameter tensors hold no bytes at all, only
    `external {location: "memory"}`, and `arrays_out` is the one copy of
    their values. Writing them into the Model is most of lowering a large
    circuit (bsp050's 236 MB: 0.5 s of 0.55 s), and a layout-cache hit never
    reads them: the backend packs the arrays. Such a Model is for this
    process only: the layout cache inlines it (`inline_arrays`) before a
    pass or the cache itself needs the values.
    """
    if external and arrays_out is None:
        raise ValueError("lower(external=True) hands the parameter arrays out through "
                         "arrays_out; pass a dict")
    groups = topological_groups(root)
    ids = {id(g): i for i, g in enumerate(groups)}
    variables = _variables(groups, num_vars, var_names)
    owners = _tie_owners(groups, ids)
    messages = []
    pending: list[tuple[str, Group, str]] = []   # (tensor name, group, attribute)
    for gid, g in enumerate(groups):
        tied = gid in owners
        scope = g.scope_array.tolist() if not isinstance(g, InputGroup) else [g.var]
        if isinstance(g, InputGroup):
            params_name = ""
            if not tied:
                params_name = f"g{gid}.params"
                pending.append((params_name, g, "params"))
            messages.append(ir.make_input_group(gid, g.var, _DIST[g.dist.kind], g.num_nodes,
                                                params_name, name=g.name))
        elif isinstance(g, ProductGroup):
            index_name = f"g{gid}.index"
            pending.append((index_name, g, "index"))
            messages.append(ir.make_product_group(gid, [ids[id(c)] for c in g.children],
                                                  g.num_nodes, (), index_name, name=g.name))
        elif isinstance(g, SumGroup):
            weights_name = edges_name = ""
            if g.edges is not None:
                edges_name = f"g{gid}.edges"
                pending.append((edges_name, g, "edges"))
            if not tied:
                weights_name = f"g{gid}.weights"
                pending.append((weights_name, g, "weights"))
            messages.append(ir.make_sum_group(
                gid, [ids[id(c)] for c in g.children], g.num_nodes, (), _PATTERN[g.pattern],
                weights_name, edges_name, g.block_size, name=g.name))
        else:
            raise BuildError(f"lower: unknown group type {type(g).__name__}")
        # The builder's scope is already sorted and unique: extend in C rather
        # than through the helpers' per-variable Python set (deep circuits
        # have scopes of thousands of variables in thousands of groups).
        messages[-1].scope[:] = scope
    model = ir.make_model(variables, messages, [ids[id(root)]], (),
                          ties=sorted(owners.items()), name=name, metadata=metadata)
    # Tensors are made one at a time in place (add_tensor: appending a made
    # Tensor copies its bytes once more, 0.5 s of bsp050's 236 MB), so at
    # most one temporary copy of one array is alive besides the Model's bytes.
    for tensor_name, g, attribute in pending:
        array = _tensor_array(g, attribute)
        held = arrays_out is not None and attribute in ("params", "weights") \
            and array.dtype.isnative
        if not (held and external and add_external_tensor(model.tensors, array, tensor_name)):
            add_tensor(model.tensors, array, tensor_name)
        if held:
            arrays_out[tensor_name] = array
    if validate:
        ir.check(model, arrays=arrays_out if external else None)
    return model
