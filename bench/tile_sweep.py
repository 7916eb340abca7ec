"""Which tile sizes would the sum kernels like? A sweep over the race cases.

For each case: compile (triton, CUDA), run one real forward + backward on
random data so values and flows are realistic, then for each distinct sum
partition shape of the compact (training) plan time the default tiles
(launch.choose_tiles) and a grid of alternatives with triton's do_bench:
forward (TILE_M, TILE_K, BLOCK_B), node-flow backward (TILE_J, TILE_I,
BLOCK_B) and parameter flows (TILE_M, TILE_K, BLOCK_B), num_warps 4 and 8.
Prints default ms, best ms and the best options per shape, and the step
time those shapes would save (x how many partitions share the shape).

  PYTHONPATH=.:bench python bench/tile_sweep.py --cases hclt128,hmm1024 --budget 240
"""
from __future__ import annotations

import argparse
import itertools
import time

import torch

import race_cases
from step_profile import random_batches


def configs(space: dict[str, tuple[int, ...]]):
    """Every combination; num_warps follows the output tile's area (8 from
    8K fp32 accumulators, as launch.choose_tiles)."""
    keys = list(space)
    for vals in itertools.product(*space.values()):
        cfg = dict(zip(keys, vals))
        rows = cfg.get("TILE_M", cfg.get("TILE_J", 16))
        cols = cfg["TILE_K"] if "TILE_M" in cfg and "TILE_J" not in cfg and space.get("pflow") else cfg["BLOCK_B"]
        cfg.pop("pflow", None)
        cfg["num_warps"] = 8 if rows * cols >= 8192 else 4
        yield {k: str(v) for k, v in cfg.items()}


def sweep(name, run, space, deadline, prefix=""):
    import triton.testing
    default_ms = float(triton.testing.do_bench(lambda: run({}), warmup=3, rep=15))
    best, best_ms = {}, default_ms
    for cfg in configs(space):
        if time.time() > deadline:
            break
        opts = {prefix + k: v for k, v in cfg.items()}
        try:
            ms = float(triton.testing.do_bench(lambda: run(opts), warmup=3, rep=15))
        except Exception:
            continue
        if ms < best_ms:
            best, best_ms = cfg, ms
    return default_ms, best_ms, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="hclt128,hmm1024")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--budget", type=float, default=240.0, help="seconds for the whole sweep")
    ap.add_argument("--kinds", default="fwd,bwd,pflow")
    args = ap.parse_args()
    import pccompiler
    from pccompiler.backends.triton import launch
    deadline = time.time() + args.budget
    kinds = set(args.kinds.split(","))
    for case in race_cases.select_cases(args.cases):
        model = case.build()
        x = random_batches(case, model, args.batch, count=1)[0]
        cc = pccompiler.compile(model, backend="triton", device="cuda", cuda_graphs=False)
        eng = cc.engine
        plan = eng.fast_plan
        x_t, miss_t = eng._transposed(x, None)
        values = eng._new_values(args.batch, plan)
        eng._forward_into(values, x_t, miss_t, False, plan)
        flows = eng._new_flows(values, plan)
        eng._backward_into(values, flows, x_t, miss_t, plan)
        torch.cuda.synchronize()
        params = eng.sum_params.data
        pflows = torch.zeros_like(eng.sum_param_flows)
        print(f"== {case.name}", flush=True)
        seen: dict[tuple, int] = {}
        parts = []
        for lp in plan.layers:
            for p in lp.sums:
                key = ("sum", p.block_size, p.max_children, p.num_blocks)
                seen[key] = seen.get(key, 0) + 1
                if seen[key] == 1:
                    parts.append((key, p))
            for p in lp.sum_backwards:
                key = ("bwd", p.child_block_size, p.parent_block_size, p.max_parents,
                       p.num_blocks)
                seen[key] = seen.get(key, 0) + 1
                if seen[key] == 1:
                    parts.append((key, p))
        for key, p in parts:
            if time.time() > deadline:
                print("  (budget spent)")
                break
            count = seen[key]
            if key[0] == "sum":
                tm_opts = tuple(t for t in (32, 64, 128) if t <= max(16, 2 * p.block_size))
                if "fwd" in kinds:
                    def run_f(opts, p=p):
                        p.options = opts
                        launch.sum_forward_launch(p, values, params, eng.precision)
                    d, b, cfg = sweep("fwd", run_f, {"TILE_M": tm_opts, "TILE_K": (16, 32, 64),
                                                     "BLOCK_B": (32, 64, 128)}, deadline)
                    print(f"  fwd   {key[1:]} x{count}: default {d:.4f} ms best {b:.4f} ms "
                          f"(saves {(d - b) * count:.3f} ms/step) {cfg}", flush=True)
                if "pflow" in kinds:
                    def run_p(opts, p=p):
                        p.options = opts
                        launch.sum_param_flows_launch(p, values, flows, params, pflows,
                                                      eng.precision)
                    d, b, cfg = sweep("pflow", run_p, {"TILE_M": tm_opts,
                                                       "TILE_K": (32, 64, 128),
                                                       "BLOCK_B": (16, 32, 64),
                                                       "pflow": (1,)}, deadline,
                                      prefix="pflow.")
                    print(f"  pflow {key[1:]} x{count}: default {d:.4f} ms best {b:.4f} ms "
                          f"(saves {(d - b) * count:.3f} ms/step) {cfg}", flush=True)
                p.options = {}
            elif "bwd" in kinds:
                tj_opts = tuple(t for t in (32, 64, 128) if t <= max(16, 2 * p.child_block_size))
                scratch = flows.clone()

                def run_b(opts, p=p):
                    p.options = opts
                    launch.sum_backward_launch(p, values, scratch, params, eng.precision)
                d, b, cfg = sweep("bwd", run_b, {"TILE_J": tj_opts, "TILE_I": (16, 32, 64),
                                                 "BLOCK_B": (32, 64, 128)}, deadline)
                print(f"  bwd   {key[1:]} x{count}: default {d:.4f} ms best {b:.4f} ms "
                      f"(saves {(d - b) * count:.3f} ms/step) {cfg}", flush=True)
                p.options = {}
        del cc, eng, values, flows, pflows
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
