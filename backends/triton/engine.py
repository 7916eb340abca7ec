"""TritonEngine: the Layout run by Triton kernels, layer by layer.

Forward: every layer's partitions write their value rows (inputs, products,
sums; see the kernel modules). Backward: node flows start at 1 on the root
row and run through the layers in reverse; a sum layer pushes flows to its
children (SumBackwardPartitions, no atomics), a product layer passes flows
on, an input layer reduces its statistics over the batch.

Two plans (plan.py), each built on first use. Log-likelihoods and training
(`root_log_prob`, `forward_backward`, `em_update`) run `fast_plan`, where
product rows that only the next layer reads share one scratch region
(scratch.py): its backward recomputes them and runs parameter flows per
layer. The all-node queries (`forward`, `backward`: flows, sampling, MPE)
run `plan`, in the Layout's slots, whose parameter flows run last, one
launch per sum shape (plan.merged_sums), as does the sum EM update.
Training's backward also rewrites each sum layer's final flows as
log(flow) - value in place (`_backward_into(ratio=True)`), which that
layer's node-flow and parameter-flow kernels read directly; the queries'
backward keeps true flows.

Buffers are fresh per call (torch's caching allocator makes that cheap),
except for the batch size CUDA graphs serve on the hot paths (graphs.py; on
by default on CUDA): there a captured graph replays into static buffers,
and the engine returns a clone of the [B] root row.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from pccompiler import ir
from pccompiler.backends.engine import Engine, em_update_continuous
from pccompiler.backends.common.upload import upload
from pccompiler.backends.triton import launch, pflow_launch, soft_kernels
from pccompiler.backends.triton.compat import (
    check_fuse_products, check_precision, require_triton,
)
from pccompiler.backends.triton.graphs import GraphCache
from pccompiler.backends.triton.persistent import B_MAX, check_mode, unsupported_reason
from pccompiler.backends.triton.query_graph import GraphedQuery
from pccompiler.backends.triton.plan import DIST_CODES, TritonPlan, build_plan
from pccompiler.backends.triton.scratch import compact_remap
from pccompiler.errors import BackendError, UnsupportedError
from pccompiler.ir import heap, pcir


def soft_transposed(soft: torch.Tensor) -> torch.Tensor:
    """[B, V, K] literal weights -> fp32 [V, K, B], each weight row contiguous."""
    return soft.detach().to(torch.float32).permute(1, 2, 0).contiguous()


class TritonEngine(Engine):
    """Engine whose forward/backward/EM are Triton kernels (fp32, tf32 dots)."""

    # The input kernels read any integer dtype (uint8 data stays uint8: a
    # quarter of int32's bytes), skip categories outside [0, cats) and record
    # the first one (`take_bad_entry`), so CompiledCircuit runs the forward
    # before it looks at the batch's values, and needs no pass of its own.
    native_int_data = True
    tolerates_bad_values = True
    checks_categories = True
    NO_BAD_ENTRY = 2 ** 62

    def __init__(self, model: pcir.Model, layout: pcir.Layout,
                 device: torch.device | str = "cuda", dtype: torch.dtype = torch.float32,
                 precision: str = "tf32", cuda_graphs: bool = True, compact: bool = True,
                 arrays=None, fuse_products: bool = False, persistent: str = "off",
                 pflow: str = "layer"):
        require_triton()
        if dtype != torch.float32:
            raise UnsupportedError(f"the triton backend computes in float32, not {dtype}")
        # Plans are built on first use: a compile whose circuit is only saved
        # (pcc compile) never decodes them, and training never builds the
        # Layout-slot plan that only the all-node queries need.
        self._plan: TritonPlan | None = None
        self._fast_plan: TritonPlan | None = None
        self._layout_table: ir.TensorTable | None = None
        self.compact = compact
        self.fuse_products = check_fuse_products(fuse_products)
        # How parameter flows run (pflow_launch.py): "layer" (default), "split",
        # "fused" into the node-flow launch or "fused_split"; per plan, which
        # layers fuse.
        self.pflow = pflow_launch.check_pflow(pflow)
        self._fused_layers: dict[int, tuple[TritonPlan, list[bool]]] = {}
        # The one-launch forward of small batches (persistent.py), off by
        # default: on the H100 (2026-12-07) it was no faster than the layer
        # graph (batch 1: 446.9 / 445.5 us of GPU per replay). "auto" for
        # graphed queries of <= B_MAX rows, "on" also for every log_prob (in
        # chunks of B_MAX), "off" never. Its tables, by (rows, wide).
        self.persistent = check_mode(persistent)
        self.persistent_tables: dict = {}
        self._persistent_runner = None
        self.graphs = GraphCache(enabled=cuda_graphs and torch.device(device).type == "cuda")
        # Work started elsewhere that the first kernel launch needs finished
        # (`pccompiler.load`'s thread hashing Triton's installation,
        # aot/warm.py): waited for once a plan exists, so the plan's build
        # runs beside it.
        self._before_first_launch: list = []
        super().__init__(model, layout, device, dtype, arrays)
        self.precision = check_precision(precision)
        self.bad_entry = torch.full((1,), self.NO_BAD_ENTRY, dtype=torch.int64,
                                    device=self.device)

    def take_bad_entry(self) -> tuple[int, int] | None:
        """(row, column) of the first observed category outside its range in
        the last forward, or None; reading it waits for that forward."""
        key = int(self.bad_entry.item())
        if key == self.NO_BAD_ENTRY:
            return None
        self.bad_entry.fill_(self.NO_BAD_ENTRY)
        if key < 0:      # persistent_kernel._wait_level gave up: a bug, not the data
            raise BackendError("the persistent forward gave up waiting for its inputs (a bug "
                               "in its item tables or counters): its log-likelihoods are "
                               "wrong; compile with persistent='off' and please report it")
        return key >> 31, key & (2 ** 31 - 1)

    def check_move(self, device: torch.device, dtype: torch.dtype) -> None:
        """Plans, CUDA graphs and kernels are built for one device in float32:
        a triton circuit stays where it was compiled."""
        if torch.device(device) != self.device or dtype != self.dtype:
            raise UnsupportedError(
                f"a triton circuit cannot move from {self.device} {self.dtype} to {device} "
                f"{dtype}: compile it again there (pccompiler.compile(..., device=...), or "
                f"backend='torch' for float64 or the CPU)")

    # ------------------------------------------------------------ buffers
    def _init_node_flows(self) -> None:
        """Per-node flow totals are stored only for Bernoulli/Gaussian rows:
        a categorical row's total is the sum of its parameter flows (missing
        entries add f * p(c), which sums to f), so it is derived on demand
        (`input_node_flows`) and the fused EM computes it in registers. A
        model without continuous inputs allocates no node-flow buffer at all
        (saves 4 bytes per categorical parameter: 0.4 GB at HCLT K=512)."""
        table = self.layout_table
        rows = {1: [], 2: []}
        for _, inputs, _, _, _ in table.layer_parts(self.layout):
            for ip in inputs:
                dist = DIST_CODES[ip.dist]
                if dist in rows:
                    rows[dist].append(np.asarray(table[ip.node_param_starts], dtype=np.int64))
        unique = lambda arrays: torch.from_numpy(  # noqa: E731
            np.unique(np.concatenate(arrays)) if arrays else np.zeros(0, dtype=np.int64))
        self.bernoulli_rows, self.gaussian_rows = upload([unique(rows[1]), unique(rows[2])],
                                                         self.device)
        size = self.num_input_params if (rows[1] or rows[2]) else 1
        self._node_flows = torch.zeros(size, dtype=self.dtype, device=self.device)

    @property
    def input_node_flows(self) -> torch.Tensor:
        """[num_input_params] per-row flow totals (backends/engine.py's convention),
        computed from the stored continuous totals and the categorical
        parameter flows. A fresh tensor: writing into it changes nothing."""
        out = torch.zeros(self.num_input_params, dtype=self.dtype, device=self.device)
        if self._node_flows.numel() == self.num_input_params:
            out.copy_(self._node_flows)
        for lp in self.fast_plan.layers:
            for part in lp.inputs:
                if part.dist == 0 and part.num_nodes:
                    cols = part.node_param_starts[:, None] + torch.arange(
                        part.params_per_node, device=self.device)[None, :]
                    out[part.node_param_starts] = self.input_param_flows[cols].sum(1)
        return out

    def zero_flows(self) -> None:
        self.sum_param_flows.zero_()
        self.input_param_flows.zero_()
        self._node_flows.zero_()

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _transposed(x: torch.Tensor, missing: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[B, V] -> [V, B] so each variable's batch row is contiguous."""
        x_t = x.t().contiguous()
        miss_t = None if missing is None else missing.t().contiguous().to(torch.uint8)
        return x_t, miss_t

    def _new_values(self, batch: int, plan: TritonPlan | None = None) -> torch.Tensor:
        plan = plan or self.plan
        values = torch.empty(plan.num_slots, batch, dtype=torch.float32, device=self.device)
        values[0].fill_(float("-inf"))
        values[1].fill_(0.0)
        return values

    def _new_flows(self, values: torch.Tensor, plan: TritonPlan | None = None) -> torch.Tensor:
        """A flows buffer whose rows that are read before a storing writer
        are zero (plan.zero_rows); the others are left uninitialised."""
        plan = plan or self.plan
        if plan.zero_all:
            return torch.zeros_like(values)
        flows = torch.empty_like(values)
        self._zero_rows(flows, plan)
        return flows

    def _zero_rows(self, flows: torch.Tensor, plan: TritonPlan | None = None) -> None:
        plan = plan or self.plan
        if plan.zero_all:
            flows.zero_()
        elif plan.zero_rows.numel():
            flows.index_fill_(0, plan.zero_rows, 0.0)

    @property
    def layout_table(self) -> ir.TensorTable:
        """The Layout's tensors, decoded once (read-only views of its bytes)
        for the node-flow rows, the compact remap and both plans: each
        decoding them again cost a small circuit's build ~0.3 ms."""
        if self._layout_table is None:
            self._layout_table = ir.tensor_table(self.layout)
        return self._layout_table

    @property
    def plan(self) -> TritonPlan:
        """The Layout decoded for the kernels, in the Layout's own slots
        (forward / backward of every node). Built on first use."""
        if self._plan is None:
            with self._plan_heap():
                self._plan = build_plan(self.layout, self.device, table=self.layout_table)
            self._finish_pending()
        return self._plan

    @property
    def fast_plan(self) -> TritonPlan:
        """The plan of log-likelihoods and training: the Layout's slots with
        dead product rows folded into one shared region (scratch.py), or
        `plan` itself when that saves nothing; with `fuse_products`, product
        partitions that only sums read are folded into the sums' loads
        (fusion.py). Built on first use."""
        if self._fast_plan is None:
            with self._plan_heap():
                slot_map = compact_remap(self.layout, self.layout_table) if self.compact else None
                self._fast_plan = (self.plan if slot_map is None and not self.fuse_products
                                   else build_plan(self.layout, self.device, slot_map,
                                                   fuse=self.fuse_products,
                                                   table=self.layout_table))
            self.graphs.plan = self._fast_plan
            self._finish_pending()
        return self._fast_plan

    def _plan_heap(self):
        """A retained_heap block (ir/heap.py) around a plan's build for a
        Layout of 10^7 slots: the remap and the plan make and drop dozens of
        10^7-entry temporaries (writer rows, bincounts over every slot), each
        a fresh mapping the kernel zeroes on first touch outside a block
        (0.9 s of system time at 10^6 SDD nodes). It reuses the pages the
        compile left (TritonBackend.plans_on_first_use) and returns them
        when it ends."""
        return heap.retained_heap(heap.worth_it(8 * self.num_slots))

    def wait_before_first_launch(self, wait) -> None:
        """Call `wait()` (e.g. a Thread's join) once, before the first
        kernel launch: every launch reads a plan, and the first plan's build
        is where it runs. Immediately if a plan exists already."""
        self._before_first_launch.append(wait)
        if self._plan is not None or self._fast_plan is not None:
            self._finish_pending()

    def _finish_pending(self) -> None:
        while self._before_first_launch:
            self._before_first_launch.pop()()

    # ------------------------------------------------------------ passes
    def _forward_into(self, values: torch.Tensor, x_t: torch.Tensor,
                      miss_t: torch.Tensor | None, mode_max: bool,
                      plan: TritonPlan | None = None, soft_t: torch.Tensor | None = None
                      ) -> None:
        """soft_t [V, K, B]: per-sample weights of every categorical input's
        categories (logic literal weights) in place of the evidence x_t."""
        plan = plan or self.plan
        params_s, params_i = self.sum_params.data, self.input_params.data
        if soft_t is None:
            self.bad_entry.fill_(self.NO_BAD_ENTRY)     # captured with the graph: no host cost
        for layer in plan.layers:
            for part in layer.inputs:
                if soft_t is not None:
                    soft_kernels.soft_input_forward(part, values, params_i, soft_t, mode_max)
                    continue
                launch.input_forward(part, values, params_i, x_t, miss_t, mode_max,
                                     self.bad_entry)
            for part in layer.products:
                launch.product_forward(part, values)
            for part in layer.sums:
                launch.sum_forward_launch(part, values, params_s, self.precision, mode_max)

    def _backward_into(self, values: torch.Tensor, flows: torch.Tensor, x_t: torch.Tensor,
                       miss_t: torch.Tensor | None, plan: TritonPlan | None = None,
                       ratio: bool = False, soft_grad: tuple | None = None) -> None:
        """Node flows, then statistics. On a compact plan a sum layer whose
        children sit in the shared region first recomputes them (the region
        holds the last product layer's values after the forward), and
        parameter flows run per layer while those children are there; the
        Layout's plan runs them once at the end, one launch per shape.

        ratio (training): once a sum layer's flows are final they are turned
        into log(flow) - value in place, which its node-flow and parameter-
        flow kernels read instead of recomputing it per child tile; the sum
        rows of `flows` then hold that, not flows (queries pass False).

        soft_grad (grad_t [V, K, B], gout [B]): the forward ran on soft
        evidence; the input layers add the gradient of gout . log root with
        respect to it into grad_t (soft_kernels) instead of parameter
        statistics, and no parameter flows are computed."""
        plan = plan or self.plan
        per_layer = plan.scratch_start is not None and soft_grad is None
        fused = self.fused_layers(plan) if soft_grad is None else [False] * len(plan.layers)
        params_s, params_i = self.sum_params.data, self.input_params.data
        flows[plan.root_slot].fill_(1.0)
        for li in reversed(range(len(plan.layers))):
            layer = plan.layers[li]
            if li > 0 and plan.layers[li - 1].scratch:
                for part in plan.layers[li - 1].products:
                    launch.product_forward(part, values)
            if ratio:
                for part in layer.sums:
                    if not part.ratio_by_writer:    # else its product wrote the ratios
                        launch.log_ratio_launch(part, values, flows)
            for part in layer.sum_backwards:
                if fused[li]:        # node flows and this layer's parameter flows
                    pflow_launch.backward_pflow_launch(part, values, flows, params_s,
                                                       self.sum_param_flows, self.precision,
                                                       ratio)
                    continue
                launch.sum_backward_launch(part, values, flows, params_s, self.precision, ratio,
                                           plan.ratio_rows if ratio and part.ratio_out else None)
            if layer.tile_zero_rows is not None:     # rows the row tiles write first
                flows.index_fill_(0, layer.tile_zero_rows, 0.0)
            for part in layer.tile_flows:
                launch.sum_tile_flows_launch(part, values, flows, params_s, self.precision, ratio)
            if per_layer and not fused[li]:
                for part in layer.sums:
                    self._param_flows(part, values, flows, ratio)
            if layer.zero_flow_rows is not None:     # unread rows of the scratch region
                flows.index_fill_(0, layer.zero_flow_rows, 0.0)
            for part in layer.products:
                launch.product_backward(part, flows, values,
                                        plan.ratio_rows if ratio and part.ratio_out else None)
            for part in layer.inputs:
                if soft_grad is not None:
                    soft_kernels.soft_input_grad(part, soft_grad[0], flows, values, params_i,
                                                 soft_grad[1])
                    continue
                launch.input_backward(part, flows, params_i, self.input_param_flows,
                                      None if part.dist == 0 else self._node_flows,
                                      x_t, miss_t, self.precision)
        if not per_layer and soft_grad is None:
            if any(fused):        # the layers the fused launches did not serve, per part
                for layer, done in zip(plan.layers, fused):
                    for part in ([] if done else layer.sums):
                        self._param_flows(part, values, flows, ratio)
                return
            for part in plan.merged_sums:      # every flow is final: one launch per shape
                self._param_flows(part, values, flows, ratio)

    def _param_flows(self, part, values: torch.Tensor, flows: torch.Tensor,
                     ratio: bool) -> None:
        """One sum part's parameter flows by the "layer" or "split" launch."""
        launch.sum_param_flows_launch(part, values, flows, self.sum_params.data,
                                      self.sum_param_flows, self.precision, ratio,
                                      split=self.pflow in ("split", "fused_split"))

    def fused_layers(self, plan: TritonPlan) -> list[bool]:
        """Per layer of `plan`, whether pflow="fused" / "fused_split" runs its
        parameter flows inside the node-flow launches (pflow_launch.
        fusable_layer; "fused_split" only where child blocks walk few parent
        tiles); all False for the other modes. Decided once per plan, on the
        first backward, which runs eagerly (graphs capture the second), so its
        host syncs never fall inside a CUDA-graph capture."""
        if self.pflow not in ("fused", "fused_split"):
            return [False] * len(plan.layers)
        key = id(plan)      # the plan is kept beside its flags, so its id stays its own
        limit = pflow_launch.FUSE_MAX_PARENT_TILES if self.pflow == "fused_split" else None
        if key not in self._fused_layers:
            self._fused_layers[key] = (plan, [
                pflow_launch.fusable_layer(lp.sums, lp.sum_backwards, lp.tile_flows, limit)
                for lp in plan.layers])
        return self._fused_layers[key][1]

    # ------------------------------------------------------------ Engine API
    @torch.no_grad()
    def forward(self, x: torch.Tensor, missing: torch.Tensor | None = None,
                mode: str = "sum", soft: torch.Tensor | None = None) -> torch.Tensor:
        """Every node's value in the Layout's slots (queries: flows,
        sampling, MPE); runs eagerly. Log-likelihoods and training go
        through `root_log_prob` / `forward_backward` (compact, graphs).
        soft [B, V, K]: literal weights in place of the evidence x
        (soft_kernels; differentiable through backends/triton/logic.py)."""
        if mode not in ("sum", "max"):
            raise UnsupportedError(f"forward mode {mode!r} (expected 'sum' or 'max')")
        values = self._new_values(x.shape[0])
        if soft is not None:
            self._forward_into(values, None, None, mode == "max", soft_t=soft_transposed(soft))
            return values
        x_t, miss_t = self._transposed(x, missing)
        self._forward_into(values, x_t, miss_t, mode == "max")
        return values

    @torch.no_grad()
    def backward(self, values: torch.Tensor, x: torch.Tensor,
                 missing: torch.Tensor | None = None, flows_out: bool = False
                 ) -> torch.Tensor | None:
        x_t, miss_t = self._transposed(x, missing)
        flows = self._new_flows(values)
        self._backward_into(values, flows, x_t, miss_t)
        return flows if flows_out else None

    def _fast_forward(self, x: torch.Tensor, missing: torch.Tensor | None) -> torch.Tensor:
        plan = self.fast_plan
        if self.graphs.serves(x.shape[0]):
            values = self.graphs.forward(self, x, missing)
            if values is not None:
                return values
        x_t, miss_t = self._transposed(x, missing)
        values = self._new_values(x.shape[0], plan)
        self._forward_into(values, x_t, miss_t, False, plan)
        return values

    def persistent_reason(self) -> str | None:
        """Why the persistent forward cannot run this circuit, or None."""
        return unsupported_reason(self.layout)

    def _persistent_log_prob(self, x: torch.Tensor, missing: torch.Tensor | None
                             ) -> torch.Tensor:
        """log p(x) through the persistent forward, B_MAX rows per launch
        (persistent="on"); every launch reuses one runner and its counters."""
        from pccompiler.backends.triton.persistent_kernel import PersistentForward
        why = self.persistent_reason()
        if why is not None:
            raise UnsupportedError(f"persistent='on': {why}")
        if self._persistent_runner is None:
            self._persistent_runner = PersistentForward(self)
        run = self._persistent_runner
        x = x.contiguous()
        missing = None if missing is None else missing.contiguous()
        out = torch.empty(x.shape[0], dtype=torch.float32, device=self.device)
        self.bad_entry.fill_(self.NO_BAD_ENTRY)
        for s in range(0, x.shape[0], B_MAX):
            values = run.new_values(min(B_MAX, x.shape[0] - s))
            run.run(values, x[s:s + B_MAX], None if missing is None else missing[s:s + B_MAX],
                    row0=s)
            out[s:s + values.shape[1]] = values[run.tables.root_slot]
        return out

    @torch.no_grad()
    def root_log_prob(self, x: torch.Tensor, missing: torch.Tensor | None = None,
                      after_forward: Callable[[], None] | None = None) -> torch.Tensor:
        if self.persistent == "on":
            out = self._persistent_log_prob(x, missing)
            if after_forward is not None:
                after_forward()
            return out
        values = self._fast_forward(x, missing)
        if after_forward is not None:
            after_forward()
        return values[self.fast_plan.root_slot].clone()

    @torch.no_grad()
    def forward_backward(self, x: torch.Tensor, missing: torch.Tensor | None = None,
                         after_forward: Callable[[], None] | None = None) -> torch.Tensor:
        plan = self.fast_plan
        values = self._fast_forward(x, missing)
        if after_forward is not None:
            after_forward()
        done = False
        if self.graphs.owns(values) and self.graphs.serves(values.shape[1]):
            done = self.graphs.backward(self, values, x, missing) is not None
        if not done:
            x_t, miss_t = self._transposed(x, missing)
            self._backward_into(values, self._new_flows(values, plan), x_t, miss_t, plan,
                                ratio=True)
        return values[plan.root_slot].clone()

    @torch.no_grad()
    def graphed_query(self, batch_size: int, marginal: bool = True,
                      dtype: torch.dtype = torch.long, graph: bool | None = None,
                      check: bool = True, persistent: str | bool | None = None
                      ) -> GraphedQuery:
        """A log p(x) query of one batch size replayed from one CUDA graph
        (query_graph.py); eager where graphs cannot run, unless graph=True.
        persistent: "auto" / "on" / "off" for this query (None: the engine's
        option), see GraphedQuery."""
        return GraphedQuery(self, batch_size, marginal, dtype, graph, check, persistent)

    @torch.no_grad()
    def em_update(self, step_size: float = 1.0, pseudocount: float = 0.0) -> None:
        """Fused EM for sums and categorical inputs; Bernoulli/Gaussian rows
        (a few floats per node) with the base class's torch formulas."""
        if not (self.graphs.enabled and self.graphs.em(self, float(step_size),
                                                       float(pseudocount))):
            self._em_into(float(step_size), float(pseudocount))

    def _em_into(self, step: float, pc: float) -> None:
        params_s, params_i = self.sum_params.data, self.input_params.data
        for part in self.fast_plan.merged_sums:
            launch.sum_em_launch(part, params_s, self.sum_param_flows, step, pc)
        for layer in self.fast_plan.layers:
            for part in layer.inputs:
                if part.dist == 0:
                    launch.categorical_em_launch(part, params_i, self.input_param_flows, step, pc)
        self._em_continuous(step, pc)

    def _em_continuous(self, step: float, pc: float) -> None:
        em_update_continuous(self.input_params.data, self.input_param_flows, self._node_flows,
                             self.bernoulli_rows, self.gaussian_rows, step, pc)
