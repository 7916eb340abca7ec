"""Weighted model counting with per-sample literal weights on the triton
backend, differentiable in the weights.

`TritonWMC` is a torch.autograd.Function: its forward runs the engine's
compact plan with the literal weights as soft evidence in the input layer
(soft_kernels), its backward runs the ordinary triton backward (node flows,
no parameter flows) and turns the input nodes' flows into the gradient
with respect to the weights. Nothing in it is a torch op over nodes, so a
network that outputs the weights trains through the triton kernels.
"""

from __future__ import annotations

import torch

from pccompiler.backends.triton.engine import TritonEngine, soft_transposed


class TritonWMC(torch.autograd.Function):
    """log WMC [B] of soft [B, V, K] (fp32) on a TritonEngine."""

    @staticmethod
    def forward(ctx, engine: TritonEngine, soft: torch.Tensor) -> torch.Tensor:
        plan = engine.fast_plan
        soft_t = soft_transposed(soft)
        values = engine._new_values(soft.shape[0], plan)
        engine._forward_into(values, None, None, False, plan, soft_t=soft_t)
        ctx.engine, ctx.values, ctx.shape, ctx.dtype = engine, values, soft_t.shape, soft.dtype
        return values[plan.root_slot].clone()

    @staticmethod
    def backward(ctx, gout: torch.Tensor):
        engine, values = ctx.engine, ctx.values
        plan = engine.fast_plan
        grad_t = torch.zeros(ctx.shape, dtype=torch.float32, device=values.device)
        flows = engine._new_flows(values, plan)
        engine._backward_into(values, flows, None, None, plan,
                              soft_grad=(grad_t, gout.detach().to(torch.float32).contiguous()))
        return None, grad_t.permute(2, 0, 1).to(ctx.dtype)


def triton_wmc(engine: TritonEngine, soft: torch.Tensor) -> torch.Tensor:
    """log WMC per row of soft [B, V, K]; gradients reach soft through autograd."""
    return TritonWMC.apply(engine, soft)
