"""Where does a small circuit's forward spend its time? (pccompiler vs PyJuice)

For each case, per batch of 512 (20 batches, uint8 data on the GPU):
  log_prob      CompiledCircuit.log_prob (validation + engine + root clone), as bench/race.py
  engine        engine.root_log_prob only (compact plan, graph replay)
  replay        the captured forward graph replayed alone
  pyjuice       pc(x) under no_grad (bf16 default, as the race)
plus the number of kernel launches per forward and the top kernels by GPU
time (torch.profiler) for ours and PyJuice's.

Run from the repository root (PyJuice importable):
  PYTHONPATH=.:bench python bench/forward_profile.py --cases hclt32,pd32
"""
import argparse

import torch

import race_cases
from step_profile import kernel_table, per_step_ms as per_batch_ms, random_batches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="hclt32,pd32")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--pyjuice", action="store_true")
    args = ap.parse_args()
    import pccompiler
    for case in race_cases.select_cases(args.cases):
        model = case.build()
        batches = random_batches(case, model, args.batch)
        cc = pccompiler.compile(model, backend="triton", device="cuda")
        eng = cc.engine
        print(f"{case.name}: layers {len(eng.plan.layers)}, partitions "
              f"{sum(len(l.inputs) + len(l.products) + len(l.sums) for l in eng.plan.layers)}")
        with torch.no_grad():
            t_lp = per_batch_ms(lambda x: cc.log_prob(x), batches)
            t_en = per_batch_ms(lambda x: eng.root_log_prob(x), batches)
            graph = next(iter(eng.graphs._fwd.values()), None)
            t_rp = per_batch_ms(lambda x: graph.replay(), batches) if graph else float("nan")
            eager = pccompiler.compile(model, backend="triton", device="cuda",
                                       cuda_graphs=False)
            t_eg = per_batch_ms(lambda x: eager.engine.root_log_prob(x), batches)
            print(f"  ms/batch: log_prob {t_lp:.3f}  engine {t_en:.3f}  replay {t_rp:.3f}  "
                  f"eager {t_eg:.3f}")
            print("  pcc eager kernels:")
            kernel_table(lambda x: eager.engine.root_log_prob(x), batches[0], 8)
            del eager
            if args.pyjuice:
                import pyjuice as juice
                from pyjuice_bridge import convert
                pj = juice.compile(convert(model, case.pyjuice_block).root, verbose=False)
                pj.to(torch.device("cuda"))
                t_pj = per_batch_ms(lambda x: pj(x), batches)
                print(f"  pyjuice ms/batch {t_pj:.3f}")
                print("  pyjuice kernels:")
                kernel_table(lambda x: pj(x), batches[0], 8)
                del pj
        del cc, eng
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
