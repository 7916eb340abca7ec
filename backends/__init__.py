"""pccompiler.backends: run a compiled Layout.

    from pccompiler import backends
    backend = backends.get_backend("torch")
    circuit = backend.compile(model, layout, {"device": "cpu"})

`interface` holds what a backend declares (Backend, Capabilities,
CompileOptions); `engine` the numeric core every backend writes once
(Engine, with the shared EM update); `compiled` the CompiledCircuit users
hold; `registry` finds backends by name, including third-party ones
registered through the `pccompiler.backends` entry-point group.
"""

from pccompiler.backends.compiled import CompiledCircuit
from pccompiler.backends.engine import Engine
from pccompiler.backends.interface import Backend, Capabilities, CompileOptions
from pccompiler.backends.registry import (
    ENTRY_POINT_GROUP, available_backends, get_backend, register_backend,
)

__all__ = ["Backend", "Capabilities", "CompileOptions", "CompiledCircuit", "ENTRY_POINT_GROUP",
           "Engine", "available_backends", "get_backend", "register_backend"]
