"""The Engine: the numeric core of a backend, and the EM update every engine shares.

Every backend writes one Engine (torch ops, triton kernels, ...) over the
Layout's flat buffers (see ir/pcir.proto, "layout"):

    values, flows   float [num_slots, B]   (slot 0 = log 0, slot 1 = log 1)
    sum_params      float [num_sum_params]     (linear space, packed per block)
    input_params    float [num_input_params]   (rows at node_param_starts)

A subclass writes `forward` and `backward`; parameter packing to and from
the Model, the statistics accumulators and the EM normalisation are generic
and live here, so a new backend does not repeat them. Sampling and MPE
(`top_down`) need only `forward` (backends/common/queries.py); an engine
that answers them another way overrides `top_down`.

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

from typing import Callable, Mapping

import numpy as np
import torch

from pccompiler import ir
from pccompiler.ir import pcir
from pccompiler.ir.fileio import skeleton
from pccompiler.ir.tensors import FLOAT_DTYPES
from pccompiler.backends.common.layout_index import LayoutIndex, build_layout_index
from pccompiler.backends.common.packing import unpack_parameters
from pccompiler.backends.common.packing_upload import pack_parameters_into

MIN_STD = 1e-3   # floor of Gaussian standard deviations after an EM update


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
    Gradient training through logits (CompiledCircuit.requires_grad_) uses
    `parameters_from_logits` / `logits_from_parameters` and `reading`; a
    move (`.to()`) asks `check_move`, then calls `moved`.
    """

    def __init__(self, model: pcir.Model, layout: pcir.Layout,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 arrays: Mapping[str, np.ndarray] | None = None):
        self.model = model
        # bytes of the Model's external tensors (ir/external_arrays.py)
        self.arrays = arrays
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
        # the Model has every byte: keep no outside array alive (with no
        # arrays there is nothing to drop, and no need to scan the tensors)
        if arrays is not None and not any(t.HasField("external") for t in model.tensors):
            self.arrays = None

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

    def top_down(self, x: torch.Tensor, missing: torch.Tensor, mode: str = "sample",
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Fill in the `missing` entries of `x` [B, num_vars]: a sample from
        p(missing | observed) (mode "sample") or a max-product completion
        ("mpe"); observed entries are kept."""
        from pccompiler.backends.common.queries import top_down
        return top_down(self, x, missing, mode=mode, generator=generator)

    def zero_flows(self) -> None:
        self.sum_param_flows.zero_()
        self.input_param_flows.zero_()
        self.input_node_flows.zero_()

    def load_parameters(self, model: pcir.Model | None = None) -> None:
        """Pack the Model's parameters into sum_params / input_params, on the
        device in the engine's dtype (backends/common/packing_upload.py: one upload
        per tensor, no float64 host copy of the whole parameter vector)."""
        if model is not None:
            self.model, self.arrays = model, None
        pack_parameters_into(self.model, self.layout, self.sum_params.data,
                             self.input_params.data, self.arrays)

    def parameter_arrays(self, dtype=None) -> dict[str, np.ndarray]:
        """The current parameters as {owner tensor name: array} in each
        tensor's shape and dtype, or all in `dtype` (no Model is built:
        `write_pcc` streams these into the file's params section)."""
        sum_np = self.sum_params.detach().cpu().numpy()
        input_np = self.input_params.detach().cpu().numpy()
        return unpack_parameters(self.model, self.layout, sum_np, input_np, dtype)

    def store_parameters(self, float64: bool = False) -> pcir.Model:
        """A copy of the Model holding the current parameters (tensors keep
        their names and dtypes; `float64`: parameter tensors become float64,
        so nothing is rounded to a narrower file dtype)."""
        arrays = self.parameter_arrays(np.float64 if float64 else None)
        model = skeleton(self.model)
        for t in self.model.tensors:
            if t.name in arrays:
                new = arrays[t.name]
            elif t.HasField("external"):
                new = np.asarray(self.arrays[t.name]).reshape(tuple(t.dims))
            elif float64 and t.dtype in FLOAT_DTYPES:
                new = ir.to_numpy(t)
            else:
                model.tensors.append(t)
                continue
            if float64 and new.dtype.kind == "f":
                new = new.astype(np.float64, copy=False)
            model.tensors.append(ir.from_numpy(new, t.name))
        return model

    @property
    def key_groups(self) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                                  tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(sum, categorical input) `_key_groups`: the entries every node
        normalises over (EM's update and the gradient path's softmax)."""
        if self.__dict__.get("_em_groups") is None:
            idx = self.index
            self._em_groups = (_key_groups(idx.sum_param_parent), _key_groups(idx.input_param_row))
        return self._em_groups

    # ------------------------------------------------------------ gradients
    def parameters_from_logits(self, sum_logits: torch.Tensor, input_logits: torch.Tensor
                               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised (sum_params, input_params) that unconstrained
        logits stand for, differentiable in the logits: a softmax over every
        sum node's edges and every categorical row, sigmoid for Bernoulli p,
        mean as is and exp for Gaussian std. Entries no node reads (reserved
        padding) keep their current values."""
        (ssel, skey, _), (isel, ikey, _) = self.key_groups
        idx = self.index
        sum_p = _segment_softmax(sum_logits, ssel, skey, self.sum_params.detach())
        input_p = _segment_softmax(input_logits, isel, ikey, self.input_params.detach())
        rows = idx.bernoulli_rows
        if rows.numel():
            input_p = input_p.index_put((rows,), torch.sigmoid(input_logits[rows]))
        rows = idx.gaussian_rows
        if rows.numel():
            tiny = torch.finfo(input_logits.dtype).tiny
            input_p = input_p.index_put((rows,), input_logits[rows])
            input_p = input_p.index_put((rows + 1,), torch.exp(input_logits[rows + 1]).clamp_min(tiny))
        return sum_p, input_p

    @torch.no_grad()
    def logits_from_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits whose `parameters_from_logits` are the current parameters
        (log p, logit p, log std; zero probabilities become log(tiny))."""
        tiny = torch.finfo(self.dtype).tiny
        sum_l = torch.log(self.sum_params.detach().clamp_min(tiny))
        params = self.input_params.detach()
        input_l = torch.log(params.clamp_min(tiny))
        idx = self.index
        rows = idx.bernoulli_rows
        if rows.numel():
            p = params[rows].clamp(tiny, 1 - torch.finfo(self.dtype).eps)
            input_l[rows] = torch.log(p) - torch.log1p(-p)
        rows = idx.gaussian_rows
        if rows.numel():
            input_l[rows] = params[rows]
        return sum_l, input_l

    def reading(self, sum_params: torch.Tensor, input_params: torch.Tensor):
        """A context in which `forward` reads these tensors as the parameters
        (the gradient path: autograd flows from the log-likelihood into
        whatever computed them)."""
        return _Reading(self, sum_params, input_params)

    # ------------------------------------------------------------ moves
    def check_move(self, device: torch.device, dtype: torch.dtype) -> None:
        """Raise UnsupportedError if this engine cannot move to `device` /
        `dtype` (CompiledCircuit's `.to()`); the generic engine can."""

    def moved(self, device: torch.device, dtype: torch.dtype) -> None:
        """The circuit's parameters moved to `device` / `dtype` (`.to()`,
        `.double()`, `.cuda()`): move the statistics accumulators with them
        and rebuild the device-bound caches on next use."""
        self.device, self.dtype = torch.device(device), dtype
        self._index = None
        self._em_groups = None
        for name in ("sum_param_flows", "input_param_flows", "input_node_flows"):
            slot = "_lazy_" + name
            if self.__dict__.get(slot) is not None:
                self.__dict__[slot] = self.__dict__[slot].to(device, dtype)

    @torch.no_grad()
    def em_update(self, step_size: float = 1.0, pseudocount: float = 0.0) -> None:
        """params = (1 - step) * params + step * normalise(flows + pseudocount).

        The pseudocount is spread evenly over each node's parameters (a sum
        node's edges of non-zero weight, a categorical's categories); a node
        with no flow and no pseudocount keeps its parameters. A sum edge of
        weight exactly 0 stays 0: it is a pseudo-edge `detect-block-sparsity`
        padded a block with (or an edge EM already drove to 0), and giving it
        a share of the pseudocount would add an edge the structure lacks. Gaussians shrink towards their
        current mean/variance with weight `pseudocount`; std >= MIN_STD.
        """
        idx = self.index
        step, pc = float(step_size), float(pseudocount)
        sum_groups, input_groups = self.key_groups
        self._normalise(self.sum_params, self.sum_param_flows, sum_groups, step, pc,
                        keep_zeros=True)
        self._normalise(self.input_params, self.input_param_flows, input_groups, step, pc)
        em_update_continuous(self.input_params.data, self.input_param_flows, self.input_node_flows,
                             idx.bernoulli_rows, idx.gaussian_rows, step, pc)

    @staticmethod
    def _normalise(params: torch.Tensor, flows: torch.Tensor,
                   groups: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                   step: float, pc: float, keep_zeros: bool = False) -> None:
        """Per-key normalisation of `flows` with pseudocount into `params`;
        `keep_zeros`: entries equal to 0 stay 0 and take no pseudocount."""
        sel, k, count = groups
        if sel.numel() == 0:
            return
        f, old = flows[sel], params[sel]
        total = torch.zeros_like(flows).index_add_(0, k, f)[k]
        if keep_zeros:
            live = old != 0
            count = torch.zeros_like(flows).index_add_(0, k, live.to(flows.dtype))[k]
        else:
            count = count.to(flows.dtype)
        denom = total + pc
        ok = (denom > 0) & (count > 0)
        new = torch.where(ok, (f + pc / count.clamp_min(1)) / denom.clamp_min(1e-300), old)
        if keep_zeros:
            new = torch.where(live, new, torch.zeros_like(new))
        params[sel] = (1 - step) * old + step * new


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

class _Reading:
    """Engine.reading: swap the parameter tensors the forward reads."""

    def __init__(self, engine: Engine, sum_params: torch.Tensor, input_params: torch.Tensor):
        self.engine, self.params = engine, (sum_params, input_params)

    def __enter__(self) -> None:
        eng = self.engine
        self.saved = (eng.sum_params, eng.input_params)
        eng.sum_params, eng.input_params = self.params

    def __exit__(self, *exc) -> None:
        self.engine.sum_params, self.engine.input_params = self.saved


def _segment_softmax(logits: torch.Tensor, sel: torch.Tensor, key: torch.Tensor,
                     fill: torch.Tensor) -> torch.Tensor:
    """`fill` with the entries `sel` replaced by softmax(logits[sel]) within
    equal `key`s (differentiable in `logits`; keys index a vector as long as
    `logits`, as `_key_groups` gives them)."""
    if sel.numel() == 0:
        return fill.clone()
    z = logits[sel]
    top = torch.full_like(logits, -torch.inf).detach().scatter_reduce(0, key, z.detach(), "amax")
    e = torch.exp(z - top[key])
    total = torch.zeros_like(logits).index_add(0, key, e)
    return fill.index_put((sel,), e / total[key])


def _key_groups(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(entries with a key, their keys, the size of each entry's key group)."""
    sel = torch.nonzero(key >= 0).squeeze(1)
    k = key[sel]
    count = torch.zeros(key.shape[0], dtype=torch.long, device=key.device)
    count.index_add_(0, k, torch.ones_like(k))
    return sel, k, count[k]
