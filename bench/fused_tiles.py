"""Tile sweep of the one-launch path (backends/triton/fused.py) on the shared
logic circuits: WMC forward and forward + backward (batch 128, per-sample
literal weights) replayed from a CUDA graph, for a few (TILE_N, BLOCK_B,
num_warps) choices against the default `fused.tiles` and the layer-by-layer
path, so the default can be set from measurements. Then the small-batch
latency of `graphed_query` (one CUDA graph per call, marginals with 30% of
the variables missing) on small HCLTs of nltcs, fused against layers: GPU
time per replay over back-to-back replays (CUDA events).

    PYTHONPATH=/tmp/pcc:bench python3 bench/fused_tiles.py --circuits DIR --out $OUT
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

import pccompiler as pc
from pccompiler.backends.triton import fused
from pccompiler.backends.triton.fused_plan import layout_size
from pccompiler.ir import pcir

from logic_race import SHARED, graphed, median_ms, ours_calls, sync

CONFIGS = [None, dict(TILE_N=128, BLOCK_B=1, num_warps=4), dict(TILE_N=256, BLOCK_B=2, num_warps=4),
           dict(TILE_N=512, BLOCK_B=1, num_warps=8), dict(TILE_N=64, BLOCK_B=4, num_warps=4)]


def timed(circuit, w, args) -> tuple[float, float]:
    fwd, fb = ours_calls(circuit, w)
    out = []
    for fn in (fwd, fb):
        fn()
        sync()
        out.append(median_ms(graphed(fn) if args.device == "cuda" else fn, args.iters,
                             args.warmup))
    return out[0], out[1]


def replay_us(circuit, batch: int, calls: int = 200) -> float:
    """GPU microseconds per replay of a graphed marginal query."""
    from pccompiler.data import load_debd

    x = torch.as_tensor(load_debd("nltcs", "test")[:batch].astype("int64"))
    miss = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.3
    q = circuit.engine.graphed_query(batch, marginal=True, check=False)
    q(x.to(circuit.engine.device), miss.to(circuit.engine.device))
    for _ in range(10):
        q()
    sync()
    if not torch.cuda.is_available():
        return float("nan")
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(calls):
        q()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) * 1e3 / calls


def latency_rows(args) -> list[str]:
    from pccompiler import structures
    from pccompiler.data import load_debd

    train = load_debd("nltcs", "train")[:4000]
    lines = ["", "## graphed_query latency (nltcs HCLT, 30% missing, GPU us per replay)", "",
             "| latents | edges | batch | layers us | fused us |", "|---|---|---|---|---|"]
    for latents in (8, 32):
        out = structures.hclt(train, num_latents=latents, seed=0)
        model = out if isinstance(out, pcir.Model) else pc.lower(out)
        us = {}
        for mode in (False, True):
            c = pc.compile(model, backend="triton", device=args.device, fused=mode)
            edges = layout_size(c.engine.layout)[1]
            for batch in (1, 8):
                us[mode, batch] = replay_us(c, batch)
        for batch in (1, 8):
            lines.append(f"| {latents} | {edges} | {batch} | {us[False, batch]:.1f} "
                         f"| {us[True, batch]:.1f} |")
            print(lines[-1], flush=True)
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--circuits", required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=".")
    args = ap.parse_args(argv)
    lines = ["# One-launch (fused) tile sweep: WMC batch "
             f"{args.batch}, CUDA-graph replay, median ms",
             "", f"Machine: {torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'}, "
             f"torch {torch.__version__}, python {platform.python_version()}. Default tiles at "
             f"batch {args.batch}: {fused.tiles(args.batch)}.", "",
             "Command: `PYTHONPATH=/tmp/pcc:bench python3 bench/fused_tiles.py "
             + " ".join(sys.argv[1:]) + "`", "",
             "| circuit | path | tiles | fwd ms | fwd+bwd ms | max abs diff logWMC vs layer |",
             "|---|---|---|---|---|---|"]
    for name in SHARED:
        path = Path(args.circuits) / f"{name}.sdd"
        if not path.exists():
            print(f"[tiles] {path} missing: skipped", flush=True)
            continue
        model = pc.from_sdd(path)
        g = torch.Generator(device=args.device).manual_seed(0)
        w = torch.rand(args.batch, len(model.variables), device=args.device, generator=g)
        w = w * 0.9 + 0.05
        layer = pc.compile(model, backend="triton", device=args.device, precision="ieee",
                           fused=False)
        base = ours_calls(layer, w)[0]().double()
        f, fb = timed(layer, w, args)
        lines.append(f"| {name} | layers | - | {f:.4f} | {fb:.4f} | 0 |")
        print(lines[-1], flush=True)
        one = pc.compile(model, backend="triton", device=args.device, precision="ieee",
                         fused=True)
        for cfg in CONFIGS:
            one.engine.fused_options = dict(cfg or {})
            diff = float((ours_calls(one, w)[0]().double() - base).abs().max())
            f, fb = timed(one, w, args)
            label = "default" if cfg is None else ", ".join(f"{k}={v}" for k, v in cfg.items())
            lines.append(f"| {name} | fused | {label} | {f:.4f} | {fb:.4f} | {diff:.1e} |")
            print(lines[-1], flush=True)
    lines += latency_rows(args)
    text = "\n".join(lines) + "\n"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "fused_tiles.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
