"""The backend interface: Capabilities, Engine, CompiledCircuit, Backend.

A backend turns (Model, Layout) into a CompiledCircuit. The numeric work is
done by an Engine, which every backend writes once (torch ops, triton
kernels, ...) over the Layout's flat buffers (see ir/pcir.proto, "layout"):

    values, flows   float [num_slots, B]   (slot 0 = log 0, slot 1 = log 1)
    sum_params      float [num_sum_params]     (linear space, packed per block)
    input_params    float [num_input_params]   (rows at node_param_starts)

Everything else (EM normalisation, parameter packing to and from the Model,
queries built on forward values, saving) is shared here so that a new
backend only writes `forward` and `backward`.

Flow conventions (what `backward` accumulates; EM reads them):
  * node flows: linear space, root flow 1 per sample; the flow of a child
    is sum over parents of flow(parent) * w * exp(value(child) - value(parent))
    (products pass their flow to every child unchanged);
  * sum_param_flows[p] += w_p * flow(parent) * exp(value(child) - value(parent)),
    summed over the batch, at the parameter's packed index;
  * input statistics, per input node n with row r = node_param_starts[n]
    and flow f (summed over the batch):
      input_node_flows[r] += f                    (every distribution)
      categorical: input_param_flows[r + x] += f  (x missing: += f * params[r + c] for all c)
      Bernoulli:   input_param_flows[r] += f * x  (x missing: += f * p)
      Gaussian:    input_param_flows[r] += f * x, input_param_flows[r + 1] += f * x^2
                   (x missing: f * mean and f * (mean^2 + std^2))
Tied groups share parameter slots, so their statistics add up by construction.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch

from pccompiler import ir
from pccompiler.errors import DataError, UnsupportedError
from pccompiler.ir import pcir
from pccompiler.backends.common.layout_index import LayoutIndex, build_layout_index

QUERIES = ("log_prob", "marginal", "flows", "em", "sgd", "sample", "conditional_sample", "mpe")
DIST_NAMES = {pcir.CATEGORICAL_DIST: "categorical", pcir.BERNOULLI_DIST: "bernoulli",
              pcir.GAUSSIAN_DIST: "gaussian"}
MIN_STD = 1e-3   # floor of Gaussian standard deviations after an EM update


@dataclass
class Capabilities:
    """What a backend supports; `Backend.check` refuses anything outside it."""
    distributions: frozenset[str] = frozenset(DIST_NAMES.values())
    queries: frozenset[str] = frozenset(QUERIES)
    devices: frozenset[str] = frozenset({"cpu"})
    dtypes: frozenset[str] = frozenset({"float32", "float64"})


@dataclass
class CompileOptions:
    """Options every backend understands (backends may read `extra`)."""
    device: str = "cpu"
    dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)

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
    return {"float32": torch.float32, "float64": torch.float64}[name]


class LazyZeros:
    """An engine buffer of zeros shaped like the attribute `like`, allocated
    on first access; assigning replaces it."""

    def __init__(self, like: str):
        self.like = like

    def __set_name__(self, owner, name: str) -> None:
        self.slot = "_lazy_" + name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        value = obj.__dict__.get(self.slot)
        if value is None:
            value = torch.zeros_like(getattr(obj, self.like).data)
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.slot] = value


class Engine:
    """The numeric core of a backend over one (Model, Layout) on one device.

    Subclasses implement `forward` and `backward`; the rest is generic torch.
    Attributes: model, layout, device, dtype, num_slots, root_slot,
    index (LayoutIndex, built on first access), sum_params,
    input_params (torch.nn.Parameter, requires_grad False unless the caller
    turns it on for SGD), sum_param_flows, input_param_flows, input_node_flows.
    """

    def __init__(self, model: pcir.Model, layout: pcir.Layout,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.model = model
        self.layout = layout
        self.device = torch.device(device)
        self.dtype = dtype
        self.num_slots = int(layout.num_slots)
        self.root_slot = int(layout.root_slot)
        self.num_sum_params = int(layout.num_sum_params)
        self.num_input_params = int(layout.num_input_params)
        self._index: LayoutIndex | None = None
        # empty: load_parameters writes every entry (reserved ones to 0)
        self.sum_params = torch.nn.Parameter(
            torch.empty(self.num_sum_params, dtype=dtype, device=self.device), requires_grad=False)
        self.input_params = torch.nn.Parameter(
            torch.empty(self.num_input_params, dtype=dtype, device=self.device),
            requires_grad=False)
        self._init_node_flows()
        self.real_vars = np.array([v.kind == pcir.REAL for v in model.variables], dtype=bool)
        self.num_cats = np.array([v.num_cats for v in model.variables], dtype=np.int64)
        self.load_parameters()

    @property
    def index(self) -> LayoutIndex:
        """The generic LayoutIndex (int64 per-parameter tensors: ~3x the size
        of sum_params), decoded on first use: only engines and queries that
        read it (torch forward/backward, sampling, the generic EM) pay for it."""
        if self._index is None:
            self._index = build_layout_index(self.layout, self.device)
        return self._index

    # Statistics accumulators, zeroed on first use (not at construction: a
    # circuit that only answers queries never pays for them, and a compile
    # does not page in 2-3x the parameters' memory).
    sum_param_flows = LazyZeros("sum_params")
    input_param_flows = LazyZeros("input_params")
    input_node_flows = LazyZeros("input_params")

    def _init_node_flows(self) -> None:
        """Set up `input_node_flows` (lazy by default; engines that derive
        it override this)."""

    # ------------------------------------------------------------ to implement
    def forward(self, x: torch.Tensor, missing: torch.Tensor | None = None,
                mode: str = "sum") -> torch.Tensor:
        """Log-values of every slot, [num_slots, B]. mode "max" is the
        max-product (MPE) pass: sums take a max, missing inputs their mode."""
        raise NotImplementedError

    def backward(self, values: torch.Tensor, x: torch.Tensor,
                 missing: torch.Tensor | None = None, flows_out: bool = False) -> torch.Tensor | None:
        """Propagate flows from the root (flow 1 per sample), accumulate the
        parameter statistics (module docstring) and return node flows
        [num_slots, B] if `flows_out`."""
        raise NotImplementedError

    # ------------------------------------------------------------ generic
    def root_log_prob(self, x: torch.Tensor, missing: torch.Tensor | None = None,
                      after_forward: Callable[[], None] | None = None) -> torch.Tensor:
        """log p(x) [B], a fresh tensor. `after_forward` runs between the pass
        and the result (CompiledCircuit's late value check). Engines may keep
        less than every node for this (triton: products share scratch rows)."""
        values = self.forward(x, missing)
        if after_forward is not None:
            after_forward()
        return values[self.root_slot].clone()

    def forward_backward(self, x: torch.Tensor, missing: torch.Tensor | None = None,
                         after_forward: Callable[[], None] | None = None) -> torch.Tensor:
        """Forward and backward, adding the batch's statistics to the
        accumulators; returns log p(x) [B]. `after_forward` as in root_log_prob
        (raising there leaves the accumulators untouched)."""
        with torch.no_grad():
            values = self.forward(x, missing)
            if after_forward is not None:
                after_forward()
            self.backward(values, x, missing)
            return values[self.root_slot].clone()

    def zero_flows(self) -> None:
        self.sum_param_flows.zero_()
        self.input_param_flows.zero_()
        self.input_node_flows.zero_()

    def load_parameters(self, model: pcir.Model | None = None) -> None:
        """Pack the Model's parameters into sum_params / input_params, on the
        device in the engine's dtype (backends/common/packing.py: one upload
        per tensor, no float64 host copy of the whole parameter vector)."""
        from pccompiler.backends.common.packing import pack_parameters_into
        if model is not None:
            self.model = model
        pack_parameters_into(self.model, self.layout, self.sum_params.data,
                             self.input_params.data)

    def store_parameters(self) -> pcir.Model:
        """A copy of the Model holding the current parameters (tensors keep
        their names and dtypes)."""
        from pccompiler.passes.packing import unpack_parameters
        sum_np = self.sum_params.detach().cpu().double().numpy()
        input_np = self.input_params.detach().cpu().double().numpy()
        arrays = unpack_parameters(self.model, self.layout, sum_np, input_np)
        model = copy.deepcopy(self.model)
        for t in model.tensors:
            if t.name in arrays:
                old = ir.to_numpy(t)
                new = np.asarray(arrays[t.name], dtype=old.dtype).reshape(old.shape)
                t.CopyFrom(ir.from_numpy(new, t.name))
        return model

    @torch.no_grad()
    def em_update(self, step_size: float = 1.0, pseudocount: float = 0.0) -> None:
        """params = (1 - step) * params + step * normalise(flows + pseudocount).

        The pseudocount is spread evenly over each node's parameters (a sum
        node's edges, a categorical's categories); a node with no flow and no
        pseudocount keeps its parameters. Gaussians shrink towards their
        current mean/variance with weight `pseudocount`; std >= MIN_STD.
        """
        idx = self.index
        step, pc = float(step_size), float(pseudocount)
        if not hasattr(self, "_em_groups"):
            self._em_groups = (_key_groups(idx.sum_param_parent), _key_groups(idx.input_param_row))
        self._normalise(self.sum_params, self.sum_param_flows, self._em_groups[0], step, pc)
        self._normalise(self.input_params, self.input_param_flows, self._em_groups[1], step, pc)
        em_update_continuous(self.input_params.data, self.input_param_flows, self.input_node_flows,
                             idx.bernoulli_rows, idx.gaussian_rows, step, pc)

    @staticmethod
    def _normalise(params: torch.Tensor, flows: torch.Tensor,
                   groups: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                   step: float, pc: float) -> None:
        """Per-key normalisation of `flows` with pseudocount into `params`."""
        sel, k, count = groups
        if sel.numel() == 0:
            return
        f = flows[sel]
        total = torch.zeros_like(flows).index_add_(0, k, f)[k]
        count = count.to(flows.dtype)
        denom = total + pc
        new = torch.where(denom > 0, (f + pc / count) / denom.clamp_min(1e-300), params[sel])
        params[sel] = (1 - step) * params[sel] + step * new


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


def em_update_continuous(params: torch.Tensor, flows: torch.Tensor, node_flows: torch.Tensor,
                         bernoulli_rows: torch.Tensor, gaussian_rows: torch.Tensor,
                         step: float, pc: float) -> None:
    """EM for Bernoulli and Gaussian input rows, shared by every engine.

    `flows[row]` holds sum f*x (and `flows[row + 1]` sum f*x^2 for Gaussians),
    `node_flows[row]` the node's total flow. Bernoulli: p = (sum f*x + pc/2) /
    (total + pc). Gaussian: moments shrunk towards the current (mean, std) by
    the pseudocount, std >= MIN_STD. Rows without flow or pseudocount keep
    their parameters; the result is blended with the step size."""
    rows = bernoulli_rows
    if rows.numel():
        total = node_flows[rows]
        new = (flows[rows] + pc / 2) / (total + pc)
        new = torch.where(total + pc > 0, new, params[rows])
        params[rows] = (1 - step) * params[rows] + step * new.clamp(0.0, 1.0)
    rows = gaussian_rows
    if rows.numel():
        total, mean0, std0 = node_flows[rows], params[rows], params[rows + 1]
        denom = total + pc
        mean = (flows[rows] + pc * mean0) / denom
        ex2 = (flows[rows + 1] + pc * (mean0 ** 2 + std0 ** 2)) / denom
        std = (ex2 - mean ** 2).clamp_min(MIN_STD ** 2).sqrt()
        ok = denom > 0
        mean, std = torch.where(ok, mean, mean0), torch.where(ok, std, std0)
        params[rows] = (1 - step) * mean0 + step * mean
        params[rows + 1] = (1 - step) * std0 + step * std

def _key_groups(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(entries with a key, their keys, the size of each entry's key group)."""
    sel = torch.nonzero(key >= 0).squeeze(1)
    k = key[sel]
    count = torch.zeros(key.shape[0], dtype=torch.long, device=key.device)
    count.index_add_(0, k, torch.ones_like(k))
    return sel, k, count[k]


class CompiledCircuit(torch.nn.Module):
    """A compiled circuit: queries, training and saving over one Engine.

    `x` is [B, num_vars] (integers; floats for real variables; numpy or
    torch); `missing` a bool array of the same shape (True = marginalise).
    `sum_params` / `input_params` are module parameters, so `state_dict()`
    and optimisers see them; `to_model()` writes them back into the IR.
    """

    def __init__(self, engine: Engine, backend_name: str, pipeline: str = "",
                 options: CompileOptions | None = None):
        super().__init__()
        self.engine = engine
        self.backend_name = backend_name
        self.pipeline = pipeline
        self.options = options or CompileOptions(device=str(engine.device))
        self.sum_params = engine.sum_params
        self.input_params = engine.input_params

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
        """n samples [n, num_vars] from the circuit's distribution."""
        from pccompiler.backends.common.queries import top_down
        x = torch.zeros(n, self.num_vars, dtype=self._x_dtype(), device=self.device)
        missing = torch.ones(n, self.num_vars, dtype=torch.bool, device=self.device)
        return top_down(self.engine, x, missing, mode="sample", generator=generator)

    def conditional_sample(self, x: Any, missing: Any, generator: torch.Generator | None = None
                           ) -> torch.Tensor:
        """Samples of the missing entries given the others (observed kept)."""
        from pccompiler.backends.common.queries import top_down
        xt, mt = self.prepare(x, missing)
        return top_down(self.engine, xt, mt, mode="sample", generator=generator)

    def mpe(self, x: Any, missing: Any = None) -> torch.Tensor:
        """A most probable completion of the missing entries (max-product)."""
        from pccompiler.backends.common.queries import top_down
        xt, mt = self.prepare(x, missing)
        if mt is None:
            return xt
        return top_down(self.engine, xt, mt, mode="mpe")

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
        """Write one .pcc file (ir/artifact.py)."""
        from pccompiler.ir.artifact import write_pcc
        write_pcc(path, self)


class Backend:
    """A backend: a name, its capabilities, and `compile`."""
    name: str = ""
    capabilities: Capabilities = Capabilities()

    def compile(self, model: pcir.Model, layout: pcir.Layout,
                options: CompileOptions | Mapping[str, Any] | None = None) -> CompiledCircuit:
        raise NotImplementedError

    def check(self, model: pcir.Model | None = None, query: str | None = None,
              device: str | None = None, dtype: str | None = None) -> None:
        """Raise UnsupportedError naming what this backend lacks."""
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
            for g in model.groups:
                if g.kind == pcir.INPUT:
                    dist = DIST_NAMES.get(g.input.dist, str(g.input.dist))
                    if dist not in caps.distributions:
                        raise UnsupportedError(
                            f"backend {self.name!r} does not support {dist} inputs "
                            f"(group {g.id} {g.name!r})")
