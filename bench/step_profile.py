"""Where does a training step spend its time? (pccompiler vs PyJuice)

For each race case, one mini-batch EM step of 512 (forward + backward + EM
update, as bench/race.py times it):
  step ms       per step, graphs on (ours) / PyJuice's default, 20 batches
  kernels       torch.profiler's GPU time per kernel name for one step,
                ours eager (cuda_graphs=False, so every launch is visible)
                and PyJuice's, largest first, with launch counts

Run from the repository root (PyJuice importable for --pyjuice):
  PYTHONPATH=.:bench python bench/step_profile.py --cases hclt32,hmm256 --pyjuice
"""
from __future__ import annotations

import argparse
import time

import torch

import race_cases

STEP_SIZE, PSEUDOCOUNT = 0.1, 0.1


def random_batches(case, model, batch: int, count: int = 20) -> torch.Tensor:
    """[count, batch, vars] uniform categories on the GPU (seed 0), uint8
    when they fit, as bench/race.py feeds both libraries."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    nv = sum(1 for _ in model.variables)
    return torch.randint(0, case.num_cats, (count, batch, nv), device="cuda", generator=gen,
                         dtype=torch.uint8 if case.num_cats <= 256 else torch.int64)


def per_step_ms(fn, batches) -> float:
    for b in range(3):
        fn(batches[b])
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in range(batches.shape[0]):
        fn(batches[b])
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / batches.shape[0] * 1e3


def kernel_table(fn, x, rows: int) -> None:
    """Print the top `rows` kernels of one call of fn(x) by GPU time."""
    from torch.profiler import ProfilerActivity, profile
    fn(x)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn(x)
        torch.cuda.synchronize()
    events = list(prof.key_averages())
    key = "device_time_total" if hasattr(events[0], "device_time_total") else "cuda_time_total"
    total = sum(getattr(e, key) for e in events)
    count = sum(e.count for e in events)
    print(f"    {count} launches, {total / 1e3:.3f} ms GPU time")
    for e in sorted(events, key=lambda e: -getattr(e, key))[:rows]:
        print(f"    {getattr(e, key) / 1e3:8.3f} ms  x{e.count:4d}  {e.key[:100]}")


def ab_steps(pccompiler, model, batches, precision: str) -> None:
    """The graphs step with one plan option turned off at a time."""
    from pccompiler.backends.triton import plan
    for name, attr, off in (("groups off", "GROUP_MAX_ROWS", 1),
                            ("writer ratios off", "WRITER_RATIOS", False)):
        saved = getattr(plan, attr)
        setattr(plan, attr, off)
        try:
            cc = pccompiler.compile(model, backend="triton", device="cuda", precision=precision)
            step = lambda x: cc.em_step(x, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)  # noqa: E731
            print(f"  pcc step ms (graphs, {name}) {per_step_ms(step, batches):.3f}", flush=True)
            del cc
        finally:
            setattr(plan, attr, saved)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="hclt32,hmm256")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--rows", type=int, default=12, help="kernels listed per library")
    ap.add_argument("--pyjuice", action="store_true", help="profile PyJuice's step too")
    ap.add_argument("--precision", default="tf32")
    ap.add_argument("--ab", action="store_true",
                    help="also time the step (graphs) with each plan option off: runs of "
                         "blocks sharing children (plan.GROUP_MAX_ROWS) and log ratios "
                         "written by products (plan.WRITER_RATIOS)")
    args = ap.parse_args()
    import pccompiler
    for case in race_cases.select_cases(args.cases):
        model = case.build()
        batches = random_batches(case, model, args.batch)
        print(f"== {case.name}", flush=True)
        cc = pccompiler.compile(model, backend="triton", device="cuda", precision=args.precision)
        step = lambda x: cc.em_step(x, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)  # noqa: E731
        print(f"  pcc step ms (graphs) {per_step_ms(step, batches):.3f}", flush=True)
        del cc
        if args.ab:
            ab_steps(pccompiler, model, batches, args.precision)
        eager = pccompiler.compile(model, backend="triton", device="cuda", cuda_graphs=False,
                                   precision=args.precision)
        estep = lambda x: eager.em_step(x, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)  # noqa: E731
        print(f"  pcc step ms (eager) {per_step_ms(estep, batches):.3f}")
        print("  pcc eager kernels:")
        kernel_table(estep, batches[0], args.rows)
        del eager
        if args.pyjuice:
            import pyjuice as juice
            from pyjuice_bridge import convert
            pj = juice.compile(convert(model, case.pyjuice_block).root, verbose=False)
            pj.to(torch.device("cuda"))
            opt = juice.optim.MiniBatchEM(pj, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)

            def pstep(x):
                pj(x).mean().backward()
                opt.step()
            print(f"  pyjuice step ms {per_step_ms(pstep, batches):.3f}")
            print("  pyjuice kernels:")
            kernel_table(pstep, batches[0], args.rows)
            del pj, opt
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
