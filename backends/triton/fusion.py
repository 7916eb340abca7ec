"""Product layers folded into the sum kernels' loads (option `fuse_products`).

A product's value is the sum of its children's log-values, and in HCLT, PD,
RAT-SPN and HMM layouts a product row is read by sum partitions only: the
product kernel writes it and the next sum layer reads it straight back
(bench/step_model.py: 25% of a dense HCLT-128 training step in the product
forward). A fused plan gives every sum part, in place of its child slots,
the children's children: `grand_slots[block, k, a]`, a = 0..A-1, and every
kernel that reads a sum's child values adds those A rows in registers, in
the product kernel's order (so the value is the same fp32 number). A child
that is no fused product is `(child, 1, ..., 1)`: slot 1 holds log 1 = 0
and its loads are masked off, so a part mixes fused and plain children and
products of different arities pad the same way.

Legal because a fused product's value is needed only where a sum reads it:
  * no product partition reads a fused row (its reader would need the row);
  * the root is never fused;
  * a product of more than FUSE_MAX_ARITY children stays a product launch
    (each sum row tile re-reads all A grandchildren per child; a wide
    product would multiply the gathers);
  * a product that two runs of a row-tile part read stays unfused
    (FUSE_TILE_CHILDREN: the tile kernels re-read children per run, see
    bench/step_model.py); one read by a single run (a pruned group stored
    DENSE as one run of its rows) folds in the forward.
Only the plan of log-likelihoods and training (`TritonEngine.fast_plan`)
fuses; the all-node queries (flows, sampling, MPE) read product rows and
keep the Layout plan. The backward folds too (`Fusion.fuse_backward`): the
node-flow kernel reads a folded product's value through the same gathers
(`child_grand`) and passes its flow straight to the product's children
(`child_out`, flow(child) += flow(product)), so product flows are never
written and the product backward launch disappears; not where a row-tile
part writes the product's flows (only with FUSE_TILE_CHILDREN), whose
atomic adds would multiply by A and lose the product's log-ratio writes.

Everything here is in the Layout's slot space; the plan maps the grand
slots through its slot map afterwards (slots 0 and 1 map to themselves).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pccompiler import ir
from pccompiler.ir import pcir

FUSE_MAX_ARITY = 8
FUSE_BACKWARD = True    # False: fused plans keep the product backward (A/B runs, step_model)
# False: products that several runs of a row-tile part read (pruned layers,
# plan.is_tile_part) stay unfused. Their forward tiles, parameter-flow and
# tile-flow kernels re-read every child per row run, so A grandchildren cost
# more than the product launch saves (bench/results/fuse_products-cpu-2026-12-07.md,
# HCLT-128 keep 0.1: 7.10 -> 7.25 ms modeled with them fused). Children of one
# run each (a DENSE group as one run of its rows) fold in the forward.
FUSE_TILE_CHILDREN = False


@dataclass
class Fusion:
    """Which product partitions fold into their readers, and the grandchild
    table of every fused row."""
    fused: set[tuple[int, int]]      # (layer index, product partition index)
    grand: np.ndarray                # int32 [num_slots, A]: (row, 1, ..) or a product's children
    arity: np.ndarray                # int64 [num_slots]: 1, or a fused product's fan-in
    is_fused: np.ndarray             # bool [num_slots]: rows of fused product partitions
    rows: dict[tuple[int, int], np.ndarray]   # a fused partition's rows
    bwd: set[tuple[int, int]] = field(default_factory=set)   # backward fused too
    bwd_row: np.ndarray | None = None         # bool [num_slots]: rows of those

    def of(self, slots: np.ndarray) -> tuple[np.ndarray | None, int]:
        """(grand slots [..., A], A) of child slots, trimmed to the largest
        arity among them; (None, 0) when none is a fused product row (the
        part keeps its plain child slots and kernels)."""
        s = np.asarray(slots, dtype=np.int64)
        if not self.fused or s.size == 0 or not self.is_fused[s].any():
            return None, 0
        a = int(self.arity[s].max())
        return self.grand[s][..., :a], a

    def kind(self, layer: int, index: int) -> tuple[bool, bool]:
        """(forward fused, backward fused) of a product partition."""
        key = (layer, index)
        return key in self.fused, key in self.bwd

    def fuse_backward(self, blocked: np.ndarray | None) -> None:
        """Fold the backward of every fused partition none of whose rows is
        flagged in `blocked` (bool per slot: rows that row-tile flows write,
        tile_flows.py, whose atomic adds would multiply by A and lose the
        product's log-ratio writes); None: fold no backward."""
        self.bwd = set() if blocked is None else {
            key for key, rows in self.rows.items() if not blocked[rows].any()}
        self.bwd_row = np.zeros(self.grand.shape[0], dtype=bool)
        for key in self.bwd:
            self.bwd_row[self.rows[key]] = True

    def out_of(self, rows: np.ndarray) -> tuple[np.ndarray | None, int]:
        """Where the flows of child rows go under backward fusion: a row of a
        backward-fused product to its children, any other row to itself
        ((row, 1, ..)); (None, 0) when no row is backward-fused."""
        r = np.asarray(rows, dtype=np.int64)
        if self.bwd_row is None or r.size == 0 or not self.bwd_row[r].any():
            return None, 0
        a = int(self.arity[r][self.bwd_row[r]].max())
        out = np.ones((r.size, a), dtype=self.grand.dtype)
        out[:, 0] = r
        out[self.bwd_row[r]] = self.grand[r[self.bwd_row[r]]][:, :a]
        return out, a


def plan_fusion(layout: pcir.Layout, exclude: np.ndarray | None = None,
                max_arity: int | None = None) -> Fusion:
    """The fusion of `layout`'s product partitions (see the module
    docstring); a partition with a row flagged in `exclude` (bool per
    slot) stays unfused. max_arity None: FUSE_MAX_ARITY (read at call time).
    The grandchild table is int32 (num_slots x A: 8 bytes per slot and
    grandchild as int64 would be 0.6 GB at 10M slots)."""
    max_arity = FUSE_MAX_ARITY if max_arity is None else max_arity
    t = ir.tensor_table(layout)
    num_slots = int(layout.num_slots)
    read_by_product = np.zeros(num_slots, dtype=bool)
    parts = []
    for li, layer in enumerate(layout.layers):
        for pi, pp in enumerate(layer.product_partitions):
            n, k = int(pp.num_nodes), int(pp.num_children)
            cs = np.asarray(t[pp.child_slots], dtype=np.int64).reshape(n, k)
            read_by_product[cs[cs > 1]] = True
            parts.append((li, pi, int(pp.slot_start), cs))
    width = max([cs.shape[1] for *_, cs in parts if cs.shape[1] <= max_arity], default=1)
    grand = np.ones((num_slots, width), dtype=np.int32 if num_slots < 2**31 else np.int64)
    grand[:, 0] = np.arange(num_slots)
    arity = np.ones(num_slots, dtype=np.int64)
    is_fused = np.zeros(num_slots, dtype=bool)
    fused: set[tuple[int, int]] = set()
    fused_rows: dict[tuple[int, int], np.ndarray] = {}
    root = int(layout.root_slot)
    for li, pi, start, cs in parts:
        n, k = cs.shape
        rows = np.arange(start, start + n)
        if n == 0 or k > max_arity or read_by_product[rows].any() or (rows == root).any():
            continue
        if exclude is not None and exclude[rows].any():
            continue
        fused.add((li, pi))
        fused_rows[(li, pi)] = rows
        grand[rows, :k] = cs
        arity[rows] = k
        is_fused[rows] = True
    return Fusion(fused, grand, arity, is_fused, fused_rows)
