"""CUDA-graph capture of whole forward / backward passes (on by default on CUDA).

Graphs serve the engine's hot paths, `root_log_prob` and `forward_backward`
(log-likelihoods and training), on `plan` (the engine's fast_plan); the
all-node `forward` / `backward` of queries and the MPE pass run eagerly.

A deep circuit launches a few kernels per layer; at small batches the
launch overhead (5-20 us of Python per Triton launch) rivals the work (a
PD with 32 latents: 4x slower forward without graphs). The engine therefore
captures graphs for ONE batch size, the first one it sees (the training
batch): one forward graph per (x dtype, missing?), one backward graph
per (x dtype, missing?), one EM graph per (step size, pseudocount). All
graphs of that batch size share one static values buffer, one flows buffer
and one x / missing buffer, so graphs cost no memory beyond an eager step.
Batches of any other size (a tail batch, a one-off query) run eagerly; a
size seen in RECLAIM_AFTER forwards in a row takes the graphs over.
The parameter and flow tensors are captured by address, which stays valid
because every update is in place. The first call of a key runs eagerly on
the static buffers (compiling every kernel), the second captures and
replays, so no warm-up run changes state. If a capture fails the cache
switches itself off (one warning) and the engine runs eagerly.

Forward returns the static values buffer: the next call of the same batch
size overwrites it (the engine clones the [B] root row it returns). On CPU
or under the interpreter graphs are disabled (`enabled` is False).
"""

from __future__ import annotations

import warnings

import torch

RECLAIM_AFTER = 3   # forwards in a row of another batch size that take the graphs over


class GraphCache:
    """Static buffers of the graph batch size and the graphs captured on them."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.batch: int | None = None          # the one batch size graphs serve
        self._x: dict[torch.dtype, torch.Tensor] = {}
        self._miss: torch.Tensor | None = None
        self._values: torch.Tensor | None = None
        self._flows: torch.Tensor | None = None
        self._fwd: dict[tuple, torch.cuda.CUDAGraph] = {}
        self._bwd: dict[tuple, torch.cuda.CUDAGraph] = {}
        self._em: dict[tuple, torch.cuda.CUDAGraph] = {}
        self._other = (0, 0)                   # (another batch size, forwards in a row)
        self._last: tuple | None = None        # (x, missing) of the last forward (identity)
        self.plan = None                       # the plan replayed (engine.fast_plan)

    def serves(self, batch: int) -> bool:
        """True if a forward of this batch size runs through graphs. The first
        batch size seen claims them; another size seen in RECLAIM_AFTER
        forwards in a row (a query before the training loop, not a tail
        batch) drops the graphs and buffers and claims them instead."""
        if not self.enabled:
            return False
        batch = int(batch)
        if self.batch == batch:
            self._other = (0, 0)
            return True
        if self.batch is not None:
            size, seen = self._other
            seen = seen + 1 if size == batch else 1
            self._other = (batch, seen)
            if seen < RECLAIM_AFTER:
                return False
            plan = self.plan
            self.__init__(enabled=True)
            self.plan = plan
        self.batch = batch
        return True

    def owns(self, values: torch.Tensor) -> bool:
        return self._values is not None and values.data_ptr() == self._values.data_ptr()

    def _run_or_capture(self, table: dict, key: tuple, fn) -> bool:
        """First call of `key`: run `fn` eagerly (the real work of this call,
        which also JIT-compiles every kernel), so no warm-up run changes
        state and nothing has to be saved and restored (a clone of the
        parameter flows would cost 1 GB at HCLT K=512). Second call: capture
        (a capture executes nothing), then replay. False if the capture
        failed: graphs are off from then on and the caller runs eagerly."""
        entry = table.get(key)
        if entry is None:
            table[key] = False
            fn()
            return True
        if entry is False:
            try:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    fn()
            except RuntimeError as exc:    # capture unsupported here: run eagerly from now on
                warnings.warn(f"CUDA graph capture failed ({exc}); the triton engine "
                              f"runs eagerly")
                self.enabled = False
                return False
            table[key] = entry = graph
        entry.replay()
        return True

    def _inputs(self, x: torch.Tensor, missing: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The static x / missing buffers ([V, B], transposed as the kernels
        read them), filled with this call's batch by one copy each. A
        backward given the very tensors of the last forward skips the copy."""
        if self._last is not None and self._last[0] is x and self._last[1] is missing:
            return self._x[x.dtype], self._miss if missing is not None else None
        sx = self._x.get(x.dtype)
        if sx is None:
            sx = self._x[x.dtype] = torch.empty(x.shape[1], x.shape[0], dtype=x.dtype,
                                                device=x.device)
        sx.copy_(x.t())
        sm = None
        if missing is not None:
            if self._miss is None:
                self._miss = torch.empty(missing.shape[1], missing.shape[0], dtype=torch.uint8,
                                         device=missing.device)
            sm = self._miss
            sm.copy_(missing.t())
        self._last = (x, missing)
        return sx, sm

    def forward(self, engine, x: torch.Tensor, missing: torch.Tensor | None
                ) -> torch.Tensor | None:
        """The values buffer after a replay, or None if the caller must run
        eagerly (capture failed). x, missing: [B, V] as the engine got them."""
        self._last = None
        sx, sm = self._inputs(x, missing)
        if self._values is None:
            self._values = engine._new_values(x.shape[0], self.plan)
        values = self._values
        key = (x.dtype, missing is not None)
        ok = self._run_or_capture(self._fwd, key,
                                  lambda: engine._forward_into(values, sx, sm, False, self.plan))
        return values if ok else None

    def backward(self, engine, values: torch.Tensor, x: torch.Tensor,
                 missing: torch.Tensor | None) -> torch.Tensor | None:
        """The flows buffer after a replay (None: run eagerly). `values` must
        be the static values buffer (`owns`)."""
        sx, sm = self._inputs(x, missing)
        if self._flows is None:
            self._flows = torch.zeros_like(self._values)
        flows = self._flows

        def run() -> None:
            engine._zero_rows(flows, self.plan)
            engine._backward_into(values, flows, sx, sm, self.plan, ratio=True)

        ok = self._run_or_capture(self._bwd, (x.dtype, missing is not None), run)
        return flows if ok else None

    def em(self, engine, step: float, pseudocount: float) -> bool:
        """Replay (capturing first) the EM update; False: run it eagerly."""
        return self._run_or_capture(self._em, (float(step), float(pseudocount)),
                                    lambda: engine._em_into(step, pseudocount))
