"""CompiledCircuit: the user's object over one Engine, and its input checks.

A backend's `compile` returns one. It validates every batch (shape, dtype,
categories in range, finite reals: DataError naming the first bad row and
column) before the engine sees it, so engines index their buffers without
checking; on a GPU the value check is arranged to cost one sync after the
work, or none (`_prepare`). Queries, EM and saving are written once here on
top of the Engine interface (backends/engine.py). Where the circuit came
from is declared: `compile_report` (the pass report of `pccompiler.compile`)
and `manifest` (the .pcc manifest of `pccompiler.load`), None otherwise.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from pccompiler.errors import DataError, PCError
from pccompiler.ir import pcir
from pccompiler.backends.engine import Engine
from pccompiler.backends.interface import CompileOptions

if TYPE_CHECKING:
    from pccompiler.passes.manager import PassReport


def _as_real_tensor(x: Any, what: str) -> torch.Tensor:
    """`x` as a torch tensor, refusing non-numeric and complex data (which
    torch would reject with a TypeError or silently truncate)."""
    if not torch.is_tensor(x):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise DataError(f"{what} of dtype {x.dtype} is not real numbers: expected integers "
                            "(floats for real variables)")
    elif x.is_complex():
        raise DataError(f"{what} of dtype {x.dtype} is complex: expected real numbers")
    return torch.as_tensor(x)



class _ValueCheck:
    """Raises DataError at the first entry of `bad` (a mask over the batch,
    missing entries excluded) when called; runs once."""

    def __init__(self, xt: torch.Tensor, bad: torch.Tensor, mt: torch.Tensor | None,
                 message: Callable[[int, int], str]):
        if mt is not None:
            bad = bad & ~mt.to(bad.device)
        self.bad, self.any, self.message = bad, bad.any(), message

    def __call__(self) -> None:
        if self.bad is None:
            return
        bad, self.bad = self.bad, None
        if bool(self.any):
            r, c = torch.nonzero(bad)[0].tolist()
            raise DataError(self.message(r, c))


def _no_check() -> None:
    return None


def _dtype_fits(dtype: torch.dtype, num_cats: np.ndarray) -> bool:
    """True if every value of an integer `dtype` is a valid category of
    every variable (uint8 data over 256 categories): no check is needed, so
    none is run (it would cost a host sync per batch on a GPU)."""
    if dtype.is_floating_point or dtype == torch.bool or num_cats.size == 0:
        return False
    info = torch.iinfo(dtype)
    return info.min >= 0 and info.max < int(num_cats.min())


class _KernelCheck:
    """The engine's input kernel recorded the first out-of-range category of
    the forward that just ran (`take_bad_entry`); raise DataError for it."""

    def __init__(self, engine, message: Callable[[int, int], str]):
        self.engine, self.message = engine, message

    def __call__(self) -> None:
        where = self.engine.take_bad_entry()
        if where is not None:
            raise DataError(self.message(*where))


class CompiledCircuit(torch.nn.Module):
    """A compiled circuit: queries, training and saving over one Engine.

    `x` is [B, num_vars] (integers; floats for real variables; numpy or
    torch); `missing` a bool array of the same shape (True = marginalise).
    `sum_params` / `input_params` are module parameters, so `state_dict()`
    and optimisers see them; `to_model()` writes them back into the IR.

    Attributes: engine, backend_name, pipeline, options (CompileOptions);
    compile_report, the PassReport of the `pccompiler.compile` that built
    it, and manifest, the manifest dict of the .pcc it was loaded from
    (each None when the circuit did not come that way; set them through
    the constructor or `record_origin`).
    """

    def __init__(self, engine: Engine, backend_name: str, pipeline: str = "",
                 options: CompileOptions | None = None,
                 compile_report: "PassReport | None" = None,
                 manifest: dict[str, Any] | None = None):
        super().__init__()
        self.engine = engine
        self.backend_name = backend_name
        self.pipeline = pipeline
        self.options = options or CompileOptions(device=str(engine.device))
        self.compile_report = compile_report
        self.manifest = manifest
        self.sum_params = engine.sum_params
        self.input_params = engine.input_params

    def record_origin(self, compile_report: "PassReport | None" = None,
                      manifest: dict[str, Any] | None = None) -> "CompiledCircuit":
        """Record where the circuit came from (the driver calls this after
        the backend's `compile`): the pass report of a compile, or the
        manifest of a loaded .pcc. Returns the circuit."""
        if compile_report is not None:
            self.compile_report = compile_report
        if manifest is not None:
            self.manifest = manifest
        return self

    # ------------------------------------------------------------ data
    @property
    def model(self) -> pcir.Model:
        return self.engine.model

    @property
    def layout(self) -> pcir.Layout:
        return self.engine.layout

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def num_vars(self) -> int:
        return len(self.engine.model.variables)

    def prepare(self, x: Any, missing: Any = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate and move a batch to the engine's device (DataError names
        the first bad row and column)."""
        xt, mt, check = self._prepare(x, missing)
        check()
        return xt, mt

    def _prepare(self, x: Any, missing: Any = None, late: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor | None, Callable[[], None]]:
        """Shape checks now; the value checks (one reduction on the data's
        device) come back as a callable. Calling it reads one flag, which on
        a GPU waits for the queue: an engine whose forward cannot fault on
        bad values (`Engine.tolerates_bad_values`) runs its forward first
        (`late`), so the check costs one sync after the work instead of a
        stall before; an engine that `checks_categories` in its input kernel
        needs no reduction at all for integer data."""
        eng = self.engine
        xt = _as_real_tensor(x, "data")
        if xt.dim() != 2 or xt.shape[1] != self.num_vars:
            raise DataError(f"data has shape {tuple(xt.shape)}; expected [batch, {self.num_vars}]")
        if xt.shape[0] == 0:
            raise DataError(f"data has no rows (shape {tuple(xt.shape)}); a batch needs at least "
                            "one sample")
        mt = None
        if missing is not None:
            mt = _as_real_tensor(missing, "missing mask")
            if mt.shape != xt.shape:
                raise DataError(f"missing mask has shape {tuple(mt.shape)}; data has {tuple(xt.shape)}")
            mt = mt.to(torch.bool)
        if eng.real_vars.any():
            xt = xt.to(eng.dtype)
            bad = ~torch.isfinite(xt)
            what = "is not finite (mark it missing instead)"
        elif xt.is_floating_point():
            bad = ~torch.isfinite(xt) | (xt != torch.round(xt))
            what = "is not an integer"
        else:
            bad = None
        if bad is not None:
            check = _ValueCheck(xt, bad, mt, lambda r, c: f"row {r}, column {c}: value "
                                f"{xt[r, c].item()} {what}")
            if xt.is_floating_point() and not eng.real_vars.any():
                check()                 # before the cast below loses the fraction
                xt = xt.to(torch.long)
        if not eng.real_vars.any():
            if not getattr(eng, "native_int_data", False) and xt.dtype != torch.long:
                xt = xt.to(torch.long)
            message = lambda r, c: (f"row {r}, column {c}: category {xt[r, c].item()} "  # noqa: E731
                                    f"out of range [0, {int(self.engine.num_cats[c])})")
            if _dtype_fits(xt.dtype, self.engine.num_cats):
                check = _no_check           # e.g. uint8 pixels, 256 categories
            elif late and getattr(eng, "checks_categories", False):
                check = _KernelCheck(eng, message)
            else:
                cats = self._cats_on(xt.device)
                bad = xt >= cats[None, :]
                if xt.dtype != torch.uint8:
                    bad |= xt < 0
                check = _ValueCheck(xt, bad, mt, message)
        xt = xt.to(eng.device)
        return xt, (mt.to(eng.device) if mt is not None else None), check

    def _cats_on(self, device: torch.device) -> torch.Tensor:
        """The per-variable category counts as a tensor on `device` (cached:
        building it per batch is a host-to-device copy)."""
        cache = self.__dict__.setdefault("_cats_cache", {})
        key = str(device)
        if key not in cache:
            cache[key] = torch.as_tensor(self.engine.num_cats, device=device)
        return cache[key]

    def _checked(self, x: Any, missing: Any
                 ) -> tuple[torch.Tensor, torch.Tensor | None, Callable[[], None] | None]:
        """(x, missing, late check): the value check runs now, or comes back
        to run right after the forward when the engine tolerates bad values."""
        late = getattr(self.engine, "tolerates_bad_values", False)
        xt, mt, check = self._prepare(x, missing, late)
        if not late:
            check()
            return xt, mt, None
        return xt, mt, check

    def log_prob(self, x: Any, missing: Any = None) -> torch.Tensor:
        """log p(x) per sample (marginalising `missing`), Tensor [B]."""
        grad = self.sum_params.requires_grad or self.input_params.requires_grad
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            xt, mt, check = self._checked(x, missing)
            return self.engine.root_log_prob(xt, mt, check)

    forward = log_prob

    def flows(self, x: Any, missing: Any = None, accumulate: bool = False) -> torch.Tensor:
        """Node flows [num_slots, B] (root flow 1). Parameter statistics are
        kept only if `accumulate` (else the accumulators are left as they were)."""
        xt, mt = self.prepare(x, missing)
        eng = self.engine
        with torch.no_grad():
            saved = None if accumulate else (eng.sum_param_flows.clone(), eng.input_param_flows.clone(),
                                             eng.input_node_flows.clone())
            values = eng.forward(xt, mt)
            node_flows = eng.backward(values, xt, mt, flows_out=True)
            if saved is not None:
                eng.sum_param_flows.copy_(saved[0])
                eng.input_param_flows.copy_(saved[1])
                eng.input_node_flows.copy_(saved[2])
        return node_flows

    def accumulate_flows(self, x: Any, missing: Any = None) -> torch.Tensor:
        """Forward + backward on a batch, adding its statistics to the
        accumulators (full-batch EM: call per shard, then `em_update`).
        Returns log p(x) [B]."""
        xt, mt, check = self._checked(x, missing)
        return self.engine.forward_backward(xt, mt, check)

    def zero_flows(self) -> None:
        self.engine.zero_flows()

    def em_update(self, step_size: float = 1.0, pseudocount: float = 0.0) -> None:
        self.engine.em_update(step_size, pseudocount)

    def em_step(self, x: Any, missing: Any = None, step_size: float = 1.0,
                pseudocount: float = 0.0) -> torch.Tensor:
        """One mini-batch EM step; returns log p(x) [B] under the old parameters."""
        self.engine.zero_flows()
        lls = self.accumulate_flows(x, missing)
        self.engine.em_update(step_size, pseudocount)
        self.engine.zero_flows()
        return lls

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples [n, num_vars] from the circuit's distribution (n = 0
        gives an empty [0, num_vars] tensor; a negative n is a DataError)."""
        try:
            n = operator.index(n)
        except TypeError:
            raise DataError(f"sample(n): n must be an integer, not {type(n).__name__}") from None
        if n < 0:
            raise DataError(f"sample(n): n must be >= 0, not {n}")
        if n == 0:
            return torch.zeros(0, self.num_vars, dtype=self._x_dtype(), device=self.device)
        x = torch.zeros(n, self.num_vars, dtype=self._x_dtype(), device=self.device)
        missing = torch.ones(n, self.num_vars, dtype=torch.bool, device=self.device)
        return self.engine.top_down(x, missing, mode="sample", generator=generator)

    def conditional_sample(self, x: Any, missing: Any, generator: torch.Generator | None = None
                           ) -> torch.Tensor:
        """Samples of the missing entries given the others (observed kept)."""
        xt, mt = self.prepare(x, missing)
        return self.engine.top_down(xt, mt, mode="sample", generator=generator)

    def mpe(self, x: Any, missing: Any = None) -> torch.Tensor:
        """A most probable completion of the missing entries (max-product)."""
        xt, mt = self.prepare(x, missing)
        if mt is None:
            return xt
        return self.engine.top_down(xt, mt, mode="mpe")

    def _x_dtype(self) -> torch.dtype:
        return self.engine.dtype if self.engine.real_vars.any() else torch.long

    # ------------------------------------------------------------ IR and files
    def to_model(self) -> pcir.Model:
        """The Model with the current parameters."""
        return self.engine.store_parameters()

    def load_model_parameters(self, model: pcir.Model) -> None:
        """Take parameters from a Model of the same structure."""
        self.engine.load_parameters(model)

    def save(self, path: str) -> None:
        """Write one .pcc file (ir/artifact.py), atomically, with the
        user's umask. The path is checked before anything is encoded (a
        missing folder or a directory is a PCError naming it)."""
        from pccompiler.ir.artifact import write_pcc
        from pccompiler.ir.fileio import check_writable
        path = check_writable(path)
        try:
            write_pcc(path, self)
        except OSError as exc:
            raise PCError(f"{path}: cannot write: {exc.strerror or exc}") from None
