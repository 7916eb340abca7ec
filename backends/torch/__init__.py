"""The torch backend: plain PyTorch ops over the Layout, CPU or CUDA.

The portable backend and the default on machines without a GPU. Supports
every distribution and query; float32 (default) or float64.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from pccompiler.backends.compiled import CompiledCircuit
from pccompiler.backends.interface import (
    QUERIES, Backend, Capabilities, CompileOptions, torch_dtype,
)
from pccompiler.backends.torch.engine import TorchEngine
from pccompiler.ir import pcir


class TorchBackend(Backend):
    name = "torch"
    capabilities = Capabilities(queries=frozenset(QUERIES), devices=frozenset({"cpu", "cuda"}))
    reads_backward_partitions = False       # its backward runs over the forward partitions

    def compile(self, model: pcir.Model, layout: pcir.Layout,
                options: CompileOptions | Mapping[str, Any] | None = None,
                arrays: Mapping[str, Any] | None = None) -> CompiledCircuit:
        opts = CompileOptions.from_any(options)
        self.check(model, device=opts.device, dtype=opts.dtype)
        engine = TorchEngine(model, layout, torch.device(opts.device), torch_dtype(opts.dtype),
                             arrays)
        return CompiledCircuit(engine, self.name, layout.pipeline, opts)


__all__ = ["TorchBackend", "TorchEngine"]
