"""Find backends by name: built-ins plus the `pccompiler.backends` entry points.

A third-party package registers a backend with, in its pyproject.toml,

    [project.entry-points."pccompiler.backends"]
    mybackend = "mypkg.pc:MyBackend"

where `MyBackend` is a `pccompiler.backends.Backend` subclass (or a
factory returning an instance). `register_backend` does the same at run
time. The built-in names (reference, torch, triton) resolve to the
built-ins without reading any package metadata; an entry point cannot take
them over (`register_backend` can).
Whatever a name resolves to must be a `Backend` instance (`get_backend`
refuses anything else), so callers rely on `compile`, `check` and
`capabilities` without probing for them.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Callable

from pccompiler.backends.interface import Backend
from pccompiler.errors import BackendError

ENTRY_POINT_GROUP = "pccompiler.backends"

# Built-ins, found even when the package metadata is missing (source trees).
_BUILTIN = {
    "reference": "pccompiler.backends.reference:ReferenceBackend",
    "torch": "pccompiler.backends.torch:TorchBackend",
    "triton": "pccompiler.backends.triton:TritonBackend",
}
_registered: dict[str, Callable[[], Backend]] = {}
_instances: dict[str, Backend] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Register `factory` (a Backend class or a zero-argument callable
    returning a Backend; a class that is not a Backend is refused here, what
    a callable returns when `get_backend` first calls it)."""
    if isinstance(factory, type) and not issubclass(factory, Backend):
        raise BackendError(f"cannot register {factory.__name__} as backend {name!r}: it is "
                           f"not a pccompiler.backends.Backend subclass")
    _registered[name] = factory
    _instances.pop(name, None)


def _entry_points() -> dict[str, str]:
    found = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def _load(target: str) -> Callable[[], object]:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def available_backends() -> list[str]:
    """Names of every backend known (built-in, entry point or registered)."""
    return sorted(set(_BUILTIN) | set(_entry_points()) | set(_registered))


def get_backend(name: str) -> Backend:
    """The Backend instance called `name` (BackendError if unknown, broken,
    or not a `Backend`)."""
    if name in _instances:
        return _instances[name]
    factory = _registered.get(name)
    if factory is None:
        # a built-in name needs no scan of every installed distribution's
        # metadata (70-150 ms of the first compile in a process)
        target = _BUILTIN.get(name) or _entry_points().get(name)
        if target is None:
            raise BackendError(f"unknown backend {name!r}; available: "
                               f"{', '.join(available_backends())}")
        try:
            factory = _load(target)
        except (ImportError, AttributeError) as exc:
            raise BackendError(f"backend {name!r} ({target}) could not be loaded: {exc}") from exc
    backend = factory()
    if not isinstance(backend, Backend):
        raise BackendError(f"backend {name!r} is a {type(backend).__name__}, not a "
                           f"pccompiler.backends.Backend: it cannot compile a circuit")
    if not getattr(backend, "name", ""):
        backend.name = name
    _instances[name] = backend
    return backend
