"""Parameter-flow strategies of the triton engine (option `pflow`).

    "layer"  (default) `sum_param_flow_kernel` per sum partition after the
             node flows, with launch.choose_tiles("sum_pflow") tiles.
    "split"  the same kernel with one row tile per block (each child exp
             once per block) and the batch split until the grid fills the
             GPU twice, ranges added atomically
             (launch.sum_param_flows_launch(split=True)).
    "fused"  the node-flow launch of a plain sum layer also computes its
             parameter flows (bwd_pflow.py); layers it cannot serve (row
             tiles, folded products, runs of child blocks) keep "layer".
    "fused_split"  "fused" for layers whose child blocks walk at most
             FUSE_MAX_PARENT_TILES parent tiles (one program walks them one
             after another: HCLT-512's four 128-row parents make a chain
             8x the separate kernels'), "split" for the others.

Why three: on an H100 the parameter-flow kernel was the largest item of a
dense HCLT-128 step (0.96 ms of 3.89, 1.65x the forward for the same
multiply-adds); bench/results/pflow-cpu-2026-12-07.md counts the programs,
exps and bytes of each strategy, and bench/pflow_ab.py measures them. The
default stays "layer" until a GPU run says otherwise.
"""

from __future__ import annotations

import torch

from pccompiler.backends.triton import bwd_pflow
from pccompiler.backends.triton.compat import cdiv
from pccompiler.backends.triton.launch import (
    MIN_PROGRAMS, batch_per_program, choose_tiles, dot_precision,
)
from pccompiler.backends.triton.plan import SumBackwardKernelPart, SumKernelPart
from pccompiler.errors import BackendError

PFLOW_MODES = ("layer", "split", "fused", "fused_split")
FUSE_MAX_PARENT_TILES = 2    # "fused_split": parent tiles (of 64 rows) one fused program walks


def check_pflow(value: object) -> str:
    """Validate the `pflow` option (one of PFLOW_MODES)."""
    if value not in PFLOW_MODES:
        raise BackendError(f"pflow must be one of {PFLOW_MODES}, not {value!r}")
    return str(value)


def fusable_layer(sums: list[SumKernelPart], backwards: list[SumBackwardKernelPart],
                  tile_parts: list[SumKernelPart], max_parent_tiles: int | None = None) -> bool:
    """Whether the node-flow parts of a sum layer see every weight of its sum
    parts exactly once, so the fused kernel can compute all its parameter
    flows: no row tiles (their pairs are not in the node-flow parts), no
    folded products or runs of child blocks (the fused kernel reads plain
    child rows, one block per program), and as many (child, parent) pairs
    as weights (one host sync per layer, once per plan). max_parent_tiles:
    also refuse child blocks whose parents span more 64-row tiles."""
    if not sums or tile_parts:
        return False
    if any(p.group != 1 or p.fused_arity for p in backwards):
        return False
    if max_parent_tiles is not None and any(
            p.max_parents * cdiv(p.parent_block_size, 64) > max_parent_tiles for p in backwards):
        return False
    pairs = sum(int(p.cblock_num_parents.sum()) * p.child_block_size * p.parent_block_size
                for p in backwards)
    weights = sum(int(p.block_num_children.sum()) * p.block_size for p in sums)
    return pairs == weights


def backward_pflow_launch(part: SumBackwardKernelPart, values: torch.Tensor,
                          flows: torch.Tensor, params: torch.Tensor,
                          param_flows: torch.Tensor, precision: str = "tf32",
                          ratio: bool = False) -> None:
    """Node flows of `part`'s child rows and the parameter flows of its
    (child, parent) weights in one launch (bwd_pflow.sum_bwd_pflow_kernel);
    the batch splits into ranges while the grid is under two waves
    (2 * MIN_PROGRAMS), as pflow="split" does."""
    batch = values.shape[1]
    if part.num_blocks == 0 or batch == 0:
        return
    if part.group != 1 or part.fused_arity:
        raise BackendError("the fused parameter-flow kernel takes plain node-flow parts "
                           "(no runs of child blocks, no folded products)")
    c = choose_tiles("sum_bwd_pflow", part.child_block_size, part.max_parents, batch,
                     other_block_size=part.parent_block_size,
                     options={k[len("bwdpflow."):]: v for k, v in part.options.items()
                              if k.startswith("bwdpflow.")})
    num_j = cdiv(part.child_block_size, c["TILE_J"])
    programs = part.num_blocks * num_j
    per_prog = batch_per_program(programs, batch, c["BLOCK_B"], c["MIN_TILES"],
                                 target=2 * MIN_PROGRAMS)
    grid = (programs, cdiv(batch, per_prog))
    bwd_pflow.sum_bwd_pflow_kernel[grid](
        values, flows, params, param_flows, part.cblock_slots, part.cblock_num_parents,
        part.parent_slots, part.parent_param_starts, batch, values.stride(0), part.max_parents,
        per_prog, CBS=part.child_block_size, PBS=part.parent_block_size, NUM_J=num_j,
        TILE_J=c["TILE_J"], TILE_I=c["TILE_I"], BLOCK_B=c["BLOCK_B"], STORE=part.store,
        PREC=dot_precision(precision, part.child_block_size, part.parent_block_size),
        RATIO=ratio, num_warps=c["num_warps"])
