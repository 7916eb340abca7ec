"""CUDA-graph capture of whole forward / backward passes.

A deep circuit launches a few kernels per layer; at small batches the
launch overhead (a few microseconds each) rivals the work. With
`cuda_graphs=True` the engine captures one graph per (batch, missing?, mode)
for the forward, one per (batch, missing?) for the backward into static
buffers, and one per (step size, pseudocount) for the EM update, and
replays them; new inputs are copied into the static x buffers first. The
parameter and flow tensors are captured by address, which stays valid
because every update is in place. Warm-up runs before a capture change
state (flows, parameters); `_capture` restores it.

The returned values/flows are the static buffers: the next call of the same
shape overwrites them. On CPU or under the interpreter graphs are disabled
(`enabled` is False) and the engine runs eagerly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

WARMUP_RUNS = 2   # compile every kernel before capture (JIT must not run inside it)


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    x_t: torch.Tensor
    miss_t: torch.Tensor | None
    values: torch.Tensor
    flows: torch.Tensor | None = None


class GraphCache:
    """Static buffers and captured graphs, keyed by call shape."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._fwd: dict[tuple, _Captured] = {}
        self._bwd: dict[tuple, _Captured] = {}
        self._em: dict[tuple, torch.cuda.CUDAGraph] = {}

    def _capture(self, fn, state: tuple[torch.Tensor, ...] = ()) -> torch.cuda.CUDAGraph:
        """Warm up (compiles every kernel), capture, and put `state` back as
        it was before the warm-up runs."""
        saved = [t.clone() for t in state]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(WARMUP_RUNS):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        with torch.no_grad():
            for dst, src in zip(state, saved):
                dst.copy_(src)
        return graph

    def forward(self, engine, x_t: torch.Tensor, miss_t: torch.Tensor | None,
                mode_max: bool) -> torch.Tensor:
        key = (tuple(x_t.shape), x_t.dtype, miss_t is not None, mode_max)
        cap = self._fwd.get(key)
        if cap is None:
            sx = x_t.clone()
            sm = None if miss_t is None else miss_t.clone()
            values = engine._new_values(x_t.shape[1])
            graph = self._capture(lambda: engine._forward_into(values, sx, sm, mode_max))
            cap = self._fwd[key] = _Captured(graph, sx, sm, values)
        cap.x_t.copy_(x_t)
        if miss_t is not None:
            cap.miss_t.copy_(miss_t)
        cap.graph.replay()
        return cap.values

    def backward(self, engine, values: torch.Tensor, x_t: torch.Tensor,
                 miss_t: torch.Tensor | None) -> torch.Tensor:
        key = (tuple(x_t.shape), x_t.dtype, miss_t is not None, values.data_ptr())
        cap = self._bwd.get(key)
        if cap is None:
            sx = x_t.clone()
            sm = None if miss_t is None else miss_t.clone()
            flows = torch.zeros_like(values)

            def run() -> None:
                engine._zero_rows(flows)
                engine._backward_into(values, flows, sx, sm)

            graph = self._capture(run, (engine.sum_param_flows, engine.input_param_flows,
                                        engine.input_node_flows))
            cap = self._bwd[key] = _Captured(graph, sx, sm, values, flows)
        cap.x_t.copy_(x_t)
        if miss_t is not None:
            cap.miss_t.copy_(miss_t)
        cap.graph.replay()
        return cap.flows

    def em(self, engine, step: float, pseudocount: float) -> None:
        key = (float(step), float(pseudocount))
        graph = self._em.get(key)
        if graph is None:
            graph = self._em[key] = self._capture(
                lambda: engine._em_into(step, pseudocount),
                (engine.sum_params.data, engine.input_params.data))
        graph.replay()
