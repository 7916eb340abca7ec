"""Optional autotuning of sum-partition tiles, recorded in the Layout.

`autotune(engine, batch)` times a few tile configurations per distinct sum
partition shape (forward, backward node flows, parameter flows) on random
buffers and keeps the fastest. The winners go into the plan (used at once)
and into the Layout's `kernel_options` maps (next to what the passes wrote
there, which is kept) as strings ("TILE_K" = "32",
"pflow.BLOCK_B" = "64", ...), so a layout cache that stores the Layout
replays them with no search. Partitions of one shape (HCLT has dozens) are
timed once. Only tensor-core partitions (blocks >= 16) are tuned; the
broadcast kernels' tiles are fixed by the register budget. The default timer is `triton.testing.do_bench` on CUDA; tests
pass their own.
"""

from __future__ import annotations

import itertools
from typing import Callable

import torch

from pccompiler.backends.triton import launch

Timer = Callable[[Callable[[], None]], float]

FWD_SPACE = {"TILE_K": (16, 32, 64), "BLOCK_B": (32, 64, 128), "num_warps": (4, 8)}
BWD_SPACE = {"TILE_I": (16, 32), "BLOCK_B": (32, 64, 128), "num_warps": (4, 8)}
PFLOW_SPACE = {"TILE_K": (32, 64), "BLOCK_B": (32, 64), "num_warps": (4, 8)}


def _default_timer(fn: Callable[[], None]) -> float:
    import triton.testing
    return float(triton.testing.do_bench(fn, warmup=5, rep=20))


def _configs(space: dict[str, tuple[int, ...]]) -> list[dict[str, str]]:
    keys = list(space)
    return [dict(zip(keys, map(str, vals))) for vals in itertools.product(*space.values())]


def _best(run: Callable[[dict[str, str]], None], space: dict, timer: Timer) -> dict[str, str]:
    best, best_t = {}, float("inf")
    for cfg in _configs(space):
        try:
            t = timer(lambda: run(cfg))
        except Exception:  # a config the compiler rejects (resources) is skipped
            continue
        if t < best_t:
            best, best_t = cfg, t
    return best


def autotune(engine, batch: int, timer: Timer | None = None) -> dict[tuple, dict[str, str]]:
    """Tune every sum partition of `engine` for `batch`; returns shape -> options."""
    timer = timer or _default_timer
    dev = engine.device
    values = torch.randn(engine.plan.num_slots, batch, device=dev) - 3.0
    values[0], values[1] = float("-inf"), 0.0
    flows = torch.rand(engine.plan.num_slots, batch, device=dev)
    pflows = torch.zeros_like(engine.sum_param_flows)
    params = engine.sum_params.data
    chosen: dict[tuple, dict[str, str]] = {}
    layers = engine.layout.layers
    for layer, lp in zip(layers, engine.plan.layers):
        for msg, part in zip(layer.sum_partitions, lp.sums):
            if part.block_size < 16:      # broadcast kernels: tiles bounded by registers
                continue
            key = ("fwd", part.block_size, part.max_children, batch)
            if key not in chosen:
                def run_fwd(cfg, part=part):
                    part.options = dict(cfg)
                    launch.sum_forward_launch(part, values, params, engine.precision)
                fwd = _best(run_fwd, FWD_SPACE, timer)
                pkey = ("pflow",) + key[1:]

                def run_pflow(cfg, part=part):
                    part.options = {f"pflow.{k}": v for k, v in cfg.items()}
                    launch.sum_param_flows_launch(part, values, flows, params, pflows,
                                                  engine.precision)
                chosen[key] = fwd
                chosen[pkey] = {f"pflow.{k}": v for k, v in
                                _best(run_pflow, PFLOW_SPACE, timer).items()}
            part.options = {**part.options, **chosen[key], **chosen[("pflow",) + key[1:]]}
            msg.kernel_options.update(part.options)
        for msg, part in zip(layer.sum_backward_partitions, lp.sum_backwards):
            if part.child_block_size < 16 or part.parent_block_size < 16:
                continue
            key = ("bwd", part.child_block_size, part.parent_block_size, part.max_parents, batch)
            if key not in chosen:
                def run_bwd(cfg, part=part):
                    part.options = dict(cfg)
                    launch.sum_backward_launch(part, values, flows, params,
                                               engine.precision)
                chosen[key] = _best(run_bwd, BWD_SPACE, timer)
            part.options = {**part.options, **chosen[key]}
            msg.kernel_options.update(chosen[key])
    for part in engine.plan.merged_sums:        # the concatenated launches
        key = (part.block_size, part.max_children, batch)
        if ("fwd",) + key in chosen:
            part.options = {**chosen[("fwd",) + key], **chosen[("pflow",) + key]}
    return chosen
