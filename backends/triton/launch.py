"""Tile choice and kernel launches, one function per partition kind.

`choose_tiles` is the single place that maps a partition's shape (block
size, fan-in, batch) to a kernel variant and tile sizes; a partition's
`kernel_options` (from the Layout, e.g. written by `autotune`) override
any key. Rules of thumb behind the defaults:

* tl.dot needs every tile extent >= 16; blocks of fewer rows run in masked
  16-row tiles (a 3-D broadcast-multiply-reduce fallback was wrong on an
  H100 with Triton 3.6: sum_backward._SIZE1_REDUCTION).
* The forward computes exp() of each child value once per row tile, so row
  tiles of 64..128 keep the exp unit (about 1/100 of the tf32 rate) from
  being the bound.
* Register budget: the accumulator plus operand tiles stay near 8K fp32
  values per program for 4 warps (16K for 8 warps).
* Batch tiles are masked, so any batch size 1..8192 runs (no drop_last).
"""

from __future__ import annotations

import math

import torch

from pccompiler.backends.triton import (
    em_kernels, io_kernels, sum_backward, sum_forward, tile_flows,
)
from pccompiler.backends.triton.compat import cdiv, next_pow2
from pccompiler.backends.triton.dots import BF16_TOKEN
from pccompiler.backends.triton.plan import (
    VAR_TILE, InputKernelPart, ProductKernelPart, SumBackwardKernelPart, SumKernelPart,
)

INT_KEYS = ("TILE_M", "TILE_K", "TILE_J", "TILE_I", "BLOCK_B", "num_warps", "MIN_TILES")


ONE_HOT_MAX_CATS = 256   # one-hot counts cost 2*B*cats flops per node: atomics beyond


def _cat_chunk(cats: int, cap: int = 256) -> int:
    """Categories handled per inner-loop step (rows wider than `cap` loop)."""
    return min(next_pow2(cats), cap)


MIN_PROGRAMS = 264       # 2 x the H100's 132 SMs: below this a layer shrinks its tiles
MAX_UNROLL = 16          # product fan-ins up to this unroll their child loop


def _unroll(num_children: int) -> int:
    return num_children if num_children <= MAX_UNROLL else 0


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def _apply(cfg: dict, options: dict[str, str] | None) -> dict:
    for key, val in (options or {}).items():
        if key in INT_KEYS:
            cfg[key] = int(val)
    return cfg


def choose_tiles(kind: str, block_size: int, fan_in: int, batch: int,
                 other_block_size: int = 1, options: dict[str, str] | None = None,
                 num_rows: int = 0) -> dict:
    """Kernel tile sizes for one partition.

    kind: "sum_fwd" (block_size = parent block, fan_in = max children),
    "sum_max" (the MPE pass, as sum_fwd), "sum_bwd" (block_size = child
    block, other_block_size = parent block), "sum_pflow" (as sum_fwd),
    "product", "input". Sum kernels always use tl.dot, so their tiles are at
    least 16 (smaller blocks are masked: `dot_precision` keeps them fp32).
    """
    bpow = next_pow2(batch)
    if kind == "sum_fwd":
        tm = _clamp(next_pow2(block_size), 16, 128)
        bb = _clamp(bpow, 16, 64)
        # A layer of a few big blocks (an HMM step: one 256-row block) would
        # run on a few SMs: narrow the batch tile first (costs nothing), then
        # the row tile (each row tile recomputes its children's exp).
        while num_rows and cdiv(num_rows, tm) * cdiv(batch, bb) < MIN_PROGRAMS:
            if bb > 32:
                bb //= 2
            elif tm > 32 and cdiv(num_rows, tm) * cdiv(batch, bb) < 96:
                tm //= 2
            else:
                break
        # Long child lists take 64-child chunks (fewer rescales per dot).
        tk = _clamp(next_pow2(fan_in), 16, 64 if fan_in >= 256 else 32)
        cfg = dict(TILE_M=tm, TILE_K=tk, BLOCK_B=bb,
                   num_warps=8 if tm * bb >= 8192 else 4)
    elif kind == "sum_max":
        tm = _clamp(next_pow2(block_size), 1, 64)
        cfg = dict(TILE_M=tm, BLOCK_B=_clamp(bpow, 1, min(128, 8192 // tm)), num_warps=4)
    elif kind == "sum_pflow":
        # Layers with many big blocks (HCLT 512) fill the GPU with 128 x 128
        # tiles; the others want more, smaller programs (32-row tiles).
        big = num_rows // max(block_size, 1) * cdiv(block_size, 128) * cdiv(fan_in, 128)
        if block_size >= 128 and fan_in >= 128 and big >= 2 * MIN_PROGRAMS:
            cfg = dict(TILE_M=128, TILE_K=128, BLOCK_B=32, num_warps=8)
        else:
            # A few blocks with long child lists (an HMM step) prefer
            # 16-sample chunks: shorter dependent chains per iteration.
            few_long = fan_in >= 512 and num_rows // max(block_size, 1) <= 16
            cfg = dict(TILE_M=_clamp(next_pow2(block_size), 16, 32),
                       TILE_K=_clamp(next_pow2(fan_in), 16, 64),
                       BLOCK_B=16 if few_long else 32, num_warps=4)
    elif kind == "sum_pflow_split":
        # pflow="split" (pflow_launch.py): one row tile per block (each child
        # exp once per block, not once per 32 rows), and the batch split
        # until the grid fills the GPU twice (ranges of >= MIN_TILES batch
        # tiles: a small layer's programs each take one, so its serial chain
        # is one trip, at one atomic add per weight and 32 samples).
        tm = _clamp(next_pow2(block_size), 16, 128)
        tk = _clamp(next_pow2(fan_in), 16, 64)
        cfg = dict(TILE_M=tm, TILE_K=tk, BLOCK_B=32, num_warps=8 if tm * tk >= 4096 else 4,
                   MIN_TILES=1)
    elif kind == "sum_bwd_pflow":
        # pflow="fused" (bwd_pflow.py): block_size = child block, other =
        # parent block. Registers: W, P ([J x I]) and A, E, W @ A ([x B]).
        tj = _clamp(next_pow2(block_size), 16, 64)
        ti = _clamp(next_pow2(other_block_size), 16, 64)
        cfg = dict(TILE_J=tj, TILE_I=ti, BLOCK_B=32, num_warps=8 if tj * ti >= 4096 else 4,
                   MIN_TILES=1)
    elif kind == "sum_bwd":
        # fan_in = parents per child block; num_rows = child rows. Narrow
        # batch tiles win everywhere (more programs, same dot shapes); a grid
        # under one wave narrows the row tile, and a small grid takes longer
        # parent chunks (fewer rescales per program).
        tj = _clamp(next_pow2(block_size), 16, 128)
        bb = _clamp(bpow, 16, 32)
        while num_rows and tj > 32 and cdiv(num_rows, tj) * cdiv(batch, bb) < 128:
            tj //= 2
        programs = cdiv(num_rows, tj) * cdiv(batch, bb) if num_rows else 8 * MIN_PROGRAMS
        ti = 64 if programs <= 2 * MIN_PROGRAMS and other_block_size >= 64 else 32
        if programs >= 8 * MIN_PROGRAMS and tj >= 128:   # a big layer (HCLT 512): wide tiles
            bb = _clamp(bpow, 16, 64)
        cfg = dict(TILE_J=tj, TILE_I=_clamp(next_pow2(other_block_size), 16, ti), BLOCK_B=bb,
                   num_warps=8 if tj * bb >= 8192 else 4)
    elif kind == "sum_tflow":
        # Row tiles' node flows (tile_flows.py): block_size = rows of a run,
        # fan_in = its children. [K x M] @ [M x B] dots; narrow the batch
        # tile, then the child chunk, while the grid is under two waves.
        tm = _clamp(next_pow2(block_size), 16, 64)
        tk = _clamp(next_pow2(fan_in), 16, 64)
        bb = _clamp(bpow, 16, 64)
        runs = cdiv(num_rows, max(block_size, 1))
        while num_rows and runs * cdiv(fan_in, tk) * cdiv(batch, bb) < MIN_PROGRAMS:
            if bb > 16:
                bb //= 2
            elif tk > 16:
                tk //= 2
            else:
                break
        cfg = dict(TILE_M=tm, TILE_K=tk, BLOCK_B=bb, num_warps=4)
    elif kind in ("product", "input"):
        bb = _clamp(bpow, 1, 128)
        tn = _clamp(2048 // bb, 1, 64)
        # A small layer is latency bound: shrink the row tile until the grid
        # covers the GPU about twice.
        while tn > 1 and cdiv(num_rows, tn) * cdiv(batch, bb) < MIN_PROGRAMS:
            tn //= 2
        cfg = dict(TILE_N=tn, BLOCK_B=bb, num_warps=4)
    else:
        raise ValueError(f"unknown partition kind {kind!r}")
    return _apply(cfg, options)


def dot_precision(precision: str, *block_sizes: int) -> str:
    """The engine's precision for tiles of full blocks; "ieee" (fp32) when a
    block is smaller than a 16-row tile: those were exact fp32 sums before
    every sum kernel moved to tl.dot, and their padding makes tf32's speed
    irrelevant."""
    if min(block_sizes) < 16:
        return "ieee"
    return BF16_TOKEN if precision == "bf16" else precision


TILE_TF32 = True    # False: runs of small blocks (row tiles) dot in fp32 "ieee" (A/B runs)


def tile_fan_in(part: SumKernelPart) -> int:
    """The fan-in that sizes a sum part's child chunk (TILE_K): a row-tile
    partition's runs have fan-ins from a few to its max (one partition per
    tile size and layer), and every kernel stops at a run's own fan-in, so a
    chunk sized for the max mostly reads masked children (bench/step_model.py:
    one-row tiles of ~10 children in 64-child chunks, HCLT-128 keep 0.1);
    their mean sizes it instead. Other parts: max_children."""
    if part.mean_children:
        return max(1, math.ceil(part.mean_children))
    return part.max_children


def dot_rows(part: SumKernelPart) -> int:
    """The rows of a sum part's dot tiles for `dot_precision`: a run of
    GROUP one-row blocks (row tiles) fills its tile with real rows, so it
    takes the engine's precision (tf32: tensor cores) like a block of as many
    rows; bench/step_model.py put these dots on CUDA cores at 1/6 the rate."""
    return part.rows if TILE_TF32 else part.block_size


def io_precision(precision: str) -> str:
    """The categorical parameter-flow dot (flows x one-hot) is no sum-layer
    dot: under "bf16" it stays tf32, so only the sum layers round to bf16."""
    return "tf32" if precision == "bf16" else precision


def batch_per_program(programs: int, batch: int, block_b: int, min_tiles: int,
                      target: int = MIN_PROGRAMS) -> int:
    """Samples each program walks in kernels that loop over the batch: the
    whole batch, unless `programs` would not reach `target`, then ranges of
    at least `min_tiles` batch tiles spread over more programs."""
    splits = _clamp(target // programs, 1, cdiv(batch, min_tiles * block_b))
    return cdiv(cdiv(batch, splits), block_b) * block_b


# ---------------------------------------------------------------- forward
def input_forward(part: InputKernelPart, values: torch.Tensor, params: torch.Tensor,
                  x_t: torch.Tensor, miss_t: torch.Tensor | None, mode_max: bool = False,
                  bad_entry: torch.Tensor | None = None) -> None:
    """bad_entry: int64 [1], lowered by the kernel to row * 2^31 + var of
    the first out-of-range category (a scratch tensor when None)."""
    batch = values.shape[1]
    if part.num_nodes == 0 or batch == 0:
        return
    c = choose_tiles("input", 1, 1, batch, num_rows=part.num_nodes)
    node_progs = cdiv(part.num_nodes, c["TILE_N"])
    per_prog = batch_per_program(node_progs, batch, c["BLOCK_B"], min_tiles=1)
    grid = (node_progs, cdiv(batch, per_prog))
    io_kernels.input_fwd_kernel[grid](
        values, params, x_t, miss_t if miss_t is not None else x_t, part.node_vars,
        part.node_param_starts,
        bad_entry if bad_entry is not None else torch.empty(1, dtype=torch.int64,
                                                            device=values.device),
        part.slot_start, part.num_nodes, batch, values.stride(0), per_prog,
        DIST=part.dist, CATS=part.params_per_node, CATS_P=_cat_chunk(part.params_per_node),
        HAS_MISSING=miss_t is not None, MODE_MAX=mode_max, TILE_N=c["TILE_N"],
        BLOCK_B=c["BLOCK_B"], num_warps=c["num_warps"])


def product_forward(part: ProductKernelPart, values: torch.Tensor) -> None:
    """Product values; nothing for a partition folded into its readers
    (`part.fused`: its values are never written, fusion.py)."""
    batch = values.shape[1]
    if part.num_nodes == 0 or batch == 0 or part.fused:
        return
    c = choose_tiles("product", 1, part.num_children, batch, num_rows=part.num_nodes)
    grid = (cdiv(part.num_nodes, c["TILE_N"]), cdiv(batch, c["BLOCK_B"]))
    io_kernels.product_fwd_kernel[grid](
        values, part.child_slots, part.slot_start, part.num_nodes, part.num_children, batch,
        values.stride(0), TILE_N=c["TILE_N"], BLOCK_B=c["BLOCK_B"],
        UNROLL=_unroll(part.num_children), num_warps=c["num_warps"])


def fused_kwargs(part: SumKernelPart) -> dict:
    """The grand-slot table of a part whose children include folded product
    rows (fusion.py), as the sum kernels' keyword arguments; {} otherwise,
    so an unfused part compiles the kernels it always did."""
    if not part.fused_arity:
        return {}
    return dict(grand_ptr=part.grand_slots, FUSED=part.fused_arity)


def sum_forward_launch(part: SumKernelPart, values: torch.Tensor, params: torch.Tensor,
                       precision: str = "tf32", mode_max: bool = False) -> None:
    batch = values.shape[1]
    if part.num_blocks == 0 or batch == 0:
        return
    args = (values, params, part.block_slots, part.block_num_children, part.child_slots,
            part.block_param_starts, batch, values.stride(0), part.max_children)
    if mode_max and part.fused_arity:
        raise ValueError("the max-product pass reads product rows: run it on the unfused plan")
    if mode_max:
        c = choose_tiles("sum_max", part.block_size, part.max_children, batch)
        num_m = cdiv(part.block_size, c["TILE_M"])
        grid = (part.num_blocks * num_m, cdiv(batch, c["BLOCK_B"]))
        sum_forward.sum_fwd_max_kernel[grid](
            *args, BS=part.block_size, NUM_M=num_m, TILE_M=c["TILE_M"], BLOCK_B=c["BLOCK_B"],
            num_warps=c["num_warps"])
        return
    c = choose_tiles("sum_fwd", part.rows, tile_fan_in(part), batch,
                     options=part.options, num_rows=part.num_blocks * part.block_size)
    num_m = cdiv(part.rows, c["TILE_M"])
    grid = (part.num_runs * num_m, cdiv(batch, c["BLOCK_B"]))
    kw = dict(BS=part.block_size, NUM_M=num_m, TILE_M=c["TILE_M"], TILE_K=c["TILE_K"],
              BLOCK_B=c["BLOCK_B"], PREC=dot_precision(precision, dot_rows(part)),
              GROUP=part.group, num_warps=c["num_warps"])
    kw.update(fused_kwargs(part))
    kw.update(part.run_kwargs())
    splits = 1 if part.runs is not None else split_k(grid[0] * grid[1], tile_fan_in(part),
                                                      c["TILE_K"])
    if splits == 1:
        sum_forward.sum_fwd_dot_kernel[grid](*args, values, 0, **kw)
        return
    per_split = cdiv(cdiv(part.max_children, splits), c["TILE_K"]) * c["TILE_K"]
    splits = cdiv(part.max_children, per_split)
    rows = part.num_blocks * part.block_size
    partial = torch.empty(splits * rows * batch, dtype=torch.float32, device=values.device)
    sum_forward.sum_fwd_dot_kernel[grid + (splits,)](*args, partial, per_split, SPLIT_K=True,
                                                      **kw)
    tr = _clamp(next_pow2(rows), 1, 16)
    bb = _clamp(next_pow2(batch), 1, 128)
    sum_forward.sum_split_combine_kernel[(cdiv(rows, tr), cdiv(batch, bb))](
        values, partial, part.block_slots, rows, splits, batch, values.stride(0),
        BS=part.block_size, TILE_R=tr, BLOCK_B=bb, num_warps=4)


SPLIT_MIN_ITERS = 8      # K-chunks per program worth a split-K pass


def split_k(programs: int, fan_in: int, tile_k: int) -> int:
    """How many programs share one parent row's children: 1 unless the grid
    is under MIN_PROGRAMS and every program would walk many K-chunks."""
    if programs >= MIN_PROGRAMS or fan_in < 2 * SPLIT_MIN_ITERS * tile_k:
        return 1
    return max(1, min(cdiv(MIN_PROGRAMS, programs), fan_in // (SPLIT_MIN_ITERS * tile_k)))


# ---------------------------------------------------------------- backward
def log_ratio_launch(part: SumKernelPart, values: torch.Tensor, flows: torch.Tensor) -> None:
    """Turn the flows of `part`'s rows into log(flow) - value in place (see
    sum_backward.log_ratio_kernel); then pass ratio=True to the two below."""
    batch = values.shape[1]
    if part.num_blocks == 0 or batch == 0:
        return
    tm = _clamp(next_pow2(part.block_size), 1, 32)
    bb = _clamp(next_pow2(batch), 1, 128)
    num_m = cdiv(part.block_size, tm)
    sum_backward.log_ratio_kernel[(part.num_blocks * num_m, cdiv(batch, bb))](
        values, flows, part.block_slots, batch, values.stride(0), BS=part.block_size,
        NUM_M=num_m, TILE_M=tm, BLOCK_B=bb, num_warps=4)


def sum_backward_launch(part: SumBackwardKernelPart, values: torch.Tensor, flows: torch.Tensor,
                        params: torch.Tensor, precision: str = "tf32",
                        ratio: bool = False, ratio_rows: torch.Tensor | None = None) -> None:
    """ratio_rows (training, a part with `ratio_out`): flagged rows that a
    fused part writes get log(flow) - value."""
    batch = values.shape[1]
    if part.num_blocks == 0 or batch == 0:
        return
    c = choose_tiles("sum_bwd", part.rows, part.max_parents, batch,
                     other_block_size=part.parent_block_size, options=part.options,
                     num_rows=part.num_blocks * part.child_block_size)
    num_j = cdiv(part.rows, c["TILE_J"])
    grid = (cdiv(part.num_blocks, part.group) * num_j, cdiv(batch, c["BLOCK_B"]))
    sum_backward.sum_bwd_flow_kernel[grid](
        values, flows, params, part.cblock_slots, part.cblock_num_parents, part.parent_slots,
        part.parent_param_starts, batch, values.stride(0), part.max_parents, part.num_blocks,
        CBS=part.child_block_size, PBS=part.parent_block_size, NUM_J=num_j, TILE_J=c["TILE_J"],
        TILE_I=c["TILE_I"], BLOCK_B=c["BLOCK_B"], STORE=part.store,
        PREC=dot_precision(precision, part.child_block_size, part.parent_block_size),
        RATIO=ratio, GROUP=part.group, num_warps=c["num_warps"],
        **_backward_fusion(part, ratio_rows))


def _backward_fusion(part: SumBackwardKernelPart, ratio_rows: torch.Tensor | None) -> dict:
    """The node-flow kernel's fusion arguments ({} for a plain part)."""
    if not part.fused_arity:
        return {}
    kw = dict(cgrand_ptr=part.child_grand, FUSED=part.fused_arity)
    if part.fused_bwd:
        kw.update(cout_ptr=part.child_out, FUSED_BWD=part.out_arity, ATOMIC_OUT=part.atomic_out)
        if ratio_rows is not None:
            if not part.ratio_out:
                raise ValueError("ratio_rows needs a storing fused part with ratio_out")
            kw.update(RATIO_OUT=True, ratio_rows_ptr=ratio_rows)
    return kw


def sum_tile_flows_launch(part: SumKernelPart, values: torch.Tensor, flows: torch.Tensor,
                          params: torch.Tensor, precision: str = "tf32",
                          ratio: bool = False) -> None:
    """Node flows of a row-tiled sum partition through its forward tiles
    (tile_flows.py), added atomically into rows the plan zeroed."""
    batch = values.shape[1]
    if part.num_blocks == 0 or batch == 0:
        return
    c = choose_tiles("sum_tflow", part.rows, tile_fan_in(part), batch,
                     num_rows=part.num_blocks * part.block_size)
    num_kt = cdiv(part.max_children, c["TILE_K"])
    grid = (part.num_runs * num_kt, cdiv(batch, c["BLOCK_B"]))
    tile_flows.sum_tile_flow_kernel[grid](
        values, flows, params, part.block_slots, part.block_num_children, part.child_slots,
        part.block_param_starts, batch, values.stride(0), part.max_children,
        BS=part.block_size, NUM_KT=num_kt, TILE_M=c["TILE_M"], TILE_K=c["TILE_K"],
        BLOCK_B=c["BLOCK_B"], PREC=dot_precision(precision, dot_rows(part)), RATIO=ratio,
        GROUP=part.group, num_warps=c["num_warps"], STORE=part.tile_store,
        **fused_kwargs(part), **part.run_kwargs())


def sum_param_flows_launch(part: SumKernelPart, values: torch.Tensor, flows: torch.Tensor,
                           params: torch.Tensor, param_flows: torch.Tensor,
                           precision: str = "tf32", ratio: bool = False,
                           split: bool = False) -> None:
    """split (pflow="split", pflow_launch.py): the "sum_pflow_split" tiles and
    a batch split up to two waves; autotuned "pflow." options are for the
    default tiles and are not read then."""
    batch = values.shape[1]
    if part.num_blocks == 0 or batch == 0:
        return
    if split:
        c = choose_tiles("sum_pflow_split", part.rows, tile_fan_in(part), batch)
    else:
        c = choose_tiles("sum_pflow", part.rows, tile_fan_in(part), batch,
                         options={k[len("pflow."):]: v for k, v in part.options.items()
                                  if k.startswith("pflow.")},
                         num_rows=part.num_blocks * part.block_size)
    num_m = cdiv(part.rows, c["TILE_M"])
    num_kt = cdiv(part.max_children, c["TILE_K"])
    programs = part.num_runs * num_m * num_kt
    # A few big blocks (one HMM step: 1 block, 16 tiles) would walk the whole
    # batch on a handful of SMs: split the batch and add the parts atomically.
    per_prog = (batch_per_program(programs, batch, c["BLOCK_B"], c["MIN_TILES"],
                                  target=2 * MIN_PROGRAMS) if split
                else batch_per_program(programs, batch, c["BLOCK_B"], min_tiles=4))
    grid = (programs, cdiv(batch, per_prog))
    sum_backward.sum_param_flow_kernel[grid](
        values, flows, params, param_flows, part.block_slots, part.block_num_children,
        part.child_slots, part.block_param_starts, batch, values.stride(0), part.max_children,
        per_prog,
        BS=part.block_size, NUM_M=num_m, NUM_KT=num_kt, TILE_M=c["TILE_M"], TILE_K=c["TILE_K"],
        BLOCK_B=c["BLOCK_B"], ATOMIC=part.atomic or grid[1] > 1,
        PREC=dot_precision(precision, dot_rows(part)), RATIO=ratio, GROUP=part.group,
        num_warps=c["num_warps"], **fused_kwargs(part), **part.run_kwargs(),
        **({"RELAXED": True} if split else {}))


def product_backward(part: ProductKernelPart, flows: torch.Tensor,
                     values: torch.Tensor | None = None,
                     ratio_rows: torch.Tensor | None = None) -> None:
    """Flows to the children. With `ratio_rows` (training; `part.ratio_out`
    must hold) the flagged child rows get log(flow) - value (`values`)."""
    batch = flows.shape[1]
    if part.num_nodes == 0 or batch == 0 or part.fused_bwd:   # its writers passed them on
        return
    ratio_out = ratio_rows is not None
    if ratio_out and not (part.ratio_out and values is not None):
        raise ValueError("ratio_rows needs a storing partition with ratio_out and the values")
    c = choose_tiles("product", 1, part.num_children, batch, num_rows=part.num_nodes)
    grid = (cdiv(part.num_nodes, c["TILE_N"]), cdiv(batch, c["BLOCK_B"]))
    io_kernels.product_bwd_kernel[grid](
        flows, part.child_slots, part.slot_start, part.num_nodes, part.num_children, batch,
        flows.stride(0), values if ratio_out else flows, ratio_rows if ratio_out else flows,
        ATOMIC=part.atomic, STORE=part.store, TILE_N=c["TILE_N"], BLOCK_B=c["BLOCK_B"],
        UNROLL=_unroll(part.num_children), RATIO_OUT=ratio_out, num_warps=c["num_warps"])


def input_backward(part: InputKernelPart, flows: torch.Tensor, params: torch.Tensor,
                   param_flows: torch.Tensor, node_flows: torch.Tensor | None, x_t: torch.Tensor,
                   miss_t: torch.Tensor | None, precision: str = "tf32",
                   use_dot: bool | None = None) -> None:
    """Input statistics; categorical partitions whose nodes come in runs of
    one variable use the one-hot tensor-core kernel for the observed counts
    (`use_dot` forces the choice; the one-hot is exact, flows round to tf32).
    `node_flows` None skips the per-node totals (categoricals: row sums)."""
    batch = flows.shape[1]
    if part.num_nodes == 0 or batch == 0:
        return
    miss_arg = miss_t if miss_t is not None else x_t
    dot = part.var_tiles is not None and part.params_per_node <= ONE_HOT_MAX_CATS
    if use_dot is not None:
        dot = dot and use_dot
    if dot:
        starts, counts, tvars = part.var_tiles
        tc = _clamp(next_pow2(part.params_per_node), 16, 64)
        grid = (starts.numel(), cdiv(part.params_per_node, tc))
        io_kernels.categorical_flow_dot_kernel[grid](
            flows, param_flows, x_t, miss_arg, part.node_param_starts, starts, counts, tvars,
            part.slot_start, batch, flows.stride(0), CATS=part.params_per_node,
            HAS_MISSING=miss_t is not None, ATOMIC=part.atomic, TILE_N=VAR_TILE, TILE_C=tc,
            BLOCK_B=32, PREC=io_precision(precision), num_warps=4)
    bb = _clamp(next_pow2(batch), 1, 64)
    tn = _clamp(1024 // bb, 1, 32)
    grid = (cdiv(part.num_nodes, tn),)
    io_kernels.input_bwd_kernel[grid](
        flows, params, param_flows, param_flows if node_flows is None else node_flows,
        x_t, miss_arg,
        part.node_vars, part.node_param_starts, part.slot_start, part.num_nodes, batch,
        flows.stride(0),
        DIST=part.dist, CATS=part.params_per_node, CATS_P=_cat_chunk(part.params_per_node),
        HAS_MISSING=miss_t is not None, ATOMIC=part.atomic, SCATTER=not dot, TILE_N=tn,
        BLOCK_B=bb, NODE_FLOWS=node_flows is not None, num_warps=4)


# ---------------------------------------------------------------- EM
EM_PACK = 32    # one-row owner blocks per program of the packed sum EM update
EM_PACKED = True    # False: one program per one-row block (A/B runs)
def sum_em_launch(part: SumKernelPart, params: torch.Tensor, param_flows: torch.Tensor,
                  step: float, pseudocount: float) -> None:
    owners = part.owner_blocks.numel()
    if owners == 0:
        return
    if part.block_size == 1 and EM_PACKED:      # one-row blocks: EM_PACK per program
        tk = _clamp(next_pow2(tile_fan_in(part)), 16, 128)
        em_kernels.sum_em_kernel[(cdiv(owners, EM_PACK),)](
            params, param_flows, part.owner_blocks, part.block_num_children,
            part.block_param_starts, float(step), float(pseudocount), num_owners=owners, BS=1, NUM_M=1,
            TILE_M=EM_PACK, TILE_K=tk, PACK=True, num_warps=4)
        return
    tm = _clamp(next_pow2(part.block_size), 1, 64)
    tk = _clamp(4096 // tm, 1, min(256, next_pow2(part.max_children)))
    num_m = cdiv(part.block_size, tm)
    em_kernels.sum_em_kernel[(owners * num_m,)](
        params, param_flows, part.owner_blocks, part.block_num_children, part.block_param_starts,
        float(step), float(pseudocount), BS=part.block_size, NUM_M=num_m, TILE_M=tm, TILE_K=tk,
        num_warps=4)


def categorical_em_launch(part: InputKernelPart, params: torch.Tensor, param_flows: torch.Tensor,
                          step: float, pseudocount: float) -> None:
    owners = part.owner_param_starts.numel()
    if owners == 0:
        return
    cp = _cat_chunk(part.params_per_node)
    tn = _clamp(4096 // cp, 1, 64)
    em_kernels.categorical_em_kernel[(cdiv(owners, tn),)](
        params, param_flows, part.owner_param_starts, owners, float(step), float(pseudocount),
        CATS=part.params_per_node, CATS_P=cp, TILE_N=tn, num_warps=4)
