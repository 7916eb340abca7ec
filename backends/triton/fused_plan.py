"""The one-launch plan: a whole Layout as flat node-level tables (fused.py).

Samples are independent, so a forward (or a backward) over the whole
circuit can be one kernel launch in which each program owns a slice of the
batch and walks every layer in order (fused_kernels.py). The kernel needs
the Layout as data it loops over at run time, not one launch per
partition. This module flattens any Layout (whatever made it: it reads
only the input / product / sum partitions) into:

* **steps**: int64 [S, 5] rows (kind, first row, end row, dist, categories),
  kind 0 input, 1 product, 2 sum; one step per (layer, kind) and, for
  inputs, per (distribution, categories). Steps run in order with a
  CTA-wide barrier after each; the rows of one step never read each other.
* **rows**: per node of a step its slot, and a CSR range into the edges;
  inputs also their variable and parameter start.
* **forward edges** (a row's children): the child slot and, for sums, the
  index of the edge's weight in the sum parameters (block row m of block b,
  child k: block_param_starts[b] + k * block_size + m). Padding is dropped
  (sum children past `block_num_children`, product children in slot 1).
  The backward walks the same steps in reverse and pushes each row's flow
  along these edges (fused_kernels.py says why it scatters).
* **variables**: per variable the input nodes over it (slot, parameter
  start, categories), for the gradient with respect to soft evidence.

Everything is built with vectorised numpy, once per engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pccompiler import ir
from pccompiler.backends.common.upload import upload
from pccompiler.backends.triton.plan import DIST_CODES
from pccompiler.errors import UnsupportedError
from pccompiler.ir import pcir

INPUT, PRODUCT, SUM = 0, 1, 2
STEP_FIELDS = 5       # kind, row start, row end, dist, categories


@dataclass
class FusedPlan:
    """A Layout as the fused kernels read it (see the module docstring).
    Index tensors are int32 except edge weight indices, parameter starts
    and CSR starts (int64)."""
    num_slots: int
    root_slot: int
    num_vars: int
    steps: torch.Tensor            # int64 [S * STEP_FIELDS], forward order
    bwd_steps: torch.Tensor        # the same steps, reversed
    row_slot: torch.Tensor         # int32 [R]
    row_var: torch.Tensor          # int32 [R] (inputs; 0 elsewhere)
    row_ps: torch.Tensor           # int64 [R] (inputs: parameter start)
    fwd_beg: torch.Tensor          # int64 [R]
    fwd_cnt: torch.Tensor          # int32 [R]
    fwd_slot: torch.Tensor         # int32 [E]: child slots
    fwd_w: torch.Tensor            # int64 [E]: sum weight index (0 for products)
    var_beg: torch.Tensor          # int64 [V]
    var_cnt: torch.Tensor          # int32 [V]
    var_slot: torch.Tensor         # int32 [I]: input node slots grouped by variable
    var_ps: torch.Tensor           # int64 [I]
    var_cats: torch.Tensor         # int32 [I]
    num_steps: int = 0
    num_rows: int = 0
    num_edges: int = 0
    max_fan_in: int = 0
    dists: frozenset = frozenset()
    max_cats: int = 0


def layout_size(layout: pcir.Layout) -> tuple[int, int, int]:
    """(nodes, edges, largest fan-in) of a Layout from its partition headers
    only (sum edges counted at the padded fan-in): what the engine's size
    rule reads before it builds any plan."""
    rows = edges = fan_in = 0
    for layer in layout.layers:
        for ip in layer.input_partitions:
            rows += int(ip.num_nodes)
        for pp in layer.product_partitions:
            rows += int(pp.num_nodes)
            edges += int(pp.num_nodes) * int(pp.num_children)
            fan_in = max(fan_in, int(pp.num_children))
        for sp in layer.sum_partitions:
            n = int(sp.num_blocks) * int(sp.block_size)
            rows += n
            edges += n * int(sp.max_children)
            fan_in = max(fan_in, int(sp.max_children))
    return rows, edges, fan_in


def layout_dists(layout: pcir.Layout) -> dict[int, int]:
    """{distribution code: largest parameters per node} over the input partitions
    (-1 for a distribution the kernels do not know)."""
    out: dict[int, int] = {}
    for layer in layout.layers:
        for ip in layer.input_partitions:
            code = DIST_CODES.get(ip.dist, -1)
            out[code] = max(out.get(code, 0), int(ip.params_per_node))
    return out


def _csr(keys: np.ndarray, order_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group entries by key: (permutation sorting `keys` stably, CSR start and
    count per entry of `order_keys`)."""
    perm = np.argsort(keys, kind="stable")
    sk = keys[perm]
    beg = np.searchsorted(sk, order_keys, side="left")
    end = np.searchsorted(sk, order_keys, side="right")
    return perm, beg.astype(np.int64), (end - beg).astype(np.int64)


def _check_order(row_slot: np.ndarray, steps: list, e_row: np.ndarray, e_child: np.ndarray,
                 num_slots: int) -> None:
    """Every child is a constant (slot 0 or 1) or a node of an earlier step,
    and no slot is written twice: what one pass in step order needs. The
    layer-by-layer path launches a layer's partitions one after another, so
    a Layout could in principle let a partition read another of its own
    layer; the fused path refuses such a Layout (UnsupportedError) rather
    than reading a row before it is written."""
    step_of_row = np.repeat(np.arange(len(steps)),
                            [hi - lo for _, lo, hi, _, _ in steps]).astype(np.int64)
    if np.unique(row_slot).size != row_slot.size:
        raise UnsupportedError("fused path: a slot is written by two nodes of the Layout")
    step_of_slot = np.full(num_slots, len(steps), dtype=np.int64)   # never written: too late
    step_of_slot[:2] = -1
    step_of_slot[row_slot] = step_of_row
    late = step_of_slot[e_child] >= step_of_row[e_row]
    if late.any():
        i = int(np.flatnonzero(late)[0])
        raise UnsupportedError(
            f"fused path: node in slot {int(row_slot[e_row[i]])} (step "
            f"{int(step_of_row[e_row[i]])}) reads slot {int(e_child[i])}, which no earlier "
            "step writes; run this Layout with fused=False")


def build_fused_plan(layout: pcir.Layout, num_vars: int, device: torch.device | str
                     ) -> FusedPlan:
    """Flatten `layout` into a FusedPlan on `device` (loops over partitions only)."""
    t = ir.tensor_table(layout)
    arr = lambda name: np.asarray(t[name], dtype=np.int64)  # noqa: E731
    steps: list[tuple[int, int, int, int, int]] = []
    slots, vars_, pss = [], [], []
    e_row, e_child, e_w = [], [], []        # forward edges: row index, child slot, weight
    nrows = 0

    def add_rows(kind: int, s: np.ndarray, v: np.ndarray, p: np.ndarray,
                 dist: int = 0, cats: int = 0) -> np.ndarray:
        nonlocal nrows
        idx = nrows + np.arange(s.size)
        slots.append(s)
        vars_.append(v)
        pss.append(p)
        nrows += s.size
        if s.size:
            steps.append((kind, int(idx[0]), nrows, dist, cats))
        return idx

    for layer in layout.layers:
        groups: dict[tuple[int, int], list] = {}
        for ip in layer.input_partitions:
            n = int(ip.num_nodes)
            code = DIST_CODES.get(ip.dist, -1)
            g = groups.setdefault((code, int(ip.params_per_node)), [[], [], []])
            g[0].append(int(ip.slot_start) + np.arange(n))
            g[1].append(arr(ip.node_vars).reshape(n))
            g[2].append(arr(ip.node_param_starts).reshape(n))
        for (code, cats), (s, v, p) in groups.items():
            add_rows(INPUT, np.concatenate(s), np.concatenate(v), np.concatenate(p), code, cats)
        ps_, cs_ = [], []
        for pp in layer.product_partitions:
            n, k = int(pp.num_nodes), int(pp.num_children)
            ps_.append(int(pp.slot_start) + np.arange(n))
            cs_.append(arr(pp.child_slots).reshape(n, k))
        if ps_:
            s = np.concatenate(ps_)
            idx = add_rows(PRODUCT, s, np.zeros_like(s), np.zeros_like(s))
            for cs, first in zip(cs_, np.cumsum([0] + [c.shape[0] for c in cs_[:-1]])):
                r, c = np.nonzero(cs != 1)             # slot 1 (log 1 = 0) pads products
                e_row.append(idx[first + r])
                e_child.append(cs[r, c])
                e_w.append(np.full(r.size, -1, dtype=np.int64))
        srows, sedges = [], []
        for sp in layer.sum_partitions:
            nb, bs, k = int(sp.num_blocks), int(sp.block_size), int(sp.max_children)
            bslots, nc = arr(sp.block_slots).reshape(nb), arr(sp.block_num_children).reshape(nb)
            cs, bps = arr(sp.child_slots).reshape(nb, k), arr(sp.block_param_starts).reshape(nb)
            srows.append((bslots[:, None] + np.arange(bs)[None, :]).reshape(-1))
            b, m, kk = np.nonzero(np.broadcast_to((np.arange(k)[None, None, :]
                                                   < nc[:, None, None]), (nb, bs, k)))
            sedges.append((b * bs + m, cs[b, kk], bps[b] + kk * bs + m))
        if srows:
            s = np.concatenate(srows)
            idx = add_rows(SUM, s, np.zeros_like(s), np.zeros_like(s))
            first = np.cumsum([0] + [r.size for r in srows[:-1]])
            for (r, c, w), f in zip(sedges, first):
                e_row.append(idx[f + r])
                e_child.append(c)
                e_w.append(w)
    cat = lambda a, dt=np.int64: (np.concatenate(a) if a else np.zeros(0)).astype(dt)  # noqa: E731
    row_slot, row_var, row_ps = cat(slots), cat(vars_), cat(pss)
    e_row, e_child, e_w = cat(e_row), cat(e_child), cat(e_w)
    rows = np.arange(nrows)
    _check_order(row_slot, steps, e_row, e_child, int(layout.num_slots))
    fperm, fbeg, fcnt = _csr(e_row, rows)
    # Variables: input rows grouped by variable, for soft-evidence gradients.
    step_arr = np.asarray(steps, dtype=np.int64).reshape(-1, STEP_FIELDS)
    is_input = np.zeros(nrows, dtype=bool)
    cats_of = np.zeros(nrows, dtype=np.int64)
    for kind, lo, hi, _, cats in step_arr:
        if kind == INPUT:
            is_input[lo:hi] = True
            cats_of[lo:hi] = cats
    in_rows = np.flatnonzero(is_input)
    vperm, vbeg, vcnt = _csr(row_var[in_rows], np.arange(num_vars))
    vrows = in_rows[vperm]
    i32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int32))  # noqa: E731
    i64 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))  # noqa: E731
    host = [i64(step_arr.reshape(-1)), i64(step_arr[::-1].reshape(-1)), i32(row_slot),
            i32(row_var), i64(row_ps), i64(fbeg), i32(fcnt), i32(e_child[fperm]),
            i64(np.maximum(e_w[fperm], 0)), i64(vbeg), i32(vcnt), i32(row_slot[vrows]),
            i64(row_ps[vrows]), i32(cats_of[vrows])]
    host = [h if h.numel() else torch.zeros(1, dtype=h.dtype) for h in host]   # no null pointers
    dev = upload(host, torch.device(device))
    input_steps = step_arr[step_arr[:, 0] == INPUT]
    return FusedPlan(int(layout.num_slots), int(layout.root_slot), int(num_vars), *dev,
                     num_steps=len(steps), num_rows=nrows, num_edges=int(e_child.size),
                     max_fan_in=int(fcnt.max()) if nrows else 0,
                     dists=frozenset(int(d) for d in input_steps[:, 3]),
                     max_cats=int(input_steps[:, 4].max()) if input_steps.size else 0)
