"""`pcc verify FILE`: run the IR checker and report every violation."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Check a .pcir model (or a layout file) against every invariant of the IR:
versions, topological order, scopes, smoothness, decomposability, tensor
shapes and index ranges, normalized weights, ties; for a layout, slot and
parameter ranges, that every slot is written once before it is read, fan-in
and the backward plan against the forward plan (give the model with --model
to also check placements and the model hash). A compiled .pcc file is
checked whole: its model, its layout against that model, and the GPU kernels
it stores (pcc compile --target) against their sha256.
Prints "OK: ..." and exits 0, or one line per violation and exits 1.
"""

EPILOG = """\
examples:
  pcc verify model.pcir
  pcc verify plan.pcly --model model.pcir
  pcc verify trained.pcc
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify", help="check a model or layout file against the IR's invariants",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a .pcir model file, a layout file or a compiled .pcc")
    p.add_argument("--model", metavar="MODEL",
                   help="for a layout file: the model it was compiled from")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pccompiler import ir
    from pccompiler.errors import PCError
    from pccompiler.ir import pcir_pb2 as pcir
    from pccompiler.ir.artifact import is_pcc, read_pcc
    from pccompiler.ir.fileio import load

    if is_pcc(args.file):
        if args.model:
            raise PCError("--model is only for layout files (a .pcc holds its model)")
        art = read_pcc(args.file, check=False)
        msg = art.model
        errors = ir.check(msg, collect=True)
        errors += ir.check_layout(art.layout, None if errors else msg, collect=True, deep=True)
        errors += _kernel_errors(art, args.file)
        if not errors:
            what = f"compiled for {art.manifest.get('backend', '?')}: " + _model_line(msg)
            if "kernels" in art.manifest:
                entry = art.manifest["kernels"]
                what += (f"; {len(entry['kernels'])} kernels for {entry['target']} "
                         f"(triton {entry['triton_version']}) match their sha256")
    elif isinstance(msg := load(args.file), pcir.Layout):
        model = load(args.model, "model") if args.model else None
        errors = ir.check_layout(msg, model, collect=True, deep=True)
        what = f"layout with {len(msg.layers)} layers, {msg.num_slots} slots"
        what += "" if model is None else " (checked against its model)"
    else:
        if args.model:
            raise PCError("--model is only for layout files")
        errors = ir.check(msg, collect=True)
        if not errors:
            what = _model_line(msg)
    if not errors:
        print(f"OK: {args.file}: {what}: all checks pass")
        return 0
    print(f"FAIL: {args.file}: {len(errors)} violation(s)", file=sys.stderr)
    for exc in errors:
        print(f"  {exc}", file=sys.stderr)
    return 1


def _kernel_errors(art, path: str) -> list[Exception]:
    """The stored Triton kernels against their sha256 (pcc compile --target)."""
    if "kernels" not in art.manifest:
        return []
    from pccompiler.backends.triton.aot.store import verify_kernels
    from pccompiler.errors import LoadError
    try:
        verify_kernels(art.manifest["kernels"], art.sections, path)
    except LoadError as exc:
        return [exc]
    return []


def _model_line(model) -> str:
    from pccompiler.ir.text import edges_text, model_info
    t = model_info(model, max_groups=0)["totals"]
    return (f"model {model.name!r}: {t['groups']} groups, {t['nodes']} nodes, "
            f"{edges_text(t)}, {t['parameters']} parameters")
