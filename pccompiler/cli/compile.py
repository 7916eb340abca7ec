"""`pcc compile`: a .pcir circuit -> a runnable .pcc file (passes + backend)."""

from __future__ import annotations

import argparse
import os
import sys

from pccompiler.cli.compile_options import add_compile_arguments, compile_kwargs_from_args

DESCRIPTION = """\
Run the pass pipeline on a circuit and compile it for a backend, writing one
.pcc file (Model with parameters + Layout + manifest) that `pcc train`,
`pcc eval`, `pcc sample` and `pccompiler.load` run without re-running passes.

FILE may also be a .pcc: its Model, with the parameters it holds (trained
ones after `pcc train`), is compiled again, e.g. for another backend:
  pcc compile trained.pcc --backend reference -o trained_ref.pcc

With --target the triton backend's GPU kernels are built ahead of time for
that GPU by this machine's Triton (no GPU needed) and stored in the .pcc:
  pcc compile model.pcir --backend triton --target cuda:sm_90 \
      --batch-sizes 1,512,4096 -o model.pcc
Loading it on that GPU with the same Triton version compiles no kernel (on
another GPU or Triton it compiles once, with one warning). `pcc dump
--kernels model.pcc` lists them.

Backends are found by name, including third-party ones registered through
the `pccompiler.backends` entry-point group (`pcc compile --list-backends`).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("compile", help="compile a .pcir into a .pcc", description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", help="input circuit (.pcir, or a .pcc to recompile)")
    p.add_argument("-o", "--output", help="output .pcc (default: FILE with .pcc suffix)")
    p.add_argument("--backend", default=None,
                   help="backend name (default: triton with CUDA, else torch)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: the backend's)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--target", default=None, metavar="GPU",
                   help="build and store the triton kernels for this GPU, e.g. cuda:sm_90")
    p.add_argument("--batch-sizes", default="1,512,4096", metavar="B,B,...",
                   help="with --target: the batch sizes to build kernels for (default 1,512,4096)")
    p.add_argument("--data-dtypes", default="uint8,int64", metavar="T,T,...",
                   help="with --target: integer dtypes of the data the kernels will read "
                        "(default uint8,int64)")
    p.add_argument("--list-backends", action="store_true", help="list the known backends and exit")
    add_compile_arguments(p)
    p.set_defaults(func=run)


def _pass_kwargs(args) -> dict:
    """Pass-manager arguments from the pass options."""
    return compile_kwargs_from_args(args)


def run(args) -> int:
    if args.list_backends:
        from pccompiler.backends import available_backends
        print("\n".join(available_backends()))
        return 0
    if not args.file:
        print("pcc compile: error: FILE is required", file=sys.stderr)
        return 2
    from pccompiler.cli.paths import check_output
    out = check_output(args.output or os.path.splitext(args.file)[0] + ".pcc")
    from pccompiler.driver import compile as compile_circuit
    from pccompiler.ir.artifact import is_pcc, read_pcc
    kwargs = _pass_kwargs(args)
    if args.target is not None:
        kwargs.update(target=args.target, batch_sizes=args.batch_sizes,
                      data_dtypes=[d.strip() for d in args.data_dtypes.split(",") if d.strip()])
    source = read_pcc(args.file).model if is_pcc(args.file) else args.file
    circuit = compile_circuit(source, backend=args.backend, device=args.device,
                              dtype=args.dtype, **kwargs)
    circuit.save(out)
    report = circuit.compile_report
    if report is not None and getattr(args, "time_passes", False):
        print(report.table())
    aot = getattr(circuit, "aot_kernels", None)
    if aot is not None:
        print(f"compiled {args.file} for backend triton, {len(aot[0]['kernels'])} kernels for "
              f"{aot[0]['target']} (triton {aot[0]['triton_version']}) -> {out}")
        return 0
    print(f"compiled {args.file} for backend {circuit.backend_name} on {circuit.device} "
          f"-> {out}")
    return 0
