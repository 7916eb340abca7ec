"""`ReferenceBackend`: the oracle as a backend of the registry.

`pc.compile(model, backend="reference")` and `pc.load(path,
backend="reference")` give a CompiledCircuit whose ReferenceEngine answers
log_prob (with or without missing values), sample, conditional_sample and
mpe with the float64 numpy interpreter (engine.py). The numpy functions of
the package (`log_prob`, `sample`, ...) stay the direct API over a Model.
"""

from __future__ import annotations

from typing import Any, Mapping

from pccompiler.backends.compiled import CompiledCircuit
from pccompiler.backends.interface import Backend, Capabilities, CompileOptions
from pccompiler.backends.reference.engine import BACKEND, ReferenceEngine
from pccompiler.ir import pcir
from pccompiler.ir.external_arrays import inline_arrays


class ReferenceBackend(Backend):
    """float64 numpy interpreter of a pcir.Model, on the CPU. No flows, EM
    or gradients (UnsupportedError: use torch with dtype float64). A
    float32 request, the driver's default, is accepted and computed in
    float64: the circuit's `options.dtype` says float64."""

    name = BACKEND
    capabilities = Capabilities(
        queries=frozenset({"log_prob", "marginal", "sample", "conditional_sample", "mpe"}),
        devices=frozenset({"cpu"}),
        dtypes=frozenset({"float32", "float64"}))

    def compile(self, model: pcir.Model, layout: pcir.Layout,
                options: CompileOptions | Mapping[str, Any] | None = None,
                arrays: Mapping[str, Any] | None = None) -> CompiledCircuit:
        opts = CompileOptions.from_any(options)
        model = inline_arrays(model, arrays)     # the interpreter reads the Model's tensors
        self.check(model, device=opts.device, dtype=opts.dtype)
        opts = CompileOptions(device="cpu", dtype="float64", extra=dict(opts.extra))
        return CompiledCircuit(ReferenceEngine(model, layout), self.name, layout.pipeline, opts)
