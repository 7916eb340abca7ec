"""Per-launch cost count of the sum layers' kernels of one training step.

    TRITON_INTERPRET=1 python bench/pflow_cost.py --cases hclt128,hclt512 --batch 512 \
        --out bench/results/pflow-cpu-2026-12-07.md

Why: on an H100 the parameter-flow kernel (`sum_param_flow_kernel`) took
1.65x the forward's time for the same multiply-adds (dense HCLT-128 step,
bench/results/sparse_floor-h100-2026-12-07.md). This counts, from the plan
the engine runs and the tiles `launch.choose_tiles` picks, what each launch
asks of the GPU: programs, the serial loop trips of one program (a launch
whose grid fits one wave takes about that many dependent steps), exps
(the SFU does 16 per clock per SM, 1/128 of the tf32 tensor rate), dot
FLOPs, bytes its tile loads request (mostly L2 hits) and the bytes it must
move at least (DRAM), and atomic adds -- for the forward, the node-flow
kernel, the parameter-flow kernel ("layer" tiles and "split" tiles) and the
fused node + parameter flow kernel (pflow="fused", bwd_pflow.py), and
pflow="fused_split" (the fused kernel where a child block walks at most
FUSE_MAX_PARENT_TILES parent tiles, the node-flow kernel and "split"
parameter flows elsewhere: its row counts both backward products). No GPU
needed: it builds the plan under the interpreter and runs no kernel.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pccompiler.backends.triton import launch  # noqa: E402
from pccompiler.backends.triton.compat import cdiv  # noqa: E402
from pccompiler.backends.triton.pflow_launch import (  # noqa: E402
    FUSE_MAX_PARENT_TILES, fusable_layer,
)

F32 = 4
SMS = 132
# The roofline figures of bench/race.py's report (H100 SXM): tf32 dense
# ceiling, copy bandwidth; the SFU's exp rate at a 1.755 GHz clock.
TF32_FLOPS, DRAM_BPS, EXP_PER_S = 356e12, 3.0e12, 16 * SMS * 1.755e9


@dataclass
class Launch:
    programs: int
    trips: int            # serial loop trips of one program
    exps: float
    flops: float
    req_bytes: float      # bytes the tile loads / stores request
    min_bytes: float      # bytes that must come from / go to DRAM at least
    atomics: float = 0.0


@dataclass
class Tally:
    launches: list[Launch] = field(default_factory=list)

    def add(self, item: Launch) -> None:
        self.launches.append(item)

    def row(self, name: str) -> str:
        ls = self.launches
        if not ls:
            return f"| {name} | 0 |" + " - |" * 9
        progs = sorted(x.programs for x in ls)
        tot = {k: sum(getattr(x, k) for x in ls) for k in
               ("exps", "flops", "req_bytes", "min_bytes", "atomics")}
        chain = sum(x.trips * cdiv(x.programs, 4 * SMS) for x in ls)
        floor_us = 1e6 * max(tot["exps"] / EXP_PER_S, tot["flops"] / TF32_FLOPS,
                             tot["min_bytes"] / DRAM_BPS)
        small = sum(1 for p in progs if p < SMS)
        return (f"| {name} | {len(ls)} | {progs[0]} / {int(statistics.median(progs))} / "
                f"{progs[-1]} | {small} | {chain} | {tot['exps'] / 1e6:.0f} | "
                f"{tot['flops'] / 1e9:.2f} | {tot['req_bytes'] / 1e9:.2f} | "
                f"{tot['min_bytes'] / 1e6:.0f} | {tot['atomics'] / 1e6:.1f} | {floor_us:.0f} |")


def fwd_cost(part, batch: int) -> Launch:
    c = launch.choose_tiles("sum_fwd", part.rows, launch.tile_fan_in(part), batch,
                            options=part.options, num_rows=part.num_blocks * part.block_size)
    tm, tk, bb = c["TILE_M"], c["TILE_K"], c["BLOCK_B"]
    programs = part.num_runs * cdiv(part.rows, tm) * cdiv(batch, bb)
    trips = cdiv(part.max_children, tk)
    exps = programs * (trips * (tk * bb + bb) + tm * bb)
    flops = programs * trips * 2 * tm * tk * bb
    req = programs * (trips * (tk * bb + tm * tk) + tm * bb) * F32
    rows = part.num_blocks * part.block_size
    mins = (part.num_runs * part.max_children + rows) * batch * F32 + rows * part.max_children * F32
    return Launch(programs, trips, exps, flops, req, mins)


def pflow_cost(part, batch: int, split: bool) -> Launch:
    if split:
        c = launch.choose_tiles("sum_pflow_split", part.rows, launch.tile_fan_in(part), batch)
    else:
        c = launch.choose_tiles("sum_pflow", part.rows, launch.tile_fan_in(part), batch,
                                num_rows=part.num_blocks * part.block_size)
    tm, tk, bb = c["TILE_M"], c["TILE_K"], c["BLOCK_B"]
    tiles = part.num_runs * cdiv(part.rows, tm) * cdiv(part.max_children, tk)
    per = (launch.batch_per_program(tiles, batch, bb, c["MIN_TILES"], 2 * launch.MIN_PROGRAMS)
           if split else launch.batch_per_program(tiles, batch, bb, 4))
    ranges = cdiv(batch, per)
    trips = cdiv(per, bb)
    steps = tiles * cdiv(batch, bb)           # (tile, batch tile) pairs over all ranges
    exps = steps * (bb * tk + tm * bb)
    flops = steps * 2 * tm * bb * tk
    req = (steps * (bb * tk + tm * bb) + tiles * ranges * 2 * tm * tk) * F32
    rows = part.num_blocks * part.block_size
    weights = rows * part.max_children
    mins = (part.num_runs * part.max_children + rows) * batch * F32 + 3 * weights * F32
    atomic = part.atomic or ranges > 1
    return Launch(tiles * ranges, trips, exps, flops, req, mins,
                  tiles * ranges * tm * tk if atomic else 0.0)


def bwd_cost(part, batch: int) -> Launch:
    c = launch.choose_tiles("sum_bwd", part.rows, part.max_parents, batch,
                            other_block_size=part.parent_block_size, options=part.options,
                            num_rows=part.num_blocks * part.child_block_size)
    tj, ti, bb = c["TILE_J"], c["TILE_I"], c["BLOCK_B"]
    programs = cdiv(part.num_blocks, part.group) * cdiv(part.rows, tj) * cdiv(batch, bb)
    trips = part.max_parents * cdiv(part.parent_block_size, ti)
    exps = programs * (trips * (ti * bb + bb) + tj * bb)
    flops = programs * trips * 2 * tj * ti * bb
    req = programs * (trips * (ti * bb + tj * ti) + 2 * tj * bb) * F32
    crow = part.num_blocks * part.child_block_size
    pairs = part.num_blocks * part.max_parents
    mins = (pairs * part.parent_block_size + 2 * crow) * batch * F32 \
        + pairs * part.child_block_size * part.parent_block_size * F32
    return Launch(programs, trips, exps, flops, req, mins)


def fused_cost(part, batch: int) -> Launch:
    c = launch.choose_tiles("sum_bwd_pflow", part.child_block_size, part.max_parents, batch,
                            other_block_size=part.parent_block_size)
    tj, ti, bb = c["TILE_J"], c["TILE_I"], c["BLOCK_B"]
    tiles = part.num_blocks * cdiv(part.child_block_size, tj)
    per = launch.batch_per_program(tiles, batch, bb, c["MIN_TILES"], 2 * launch.MIN_PROGRAMS)
    ranges = cdiv(batch, per)
    ptiles = part.max_parents * cdiv(part.parent_block_size, ti)
    steps = tiles * ptiles * cdiv(batch, bb)
    exps = steps * (ti * bb + tj * bb)
    flops = steps * 2 * 2 * tj * ti * bb
    req = (steps * (ti * bb + 3 * tj * bb) + tiles * ranges * ptiles * 2 * tj * ti) * F32
    crow = part.num_blocks * part.child_block_size
    pairs = part.num_blocks * part.max_parents
    weights = pairs * part.child_block_size * part.parent_block_size
    mins = (pairs * part.parent_block_size + 2 * crow) * batch * F32 + 3 * weights * F32
    return Launch(tiles * ranges, ptiles * cdiv(per, bb), exps, flops, req, mins,
                  tiles * ranges * ptiles * tj * ti)


COLUMNS = ("kernel", "launches", "programs min / median / max", "launches < 132 programs",
           "serial trips (sum over launches, x waves of 528)", "exps M", "dot GFLOP",
           "requested GB", "DRAM floor MB", "atomic adds M", "floor us (max of exp, tf32, DRAM)")


def _cell(item: Launch) -> str:
    return f"{item.programs} x {item.trips}"


DETAIL = ("layer", "part", "blocks x rows, children", "fwd", "bwd", "pflow layer",
          "pflow split", "fused")


def case_table(name: str, batch: int, detail: bool = False) -> list[str]:
    import race_cases
    import pccompiler as pc
    case = race_cases.select_cases(name)[0]
    model = case.build()
    plan = pc.compile(model, backend="triton", device="cpu").engine.fast_plan
    tallies = {k: Tally() for k in ("sum_fwd_dot_kernel", "sum_bwd_flow_kernel",
                                    "sum_param_flow_kernel (layer)",
                                    "sum_param_flow_kernel (split)",
                                    "sum_bwd_pflow_kernel (fused)",
                                    "fused_split: node + parameter flows")}
    unfused = 0
    rows = ["| " + " | ".join(DETAIL) + " |", "|---:|---:|---|" + "---:|" * 5]
    for li, lp in enumerate(plan.layers):
        fusable = fusable_layer(lp.sums, lp.sum_backwards, lp.tile_flows)
        short = fusable_layer(lp.sums, lp.sum_backwards, lp.tile_flows, FUSE_MAX_PARENT_TILES)
        unfused += bool(lp.sums) and not fusable
        both = tallies["fused_split: node + parameter flows"]
        for b in lp.sum_backwards:
            both.add(fused_cost(b, batch) if short else bwd_cost(b, batch))
        for part in ([] if short else lp.sums):
            both.add(pflow_cost(part, batch, True))
        for i, part in enumerate(lp.sums):
            cost = (fwd_cost(part, batch), pflow_cost(part, batch, False),
                    pflow_cost(part, batch, True))
            tallies["sum_fwd_dot_kernel"].add(cost[0])
            tallies["sum_param_flow_kernel (layer)"].add(cost[1])
            tallies["sum_param_flow_kernel (split)"].add(cost[2])
            bwd = [bwd_cost(b, batch) for b in lp.sum_backwards]
            fused = [fused_cost(b, batch) for b in lp.sum_backwards] if fusable else []
            if i == 0:
                for b in bwd:
                    tallies["sum_bwd_flow_kernel"].add(b)
                for f in fused:
                    tallies["sum_bwd_pflow_kernel (fused)"].add(f)
            rows.append(f"| {li} | {i} | {part.num_blocks} x {part.block_size}, "
                        f"{part.max_children} | {_cell(cost[0])} | "
                        f"{', '.join(map(_cell, bwd)) if i == 0 else '-'} | {_cell(cost[1])} | "
                        f"{_cell(cost[2])} | "
                        f"{', '.join(map(_cell, fused)) if i == 0 and fused else '-'} |")
    edges = sum(int(p.block_num_children.sum()) * p.block_size
                for lp in plan.layers for p in lp.sums)
    lines = [f"## {name}, batch {batch}: {edges:,} sum weights, "
             f"{sum(len(lp.sums) for lp in plan.layers)} sum parts; "
             f"{unfused} sum layer(s) the fused kernel leaves to 'layer'", "",
             "| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    lines += [t.row(k) for k, t in tallies.items()]
    if detail:
        lines += ["", f"Per sum part of {name} (programs x serial trips of one program):", ""]
        lines += rows
    return lines + [""]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="hclt128,hclt512")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--detail", action="store_true", help="also list every sum part")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    lines = ["# Sum-layer kernel costs of one training step (counted, no GPU)", "",
             f"Command: `TRITON_INTERPRET=1 python bench/pflow_cost.py --cases {args.cases} "
             f"--batch {args.batch}{' --detail' if args.detail else ''}`", ""]
    for name in args.cases.split(","):
        lines += case_table(name, args.batch, args.detail)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
