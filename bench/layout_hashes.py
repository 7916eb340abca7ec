"""sha256 of the triton Layout (and of the Model after the passes) of race
cases and .pcir files, so a pass change can show which Layouts it leaves
byte-identical.

    PYTHONPATH=.:bench python bench/layout_hashes.py --race hclt32,pd32,rat64,hmm256,bsp \
        --circuits a.pcir,b.pcir --out hashes.json [--compare before.json]

The passes run as `pccompiler.compile(.., backend="triton")` runs them
(`passes.compile_model` at the triton block limit, no layout cache); the
hash is of `layout.SerializeToString(deterministic=True)`. --compare prints,
per circuit, whether both hashes match a earlier run's file. --plans also
hashes the triton engine's two plans (`fast_plan`, with the compact remap,
and `plan`; every field, tensors as dtype, shape and bytes: logic_fx._digest)
built for the CPU, which needs TRITON_INTERPRET=1 without a GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def layout_hashes(model, options: dict | None = None) -> dict:
    """{"layout": sha256, "model": sha256, "seconds": compile s} of `model`
    compiled for the triton backend's Layout."""
    from pccompiler.backends.triton import TritonBackend
    from pccompiler.passes import compile_model
    t = time.perf_counter()
    result = compile_model(model, options=options, block_limit=TritonBackend.block_limit,
                           backend="triton", printer=lambda _: None)
    seconds = time.perf_counter() - t
    return {"layout": hashlib.sha256(result.layout.SerializeToString(deterministic=True)).hexdigest(),
            "model": hashlib.sha256(result.model.SerializeToString(deterministic=True)).hexdigest(),
            "seconds": round(seconds, 2)}


def plan_hashes(model) -> dict:
    """{"fast_plan": sha256, "plan": sha256} of the triton engine of `model`
    compiled for the CPU (logic_fx._digest of each plan)."""
    import pccompiler as pc
    from logic_fx import _digest
    engine = pc.compile(model, backend="triton", device="cpu", check=False).engine
    out = {}
    for name in ("fast_plan", "plan"):
        h = hashlib.sha256()
        _digest(getattr(engine, name), h)
        out[name] = h.hexdigest()
    return out


def main(argv=None) -> int:
    from pccompiler.ir import pcir
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--race", default="", help="bench/race_cases.py cases or groups")
    p.add_argument("--circuits", default="", help="comma-separated .pcir files")
    p.add_argument("--no-permute", action="store_true",
                   help="detect-block-sparsity{permute=false} (as sparse_speed.py --no-permute)")
    p.add_argument("--plans", action="store_true", help="also hash the triton engine's plans "
                   "(CPU: TRITON_INTERPRET=1)")
    p.add_argument("--out", required=True, help="json file to write")
    p.add_argument("--compare", default="", help="json file of an earlier run")
    args = p.parse_args(argv)
    options = {"detect-block-sparsity": {"permute": False}} if args.no_permute else None
    out: dict = {}
    if args.race:
        from race_cases import select_cases
        for case in select_cases(args.race):
            model = case.build()
            out[case.name] = layout_hashes(model, options)
            if args.plans:
                out[case.name].update(plan_hashes(model))
            print(case.name, out[case.name], flush=True)
    for path in filter(None, args.circuits.split(",")):
        model = pcir.Model()
        model.ParseFromString(Path(path).read_bytes())
        out[Path(path).stem] = layout_hashes(model, options)
        if args.plans:
            out[Path(path).stem].update(plan_hashes(model))
        print(Path(path).stem, out[Path(path).stem], flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        for name, h in out.items():
            old = before.get(name)
            same = old is not None and all(old.get(k) == h[k] for k in h if k != "seconds")
            print(f"{name}: {'identical' if same else 'CHANGED' if old else 'no earlier hash'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
