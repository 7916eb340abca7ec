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


class GroupSink:
    """Groups and their tensors (named "g{id}.{key}"), in the order added."""

    def __init__(self):
        self.groups: list[pcir.Group] = []
        self.tensors: list[pcir.Tensor] = []

    def _add(self, group: pcir.Group, **arrays: np.ndarray) -> int:
        self.groups.append(group)
        for key, arr in arrays.items():
            self.tensors.append(ir.make_tensor(f"g{group.id}.{key}", arr))
        return group.id

    def scope(self, gid: int) -> list[int]:
        return list(self.groups[gid].scope)

    def literals(self, var: int) -> int:
        """An indicator input group over `var` and a sum group over it with
        nodes NEG (-v), POS (+v) and TAUT (-v or +v); returns the sum group."""
        gin = self._add(ir.make_input_group(len(self.groups), var, pcir.CATEGORICAL_DIST, 2,
                                            f"g{len(self.groups)}.params", name=f"x{var + 1}"),
                        params=np.array([[1.0, 0.0], [0.0, 1.0]]))
        return self.sum([gin], 3, [var], np.array([NEG, POS, TAUT, TAUT]),
                        np.array([0, 1, 0, 1]), f"x{var + 1} literals")

    def product(self, children, index, scope, label: str) -> int:
        gid = len(self.groups)
        index = np.asarray(index, dtype=np.int64)
        return self._add(ir.make_product_group(gid, [int(c) for c in children], len(index), scope,
                                               f"g{gid}.child_index", name=label),
                         child_index=index)

    def sum(self, children, num_nodes: int, scope, parents: np.ndarray, cols: np.ndarray,
            label: str) -> int:
        """A sparse sum group with weight 1 on each distinct (parent, column) edge."""
        width = max(int(cols.max()) + 1, 1)
        keys = np.unique(np.asarray(parents, dtype=np.int64) * width + cols)
        gid = len(self.groups)
        edges = np.stack([keys // width, keys % width], axis=1).astype(np.int64)
        return self._add(ir.make_sum_group(gid, [int(c) for c in children], num_nodes, scope,
                                           pcir.SPARSE, f"g{gid}.weights", f"g{gid}.edges",
                                           name=label),
                         edges=edges, weights=np.ones(len(edges)))

    def model(self, num_vars: int, root: int, name: str, source_format: str) -> pcir.Model:
        variables = [ir.make_variable(f"x{v}", pcir.CATEGORICAL, 2) for v in range(1, num_vars + 1)]
        return ir.make_model(variables, self.groups, [root], self.tensors, name=name,
                             metadata={SEMANTICS_KEY: LOGIC_SEMANTICS,
                                       "source_format": source_format})
