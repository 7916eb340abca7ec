"""Top-down queries over a Layout with torch ops: sampling and MPE.

Both walk the layers in reverse from the root, keeping a 0/1 "reached"
mask [num_slots, B] (in a decomposable circuit every sample reaches exactly
one input node per variable):

  sum blocks      each reached parent picks one child: argmax over k of
                  log w(k) + value(child_k) (+ Gumbel noise when sampling),
                  where value comes from the engine's forward pass (sum mode:
                  the posterior given the evidence; max mode: max-product);
  product blocks  every child of a reached node is reached;
  input nodes     a reached node over a missing variable fills it in: a draw
                  from its distribution, or its mode (MPE). Observed entries
                  are kept.

Only `engine.forward` is needed from the backend, so every Engine gets
sampling and MPE; loops run per layer, partition and chunk, never per node.
"""

from __future__ import annotations

import torch

from pccompiler.backends.common.layout_index import InputPart, SumPart
from pccompiler.ir import pcir

CHUNK_ELEMENTS = 1 << 23


def _gumbel(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    u = torch.rand(shape, dtype=like.dtype, device=like.device, generator=generator)
    return -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))


def _sum_choose(engine, sp: SumPart, values: torch.Tensor, reached: torch.Tensor,
                sample: bool, generator: torch.Generator | None) -> None:
    B = values.shape[1]
    step = max(1, CHUNK_ELEMENTS // max(1, sp.max_children * sp.block_size * B))
    logw_all = torch.log(engine.sum_params.detach())
    for start in range(0, sp.num_blocks, step):
        c = slice(start, min(sp.num_blocks, start + step))
        parents = sp.parent_slots[c]                                  # [nc, bs]
        active = reached[parents]                                     # [nc, bs, B]
        if not bool(active.any()):
            continue
        logw = logw_all[sp.weight_index[c]]                           # [nc, K, bs]
        cv = values[sp.child_slots[c]]                                # [nc, K, B]
        scores = logw[..., None] + cv[:, :, None, :]                  # [nc, K, bs, B]
        if sample:
            scores = scores + _gumbel(scores.shape, scores, generator)
        k = scores.argmax(1)                                          # [nc, bs, B]
        nc, bs = parents.shape
        child = torch.gather(sp.child_slots[c], 1, k.reshape(nc, bs * B)).reshape(nc, bs, B)
        sel = active.nonzero(as_tuple=True)
        reached.index_put_((child[sel], sel[2]), torch.ones_like(sel[2], dtype=reached.dtype),
                           accumulate=True)


def _fill_inputs(engine, ip: InputPart, reached: torch.Tensor, x: torch.Tensor,
                 missing: torch.Tensor, sample: bool, generator: torch.Generator | None,
                 soft: torch.Tensor | None = None) -> None:
    active = reached[ip.slot_start: ip.slot_start + ip.num_nodes] > 0            # [n, B]
    active &= missing[:, ip.node_vars].t()
    node, row = active.nonzero(as_tuple=True)
    if node.numel() == 0:
        return
    params = engine.input_params.detach()
    start = ip.node_param_starts[node]
    var = ip.node_vars[node]
    if ip.dist == pcir.CATEGORICAL_DIST:
        cols = start[:, None] + torch.arange(ip.params_per_node, device=start.device)
        logp = torch.log(params[cols])
        if soft is not None:              # literal weights: p(c) * soft[b, v, c]
            logp = logp + torch.log(soft[row, var].to(logp.dtype))
        if sample:
            logp = logp + _gumbel(logp.shape, logp, generator)
        value = logp.argmax(1)
    elif ip.dist == pcir.BERNOULLI_DIST:
        p = params[start]
        if sample:
            value = (torch.rand(p.shape, dtype=p.dtype, device=p.device, generator=generator) < p)
        else:
            value = p > 0.5
        value = value.long()
    elif ip.dist == pcir.GAUSSIAN_DIST:
        value = params[start]
        if sample:
            noise = torch.randn(value.shape, dtype=value.dtype, device=value.device,
                                generator=generator)
            value = value + params[start + 1] * noise
    else:
        raise NotImplementedError(f"input distribution {ip.dist}")
    if soft is not None and ip.dist != pcir.CATEGORICAL_DIST:
        raise NotImplementedError("soft evidence needs categorical inputs")
    x[row, var] = value.to(x.dtype)


@torch.no_grad()
def top_down(engine, x: torch.Tensor, missing: torch.Tensor, mode: str = "sample",
             generator: torch.Generator | None = None, soft: torch.Tensor | None = None,
             values: torch.Tensor | None = None) -> torch.Tensor:
    """Fill the missing entries of x [B, V]: conditional samples (mode
    "sample") or a max-product completion (mode "mpe"). Returns a new tensor.

    soft [B, V, K]: per-sample weights of the categories (logic literal
    weights) replace the evidence (every variable is then missing): "mpe"
    gives the model of largest weight. values: the engine's forward in the
    matching mode when the caller already ran it (it also wants the root)."""
    sample = mode == "sample"
    if values is None:
        fmode = "sum" if sample else "max"
        values = (engine.forward(x, missing, mode=fmode) if soft is None
                  else engine.forward(x, missing, mode=fmode, soft=soft))
    idx = engine.index
    B = x.shape[0]
    out = x.clone()
    reached = torch.zeros(idx.num_slots, B, dtype=torch.int32, device=values.device)
    reached[idx.root_slot] = 1
    for layer in reversed(idx.layers):
        for sp in layer.sums:
            _sum_choose(engine, sp, values, reached, sample, generator)
        for pp in layer.products:
            r = reached[pp.slot_start: pp.slot_start + pp.num_nodes]
            k = pp.child_slots.shape[1]
            reached.index_add_(0, pp.child_slots.reshape(-1),
                               r[:, None, :].expand(-1, k, -1).reshape(-1, B).clone())
        for ip in layer.inputs:
            _fill_inputs(engine, ip, reached, out, missing, sample, generator, soft)
    return out
