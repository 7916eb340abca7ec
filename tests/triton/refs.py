"""Float64 numpy references for the Triton kernels, straight from the proto
semantics (ir/pcir.proto, Layout section) and the flow conventions of
backends/engine.py, plus random partition generators.

Random partitions are block-sparse in slot space: a parent block picks a
random non-empty set of child blocks (child_block_size consecutive slots),
which is exactly what makes the forward packing and the backward plan
consistent (child j of child block c sits at k = k0 + j in the parent's
child list, so its weight is at param_start + (k0 + j) * BS + i).
"""

from __future__ import annotations

import numpy as np

NEG_INF = -np.inf

# Tolerance of a triton result on a GPU against the torch / float64
# reference where full 16-row dot tiles run in tf32 (10 mantissa bits, about
# 5e-4 relative rounding per operand): row tiles of >= 16 rows and dense
# blocks of >= 16 rows (launch.dot_precision, launch.dot_rows). The
# interpreter computes those dots in fp32, so the tight tolerance stays there.
# Same figure as the conformance suite's PRECISION_RTOL["tf32"]; measured on
# an H100 (2026-12-07): 3e-4 relative on the row-tile circuits' log-likelihoods.
TF32_TOL = 2e-3


def reference_tol(device, fp32_tol: float) -> float:
    """`fp32_tol` under the interpreter, at least TF32_TOL on a GPU."""
    return max(fp32_tol, TF32_TOL) if str(device).startswith("cuda") else fp32_tol


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m_safe), axis=axis, keepdims=True)) + m_safe
    return np.squeeze(out, axis=axis)


class SumSpec:
    """One random sum partition (forward arrays + its backward plan)."""

    def __init__(self, rng: np.random.Generator, parent_slot0: int, num_blocks: int, bs: int,
                 child_slot0: int, num_cblocks: int, cbs: int, param_start: int,
                 max_cblocks_per_parent: int | None = None, pad_children: int = 0,
                 full: bool = False):
        """full: every parent block has every child block (a dense layer in
        blocks: runs of blocks share their partners, plan.shared_run)."""
        self.bs, self.cbs, self.nb = bs, cbs, num_blocks
        self.block_slots = parent_slot0 + bs * np.arange(num_blocks)
        cap = max_cblocks_per_parent or num_cblocks
        chosen = []
        for _ in range(num_blocks):   # tiny test sizes: a loop per block is fine here
            k = num_cblocks if full else rng.integers(1, min(cap, num_cblocks) + 1)
            chosen.append(np.sort(rng.choice(num_cblocks, size=k, replace=False)))
        self.block_num_children = np.array([len(c) * cbs for c in chosen])
        self.max_children = int(self.block_num_children.max()) + pad_children
        self.child_slots = np.zeros((num_blocks, self.max_children), dtype=np.int64)
        self.block_param_starts = np.zeros(num_blocks, dtype=np.int64)
        ps = param_start
        back: dict[int, list[tuple[int, int]]] = {c: [] for c in range(num_cblocks)}
        for b, cbl in enumerate(chosen):
            slots = (child_slot0 + cbs * cbl[:, None] + np.arange(cbs)[None, :]).reshape(-1)
            self.child_slots[b, :slots.size] = slots
            self.block_param_starts[b] = ps
            for pos, c in enumerate(cbl):
                back[c].append((int(self.block_slots[b]), ps + pos * cbs * bs))
            ps += int(self.block_num_children[b]) * bs
        self.param_end = ps
        used = [c for c in range(num_cblocks) if back[c]]
        self.cblock_slots = child_slot0 + cbs * np.array(used, dtype=np.int64)
        self.cblock_num_parents = np.array([len(back[c]) for c in used])
        mp = int(self.cblock_num_parents.max())
        self.parent_slots = np.zeros((len(used), mp), dtype=np.int64)
        self.parent_param_starts = np.zeros((len(used), mp), dtype=np.int64)
        for r, c in enumerate(used):
            for l, (s, p) in enumerate(back[c]):
                self.parent_slots[r, l], self.parent_param_starts[r, l] = s, p

    def random_weights(self, rng: np.random.Generator, params: np.ndarray) -> None:
        """Normalised positive weights per parent node into `params`."""
        for b in range(self.nb):
            nc, ps = int(self.block_num_children[b]), int(self.block_param_starts[b])
            w = rng.random((nc, self.bs)) + 0.05
            params[ps:ps + nc * self.bs] = (w / w.sum(0, keepdims=True)).reshape(-1)

    # ------------------------------------------------------------ references
    def forward(self, values: np.ndarray, params: np.ndarray) -> None:
        for b in range(self.nb):
            nc, ps = int(self.block_num_children[b]), int(self.block_param_starts[b])
            w = params[ps:ps + nc * self.bs].reshape(nc, self.bs)
            c = values[self.child_slots[b, :nc]]                      # [nc, B]
            with np.errstate(divide="ignore"):
                lw = np.log(w)
            for i in range(self.bs):
                values[self.block_slots[b] + i] = logsumexp(lw[:, i:i + 1] + c, axis=0)

    def forward_max(self, values: np.ndarray, params: np.ndarray) -> None:
        for b in range(self.nb):
            nc, ps = int(self.block_num_children[b]), int(self.block_param_starts[b])
            w = params[ps:ps + nc * self.bs].reshape(nc, self.bs)
            c = values[self.child_slots[b, :nc]]
            with np.errstate(divide="ignore"):
                lw = np.log(w)
            for i in range(self.bs):
                values[self.block_slots[b] + i] = np.max(lw[:, i:i + 1] + c, axis=0)

    def backward(self, values: np.ndarray, flows: np.ndarray, params: np.ndarray,
                 pflows: np.ndarray) -> None:
        """flows[child] += f_p w exp(x - y); pflows[w] += sum_b f_p w exp(x - y)."""
        for b in range(self.nb):
            nc, ps = int(self.block_num_children[b]), int(self.block_param_starts[b])
            w = params[ps:ps + nc * self.bs].reshape(nc, self.bs)
            cs = self.child_slots[b, :nc]
            x = values[cs]                                             # [nc, B]
            for i in range(self.bs):
                p = self.block_slots[b] + i
                with np.errstate(invalid="ignore", over="ignore"):
                    r = np.where(flows[p] > 0, flows[p] * np.exp(x - values[p]), 0.0)  # [nc, B]
                r = np.nan_to_num(r)
                contrib = w[:, i:i + 1] * r
                np.add.at(flows, cs, contrib)
                pflows[ps + np.arange(nc) * self.bs + i] += contrib.sum(1)


def random_values(rng: np.random.Generator, num_slots: int, batch: int,
                  neg_inf_frac: float = 0.1) -> np.ndarray:
    """A values buffer: slot 0 = -inf, slot 1 = 0, others log-probabilities
    in [-12, 0] with a few -inf entries."""
    v = -12.0 * rng.random((num_slots, batch))
    v[rng.random(v.shape) < neg_inf_frac] = NEG_INF
    v[0], v[1] = NEG_INF, 0.0
    return v


def sum_em(params: np.ndarray, pflows: np.ndarray, spec: SumSpec, step: float,
           pc: float) -> np.ndarray:
    out = params.copy()
    for b in range(spec.nb):
        nc, ps = int(spec.block_num_children[b]), int(spec.block_param_starts[b])
        w = params[ps:ps + nc * spec.bs].reshape(nc, spec.bs)
        f = pflows[ps:ps + nc * spec.bs].reshape(nc, spec.bs)
        denom = f.sum(0, keepdims=True) + pc
        new = np.where(denom > 0, (f + pc / nc) / np.where(denom > 0, denom, 1), w)
        out[ps:ps + nc * spec.bs] = ((1 - step) * w + step * new).reshape(-1)
    return out
