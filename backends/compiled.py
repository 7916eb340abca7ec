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
import weakref
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from pccompiler.errors import BackendError, DataError, PCError, UnsupportedError
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


# Circuits training by gradients: after any optimizer's step their
# probability-space parameters are recomputed from the logits it changed.
_GRADIENT_CIRCUITS: "weakref.WeakSet[CompiledCircuit]" = weakref.WeakSet()
_STEP_HOOK: list = []
_LOGITS = ("sum_logits", "input_logits")


def _after_optimizer_step(optimizer, args, kwargs) -> None:
    for circuit in list(_GRADIENT_CIRCUITS):
        circuit._sync()


class CompiledCircuit(torch.nn.Module):
    """A compiled circuit: queries, training and saving over one Engine.

    `x` is [B, num_vars] (integers; floats for real variables; numpy or
    torch); `missing` a bool array of the same shape (True = marginalise).
    `sum_params` / `input_params` are module parameters in probability
    space (what the engine reads, EM updates in place, `state_dict()`
    holds and `to_model()` writes back into the IR); they do not require
    gradients.

    Gradient training (backends with the "sgd" query: torch) is switched on
    with `circuit.requires_grad_()`: the parameters are then held as
    unconstrained logits `sum_logits` / `input_logits`, the only parameters
    that require gradients, and `sum_params` / `input_params` are always
    their normalised image (a softmax over every sum node's edges and every
    categorical row, sigmoid for Bernoulli p, exp for Gaussian std), so
    any optimizer keeps the circuit normalised:

        circuit.requires_grad_()
        opt = torch.optim.Adam(circuit.parameters(), lr=0.1)
        loss = -circuit.log_prob(x).mean(); opt.zero_grad(); loss.backward(); opt.step()

    `log_prob` with grad enabled differentiates through the softmax;
    every other query, EM and saving read the normalised image (refreshed
    after any optimizer step, or when the logits changed). `state_dict()`
    keeps only the probability-space parameters (the same keys as without
    gradients), and loading one resets the logits to their log. EM still
    works in this mode (it updates the probabilities; the logits follow).
    `requires_grad_(False)` drops the logits. The triton and reference
    backends raise UnsupportedError (no autograd through their kernels).
    Gradients in probability space (`circuit.sum_params.requires_grad_()`,
    unnormalised steps) work on the torch backend as before.

    `.to(device/dtype)`, `.double()`, `.float()`, `.cuda()`, `.cpu()` move
    the parameters and the engine together (dtype float32 or float64);
    what the backend or this machine cannot do raises UnsupportedError or
    BackendError before anything moves.

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
        self._synced: tuple[int, int] | None = None

    def __repr__(self) -> str:
        if "_totals" not in self.__dict__:
            from pccompiler.ir.text import model_info
            self._totals = model_info(self.engine.model, max_groups=0)["totals"]
        t = self._totals
        dtype = str(self.engine.dtype).replace("torch.", "")
        grad = ", gradients=logits" if self.gradient_training else ""
        return (f"CompiledCircuit(backend={self.backend_name!r}, device={str(self.device)!r}, "
                f"dtype={dtype}, groups={t['groups']}, edges={t['edges']}, "
                f"params={t['parameters']}{grad})")

    # ------------------------------------------------------------ gradients
    @property
    def gradient_training(self) -> bool:
        """True after `requires_grad_()`: the parameters are held as logits."""
        return "sum_logits" in self._parameters

    def _check_gradients(self) -> None:
        """UnsupportedError unless the backend declares the "sgd" query."""
        from pccompiler.backends.registry import get_backend
        try:
            queries = get_backend(self.backend_name).capabilities.queries
        except BackendError:
            return
        if "sgd" not in queries:
            raise UnsupportedError(
                f"backend {self.backend_name!r} does not support gradients (query 'sgd'): its "
                f"kernels compute flows without autograd; train it with EM (em_step, "
                f"pccompiler.train.train_em) or compile with backend='torch'")

    def requires_grad_(self, requires_grad: bool = True) -> "CompiledCircuit":
        """Switch gradient training on (parameters held as logits, see the
        class docstring) or off; returns the circuit."""
        if not requires_grad:
            if self.gradient_training:
                self._sync()
                _GRADIENT_CIRCUITS.discard(self)
                for name in _LOGITS:
                    delattr(self, name)
                self._synced = None
            return self
        self._check_gradients()
        if not self.gradient_training:
            sum_l, input_l = self.engine.logits_from_parameters()
            self.sum_logits = torch.nn.Parameter(sum_l)
            self.input_logits = torch.nn.Parameter(input_l)
            self._synced = self._logit_versions()
            _GRADIENT_CIRCUITS.add(self)
            if not _STEP_HOOK:
                from torch.optim.optimizer import register_optimizer_step_post_hook
                _STEP_HOOK.append(register_optimizer_step_post_hook(_after_optimizer_step))
        return self

    def _logit_versions(self) -> tuple[int, int]:
        return self.sum_logits._version, self.input_logits._version

    @torch.no_grad()
    def _sync(self) -> None:
        """Recompute sum_params / input_params from the logits if an
        optimizer (or anything else) changed them since the last time."""
        if not self.gradient_training or self._synced == self._logit_versions():
            return
        sum_p, input_p = self.engine.parameters_from_logits(self.sum_logits, self.input_logits)
        self._store(sum_p, input_p)

    def _store(self, sum_p: torch.Tensor, input_p: torch.Tensor) -> None:
        self.sum_params.data.copy_(sum_p.detach())
        self.input_params.data.copy_(input_p.detach())
        self._synced = self._logit_versions()

    @torch.no_grad()
    def _logits_follow(self) -> None:
        """The probability-space parameters changed (EM, loading): reset
        the logits to their log."""
        if self.gradient_training:
            sum_l, input_l = self.engine.logits_from_parameters()
            self.sum_logits.copy_(sum_l)
            self.input_logits.copy_(input_l)
            self._synced = self._logit_versions()

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        self._sync()
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name in _LOGITS:
            destination.pop(prefix + name, None)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        for name in _LOGITS:
            if prefix + name in missing_keys:
                missing_keys.remove(prefix + name)
        self._logits_follow()

    # ------------------------------------------------------------ device and dtype
    def _apply(self, fn, recurse: bool = True):
        """nn.Module's hook behind .to(), .double(), .float(), .cuda(),
        .cpu(): the target device and dtype are read off an empty tensor,
        checked against the backend and the engine, then the parameters and
        the engine move together."""
        eng = self.engine
        try:
            target = fn(torch.empty(0, dtype=eng.dtype, device=eng.device))
        except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"cannot move the {self.backend_name} circuit from {eng.device}: "
                               f"{line}") from None
        device, dtype = target.device, target.dtype
        name = str(dtype).replace("torch.", "")
        moving = (device, dtype) != (eng.device, eng.dtype)
        if moving:
            from pccompiler.backends.registry import get_backend
            if not dtype.is_floating_point:
                raise UnsupportedError(f"a circuit computes in float32 or float64, not {name}")
            get_backend(self.backend_name).check(device=str(device), dtype=name)
            eng.check_move(device, dtype)
        self._sync()
        super()._apply(fn, recurse)
        eng.sum_params, eng.input_params = self.sum_params, self.input_params
        if moving:
            eng.moved(device, dtype)
            self.options.device, self.options.dtype = str(device), name
            self._synced = self._logit_versions() if self.gradient_training else None
        return self

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
        """The compiled Model. A circuit loaded from a .pcc holds its
        parameter tensors in the file's mapping (ir/external_arrays.py);
        the first access copies them inline, so callers get a plain Model."""
        engine = self.engine
        if getattr(engine, "arrays", None) is not None:
            from pccompiler.ir.external_arrays import inline_arrays
            engine.model, engine.arrays = inline_arrays(engine.model, engine.arrays), None
        return engine.model

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
        """log p(x) per sample (marginalising `missing`), Tensor [B];
        differentiable in the logits after `requires_grad_()`."""
        if self.gradient_training and torch.is_grad_enabled():
            xt, mt, check = self._checked(x, missing)
            sum_p, input_p = self.engine.parameters_from_logits(self.sum_logits,
                                                                self.input_logits)
            self._store(sum_p, input_p)
            with self.engine.reading(sum_p, input_p):
                return self.engine.root_log_prob(xt, mt, check)
        self._sync()
        grad = self.sum_params.requires_grad or self.input_params.requires_grad
        if grad and torch.is_grad_enabled():
            self._check_gradients()
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            xt, mt, check = self._checked(x, missing)
            return self.engine.root_log_prob(xt, mt, check)

    forward = log_prob

    def graphed_query(self, batch_size: int, marginal: bool = True, dtype: Any = None,
                      graph: bool | None = None, check: bool = True, persistent: Any = None):
        """A callable `q(x, missing=None) -> log p(x)` [B] for ONE batch
        size, replayed from one CUDA graph with static input buffers (`q.x`,
        `q.missing`) and a static output (`q.out`, overwritten by the next
        call): the small-batch serving path (triton backend). marginal:
        accept a missing mask; dtype: the data's integer dtype (default
        int64; uint8 for <= 256 categories halves nothing at batch 1 but is
        accepted); graph: None = a graph where the device allows, else eager
        (CPU, TRITON_INTERPRET=1), True = a graph or UnsupportedError;
        check: raise DataError for an out-of-range category (one host sync).
        Parameters are read by address, so EM updates are seen. persistent:
        "auto" / "on" / "off" for this query (None: the compile option; the
        one-launch forward of <= 16 rows, backends/triton/persistent.py)."""
        make = getattr(self.engine, "graphed_query", None)
        if make is None:
            raise UnsupportedError(f"graphed_query needs the triton backend; this circuit runs "
                                   f"on {type(self.engine).__name__}")
        self._sync()
        return make(batch_size, marginal=marginal,
                    dtype=torch.long if dtype is None else dtype, graph=graph, check=check,
                    persistent=persistent)

    def flows(self, x: Any, missing: Any = None, accumulate: bool = False) -> torch.Tensor:
        """Node flows [num_slots, B] (root flow 1). Parameter statistics are
        kept only if `accumulate` (else the accumulators are left as they were)."""
        xt, mt = self.prepare(x, missing)
        self._sync()
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
        self._sync()
        return self.engine.forward_backward(xt, mt, check)

    def zero_flows(self) -> None:
        self.engine.zero_flows()

    def em_update(self, step_size: float = 1.0, pseudocount: float = 0.0) -> None:
        self._sync()
        self.engine.em_update(step_size, pseudocount)
        self._logits_follow()

    def em_step(self, x: Any, missing: Any = None, step_size: float = 1.0,
                pseudocount: float = 0.0) -> torch.Tensor:
        """One mini-batch EM step; returns log p(x) [B] under the old parameters."""
        self.engine.zero_flows()
        lls = self.accumulate_flows(x, missing)
        self.em_update(step_size, pseudocount)
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
        self._sync()
        return self.engine.top_down(xt, mt, mode="sample", generator=generator)

    def mpe(self, x: Any, missing: Any = None) -> torch.Tensor:
        """A most probable completion of the missing entries (max-product)."""
        xt, mt = self.prepare(x, missing)
        if mt is None:
            return xt
        self._sync()
        return self.engine.top_down(xt, mt, mode="mpe")

    def _x_dtype(self) -> torch.dtype:
        return self.engine.dtype if self.engine.real_vars.any() else torch.long

    # ------------------------------------------------------------ IR and files
    def to_model(self) -> pcir.Model:
        """The Model with the current parameters."""
        self._sync()
        return self.engine.store_parameters()

    def parameter_arrays(self) -> dict:
        """{parameter tensor name: numpy array} of the current parameters,
        in the Model's shapes and dtypes (what `save` streams to the file)."""
        self._sync()
        return self.engine.parameter_arrays()

    def load_model_parameters(self, model: pcir.Model) -> None:
        """Take parameters from a Model of the same structure."""
        self.engine.load_parameters(model)
        self._logits_follow()

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
