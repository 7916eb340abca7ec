"""The backend interface: what a backend declares and what it is asked for.

A backend turns (Model, Layout) into a CompiledCircuit (backends/compiled.py)
whose numeric work an Engine does (backends/engine.py). This module holds
the part every caller sees before any engine exists: the `Backend` base
class with `check`, its `Capabilities`, the `CompileOptions` every backend
understands, and the dtype names. The registry (backends/registry.py)
accepts only `Backend` instances, so the driver never guesses what a
registered object can do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import torch

from pccompiler.errors import BackendError, UnsupportedError
from pccompiler.ir import pcir
from pccompiler.ir.layout_rules_deep import (BACKWARD_DEFERRED, BACKWARD_DEFERRED_KEY,
                                             is_backward_deferred)

if TYPE_CHECKING:
    from pccompiler.backends.compiled import CompiledCircuit

QUERIES = ("log_prob", "marginal", "flows", "em", "sgd", "sample", "conditional_sample", "mpe")
DIST_NAMES = {pcir.CATEGORICAL_DIST: "categorical", pcir.BERNOULLI_DIST: "bernoulli",
              pcir.GAUSSIAN_DIST: "gaussian"}


@dataclass
class Capabilities:
    """What a backend supports; `Backend.check` refuses anything outside it."""
    distributions: frozenset[str] = frozenset(DIST_NAMES.values())
    queries: frozenset[str] = frozenset(QUERIES)
    devices: frozenset[str] = frozenset({"cpu"})
    dtypes: frozenset[str] = frozenset({"float32", "float64"})
# Options a backend took once and no longer does, with the reason. A backend
# reads the `extra` options it knows and passes over the rest, so without
# this an old call would run without what it asked for and say nothing.
REMOVED_OPTIONS = {
    "fused": "the triton backend's one-launch path was removed (wrong results on the GPU, "
             "and slower than the layer-by-layer kernels; docs/notes/triton-kernels.md)",
}


def refuse_removed_options(options: Mapping[str, Any]) -> None:
    """BackendError naming the first option of `options` that was removed."""
    for name in options:
        if name in REMOVED_OPTIONS:
            raise BackendError(f"compile option {name}={options[name]!r} no longer exists: "
                               f"{REMOVED_OPTIONS[name]}; drop it")


@dataclass
class CompileOptions:
    """Options every backend understands (backends may read `extra`)."""
    device: str = "cpu"
    dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        refuse_removed_options(self.extra)

    @classmethod
    def from_any(cls, options: "CompileOptions | Mapping[str, Any] | None") -> "CompileOptions":
        if options is None:
            return cls()
        if isinstance(options, CompileOptions):
            return options
        known = {k: v for k, v in options.items() if k in ("device", "dtype")}
        extra = {k: v for k, v in options.items() if k not in ("device", "dtype")}
        return cls(**known, extra=extra)


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype called `name` ("float32" or "float64")."""
    return {"float32": torch.float32, "float64": torch.float64}[name]


class Backend:
    """A backend: a name, its capabilities, and `compile`."""
    name: str = ""
    capabilities: Capabilities = Capabilities()
    # Whether compile reads a Layout's backward sum partitions (kernels that
    # push flows child by child do); False lets a node-form compile leave
    # them out (passes.compile_model(backward=False)).
    reads_backward_partitions: bool = True

    def compile(self, model: pcir.Model, layout: pcir.Layout,
                options: CompileOptions | Mapping[str, Any] | None = None,
                arrays: Mapping[str, Any] | None = None) -> "CompiledCircuit":
        """A CompiledCircuit of (model, layout). `arrays`: name -> numpy of
        the Model's tensors held outside the message (ir/external_arrays.py:
        a mapped .pcc, the frontend's arrays), read in place of raw_data."""
        raise NotImplementedError

    def check(self, model: pcir.Model | None = None, query: str | None = None,
              device: str | None = None, dtype: str | None = None,
              layout: pcir.Layout | None = None) -> None:
        """Raise UnsupportedError naming what this backend lacks (or, given
        `layout`, what that Layout lacks for it)."""
        if layout is not None and self.reads_backward_partitions and is_backward_deferred(layout):
            # a node Layout compiled for a backend that never reads backward
            # partitions (torch); flows pushed child by child would find none
            raise UnsupportedError(
                "this node Layout was compiled without its backward partitions (metadata "
                f"{BACKWARD_DEFERRED_KEY}={BACKWARD_DEFERRED}, made for a backend that does not "
                f"read them); backend {self.name!r} reads them: build them with "
                "pccompiler.passes.node_backward.add_backward(layout), or compile through "
                "pccompiler.compile / pccompiler.load, which do it for you")
        caps = self.capabilities
        if query is not None and query not in caps.queries:
            raise UnsupportedError(f"backend {self.name!r} does not support the query {query!r} "
                                   f"(supported: {', '.join(sorted(caps.queries))})")
        if device is not None and torch.device(device).type not in caps.devices:
            raise UnsupportedError(f"backend {self.name!r} does not run on device {device!r} "
                                   f"(supported: {', '.join(sorted(caps.devices))})")
        if dtype is not None and dtype not in caps.dtypes:
            raise UnsupportedError(f"backend {self.name!r} does not support dtype {dtype!r} "
                                   f"(supported: {', '.join(sorted(caps.dtypes))})")
        if model is not None:
            # one pass collecting the distinct distributions (a cached
            # compile runs this twice over every group); the group is only
            # looked up again to name it in the error
            dists = {g.input.dist for g in model.groups if g.kind == pcir.INPUT}
            bad = {d for d in dists
                   if DIST_NAMES.get(d, str(d)) not in caps.distributions}
            for g in model.groups if bad else ():
                if g.kind == pcir.INPUT and g.input.dist in bad:
                    dist = DIST_NAMES.get(g.input.dist, str(g.input.dist))
                    raise UnsupportedError(
                        f"backend {self.name!r} does not support {dist} inputs "
                        f"(group {g.id} {g.name!r})")
