"""A per-kernel model of one triton training step, built on the CPU.

    TRITON_INTERPRET=1 PYTHONPATH=.:bench python bench/step_model.py --hclt 128 --out OUT
    (or --circuits a.pcir,b.pcir: the first is the base of the ratios)

Why: the GPU is rarely reachable, and the pruned HCLTs of issue #18 run
3-10x slower than the stored tile work predicts (bench/sparse_tiles.py
`layout_work`). This replays the engine's own training step
(`TritonEngine._forward_into`, `_backward_into(ratio=True)`, `_em_into`,
on the fast plan) with every Triton kernel replaced by a recorder, so the
launches, grids and constexprs are exactly the ones the GPU would get, and
derives per launch from the kernel's arguments:

* programs (the grid), loop trips per program (the serial chain of
  dependent gathers: K-chunks, parents, batch tiles), padded dot MACs split
  into tensor-core (tf32/bf16) and CUDA-core ("ieee" precision: tl.dot on
  fp32 FMAs) work, the useful MACs (non-zero weights x batch), exp()
  count, bytes moved, atomics;
* a modeled time: LAUNCH_S + max(dot time, exp time, bytes / BW, latency),
  latency = waves x trips x ITER_S (a trip waits for one dependent global
  load). The constants (H100-class, below) are round figures, not fits;
  the model ranks kernels, it does not predict milliseconds.

Writes step_model.json / step_model.md into --out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

SMS = 132
R_TC = 150e12      # tf32 tensor-core MAC/s (H100 dense peak ~190e12)
R_FMA = 25e12      # fp32 FMA MAC/s of an "ieee" tl.dot (peak ~33e12)
R_EXP = 3.5e12     # exp/s (16 MUFU ops per SM per clock)
BW = 3.0e12        # bytes/s (HBM; gathers partly hit L2)
R_ATOMIC = 1.0e11  # fp32 atomic adds/s to distinct addresses (L2)
ITER_S = 1.0e-6    # one loop trip that waits on a dependent global load
LAUNCH_S = 2.0e-6  # per kernel, inside a CUDA graph


class Recorder:
    """Stands in for a @triton.jit kernel: `kernel[grid](*args, **kw)` records."""

    def __init__(self, name: str, log: list):
        self.name, self.log = name, log

    def __getitem__(self, grid):
        def call(*args, **kw):
            self.log.append((self.name, tuple(int(g) for g in grid), args, kw))
        return call


@contextlib.contextmanager
def recording(log: list):
    """Replace every kernel that backends/triton/launch.py reaches."""
    from pccompiler.backends.triton import (
        em_kernels, io_kernels, soft_kernels, sum_backward, sum_forward, tile_flows,
    )
    saved = []
    for mod in (sum_forward, sum_backward, tile_flows, io_kernels, em_kernels, soft_kernels):
        for name in dir(mod):
            if name.endswith("_kernel"):
                saved.append((mod, name, getattr(mod, name)))
                setattr(mod, name, Recorder(name, log))
    try:
        yield
    finally:
        for mod, name, obj in reversed(saved):
            setattr(mod, name, obj)


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.int64)


def _cdiv(a, b):
    return -(-a // b)


def _nonzero_weights(params: np.ndarray, starts: np.ndarray, nc: np.ndarray, bs: int) -> int:
    """Non-zero weights of blocks (start, children, block size) of a part."""
    total = int(nc.sum()) * bs
    if total == 0:
        return 0
    blk = np.repeat(np.arange(nc.size), nc * bs)
    pos = np.arange(total) - np.repeat(np.cumsum(nc * bs) - nc * bs, nc * bs)
    return int(np.count_nonzero(params[starts[blk] + pos]))


def fused_reads(kw: dict, key: str) -> tuple[float, int]:
    """(rows gathered per child, grand-slot width A) of a launch of a fused
    part (backends/triton/fusion.py): a folded product child costs one
    load per grandchild (its grand slots other than the padding slot 1,
    which is not loaded) instead of one load of the product row; (1.0, 0)
    for a plain part."""
    a = int(kw.get("FUSED", 0))
    if not a:
        return 1.0, 0
    g = _np(kw[key]).reshape(-1, a)
    live = g[:, 0] > 1          # slot 0: a padded child entry
    return (float((g[live] != 1).sum(axis=1).mean()) if live.any() else 1.0), a


def run_heads(kw: dict, nc: np.ndarray, g: int, runs: int) -> tuple[np.ndarray, np.ndarray]:
    """(fan-in, rows in blocks) of each program group of a sum launch:
    plan.run_table's unequal runs (RUNS) or aligned runs of GROUP blocks."""
    if kw.get("RUNS"):
        starts = _np(kw["runs_ptr"])
        return nc[starts[:-1]], np.diff(starts)
    return nc[::g][:runs], np.full(min(runs, nc[::g].size), g)


def kernel_work(name: str, grid: tuple, args: tuple, kw: dict, batch: int,
                params: np.ndarray) -> dict:
    """Work of one recorded launch (see the module docstring). Fused parts
    gather rf rows per child (`fused_reads`) plus A grand slots per child
    and trip; their trips (dependent loads) are as many as the plain ones."""
    w = dict(programs=math.prod(grid), trips=0, max_trips=0, mac=0, fma=False, useful=0,
             exps=0, bytes=0, atomics=0)
    prec = kw.get("PREC", "tf32")
    w["fma"] = prec == "ieee"
    rf, ga = fused_reads(kw, "cgrand_ptr" if name == "sum_bwd_flow_kernel" else "grand_ptr")
    if name == "sum_fwd_dot_kernel":
        nc = _np(args[3])
        g, num_m = kw.get("GROUP", 1), kw["NUM_M"]
        tm, tk, bb, bs = kw["TILE_M"], kw["TILE_K"], kw["BLOCK_B"], kw["BS"]
        runs = grid[0] // num_m
        ncr, blocks = run_heads(kw, nc, g, runs)
        if kw.get("SPLIT_K"):
            per = int(args[10])
            s = np.arange(grid[2])
            trips = _cdiv(np.clip(ncr[:, None] - s[None, :] * per, 0, per), tk)
        else:
            trips = _cdiv(ncr, tk)
        # unequal runs: row tiles past a run's rows do no work
        live_m = np.minimum(_cdiv(blocks * bs, tm), num_m) if kw.get("RUNS") else num_m
        trips_all = int((trips * live_m).sum()) * grid[1]
        w.update(trips=trips_all, max_trips=int(trips.max(initial=0)),
                 mac=trips_all * tm * tk * bb, exps=trips_all * (tk + 1) * bb,
                 bytes=trips_all * (tk * bb * rf + tm * tk + tk * (1 + ga)) * 4
                 + nc.size * bs * batch * 4,
                 useful=_nonzero_weights(params, _np(args[5]), nc, bs) * batch)
    elif name == "sum_bwd_flow_kernel":
        npar = _np(args[4])
        g, num_j = kw.get("GROUP", 1), kw["NUM_J"]
        tj, ti, bb = kw["TILE_J"], kw["TILE_I"], kw["BLOCK_B"]
        cbs, pbs = kw["CBS"], kw["PBS"]
        runs = grid[0] // num_j
        trips = npar[::g][:runs] * _cdiv(pbs, ti)
        trips_all = int(trips.sum()) * num_j * grid[1]
        # child rows: their values read and their flows written (4 + 4 bytes);
        # fused: rf rows read, and with FUSED_BWD rf rows written (stored,
        # read-added, or atomics where rows share a child; RATIO_OUT reads
        # the values of the rows it writes)
        rows = npar.size * cbs * batch
        slots = npar.size * cbs * grid[1] * ga * 4     # grand-slot loads: per row and batch tile
        write = 4.0
        if kw.get("FUSED_BWD"):
            ro, ao = fused_reads(dict(FUSED=kw["FUSED_BWD"], cout=kw["cout_ptr"]), "cout")
            write = ro * (4 if kw["STORE"] else 8) + (ro * 4 if kw.get("RATIO_OUT") else 0)
            slots += npar.size * cbs * grid[1] * ao * 4
            if kw.get("ATOMIC_OUT"):
                write = 0.0
                w["atomics"] = int(rows * ro)
        w.update(trips=trips_all, max_trips=int(trips.max(initial=0)),
                 mac=trips_all * tj * ti * bb, exps=trips_all * (ti + 1) * bb,
                 bytes=trips_all * (ti * bb + tj * ti + 2) * 4
                 + int(rows * (4 * rf + write) + slots),
                 useful=int(npar.sum()) * cbs * pbs * batch)
    elif name == "sum_param_flow_kernel":
        nc = _np(args[5])
        g, num_m, num_kt = kw.get("GROUP", 1), kw["NUM_M"], kw["NUM_KT"]
        tm, tk, bb, bs = kw["TILE_M"], kw["TILE_K"], kw["BLOCK_B"], kw["BS"]
        per = int(args[11])
        runs = grid[0] // (num_m * num_kt)
        ncr, blocks = run_heads(kw, nc, g, runs)
        live_m = np.minimum(_cdiv(blocks * bs, tm), num_m) if kw.get("RUNS") else num_m
        live = ((np.arange(num_kt)[None, :] * tk < ncr[:, None]).sum(axis=1) * live_m).sum() \
            * grid[1]
        trips_all = int(live) * _cdiv(per, bb)
        w.update(trips=trips_all, max_trips=_cdiv(per, bb), mac=trips_all * tm * tk * bb,
                 exps=trips_all * (tk + tm) * bb,
                 bytes=trips_all * ((tk * rf + tm) * bb + tk * ga) * 4
                 + int(live) * tm * tk * 12,
                 atomics=int(live) * tm * tk if kw["ATOMIC"] else 0,
                 useful=_nonzero_weights(params, _np(args[7]), nc, bs) * batch)
    elif name == "sum_tile_flow_kernel":
        nc = _np(args[4])
        g, num_kt = kw.get("GROUP", 1), kw["NUM_KT"]
        tm, tk, bb, bs = kw["TILE_M"], kw["TILE_K"], kw["BLOCK_B"], kw["BS"]
        runs = grid[0] // num_kt
        ncr, blocks = run_heads(kw, nc, g, runs)
        chunks = (np.arange(num_kt)[None, :] * tk < ncr[:, None]).sum(axis=1)   # per run
        mt_run = _cdiv(blocks * bs, tm)              # dependent trips of each run's programs
        live = int(chunks.sum()) * grid[1]
        tm_trips = int((chunks * mt_run).sum()) * grid[1]
        store = bool(kw.get("STORE"))
        w.update(trips=tm_trips, max_trips=int(mt_run.max(initial=0)),
                 mac=tm_trips * tm * tk * bb,
                 exps=tm_trips * (tm + 1) * bb + live * tk * bb,
                 bytes=(tm_trips * (tm * bb + tm * tk) + live * (tk * bb * (1 + rf) + tk * ga)) * 4
                 + (int(ncr.sum()) * batch * 4 if store else 0),
                 # one add per (child, sample) of a run; a storing part writes instead
                 atomics=0 if store else int(ncr.sum()) * batch,
                 useful=_nonzero_weights(params, _np(args[6]), nc, bs) * batch)
    elif name == "sum_em_kernel":
        nc = _np(args[3])
        own = _np(args[2])
        bs = kw["BS"]
        n = int(nc[own].sum()) * bs
        chunks = _cdiv(nc[own], kw["TILE_K"])
        if kw.get("PACK"):     # TILE_M one-row owners per program, as long as the longest
            pad = -chunks.size % kw["TILE_M"]
            chunks = np.pad(chunks, (0, pad)).reshape(-1, kw["TILE_M"]).max(axis=1)
        w.update(trips=int(chunks.sum()) * 2 * kw["NUM_M"],
                 max_trips=2 * int(chunks.max(initial=0)), bytes=n * 20)
    elif name == "log_ratio_kernel":
        rows = grid[0] // kw["NUM_M"] * kw["BS"]
        w.update(trips=w["programs"], max_trips=1, bytes=rows * batch * 12, exps=rows * batch)
    elif name in ("product_fwd_kernel", "product_bwd_kernel"):
        n, k = int(args[3]), int(args[4])
        w.update(trips=w["programs"] * k, max_trips=k, bytes=n * (k + 1) * batch * 4
                 * (2 if name == "product_bwd_kernel" else 1))
        if name == "product_bwd_kernel" and kw["ATOMIC"] and not kw["STORE"]:
            # shared children (PD): each child add is an atomic, not a read-add-write
            w.update(bytes=n * batch * 4, atomics=n * k * batch)
    elif name == "input_fwd_kernel":
        n = int(args[8])
        w.update(trips=w["programs"] * _cdiv(int(args[11]), kw["BLOCK_B"]),
                 max_trips=_cdiv(int(args[11]), kw["BLOCK_B"]), bytes=n * batch * 5)
    elif name in ("input_bwd_kernel", "categorical_flow_dot_kernel"):
        n = int(_np(args[4 if name == "categorical_flow_dot_kernel" else 6]).size)
        w.update(trips=w["programs"] * _cdiv(batch, kw["BLOCK_B"]),
                 max_trips=_cdiv(batch, kw["BLOCK_B"]), bytes=n * batch * 5)
    elif name == "categorical_em_kernel":
        n = int(args[3]) * kw["CATS"]
        w.update(trips=w["programs"], max_trips=2, bytes=n * 20)
    elif name == "sum_split_combine_kernel":
        w.update(trips=w["programs"] * int(args[4]), max_trips=int(args[4]),
                 bytes=int(args[3]) * batch * 4 * (int(args[4]) + 1))
    return w


def model_time(w: dict, num_warps: int) -> float:
    """LAUNCH_S + max(dots, exps, bytes, latency) for one launch (seconds)."""
    occ = 2 if num_warps >= 8 else 4
    waves = _cdiv(w["programs"], SMS * occ)
    mean = w["trips"] / max(w["programs"], 1)
    lat = max(waves * mean, w["max_trips"]) * ITER_S
    dots = w["mac"] / (R_FMA if w["fma"] else R_TC)
    memory = w["bytes"] / BW + w["atomics"] / R_ATOMIC
    return LAUNCH_S + max(dots, w["exps"] / R_EXP, memory, lat)


def step_launches(circuit, batch: int) -> list[dict]:
    """Every kernel launch of one training step (forward, backward with
    ratios, EM) of a compiled triton circuit, with its work and model time."""
    eng = circuit.engine
    plan = eng.fast_plan
    params = eng.sum_params.detach().cpu().numpy()
    x = torch.zeros(batch, eng.num_vars if hasattr(eng, "num_vars") else
                    len(eng.model.variables), dtype=torch.uint8)
    x_t, miss_t = eng._transposed(x, None)
    values = torch.empty(plan.num_slots, batch)
    flows = torch.empty(plan.num_slots, batch)
    log: list = []
    phases = []
    with recording(log):
        eng._forward_into(values, x_t, miss_t, False, plan)
        phases.append(("forward", len(log)))
        eng._backward_into(values, flows, x_t, miss_t, plan, ratio=True)
        phases.append(("backward", len(log)))
        eng._em_into(0.1, 0.1)
        phases.append(("em", len(log)))
    out, lo = [], 0
    for li, layer in enumerate(plan.layers):     # torch index_fill_ launches of the backward
        for rows in (layer.zero_flow_rows, getattr(layer, "tile_zero_rows", None)):
            if rows is not None:
                w = dict(programs=1, trips=1, max_trips=1, mac=0, fma=False, useful=0, exps=0,
                         bytes=int(rows.numel()) * batch * 4, atomics=0)
                w.update(kernel="index_fill_ (torch)", phase="backward", grid=[1])
                w["time_s"] = LAUNCH_S + w["bytes"] / BW
                out.append(w)
    for phase, hi in phases:
        for name, grid, args, kw in log[lo:hi]:
            w = kernel_work(name, grid, args, kw, batch, params)
            w.update(kernel=name, phase=phase, grid=list(grid),
                     time_s=model_time(w, kw.get("num_warps", 4)))
            out.append(w)
        lo = hi
    return out


def summarize(launches: list[dict]) -> dict:
    """Per kernel name: launches, programs, padded / useful MACs, time."""
    by: dict = defaultdict(lambda: defaultdict(float))
    for w in launches:
        k = w["kernel"] + (" (fma)" if w["fma"] and w["mac"] else "")
        d = by[k]
        d["launches"] += 1
        for key in ("programs", "trips", "mac", "useful", "exps", "bytes", "atomics", "time_s"):
            d[key] += w[key]
    total = sum(w["time_s"] for w in launches)
    return {"kernels": {k: dict(v) for k, v in sorted(by.items(), key=lambda kv: -kv[1]["time_s"])},
            "launches": len(launches), "time_s": total,
            "mac": sum(w["mac"] for w in launches),
            "useful": sum(w["useful"] for w in launches)}


@contextlib.contextmanager
def variant(name: str, engine=None):
    """'before': the row tiles' node flows through sum_backwards and their
    dots in fp32 (the code before 2026-12-07); 'after': the defaults;
    'allruns': tile flows for every run of small blocks (plan.TILE_MIN_ROWS 1);
    'tiles16': only runs of >= 16 rows (the row-tile pass's short runs keep
    the per-pair kernel); 'fused': the defaults with fuse_products=True on
    `engine` (backends/triton/fusion.py: product layers folded into the sum
    kernels' loads, forward and, where no row tile writes their flows,
    backward); 'fusedfwd': the same with every product backward kept
    (fusion.FUSE_BACKWARD False); 'fusedtiles': 'fused' with the products
    that row tiles read fused too (fusion.FUSE_TILE_CHILDREN, forward only);
    'round2': the code of main before branch sparsefloor (`round2`: no unequal
    runs, tile flows always atomic, odd DENSE groups in blocks of their
    power-of-two divisor, the row-tile pass's union costs, one EM program per
    one-row block); 'fusedr2': 'round2' with fuse_products; 'unpriced': the
    code before branch sparseprice (a pruned group whose blocks pass the
    padding tolerance is stored block-sparse without pricing it against
    DENSE and tiles: detect_block_sparsity.PRICE_BLOCKS False); 'alldense',
    'nodense', 'runsN': the storage A/B of `storage_variant`. The pass
    switches act at compile time: hold the variant while compiling."""
    from pccompiler.backends.triton import fusion, launch, plan
    if name in ("round2", "fusedr2"):
        with round2(), variant("fused" if name == "fusedr2" else "after", engine):
            yield
        return
    if name in PASS_VARIANTS or name.startswith("runs"):
        with storage_variant(name), variant("after", engine):
            yield
        return
    if name == "unpriced":
        from pccompiler.passes import detect_block_sparsity as dbs
        saved_price, dbs.PRICE_BLOCKS = dbs.PRICE_BLOCKS, False
        try:
            with variant("after", engine):
                yield
        finally:
            dbs.PRICE_BLOCKS = saved_price
        return
    saved = (plan.TILE_FLOWS, launch.TILE_TF32, plan.TILE_MIN_ROWS)
    saved_fuse = (fusion.FUSE_BACKWARD, fusion.FUSE_TILE_CHILDREN,
                  getattr(engine, "fuse_products", False))
    if name in ("fused", "fusedfwd", "fusedtiles"):
        if engine is None:
            raise ValueError(f"variant {name!r} needs the engine")
        engine.fuse_products = True
        fusion.FUSE_BACKWARD = name != "fusedfwd"
        fusion.FUSE_TILE_CHILDREN = name == "fusedtiles"
    if name == "before":
        plan.TILE_FLOWS, launch.TILE_TF32 = False, False
    elif name == "allruns":
        plan.TILE_MIN_ROWS = 1
    elif name == "tiles16":
        saved_is = plan.is_tile_part
        plan.is_tile_part = lambda part: (plan.TILE_FLOWS and part.block_size < 16
                                          and part.rows >= 16)
    if name != "tiles16":
        saved_is = plan.is_tile_part
    try:
        yield
    finally:
        plan.TILE_FLOWS, launch.TILE_TF32, plan.TILE_MIN_ROWS = saved
        plan.is_tile_part = saved_is
        fusion.FUSE_BACKWARD, fusion.FUSE_TILE_CHILDREN = saved_fuse[:2]
        if engine is not None:
            engine.fuse_products = saved_fuse[2]


# Storage A/B of the pass (compiled under the switch, bench/results/sparse_big-cpu-2026-12-07.md):
# 'alldense' every pruned group DENSE (DENSE_MARGIN unbounded), 'nodense' none
# (detect-block-sparsity{tile_dense=false}: row tiles, one-row or blocks).
PASS_VARIANTS = {"alldense": {}, "nodense": {"tile_dense": False}}


@contextlib.contextmanager
def storage_variant(name: str):
    """'alldense' / 'nodense' (PASS_VARIANTS), or 'runsN': the triton plan's
    unequal runs of one-row blocks (plan.run_table: a pruned group stored
    DENSE at an odd size) of up to N rows instead of plan.GROUP_MAX_ROWS
    (128; aligned runs and larger blocks keep it), and the pass prices
    and sizes blocks for them (blocks.RUN_ROWS): a pruned HCLT-256 group of
    129..256 rows is then one run, its node flows stored through the tile
    instead of added atomically by two runs. Hold it while compiling
    (`pass_options` gives the options)."""
    from pccompiler.backends.triton import plan
    from pccompiler.passes import detect_block_sparsity as dbs
    from pccompiler.passes.helpers import blocks
    saved = (plan.variable_runs, blocks.RUN_ROWS, dbs.DENSE_MARGIN)
    if name == "alldense":
        dbs.DENSE_MARGIN = float("inf")
    elif name.startswith("runs"):
        rows = int(name[4:])
        blocks.RUN_ROWS = rows
        plan.variable_runs = lambda lists, counts, bs, cap: saved[0](lists, counts, bs,
                                                                     rows if bs == 1 else cap)
    try:
        yield
    finally:
        plan.variable_runs, blocks.RUN_ROWS, dbs.DENSE_MARGIN = saved


def pass_options(name: str) -> dict:
    """detect-block-sparsity's options for variant `name` (compile_triton)."""
    return {"detect-block-sparsity": {"permute": False, **PASS_VARIANTS.get(name, {})}}


@contextlib.contextmanager
def round2():
    """The switches of branch sparsefloor off (see `variant`)."""
    from pccompiler.backends.triton import launch, plan
    from pccompiler.passes import detect_block_sparsity as dbs
    from pccompiler.passes.helpers import blocks, row_tiles
    saved = (plan.VARIABLE_RUNS, plan.TILE_STORE, blocks.RUN_BLOCK, row_tiles.READS_COSTS,
             dbs.DENSE_MARGIN, launch.EM_PACKED)
    plan.VARIABLE_RUNS = plan.TILE_STORE = row_tiles.READS_COSTS = launch.EM_PACKED = False
    blocks.RUN_BLOCK, dbs.DENSE_MARGIN = 1 << 40, 1.0
    try:
        yield
    finally:
        (plan.VARIABLE_RUNS, plan.TILE_STORE, blocks.RUN_BLOCK, row_tiles.READS_COSTS,
         dbs.DENSE_MARGIN, launch.EM_PACKED) = saved


def block_report(circuit) -> dict:
    """bench/sparse_speed.py's report: sum groups by storage, partitions by kernel."""
    from sparse_speed import block_report as report
    return report(circuit)


def compile_triton(path: str, options: dict | None = None):
    import pccompiler as pc
    from pccompiler.ir import pcir
    model = pcir.Model()
    model.ParseFromString(Path(path).read_bytes())
    return pc.compile(model, backend="triton", device="cpu", cuda_graphs=False,
                      pass_options=options or {"detect-block-sparsity": {"permute": False}})


CENTRE_PIXEL = 14 * 28 + 14


def sub_tree(tree, num_vars: int):
    """(tree over 0..num_vars-1, its pixels): the first `num_vars` pixels of a
    breadth-first walk of the Chow-Liu tree from the centre pixel, relabelled.
    An HCLT over it has the full circuit's per-variable shape (K inputs, K
    products, one K x K sum group per variable) at a fraction of its memory:
    the HCLT-512 proxy of bench/results/sparse_big-cpu-2026-12-07.md."""
    import networkx as nx
    pixels = [CENTRE_PIXEL] + [v for _, v in nx.bfs_edges(tree, CENTRE_PIXEL)][:num_vars - 1]
    sub = tree.subgraph(pixels).copy()
    return nx.relabel_nodes(sub, {v: i for i, v in enumerate(pixels)}), pixels


def build_hclt(latents: int, train_steps: int, flow_rows: int, keeps: list[float],
               out: Path, num_vars: int = 0) -> list[str]:
    """The circuits of bench/sparse_speed.py on the CPU: HCLT (`latents`, MNIST
    784 x 256, the shipped Chow-Liu tree; `num_vars` > 0: over its `sub_tree`
    of that many pixels) after `train_steps` mini-batch EM steps (batch 512,
    step 0.5, torch backend), pruned by flows over `flow_rows` train images
    to each keep; written as .pcir into `out`."""
    import pccompiler as pc
    from mnist_common import hclt_tree, mnist_split
    from pccompiler.train.prune_grow import prune
    train = mnist_split(None)["train"]
    tree = hclt_tree(train, [])
    stem = f"L{latents}"
    if num_vars:
        tree, pixels = sub_tree(tree, num_vars)
        train = train[:, pixels]
        stem = f"S{num_vars}L{latents}"
    train = np.ascontiguousarray(train)
    x = torch.from_numpy(train)
    gen = torch.Generator().manual_seed(0)
    model = pc.lower(pc.hclt(None, latents, num_cats=256, tree=tree, seed=0))
    dense = pc.compile(model, backend="torch", device="cpu")
    for _ in range(train_steps):
        dense.em_step(x[torch.randint(0, len(x), (512,), generator=gen)], step_size=0.5,
                      pseudocount=0.1)
    paths = []
    for keep in keeps:
        m = dense.to_model() if keep == 1.0 else prune(dense, train[:flow_rows], keep)
        paths.append(str(out / f"{stem}_k{keep}.pcir"))
        Path(paths[-1]).write_bytes(m.SerializeToString())
    return paths


def race_cases(spec: str) -> list:
    from race_cases import select_cases
    return select_cases(spec)


def write_markdown(results: dict, path: Path) -> None:
    lines = ["# Per-kernel model of one training step (triton, fast plan)", "",
             f"Machine: {results['machine']}", "", f"Command: `{results['command']}`", "",
             f"Batch {results['batch']}. Constants: tf32 {R_TC:.3g} MAC/s, fp32-FMA dot "
             f"{R_FMA:.3g} MAC/s, exp {R_EXP:.3g}/s, {BW:.3g} B/s, {ITER_S * 1e6:.1f} us per "
             f"dependent loop trip, {LAUNCH_S * 1e6:.1f} us per launch. 'pad' = padded dot MACs / "
             "useful MACs (non-zero weights x batch).", ""]
    dense_t = results["circuits"][0]["summary"]["time_s"] if results["circuits"] else 1.0
    lines += ["| circuit | launches | modeled ms | x first | dot GMAC | useful GMAC |",
              "|---|---:|---:|---:|---:|---:|"]
    for c in results["circuits"]:
        s = c["summary"]
        lines.append(f"| {c['name']} | {s['launches']} | {s['time_s'] * 1e3:.2f} | "
                     f"{s['time_s'] / dense_t:.2f} | {s['mac'] / 1e9:.1f} | "
                     f"{s['useful'] / 1e9:.2f} |")
    lines += ["", "Sum groups by storage (pattern/block size: groups, real edges / stored "
              "weights) and sum partitions by block size/kernel (partitions, blocks):", ""]
    for c in results["circuits"]:
        b = c.get("blocks", {})
        groups = "; ".join(f"{k}: {v['groups']}, {v['real']:,} / {v['stored']:,}"
                           for k, v in sorted(b.get("sum_groups", {}).items()))
        parts = "; ".join(f"{k}: {v['partitions']}, {v['blocks']:,}"
                          for k, v in sorted(b.get("partitions", {}).items()))
        lines += [f"- {c['name']}: groups {groups}", f"  - partitions {parts}"]
    for c in results["circuits"]:
        lines += ["", f"## {c['name']}", "",
                  "| kernel | launches | programs | trips | dot GMAC | pad | exps M | MB | "
                  "atomics M | modeled ms | share |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        total = c["summary"]["time_s"]
        for k, d in c["summary"]["kernels"].items():
            pad = f"{d['mac'] / d['useful']:.1f}" if d["useful"] else "-"
            lines.append(f"| {k} | {d['launches']:.0f} | {d['programs']:,.0f} | "
                         f"{d['trips']:,.0f} | {d['mac'] / 1e9:.2f} | {pad} | "
                         f"{d['exps'] / 1e6:.1f} | {d['bytes'] / 1e6:.1f} | "
                         f"{d['atomics'] / 1e6:.2f} | {d['time_s'] * 1e3:.2f} | "
                         f"{d['time_s'] / total:.0%} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    from mnist_common import command_line, machine_line
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--circuits", default="", help="comma-separated .pcir files (first = base)")
    p.add_argument("--hclt", type=int, default=0, metavar="LATENTS",
                   help="instead: build the pruned HCLTs of sparse_speed.py (`build_hclt`)")
    p.add_argument("--race", default="", metavar="CASES",
                   help="instead: bench/race_cases.py cases (e.g. pd32,pd128), built and "
                        "written as .pcir into --out")
    p.add_argument("--keeps", default="1,0.5,0.25,0.1")
    p.add_argument("--vars", type=int, default=0,
                   help="with --hclt: over a sub-tree of this many pixels (`sub_tree`)")
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--flow-rows", type=int, default=2000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--variants", default="before,after",
                   help="'before' (tile flows and tile tf32 off), 'after' (the defaults), "
                        "'fused' / 'fusedfwd' / 'fusedtiles' (fuse_products, see `variant`), "
                        "'alldense' / 'nodense' / 'runs256' (storage A/B, `storage_variant`)")
    p.add_argument("--out", default="bench/results")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine_line(), "command": command_line(), "batch": args.batch,
               "circuits": []}
    paths = [c for c in args.circuits.split(",") if c]
    if args.hclt:
        paths = build_hclt(args.hclt, args.train_steps, args.flow_rows,
                           [float(k) for k in args.keeps.split(",")], out, args.vars)
    for case in (race_cases(args.race) if args.race else []):
        paths.append(str(out / f"{case.name}.pcir"))
        Path(paths[-1]).write_bytes(case.build().SerializeToString())
    if not paths:
        p.error("give --circuits, --hclt or --race")
    for path in paths:
        t = time.perf_counter()
        circuit = compile_triton(path)
        for name in args.variants.split(","):
            own = (name in ("round2", "fusedr2", "unpriced") or name in PASS_VARIANTS
                   or name.startswith("runs"))      # pass switches: own compile
            c = circuit
            if own:
                with (round2() if name in ("round2", "fusedr2") else variant(name)):
                    c = compile_triton(path, pass_options(name))
            with variant(name, c.engine):
                c.engine._plan = c.engine._fast_plan = None    # rebuilt
                s = summarize(step_launches(c, args.batch))
            label = f"{Path(path).stem} {name}"
            results["circuits"].append({"name": label, "summary": s, "blocks": block_report(c)})
            print(f"{label}: {s['launches']} launches, modeled {s['time_s'] * 1e3:.2f} ms "
                  f"({time.perf_counter() - t:.1f}s)", flush=True)
        del circuit
        (out / "step_model.json").write_text(json.dumps(results, indent=1))
        write_markdown(results, out / "step_model.md")
    print(f"wrote {out / 'step_model.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
