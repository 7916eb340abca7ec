"""`pcc dot FILE`: the group graph of a model as Graphviz DOT."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Write the group graph of a .pcir model in Graphviz DOT: one shape per group
(ellipse input, box product, diamond sum) labelled with kind, size and scope,
an arrow from each child to its parent, dashed arrows for ties. Past
--max-groups groups the graph is summarised by level (one box per level and
kind, arrows labelled with link counts). A node-form logic circuit
(`pcc import --form nodes`) is drawn node by node the same way: literals as
name=value, products as x, sums as +, and --max-groups counts nodes.
"""

EPILOG = """\
examples:
  pcc dot model.pcir -o model.dot && dot -Tsvg model.dot -o model.svg
  pcc dot big.pcir --max-groups 50 | dot -Tpng > big.png
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dot", help="write a model's group graph as Graphviz DOT", description=DESCRIPTION,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a .pcir model file")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    p.add_argument("--max-groups", type=int, default=300, metavar="N",
                   help="summarise by level beyond N groups (default 300)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pccompiler.cli.paths import check_output
    from pccompiler.ir.fileio import atomic_write
    from pccompiler.tools.common import load_checked
    from pccompiler.tools.dot import to_dot

    check_output(args.output)
    model = load_checked(args.file, kind="model")
    text = to_dot(model, args.max_groups)
    if args.output:
        atomic_write(args.output, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    return 0
