"""A log-likelihood / marginal query of one fixed batch size, replayed from
one CUDA graph: the small-batch serving path (`CompiledCircuit.graphed_query`).

At batch 1 a forward is all launch overhead: tens of Triton launches of a
few microseconds of work each, behind 5-20 us of Python apiece. The engine's
own GraphCache serves only the training batch size and does host work per
call (input checks, a transpose, a clone of the root row). A GraphedQuery
owns its static buffers instead -- `x` and `missing` ([B, V], the caller's
layout), the values buffer and the output `out` [B] -- and its one graph
holds everything from the [B, V] -> [V, B] transposes to the copy of the
root row, so a call is at most two buffer copies, one replay and (with
`check`) one read of the engine's bad-category flag.

Batches of up to persistent.B_MAX rows run the
persistent forward instead (persistent_kernel.py, option `persistent`):
the graph then holds one fill of the bad-category flag and ONE launch that
reads `x` / `missing` in place (no transposes) and writes the Layout-slot
values buffer, whose root row `out` is a view of; the eager path is a
chain of per-layer launches (HCLT-128: 89 dependent layers).

The graph reads the parameters by address; EM updates them in place, so a
query made once keeps answering for the trained circuit. Where graphs cannot
run (CPU, `TRITON_INTERPRET=1`) the same steps run eagerly (`graphed` is
False), or, with graph=True, construction raises UnsupportedError.
"""

from __future__ import annotations

from typing import Any

import torch

from pccompiler.backends.triton.persistent import B_MAX, check_mode
from pccompiler.errors import BackendError, DataError, UnsupportedError


def wants_persistent(engine, batch_size: int, option: object) -> bool:
    """Whether a query of batch_size runs the persistent forward: option
    (None: the engine's) "off" never, "auto" for <= B_MAX rows of a circuit
    it reads, "on" always (else a clear error)."""
    mode = check_mode(engine.persistent if option is None else option)
    if mode == "off":
        return False
    why = engine.persistent_reason()
    if mode == "auto":
        return batch_size <= B_MAX and why is None
    if batch_size > B_MAX:
        raise BackendError(f"graphed_query(persistent='on'): batch {batch_size} is over the "
                           f"persistent forward's {B_MAX} rows; use 'auto' or 'off'")
    if why is not None:
        raise UnsupportedError(f"graphed_query(persistent='on'): {why}")
    return True


class GraphedQuery:
    """Callable `q(x, missing=None) -> log p(x)` [B] for one batch size.

    `q.x` / `q.missing` may also be filled in place and `q()` called with no
    arguments (no copy at all). The returned tensor is `q.out`, overwritten
    by the next call: clone it to keep it."""

    def __init__(self, engine, batch_size: int, marginal: bool = True,
                 dtype: torch.dtype = torch.long, graph: bool | None = None, check: bool = True,
                 persistent: object = None):
        batch_size = int(batch_size)
        if batch_size < 1:
            raise DataError(f"graphed_query: batch_size must be >= 1, not {batch_size}")
        can_graph = engine.device.type == "cuda" and torch.cuda.is_available()
        if graph and not can_graph:
            raise UnsupportedError(
                f"graphed_query(graph=True) needs a CUDA device; this circuit runs on "
                f"{engine.device} (under TRITON_INTERPRET=1 or on the CPU pass graph=None "
                "to run the same query eagerly)")
        if engine.real_vars.any():
            dtype = engine.dtype
        elif dtype.is_floating_point or dtype == torch.bool:
            raise DataError(f"graphed_query: categorical data needs an integer dtype, not {dtype}")
        self.engine, self.batch_size, self.marginal, self.check = engine, batch_size, marginal, check
        dev, nv = engine.device, len(engine.num_cats)
        self.x = torch.zeros(batch_size, nv, dtype=dtype, device=dev)
        self.missing = torch.zeros(batch_size, nv, dtype=torch.bool, device=dev) if marginal else None
        self.persistent = None          # the PersistentForward, when this query runs it
        if wants_persistent(engine, batch_size, persistent):
            from pccompiler.backends.triton.persistent_kernel import PersistentForward
            self.persistent = PersistentForward(engine)
            self.plan = None
            self._values = self.persistent.new_values(batch_size)
            self.out = self._values[self.persistent.tables.root_slot]
        else:
            self.plan = engine.fast_plan
            self._x_t = torch.empty(nv, batch_size, dtype=dtype, device=dev)
            self._miss_t = (torch.empty(nv, batch_size, dtype=torch.uint8, device=dev)
                            if marginal else None)
            self._values = engine._new_values(batch_size, self.plan)
            self.out = torch.empty(batch_size, dtype=torch.float32, device=dev)
        self.graphed = bool(can_graph if graph is None else graph)
        self._graph: torch.cuda.CUDAGraph | None = None
        if self.graphed:
            self._capture()

    def _run(self) -> None:
        """Every step of the query, on the static buffers (what the graph holds)."""
        if self.persistent is not None:
            self.engine.bad_entry.fill_(self.engine.NO_BAD_ENTRY)
            self.persistent.run(self._values, self.x, self.missing)
            return
        self._x_t.copy_(self.x.t())
        if self._miss_t is not None:
            self._miss_t.copy_(self.missing.t())
        self.engine._forward_into(self._values, self._x_t, self._miss_t, False, self.plan)
        self.out.copy_(self._values[self.plan.root_slot])

    def _capture(self) -> None:
        """Run once eagerly on a side stream (JIT-compiles every kernel, as
        torch's capture recipe asks), then capture."""
        stream = torch.cuda.Stream(device=self.engine.device)
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._run()
        torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize(self.engine.device)
        self.engine.take_bad_entry()          # the zero-filled warm-up batch is valid
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._run()
        self._graph = graph

    def _fill(self, x: Any, missing: Any) -> None:
        xt = torch.as_tensor(x)
        if tuple(xt.shape) != tuple(self.x.shape):
            raise DataError(f"graphed_query: data has shape {tuple(xt.shape)}; this query was "
                            f"made for [{self.batch_size}, {self.x.shape[1]}]")
        if xt.is_floating_point() and not self.x.is_floating_point():
            raise DataError("graphed_query: categorical data must be integers, not "
                            f"{xt.dtype}")
        if xt.dtype != self.x.dtype and not self.x.is_floating_point():
            info = torch.iinfo(self.x.dtype)   # a narrower buffer would wrap values silently
            low, high = int(xt.min()), int(xt.max())
            if low < info.min or high > info.max:
                raise DataError(f"graphed_query: data values [{low}, {high}] do not fit this "
                                f"query's {self.x.dtype} buffer; make it with a wider dtype")
        self.x.copy_(xt, non_blocking=True)
        if self.missing is None:
            if missing is not None:
                raise DataError("graphed_query: this query was made with marginal=False; "
                                "make one with marginal=True to pass a missing mask")
            return
        if missing is None:
            self.missing.zero_()
            return
        mt = torch.as_tensor(missing)
        if tuple(mt.shape) != tuple(self.x.shape):
            raise DataError(f"graphed_query: missing mask has shape {tuple(mt.shape)}; data has "
                            f"{tuple(self.x.shape)}")
        self.missing.copy_(mt, non_blocking=True)

    def __call__(self, x: Any = None, missing: Any = None) -> torch.Tensor:
        """log p(x) [B] (the static `out`); x None: use `self.x` / `self.missing` as filled."""
        if x is not None:
            self._fill(x, missing)
        elif missing is not None:
            raise DataError("graphed_query: a missing mask without data; pass both or fill "
                            "q.x / q.missing and call q()")
        if self._graph is not None:
            self._graph.replay()
        else:
            self._run()
        if self.check:
            where = self.engine.take_bad_entry()
            if where is not None:
                r, c = where
                raise DataError(f"graphed_query: row {r}, column {c}: category "
                                f"{int(self.x[r, c])} is outside [0, {int(self.engine.num_cats[c])})")
        return self.out
