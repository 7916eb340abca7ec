"""The one table of compiler passes and the default pipeline.

A pass is a plain function `(obj, ctx) -> (new_obj, changed)` over a
`pcir.Model` (or, from `layerize` on, a `pcir.Layout`), registered here with
a one-line description. Adding a pass means writing the function and one
`register(...)` call in its module; the manager, `pcc passes` and the cache
all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pccompiler.errors import PassError

# Run in this order unless the caller names another pipeline.
DEFAULT_PIPELINE = ("verify,canonicalize,tie-params,partition-blocks,"
                    "detect-block-sparsity,layerize,layout")


@dataclass(frozen=True)
class PassInfo:
    """A registered pass.

    `consumes`/`produces` are "model" or "layout" so the manager can refuse a
    pipeline that feeds a Layout to a Model pass. `param_dependent(options)`
    says whether the result depends on parameter *values* (not only on the
    structure); the layout cache then adds a parameter hash to its key.
    """
    name: str
    fn: Callable[..., Any]
    description: str
    consumes: str = "model"
    produces: str = "model"
    defaults: tuple[tuple[str, Any], ...] = ()
    param_dependent: Callable[[dict], bool] = lambda options: False


PASSES: dict[str, PassInfo] = {}


def register(name: str, description: str, consumes: str = "model", produces: str = "model",
             defaults: dict | None = None,
             param_dependent: Callable[[dict], bool] | None = None):
    """Decorator: add `fn` to the pass table under `name`."""
    def wrap(fn):
        if name in PASSES:
            raise ValueError(f"pass {name!r} registered twice")
        PASSES[name] = PassInfo(name, fn, description, consumes, produces,
                                tuple(sorted((defaults or {}).items())),
                                param_dependent or (lambda options: False))
        return fn
    return wrap


def get_pass(name: str) -> PassInfo:
    info = PASSES.get(name)
    if info is None:
        raise PassError(f"unknown pass {name!r}; known passes: {', '.join(sorted(PASSES))} "
                        "(see `pcc passes`)")
    return info


def all_passes() -> list[PassInfo]:
    """Every registered pass, in default-pipeline order first, then by name."""
    order = [n.strip() for n in DEFAULT_PIPELINE.split(",")]
    return sorted(PASSES.values(),
                  key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name))


