"""`pcc stat FILE`: the numbers of a Model or Layout file."""

from __future__ import annotations

import argparse
import json
import sys

DESCRIPTION = """\
Print the totals of a .pcir model (groups, nodes, edges, parameters, ties,
depth), its groups by kind and edge pattern, and a histogram of group sizes;
for a layout file: its layers, partitions and the sum blocks by block size
with their padding (the block sparsity the kernels see).
"""

EPILOG = """\
examples:
  pcc stat model.pcir
  pcc stat plan.pcly --json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stat", help="print the totals and histograms of a model or layout file",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a .pcir model file or a layout file")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pccompiler.ir import pcir_pb2 as pcir
    from pccompiler.tools.common import load_checked
    from pccompiler.tools.stat import format_stats, layout_stats, model_stats

    msg = load_checked(args.file)
    stats = layout_stats(msg) if isinstance(msg, pcir.Layout) else model_stats(msg)
    sys.stdout.write(json.dumps(stats, indent=1) + "\n" if args.json else format_stats(stats))
    return 0
