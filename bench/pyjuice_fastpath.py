"""Race PyJuice 2.6.3 with its optional CUTLASS/TMA sum-layer kernels on.

PyJuice 2.6.3 JIT-compiles three optional CUDA kernels (sum-layer forward,
element-flow and parameter-flow backward; `pyjuice/layer/kernels/c`) when
it finds nvcc, an sm_90+ GPU and CUTLASS headers; without the headers it
warns and runs its Triton kernels. A plain `pip install pyjuice` has no
headers, so `bench/race.py` races that. This script races the fast path:

  build   compile the three kernels (in parallel, ~3.5 minutes on the H100
          host) with the `nvidia-cutlass` wheel's headers and copy the .so
          files to --ext (default .pjext/, git-ignored);
  race    run bench/race.py with PyJuice loading those .so files instead of
          compiling them (any other PyJuice extension compiles as usual);
          the arguments after `--` go to race.py.

Setup on the GPU machine (no network there: both wheels are carried in
.whl/, `pip download --no-deps pyjuice==2.6.3 nvidia-cutlass==4.2.0.0`):

  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  PYTHONPATH=/tmp/site python3 bench/pyjuice_fastpath.py build
  PYTHONPATH=.:/tmp/site python3 bench/pyjuice_fastpath.py race -- --cases hclt128 --repeats 3
"""
from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (module name, the pyjuice.layer.kernels.c function that compiles it)
KERNELS = [("pyjuice_sum_forward_cuda", "is_available"),
           ("pyjuice_sum_backward_ele_cuda", "ele_is_available"),
           ("pyjuice_sum_backward_par_cuda", "par_is_available")]


def build(ext: Path) -> int:
    """Compile the kernels in parallel processes; copy the .so files to `ext`."""
    work = Path(tempfile.mkdtemp(prefix="pyjuice-ext-"))
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(work), MAX_JOBS=str(os.cpu_count() or 4))
    procs = [subprocess.Popen([sys.executable, "-c",
                               "import time, pyjuice.layer.kernels.c as K\n"
                               f"t = time.time(); ok = K.{fn}()\n"
                               f"print('{name}', 'built' if ok else 'NOT BUILT', "
                               "round(time.time() - t, 1), 's', flush=True)"], env=env)
             for name, fn in KERNELS]
    codes = [p.wait() for p in procs]
    ext.mkdir(parents=True, exist_ok=True)
    missing = []
    for name, _ in KERNELS:
        so = work / name / f"{name}.so"
        if so.exists():
            shutil.copy2(so, ext / so.name)
        else:
            missing.append(name)
    if missing or any(codes):
        print(f"not built: {', '.join(missing) or '(exit codes ' + str(codes) + ')'}", file=sys.stderr)
        return 1
    print(f"copied {len(KERNELS)} kernels to {ext}")
    return 0


def race(ext: Path, race_args: list[str]) -> int:
    """bench/race.py with pyjuice's jit_load answering from `ext` for the
    three fast-path kernels; refuses to run if any is missing or does not load."""
    import torch  # noqa: F401  (the extensions link against libtorch)
    import pyjuice.layer.kernels.c as kernels
    import pyjuice.utils.cuda_ext as cuda_ext

    original = cuda_ext.jit_load
    loaded: list[str] = []

    def jit_load(name, sources, extra_cuda_cflags=None, **kwargs):
        so = ext / f"{name}.so"
        if not so.exists():
            return original(name, sources, extra_cuda_cflags, **kwargs)
        loader = importlib.machinery.ExtensionFileLoader(name, str(so))
        module = importlib.util.module_from_spec(
            importlib.util.spec_from_file_location(name, so, loader=loader))
        loader.exec_module(module)
        loaded.append(name)
        return module

    cuda_ext.jit_load = jit_load
    ok = [kernels.is_available(), kernels.ele_is_available(), kernels.par_is_available()]
    if not all(ok):
        print(f"PyJuice fast path not available (loaded: {loaded}); run `build` first",
              file=sys.stderr)
        return 1
    print(f"PyJuice fast path on: {', '.join(loaded)}", flush=True)
    sys.path.insert(0, str(HERE))
    import race as race_mod
    return race_mod.main(race_args)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("action", choices=["build", "race"])
    ap.add_argument("--ext", type=Path, default=HERE.parent / ".pjext",
                    help="folder of the built .so files (default .pjext/)")
    ap.add_argument("race_args", nargs=argparse.REMAINDER,
                    help="after --: arguments for bench/race.py")
    args = ap.parse_args(argv)
    rest = args.race_args[1:] if args.race_args[:1] == ["--"] else args.race_args
    return build(args.ext) if args.action == "build" else race(args.ext, rest)


if __name__ == "__main__":
    sys.exit(main())
