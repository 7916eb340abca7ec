"""ReferenceEngine: the float64 numpy interpreter behind a CompiledCircuit.

The reference backend answers a CompiledCircuit's queries with the oracle
itself (evaluate.py upwards, topdown.py for sampling and MPE) over the
Model, so `pc.compile(model, backend="reference")` gives the exact answers
the other backends are tested against, behind the same object. Like every
engine it holds the parameters packed per the Layout (`sum_params`,
`input_params`: what `state_dict`, `to_model` and `save` see); a query
rebuilds the Model from them when they changed since the last one.

It computes no flows: node flows, EM statistics and gradients need the
Layout's buffers, which the torch backend provides exactly in float64.
Those calls raise UnsupportedError naming the backend to use.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from pccompiler.backends.engine import Engine
from pccompiler.backends.reference.evaluate import log_prob
from pccompiler.backends.reference.topdown import conditional_sample, mpe
from pccompiler.errors import UnsupportedError
from pccompiler.ir import pcir
from pccompiler.backends.reference.nodes import NodeView, top_down as node_top_down, \
    upward as node_upward
from pccompiler.ir.model_view import ModelView
from pccompiler.ir.nodes import is_node_model

BACKEND = "reference"


def unsupported(what: str) -> UnsupportedError:
    """The error for a computation the reference interpreter does not do."""
    return UnsupportedError(
        f"backend {BACKEND!r} cannot compute {what}: it interprets the Model for log_prob, "
        f"sample, conditional_sample and mpe only; use backend='torch' with dtype='float64' "
        f"(the portable exact backend)")


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy()


def _decode(model: pcir.Model) -> ModelView | NodeView:
    """The interpreter's view of `model`: its groups, or its NodeCircuit."""
    return NodeView(model) if is_node_model(model) else ModelView(model)


class ReferenceEngine(Engine):
    """Queries by the reference interpreter, in float64 on the CPU."""

    def __init__(self, model: pcir.Model, layout: pcir.Layout):
        self._view: ModelView | None = None
        self._view_params: tuple[torch.Tensor, torch.Tensor] | None = None
        super().__init__(model, layout, "cpu", torch.float64)

    def load_parameters(self, model: pcir.Model | None = None) -> None:
        super().load_parameters(model)
        self._remember(_decode(self.model))

    def _remember(self, view: ModelView | NodeView) -> None:
        self._view = view
        self._view_params = (self.sum_params.detach().clone(), self.input_params.detach().clone())

    def view(self) -> ModelView | NodeView:
        """The decoded Model holding the current parameters (rebuilt when
        `sum_params` / `input_params` changed since the last query)."""
        old_sum, old_input = self._view_params
        if not (torch.equal(old_sum, self.sum_params.detach())
                and torch.equal(old_input, self.input_params.detach())):
            self._remember(_decode(self.store_parameters(float64=True)))
        return self._view

    # ------------------------------------------------------------ queries
    def root_log_prob(self, x: torch.Tensor, missing: torch.Tensor | None = None,
                      after_forward: Callable[[], None] | None = None) -> torch.Tensor:
        if torch.is_grad_enabled() and (self.sum_params.requires_grad
                                        or self.input_params.requires_grad):
            raise unsupported("gradients (SGD)")
        view = self.view()
        if isinstance(view, NodeView):
            xn = _numpy(x)
            mn = np.zeros(xn.shape, dtype=bool) if missing is None else _numpy(missing)
            out = node_upward(view, xn, mn, "sum")[:, view.root]
        else:
            out = log_prob(view, _numpy(x), _numpy(missing))
        if after_forward is not None:
            after_forward()
        return torch.from_numpy(out).to(self.dtype)

    def top_down(self, x: torch.Tensor, missing: torch.Tensor, mode: str = "sample",
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sampling and MPE by the reference (topdown.py). A sample draws its
        numpy seed from `generator` (torch's global one when None), so
        `torch.manual_seed` makes it reproducible as with other backends."""
        xn, mn = _numpy(x), _numpy(missing)
        view = self.view()
        if isinstance(view, NodeView):
            rng = None if mode == "mpe" else np.random.default_rng(
                int(torch.randint(0, 2 ** 62, (1,), generator=generator).item()))
            values = node_upward(view, xn, mn, "max" if mode == "mpe" else "sum")
            return torch.from_numpy(node_top_down(view, values, xn, mn, rng=rng)).to(x.dtype)
        if mode == "mpe":
            out, _ = mpe(self.view(), xn, mn)
        else:
            seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator).item())
            out = conditional_sample(self.view(), xn, mn, np.random.default_rng(seed))
        return torch.from_numpy(out).to(x.dtype)

    # ------------------------------------------------------------ not here
    def forward(self, x: torch.Tensor, missing: torch.Tensor | None = None,
                mode: str = "sum") -> torch.Tensor:
        raise unsupported("the Layout's slot values (Engine.forward)")

    def backward(self, values: torch.Tensor, x: torch.Tensor,
                 missing: torch.Tensor | None = None, flows_out: bool = False) -> torch.Tensor | None:
        raise unsupported("flows (flows, em_step, accumulate_flows)")

    def forward_backward(self, x: torch.Tensor, missing: torch.Tensor | None = None,
                         after_forward: Callable[[], None] | None = None) -> torch.Tensor:
        raise unsupported("flows (flows, em_step, accumulate_flows)")

    def em_update(self, step_size: float = 1.0, pseudocount: float = 0.0) -> None:
        raise unsupported("an EM update (em_step, em_update)")
