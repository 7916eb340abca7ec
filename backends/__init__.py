"""pccompiler.backends: run a compiled Layout.

    from pccompiler import backends
    backend = backends.get_backend("torch")
    circuit = backend.compile(model, layout, {"device": "cpu"})

`base` holds the interface (Backend, Engine, CompiledCircuit, Capabilities);
`registry` finds backends by name, including third-party ones registered
through the `pccompiler.backends` entry-point group.
"""

from pccompiler.backends.registry import (
    ENTRY_POINT_GROUP, available_backends, get_backend, register_backend,
)

__all__ = ["ENTRY_POINT_GROUP", "available_backends", "get_backend", "register_backend"]
