"""`pcc dump FILE`: print a Model or Layout file for people (or as JSON)."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Print a .pcir model (or a Layout file) as text: a header with the totals
(variables, groups, nodes, edges, parameters, roots, ties), then one line per
group: id, kind, num_nodes, scope, children, edge pattern and density, tie
target, parameter summary. For a Layout: its layers and their partitions
(block size, blocks, fan-in, kernel). The file is checked first.
"""

EPILOG = """\
examples:
  pcc dump model.pcir
  pcc dump model.pcir --max-groups 40      # first/last 20 groups + summary
  pcc dump model.pcir --json > model.json
  pcc dump model.pcir --exact > model.txt  # every value; `pcc parse` reads it back
  pcc dump plan.pcly --layout
  pcc dump model.pcc --kernels             # the stored GPU kernels and their sha256
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dump", help="print a model or layout file as text or JSON", description=DESCRIPTION,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a .pcir model file or a layout file")
    p.add_argument("--json", action="store_true", help="print the same facts as JSON")
    p.add_argument("--max-groups", type=int, default=None, metavar="N",
                   help="show only the first and last groups (N in all) and a summary by kind")
    p.add_argument("--exact", action="store_true",
                   help="print every field and value in the form `pcc parse` reads back")
    p.add_argument("--layout", action="store_true",
                   help="insist on a layout file and show its layers and partitions")
    p.add_argument("--kernels", action="store_true",
                   help="for a .pcc: list the Triton kernels it stores (pcc compile --target)")
    p.add_argument("--no-check", action="store_true",
                   help="dump without running the checker first (for broken files)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pccompiler.errors import PCError
    from pccompiler.tools.dump import dump_file

    if args.kernels:
        sys.stdout.write(_kernels_text(args.file))
        return 0
    if args.max_groups is not None and args.max_groups < 0:
        raise PCError("--max-groups must be >= 0")
    if args.exact and (args.json or args.layout or args.max_groups is not None):
        raise PCError("--exact prints a whole model; it takes no --json, --layout or --max-groups")
    sys.stdout.write(dump_file(args.file, args.json, args.max_groups, args.layout,
                               verify=not args.no_check, exact=args.exact))
    return 0


def _kernels_text(path: str) -> str:
    """The kernels entry of a .pcc's manifest, one line per kernel."""
    from pccompiler.errors import PCError
    from pccompiler.ir.artifact import is_pcc, read_pcc
    if not is_pcc(path):
        raise PCError(f"{path}: --kernels needs a compiled .pcc file")
    entry = read_pcc(path, check=False).manifest.get("kernels")
    if entry is None:
        return f"{path}: no stored kernels (compile with --backend triton --target cuda:sm_NN)\n"
    from pccompiler.backends.triton.aot.store import describe
    return describe(entry)
