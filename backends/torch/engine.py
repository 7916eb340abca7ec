"""TorchEngine: the Layout run with plain PyTorch ops (CPU or CUDA).

One Python iteration per layer and partition (and per chunk of a big
partition), never per node or edge:

  input partitions   gathers of log-parameters (categorical, Bernoulli) or a
                     Gaussian log-density; a missing variable gives log 1;
  product partitions gather the children's values [n, k, B] and sum over k;
  sum partitions     gather children [nb, K, B], subtract the per-column max,
                     exp, batched matmul with the weights viewed [nb, K, bs],
                     log, add the max back.

`backward` computes flows directly (no autograd): for a block with parent
flows F and values V, children values C, max m and weights W,
    R = F * exp(m - V)                  [nb, bs, B]
    child flow += exp(C - m) * (W @ R)   [nb, K, B]
    param flow += W * (exp(C - m) @ R^T) [nb, K, bs]  (summed over the batch)
Autograd still works through `forward` (SGD), since every op is a torch op:
through `sum_params` itself, or through the logits it is the softmax of
(CompiledCircuit.requires_grad_, `Engine.reading`).
"""

from __future__ import annotations

import math

import torch

from pccompiler.backends.engine import Engine
from pccompiler.backends.common.layout_index import InputPart, SumPart
from pccompiler.ir import pcir

# Elements of one temporary [chunk, K, bs or B] tensor: bounds peak memory.
CHUNK_ELEMENTS = 1 << 24
# Gathers of at least this many values go through the reused no-grad
# buffers (out=, in place); smaller ones take the plain ops, which cost a
# few torch calls less per partition (small circuits: ~1 ms a forward).
SCRATCH_MIN = 1 << 16
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _chunks(num_blocks: int, per_block: int):
    step = max(1, CHUNK_ELEMENTS // max(1, per_block))
    for start in range(0, num_blocks, step):
        yield slice(start, min(num_blocks, start + step))


def _scratch(scratch: dict, key: int, rows: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """A [rows, width] view of the reused buffer `key` (grown as needed):
    the no-grad forward gathers into it with out= instead of allocating a
    fresh tensor per layer (10^7-row temporaries cost page faults)."""
    buf = scratch.get(key)
    if buf is None or buf.numel() < rows * width:
        buf = scratch[key] = torch.empty(rows * width, dtype=like.dtype, device=like.device)
    return buf[:rows * width].view(rows, width)


def _safe_max(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Max over `dim` (kept), 0 where every entry is -inf, detached."""
    m = t.detach().amax(dim, keepdim=True)
    return torch.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0)     # one op, not three


# exp(x) is finite in float32 up to x = 88.7; the margin covers the batch sums.
FLOAT32_EXP_SAFE = 80.0


def _overflows(m: torch.Tensor, v: torch.Tensor, f: torch.Tensor) -> bool:
    """Whether exp(m - v) overflows float32 for a parent with flow (float64
    has the range: a log-likelihood gap of 700 nats inside one block)."""
    return v.dtype == torch.float32 and bool(((m - v > FLOAT32_EXP_SAFE) & (f > 0)).any())


def _sum_flow_terms(f: torch.Tensor, v: torch.Tensor, w: torch.Tensor, cv: torch.Tensor,
                    m: torch.Tensor, zero_guard: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Child flows [nc, K, B] and parameter flows [nc, K, bs] of sum blocks:
    w * f(parent) * p(child) / p(parent), shifted by the block's largest
    child m. zero_guard: a zero weight gets zero parameter flow even where
    its pair's ratio is huge (inf * 0 would be NaN)."""
    e = torch.exp(cv - m)
    r = torch.where(f > 0, f * torch.exp(m - v), torch.zeros_like(f))
    child = e * torch.bmm(w, r)                                             # [nc, K, B]
    pflow = w * torch.bmm(e, r.transpose(1, 2))                             # [nc, K, bs]
    if zero_guard:
        pflow = torch.where(w != 0, pflow, torch.zeros_like(pflow))
    return child, pflow


class TorchEngine(Engine):
    """Engine over torch ops; see the module docstring."""

    # ------------------------------------------------------------ inputs
    def _input_columns(self, ip: InputPart, x: torch.Tensor, missing: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The partition's variables' values [n, B] and missing mask [n, B]
        (None when nothing is missing: the fast path skips the masking)."""
        xv = x.t()[ip.node_vars]
        miss = None if missing is None else missing.t()[ip.node_vars]
        return xv, miss

    def _soft_input_values(self, ip: InputPart, soft: torch.Tensor, mode: str) -> torch.Tensor:
        """Log-values [n, B] of categorical inputs under soft evidence
        soft [B, V, K] (literal weights of a logic circuit): sum (max) over
        c of params[c] * soft[b, v, c]; differentiable in `soft`."""
        if ip.dist != pcir.CATEGORICAL_DIST:
            raise NotImplementedError("soft evidence needs categorical inputs")
        cols = ip.node_param_starts[:, None] + torch.arange(ip.params_per_node, device=soft.device)
        w = self.input_params[cols][None] * soft[:, ip.node_vars, :]         # [B, n, K]
        w = w.sum(2) if mode == "sum" else w.amax(2)
        return torch.log(w).t()

    def _input_values(self, ip: InputPart, x: torch.Tensor, missing: torch.Tensor | None,
                      mode: str, soft: torch.Tensor | None = None) -> torch.Tensor:
        if soft is not None:
            return self._soft_input_values(ip, soft, mode)
        xv, miss = self._input_columns(ip, x, missing)
        params = self.input_params
        starts = ip.node_param_starts
        if miss is not None:
            xv = torch.where(miss, 0, xv)
        if ip.dist == pcir.CATEGORICAL_DIST:
            logp = torch.log(params[starts[:, None] + xv.long()])
            if miss is None:
                return logp
            if mode == "max":
                rows = params[starts[:, None] + torch.arange(ip.params_per_node, device=x.device)]
                fill = torch.log(rows.amax(1, keepdim=True)).expand_as(logp)
            else:
                fill = torch.zeros_like(logp)
        elif ip.dist == pcir.BERNOULLI_DIST:
            p = params[starts][:, None]
            logp = torch.where(xv == 1, torch.log(p), torch.log1p(-p))
            if miss is None:
                return logp
            fill = torch.log(torch.maximum(p, 1 - p)).expand_as(logp) if mode == "max" \
                else torch.zeros_like(logp)
        elif ip.dist == pcir.GAUSSIAN_DIST:
            mean, std = params[starts][:, None], params[starts + 1][:, None]
            logp = -0.5 * ((xv.to(params.dtype) - mean) / std) ** 2 - torch.log(std) - HALF_LOG_2PI
            if miss is None:
                return logp
            fill = (-torch.log(std) - HALF_LOG_2PI).expand_as(logp) if mode == "max" \
                else torch.zeros_like(logp)
        else:
            raise NotImplementedError(f"input distribution {ip.dist}")
        return torch.where(miss, fill, logp)

    def _input_backward(self, ip: InputPart, flows: torch.Tensor, x: torch.Tensor,
                        missing: torch.Tensor | None) -> None:
        xv, miss = self._input_columns(ip, x, missing)
        f = flows[ip.slot_start: ip.slot_start + ip.num_nodes]          # [n, B]
        starts = ip.node_param_starts
        params, stats = self.input_params.detach(), self.input_param_flows
        self.input_node_flows.index_add_(0, starts, f.sum(1))
        if miss is None:
            obs_f, miss_f = f, None
        else:
            obs_f, miss_f = torch.where(miss, 0, f), torch.where(miss, f, 0).sum(1)
            xv = torch.where(miss, 0, xv)
        if ip.dist == pcir.CATEGORICAL_DIST:
            stats.index_add_(0, (starts[:, None] + xv.long()).reshape(-1), obs_f.reshape(-1))
            if miss_f is not None:
                cols = starts[:, None] + torch.arange(ip.params_per_node, device=f.device)
                stats.index_add_(0, cols.reshape(-1), (miss_f[:, None] * params[cols]).reshape(-1))
        elif ip.dist == pcir.BERNOULLI_DIST:
            ones = (obs_f * (xv == 1)).sum(1)
            stats.index_add_(0, starts, ones if miss_f is None else ones + miss_f * params[starts])
        elif ip.dist == pcir.GAUSSIAN_DIST:
            mean, std = params[starts], params[starts + 1]
            xf = xv.to(f.dtype)
            sx, sxx = (obs_f * xf).sum(1), (obs_f * xf * xf).sum(1)
            if miss_f is not None:
                sx, sxx = sx + miss_f * mean, sxx + miss_f * (mean * mean + std * std)
            stats.index_add_(0, starts, sx)
            stats.index_add_(0, starts + 1, sxx)

    # ------------------------------------------------------------ sums
    def _sum_forward(self, sp: SumPart, values: torch.Tensor, mode: str,
                     scratch: dict | None = None) -> None:
        """One sum partition; with `scratch` (no autograd) the children are
        gathered into a reused buffer and transformed in place, and
        consecutive parents are written as one slice (the same values)."""
        B = values.shape[1]
        per_block = sp.max_children * B * (sp.block_size if mode == "max" else 1)
        for c in _chunks(sp.num_blocks, per_block):
            w = self.sum_params[sp.weight_index[c]]                         # [nc, K, bs]
            if mode == "max":
                cv = values[sp.child_slots[c]]                              # [nc, K, B]
                out = (torch.log(w)[..., None] + cv[:, :, None, :]).amax(1)  # [nc, bs, B]
            elif scratch is None or (c.stop - c.start) * sp.max_children * B < SCRATCH_MIN:
                cv = values[sp.child_slots[c]]
                m = _safe_max(cv, 1)
                out = torch.log(torch.bmm(w.transpose(1, 2), torch.exp(cv - m))) + m
            else:
                cs = sp.child_slots[c]
                cv = torch.index_select(values, 0, cs.reshape(-1), out=_scratch(
                    scratch, 0, cs.numel(), B, values)).view(*cs.shape, B)
                m = _safe_max(cv, 1)
                out = torch.bmm(w.transpose(1, 2), cv.sub_(m).exp_()).log_().add_(m)
            if sp.parent_start >= 0:
                bs = sp.block_size
                values[sp.parent_start + c.start * bs:sp.parent_start + c.stop * bs] = \
                    out.reshape(-1, B)
            else:
                values[sp.parent_slots[c].reshape(-1)] = out.reshape(-1, B)

    def _sum_backward(self, sp: SumPart, values: torch.Tensor, flows: torch.Tensor) -> None:
        B = values.shape[1]
        for c in _chunks(sp.num_blocks, sp.max_children * max(B, sp.block_size)):
            parents = sp.parent_slots[c]
            f, v = flows[parents], values[parents]                          # [nc, bs, B]
            w = self.sum_params.detach()[sp.weight_index[c]]                # [nc, K, bs]
            cv = values[sp.child_slots[c]]                                  # [nc, K, B]
            m = _safe_max(cv, 1)
            if _overflows(m, v, f):
                # exp(m - v) would overflow: a parent far below the block's
                # largest child, which reaches it only through zero weights
                # (a pruned block stored dense). float64 has the range.
                child, pflow = _sum_flow_terms(f.double(), v.double(), w.double(),
                                               cv.double(), m.double(), zero_guard=True)
                child, pflow = child.to(flows.dtype), pflow.to(flows.dtype)
            else:
                child, pflow = _sum_flow_terms(f, v, w, cv, m)
            flows.index_add_(0, sp.child_slots[c].reshape(-1), child.reshape(-1, B))
            self.sum_param_flows.index_add_(0, sp.weight_index[c].reshape(-1), pflow.reshape(-1))

    # ------------------------------------------------------------ passes
    def forward(self, x: torch.Tensor, missing: torch.Tensor | None = None,
                mode: str = "sum", soft: torch.Tensor | None = None) -> torch.Tensor:
        """As Engine.forward; `soft` [B, V, K] (literal weights) replaces the
        evidence x of every categorical input (see _soft_input_values)."""
        idx = self.index
        B = x.shape[0]
        values = torch.empty(idx.num_slots, B, dtype=self.dtype, device=self.device)
        values[0] = -math.inf
        values[1] = 0.0
        scratch = None if torch.is_grad_enabled() else {}    # out= and in place: no autograd
        for layer in idx.layers:
            for ip in layer.inputs:
                values[ip.slot_start: ip.slot_start + ip.num_nodes] = \
                    self._input_values(ip, x, missing, mode, soft)
            for pp in layer.products:
                cs = pp.child_slots
                dst = values[pp.slot_start: pp.slot_start + pp.num_nodes]
                if cs.shape[1] != 2:
                    dst[:] = values[cs].sum(1)
                elif scratch is None or pp.num_nodes * B < SCRATCH_MIN:   # a + b: sum(1) of two
                    dst[:] = values[cs[:, 0]] + values[cs[:, 1]]
                else:
                    n = pp.num_nodes
                    torch.add(torch.index_select(values, 0, cs[:, 0],
                                                 out=_scratch(scratch, 0, n, B, values)),
                              torch.index_select(values, 0, cs[:, 1],
                                                 out=_scratch(scratch, 1, n, B, values)), out=dst)
            for sp in layer.sums:
                self._sum_forward(sp, values, mode, scratch)
        return values

    @torch.no_grad()
    def backward(self, values: torch.Tensor, x: torch.Tensor,
                 missing: torch.Tensor | None = None, flows_out: bool = False
                 ) -> torch.Tensor | None:
        idx = self.index
        values = values.detach()
        B = values.shape[1]
        flows = torch.zeros(idx.num_slots, B, dtype=self.dtype, device=self.device)
        flows[idx.root_slot] = 1.0
        for layer in reversed(idx.layers):
            for sp in layer.sums:
                self._sum_backward(sp, values, flows)
            for pp in layer.products:
                f = flows[pp.slot_start: pp.slot_start + pp.num_nodes].clone()
                k = pp.child_slots.shape[1]
                flows.index_add_(0, pp.child_slots.reshape(-1),
                                 f[:, None, :].expand(-1, k, -1).reshape(-1, B))
            for ip in layer.inputs:
                self._input_backward(ip, flows, x, missing)
        flows[0:2] = 0.0
        self.sum_param_flows[: int(self.layout.max_block_size)] = 0.0
        return flows if flows_out else None
