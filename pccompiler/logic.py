"""Queries of logic circuits (SDD, d-DNNF imports): the semiring is part of
the query.

- `model_count(model)`: counting semiring, exact integers (reference).
- `wmc(model_or_circuit, weights)`: log weighted model count per row, the
  log-sum-product semiring with literal weights as soft evidence. numpy
  weights run on the reference interpreter (float64); torch weights run on a
  circuit compiled with the torch backend (pass the CompiledCircuit, or a
  Model which is compiled for you) and are differentiable: gradients reach
  the weights through autograd (e.g. the outputs of a neural network).
- `mpe(model, weights)`: max-product semiring: the model of largest weight
  per row and its log weight (reference).

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


def mpe(model: pcir.Model, weights) -> tuple[np.ndarray, np.ndarray]:
    """(assignment int64 [B, V], log weight [B]) of the heaviest model per row."""
    return _ref.weighted_mpe(model, weights)


def wmc(model_or_circuit: Any, weights) -> Any:
    """log WMC per row: numpy float64 [B] for numpy weights (reference
    backend), a torch tensor [B] with autograd for torch weights."""
    import torch

    if not isinstance(weights, torch.Tensor):
        model = getattr(model_or_circuit, "model", model_or_circuit)
        return _ref.wmc(model, weights)
    circuit = model_or_circuit
    if isinstance(circuit, pcir.Model):
        from pccompiler.driver import compile as _compile
        circuit = _compile(circuit, backend="torch", device=str(weights.device),
                           dtype=str(weights.dtype).replace("torch.", ""))
    engine = circuit.engine
    num_vars = len(engine.model.variables)
    soft = torch.stack([1 - weights, weights], dim=2) if weights.dim() == 2 else weights
    if soft.dim() != 3 or tuple(soft.shape[1:]) != (num_vars, 2):
        raise DataError(f"literal weights must have shape [batch, {num_vars}] or "
                        f"[batch, {num_vars}, 2], got {list(weights.shape)}")
    from pccompiler.backends.torch.engine import TorchEngine

    if not isinstance(engine, TorchEngine):
        raise DataError(f"wmc with torch weights needs the torch backend, not "
                        f"{type(engine).__name__}")
    soft = soft.to(engine.dtype)
    x = torch.zeros(soft.shape[:2], dtype=torch.long, device=soft.device)
    return engine.forward(x, None, "sum", soft)[engine.root_slot]
