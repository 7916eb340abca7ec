"""Triton backend on a GPU: conformance tests, then HCLT epoch timings.

Run from the repository root on a CUDA machine:

    python bench/triton_bench.py                      # tests + K = 32, 128, 512
    python bench/triton_bench.py --skip-tests --latents 128 --profile

Step 1 runs `pytest tests/triton` on the GPU (no TRITON_INTERPRET): every
kernel against its float64 reference and the engine against the reference
and torch backends. Step 2 times, per HCLT (784 variables, 256 categories,
Chow-Liu tree learned once from the MNIST test images when present, else a
random tree), batch 512, 117 batches = 59,904 samples per epoch (PyJuice's
drop_last loader over 60,000):

  fwd        forward only (log-likelihoods), seconds per epoch;
  em         zero flows + forward + backward (flows) + mini-batch EM update
             per batch (step 0.1, pseudocount 0.1), seconds per epoch;
  peak GiB   torch.cuda.max_memory_allocated over the case (includes the
             epoch's uint8 data on the GPU, 47 MB);
  check      max |LL_triton - LL_torch| on one batch (same device, fp32).

Timings exclude compilation (passes, Triton JIT, CUDA-graph capture) and
input validation (the engine is called directly on device tensors), as the
PyJuice numbers exclude theirs. Each case is run eagerly and with CUDA
graphs. A failure in one case is printed and the next case runs.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
MNIST = [ROOT / "shared/data/mnist/t10k-images-idx3-ubyte.gz",
         Path("/work/shared/data/mnist/t10k-images-idx3-ubyte.gz")]


def run_tests() -> int:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    print("== pytest tests/triton (GPU) ==", flush=True)
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-x", "tests/triton"],
                           cwd=ROOT, env=env)


def load_images() -> np.ndarray | None:
    for path in MNIST:
        if path.exists():
            raw = gzip.open(path).read()
            return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784).astype(np.int64)
    return None


def learn_tree(images: np.ndarray | None, seed: int):
    """The Chow-Liu tree over 784 pixels (learned once; K does not change it)."""
    import networkx as nx
    if images is not None:
        from pccompiler.structures import chow_liu_tree
        from pccompiler.structures.hclt import DEFAULT_MI_BINS
        return chow_liu_tree(images, 256, alpha=0.01, num_bins=DEFAULT_MI_BINS), "mnist-t10k"
    rng = np.random.default_rng(seed)
    tree = nx.Graph()
    tree.add_nodes_from(range(784))
    for v in range(1, 784):           # random recursive tree: a parent among earlier vertices
        tree.add_edge(v, int(rng.integers(0, v)))
    return tree, "random"


def build(tree, latents: int, block_limit: int = 128):
    import pccompiler as pc
    from pccompiler.passes.manager import compile_model
    t0 = time.perf_counter()
    model = pc.lower(pc.hclt(None, num_latents=latents, num_cats=256, tree=tree))
    result = compile_model(model, block_limit=block_limit, backend="triton")
    return result, time.perf_counter() - t0


def count_edges(layout) -> int:
    """Sum edges (real children x block rows) + product edges, PyJuice's count."""
    from pccompiler import ir
    table = ir.tensor_table(layout)
    total = 0
    for layer in layout.layers:
        for sp in layer.sum_partitions:
            total += int(np.asarray(table[sp.block_num_children]).sum()) * int(sp.block_size)
        for pp in layer.product_partitions:
            cs = np.asarray(table[pp.child_slots])
            total += int((cs != 1).sum())
    return total


TF32, FP32, HBM = 356e12, 52e12, 3.0e12    # measured H100 ceilings (FLOP/s, B/s)


def floors(layout, batch: int) -> tuple[float, float]:
    """Roofline floors (seconds per batch) of the forward and of a whole EM
    step under the cost model of docs/notes/triton-kernels.md."""
    from pccompiler import ir
    table = ir.tensor_table(layout)
    e_sum = n_sum = e_prod = n_prod = n_in = 0
    for layer in layout.layers:
        for sp in layer.sum_partitions:
            e_sum += int(np.asarray(table[sp.block_num_children]).sum()) * int(sp.block_size)
            n_sum += int(sp.num_blocks) * int(sp.block_size)
        for pp in layer.product_partitions:
            e_prod += int((np.asarray(table[pp.child_slots]) != 1).sum())
            n_prod += int(pp.num_nodes)
        for ip in layer.input_partitions:
            n_in += int(ip.num_nodes)
    table_bytes = 4 * int(layout.num_input_params)
    b4 = 4 * batch
    fw_flops = 2 * e_sum * batch
    fw_bytes = table_bytes + b4 * (n_in + e_prod + 2 * n_prod + n_sum) + 4 * e_sum
    bw_flops = 4 * e_sum * batch + 2 * n_in * batch * (table_bytes // 4 // max(n_in, 1))
    bw_bytes = (b4 * (4 * n_sum + 4 * n_prod + e_prod + 2 * n_in)   # first-writer stores
                + 16 * e_sum + 2 * table_bytes)
    em_bytes = 16 * e_sum + 5 * table_bytes
    fw = max(fw_flops / TF32 + e_prod * batch / FP32, fw_bytes / HBM)
    em = max((fw_flops + bw_flops) / TF32 + e_prod * batch / FP32,
             (fw_bytes + bw_bytes + em_bytes) / HBM)
    return fw, em


def time_epoch(engine, data: torch.Tensor, batch: int, num_batches: int, em: bool) -> float:
    def step(x):
        if em:         # the hot paths CompiledCircuit uses (compact plan, CUDA graphs)
            engine.zero_flows()
            engine.forward_backward(x)
            engine.em_update(0.1, 0.1)
        else:
            engine.root_log_prob(x)
    for i in range(2):                                   # JIT / capture warm-up
        step(data[i * batch:(i + 1) * batch])
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(num_batches):
        step(data[i * batch:(i + 1) * batch])
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def profile(engine, data: torch.Tensor, batch: int) -> None:
    from torch.profiler import ProfilerActivity, profile as tprofile
    x = data[:batch]
    with tprofile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            engine.zero_flows()
            engine.forward_backward(x)
            engine.em_update(0.1, 0.1)
        torch.cuda.synchronize()
    for key in ("device_time_total", "cuda_time_total"):
        try:
            print(prof.key_averages().table(sort_by=key, row_limit=14))
            return
        except (AttributeError, KeyError, RuntimeError):
            continue


def run_case(tree, latents: int, args, rows: list) -> None:
    from pccompiler.backends.torch import TorchBackend
    from pccompiler.backends.triton import TritonBackend
    result, t_compile = build(tree, latents, args.block_limit)
    edges = count_edges(result.layout)
    floor_fw, floor_em = floors(result.layout, args.batch)
    gen = torch.Generator(device="cuda").manual_seed(0)
    nb = args.samples // args.batch
    # uint8 like PyJuice's MNIST tensors (the input kernels widen in registers)
    data = torch.randint(0, 256, (nb * args.batch, 784), device="cuda", generator=gen,
                         dtype=torch.uint8)
    check = float("nan")
    try:
        if latents > 128:
            raise RuntimeError("torch backend check only for K <= 128 (memory)")
        tor = TorchBackend().compile(result.model, result.layout, {"device": "cuda"})
        tri = TritonBackend().compile(result.model, result.layout,
                                      {"device": "cuda", "precision": args.precision})
        x = data[:args.batch].long()
        a = tri.engine.forward(x)[result.layout.root_slot]
        b = tor.engine.forward(x)[result.layout.root_slot]
        check = float((a - b).abs().max())
        del tor, tri, a, b
    except Exception as exc:  # the comparison is informative, never fatal
        print(f"  (torch check skipped: {exc})")
    tune = args.autotune
    for graphs in args.graphs:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        opts = {"device": "cuda", "precision": args.precision, "cuda_graphs": graphs}
        if tune:
            opts["autotune_batch"] = args.batch     # recorded in result.layout: the
            tune = False                            # next compile of this case reuses it
        cc = TritonBackend().compile(result.model, result.layout, opts)
        eng = cc.engine
        t_fwd = time_epoch(eng, data, args.batch, nb, em=False)
        t_em = time_epoch(eng, data, args.batch, nb, em=True)
        peak = torch.cuda.max_memory_allocated() / 2**30
        rows.append((f"hclt K={latents}", edges, "graphs" if graphs else "eager",
                     t_compile, t_fwd, t_em, peak, check, floor_fw * nb, floor_em * nb))
        print(f"  K={latents} {'graphs' if graphs else 'eager '}: fwd {t_fwd:.3f} s/epoch, "
              f"em {t_em:.3f} s/epoch, peak {peak:.2f} GiB", flush=True)
        if args.profile and graphs == args.graphs[0]:
            profile(eng, data, args.batch)
        del cc, eng
    del data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-tests", action="store_true", help="do not run pytest tests/triton")
    ap.add_argument("--latents", default="32,128,512", help="comma-separated K values")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--samples", type=int, default=60000)
    ap.add_argument("--precision", default="tf32", choices=("tf32", "ieee", "tf32x3", "bf16"))
    ap.add_argument("--graphs", default="off,on", help="off, on or off,on (CUDA graphs)")
    ap.add_argument("--profile", action="store_true", help="per-kernel CUDA time table")
    ap.add_argument("--block-limit", type=int, default=128,
                    help="largest sum block the passes may form (TritonBackend.block_limit)")
    ap.add_argument("--autotune", action="store_true",
                    help="tune sum tiles at the batch size first (recorded in the layout)")
    ap.add_argument("--random-tree", action="store_true", help="skip the Chow-Liu learning")
    args = ap.parse_args()
    args.graphs = [g.strip() == "on" for g in args.graphs.split(",")]
    if not torch.cuda.is_available():
        print("no CUDA device: this script is for the GPU machine", file=sys.stderr)
        return 2
    os.environ.pop("TRITON_INTERPRET", None)
    status = 0 if args.skip_tests else run_tests()
    print(f"== device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"triton {__import__('triton').__version__}, precision {args.precision} ==")
    t0 = time.perf_counter()
    tree, source = learn_tree(None if args.random_tree else load_images(), 0)
    print(f"tree: {source} ({time.perf_counter() - t0:.1f} s)", flush=True)
    rows: list = []
    for latents in [int(v) for v in args.latents.split(",")]:
        try:
            run_case(tree, latents, args, rows)
        except Exception:
            traceback.print_exc()
            print(f"  K={latents}: FAILED (above)")
            status = status or 1
        torch.cuda.empty_cache()
    print(f"\n{'case':<14}{'edges':>13} {'mode':<7}{'compile s':>10}{'fwd s/ep':>10}"
          f"{'em s/ep':>10}{'peak GiB':>10}{'|dLL|':>10}{'floor fwd':>10}{'floor em':>10}")
    for name, edges, mode, tc, tf, te, peak, chk, ffw, fem in rows:
        print(f"{name:<14}{edges:>13,} {mode:<7}{tc:>10.1f}{tf:>10.3f}{te:>10.3f}{peak:>10.2f}"
              f"{chk:>10.2e}{ffw:>10.3f}{fem:>10.3f}")
    return status


if __name__ == "__main__":
    sys.exit(main())
