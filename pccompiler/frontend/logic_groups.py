"""The groups both logic-circuit importers (sdd.py, nnf.py) emit: literal
groups, product groups and weight-1 sparse sum groups, appended in
topological order, and the finished logic-circuit Model (metadata
semantics=logic, binary variables x1..xn)."""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.ir.checker import LOGIC_SEMANTICS, SEMANTICS_KEY

pcir = ir.pcir
# Node indices in a variable's literal group (GroupSink.literals).
NEG, POS, TAUT = 0, 1, 2
_LITERAL_PARAMS = np.array([[1.0, 0.0], [0.0, 1.0]])
_LITERAL_EDGES = np.array([[NEG, 0], [POS, 1], [TAUT, 0], [TAUT, 1]], dtype=np.int64)


class GroupSink:
    """Groups and their tensors (named "g{id}.{key}"), in the order added."""

    def __init__(self):
        # Groups and tensors are made inside the Model (no copy at the end).
        self._model = ir.make_model([], [], [])
        self.groups = self._model.groups
        self.tensors = self._model.tensors

    def _add(self, group: pcir.Group | dict, **arrays: np.ndarray) -> int:
        """Append a group (a message, or the fields of one) and its tensors."""
        if isinstance(group, dict):
            gid = self.groups.add(**group).id
        else:
            self.groups.append(group)
            gid = group.id
        for key, arr in arrays.items():
            _add_tensor(self.tensors, f"g{gid}.{key}", arr)
        return gid

    def scope(self, gid: int) -> list[int]:
        return list(self.groups[gid].scope)

    def literals(self, var: int) -> int:
        """An indicator input group over `var` and a sum group over it with
        nodes NEG (-v), POS (+v) and TAUT (-v or +v); returns the sum group."""
        gin = self._add(ir.make_input_group(len(self.groups), var, pcir.CATEGORICAL_DIST, 2,
                                            f"g{len(self.groups)}.params", name=f"x{var + 1}"),
                        params=_LITERAL_PARAMS)
        return self.sum_edges([gin], 3, [var], _LITERAL_EDGES, f"x{var + 1} literals")

    def product(self, children, index, scope, label: str) -> int:
        """A product group over `scope` (any iterable of variables)."""
        return self.product_sorted([int(c) for c in children], index,
                                   sorted(set(int(v) for v in scope)), label)

    def product_sorted(self, children: list[int], index, scope: list[int], label: str) -> int:
        """A product group; `scope` is sorted and distinct, `index` [nodes, children]."""
        gid = len(self.groups)
        index = np.asarray(index, dtype=np.int64)
        return self._add(dict(id=gid, name=label, kind=pcir.PRODUCT, num_nodes=len(index),
                              scope=scope,
                              product=dict(children=children, child_index=f"g{gid}.child_index")),
                         child_index=index)

    def sum(self, children, num_nodes: int, scope, parents: np.ndarray, cols: np.ndarray,
            label: str) -> int:
        """A sparse sum group with weight 1 on each distinct (parent, column) edge."""
        width = max(int(cols.max()) + 1, 1)
        keys = np.unique(np.asarray(parents, dtype=np.int64) * width + cols)
        edges = np.stack([keys // width, keys % width], axis=1).astype(np.int64)
        return self.sum_edges([int(c) for c in children], num_nodes,
                              sorted(set(int(v) for v in scope)), edges, label)

    def sum_edges(self, children: list[int], num_nodes: int, scope: list[int], edges: np.ndarray,
                  label: str) -> int:
        """A sparse sum group with weight 1 on each row (parent, column) of
        `edges` (int64 [E, 2], distinct, sorted); `scope` must be sorted."""
        gid = len(self.groups)
        return self._add(dict(id=gid, name=label, kind=pcir.SUM, num_nodes=num_nodes,
                              scope=scope,
                              sum=dict(children=children, pattern=pcir.SPARSE,
                                       weights=f"g{gid}.weights", edges=f"g{gid}.edges")),
                         edges=edges, weights=_ones(len(edges)))

    def model(self, num_vars: int, root: int, name: str, source_format: str) -> pcir.Model:
        """The finished Model (what ir.make_model would build from the groups)."""
        m = self._model
        m.variables.extend(ir.make_variable(f"x{v}", pcir.CATEGORICAL, 2)
                           for v in range(1, num_vars + 1))
        m.roots.append(int(root))
        m.name = name
        m.metadata.update({SEMANTICS_KEY: LOGIC_SEMANTICS, "source_format": source_format})
        return m


_ONES = np.ones(0)


def _ones(n: int) -> np.ndarray:
    """n float64 ones, a view of one cached array (weights of every group)."""
    global _ONES
    if len(_ONES) < n:
        _ONES = np.ones(max(n, 2 * len(_ONES)))
    return _ONES[:n]


def _add_tensor(tensors, name: str, arr: np.ndarray) -> None:
    """tensors.append(ir.make_tensor(name, arr)) without its dtype dispatch
    for the two dtypes used here (it costs more than the copy for the small
    arrays of logic groups)."""
    code = _FAST_DTYPES.get(arr.dtype)
    if code is None:
        tensors.append(ir.make_tensor(name, arr))
    else:
        tensors.add(name=name, dtype=code, dims=arr.shape,
                    raw_data=np.ascontiguousarray(arr).tobytes())


_FAST_DTYPES = {np.dtype("<i8"): pcir.INT64, np.dtype("<f8"): pcir.FLOAT64}
