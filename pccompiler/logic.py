"""Queries of logic circuits (SDD, d-DNNF imports): the semiring is part of
the query.

- `model_count(model)`: counting semiring, exact integers (reference).
- `wmc(model_or_circuit, weights)`: log weighted model count per row, the
  log-sum-product semiring with literal weights as soft evidence. numpy
  weights run on the reference interpreter (float64); torch weights run on a
  compiled circuit (pass the CompiledCircuit, torch or triton backend, or a
  Model which is compiled for torch) and are differentiable: gradients reach
  the weights through autograd (e.g. the outputs of a neural network); on
  triton the forward and backward are its kernels (backends/triton/logic.py).
- `mpe(model_or_circuit, weights)`: max-product semiring: the model of
  largest weight per row and its log weight (reference for numpy weights,
  the torch or triton backend for torch weights).

weights: P(x_v = 1) as [batch, num_vars] (the weight of -v is 1 - w), or
both literal weights as [batch, num_vars, 2] ([..., 0] for -v, [..., 1] for
+v, not necessarily summing to 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pccompiler.backends.reference import logic as _ref
from pccompiler.errors import DataError
from pccompiler.ir import pcir

__all__ = ["model_count", "wmc", "mpe"]


def model_count(model: pcir.Model, x=None, missing=None) -> list[int]:
    """Exact model count per row of evidence (default: one row, no evidence)."""
    return _ref.model_count(model, x, missing)


def _compiled(model_or_circuit: Any, weights) -> Any:
    """The circuit to run torch weights on: a CompiledCircuit as given, a
    Model compiled for the torch backend on the weights' device and dtype."""
    if isinstance(model_or_circuit, pcir.Model):
        from pccompiler.driver import compile as _compile
        return _compile(model_or_circuit, backend="torch", device=str(weights.device),
                        dtype=str(weights.dtype).replace("torch.", ""))
    return model_or_circuit


def _soft(engine, weights):
    """[B, V] P(x=1) or [B, V, 2] literal weights -> [B, V, 2] (differentiable)."""
    import torch

    num_vars = len(engine.model.variables)
    where = engine.sum_params.device            # a tensor's device: always indexed
    if weights.device != where:
        raise DataError(f"literal weights are on {weights.device}, the circuit on "
                        f"{where}: move the weights (.to({str(where)!r}))")
    soft = torch.stack([1 - weights, weights], dim=2) if weights.dim() == 2 else weights
    if soft.dim() != 3 or tuple(soft.shape[1:]) != (num_vars, 2):
        raise DataError(f"literal weights must have shape [batch, {num_vars}] or "
                        f"[batch, {num_vars}, 2], got {list(weights.shape)}")
    return soft


def _backend_of(engine) -> str:
    from pccompiler.backends.torch.engine import TorchEngine

    if isinstance(engine, TorchEngine):
        return "torch"
    try:
        from pccompiler.backends.triton.engine import TritonEngine
    except ImportError:      # triton not installed
        TritonEngine = ()
    if isinstance(engine, TritonEngine):
        return "triton"
    raise DataError(f"literal weights as torch tensors need the torch or triton backend, "
                    f"not {type(engine).__name__}")


def mpe(model_or_circuit: Any, weights) -> tuple[Any, Any]:
    """(assignment [B, V], log weight [B]) of the heaviest model per row:
    numpy (int64, float64) on the reference for numpy weights; torch tensors
    (long, the engine's dtype) for torch weights, on the torch or triton
    backend (max-product forward with the literal weights, then the
    top-down argmax pass of backends/common/queries.py)."""
    import torch

    if not isinstance(weights, torch.Tensor):
        model = getattr(model_or_circuit, "model", model_or_circuit)
        return _ref.weighted_mpe(model, weights)
    engine = _compiled(model_or_circuit, weights).engine
    _backend_of(engine)
    with torch.no_grad():
        soft = _soft(engine, weights).to(engine.dtype)
        x = torch.zeros(soft.shape[:2], dtype=torch.long, device=soft.device)
        values = engine.forward(x, None, "max", soft)
        from pccompiler.backends.common.queries import top_down
        assign = top_down(engine, x, torch.ones_like(x, dtype=torch.bool), "mpe",
                          soft=soft, values=values)
    return assign, values[engine.root_slot].clone()


def wmc(model_or_circuit: Any, weights) -> Any:
    """log WMC per row: numpy float64 [B] for numpy weights (reference
    backend), a torch tensor [B] with autograd for torch weights (torch
    backend, or triton: its kernels forward and backward)."""
    import torch

    if not isinstance(weights, torch.Tensor):
        model = getattr(model_or_circuit, "model", model_or_circuit)
        return _ref.wmc(model, weights)
    engine = _compiled(model_or_circuit, weights).engine
    backend = _backend_of(engine)
    soft = _soft(engine, weights)
    if backend == "triton":
        from pccompiler.backends.triton.logic import triton_wmc
        return triton_wmc(engine, soft)
    soft = soft.to(engine.dtype)
    x = torch.zeros(soft.shape[:2], dtype=torch.long, device=soft.device)
    return engine.forward(x, None, "sum", soft)[engine.root_slot]
