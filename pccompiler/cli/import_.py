"""`pcc import FILE -o OUT.pcir`: a logic circuit file as a .pcir model.

(The module is `import_` because `import` is a Python keyword.)"""

from __future__ import annotations

import argparse
import time

DESCRIPTION = """\
Import a logic circuit into the IR: an SDD (.sdd, the SDD library's text
format, with its .vtree) or a d-DNNF (.nnf, the c2d / d4 format).
Literals become indicator inputs over binary variables x1..xn, OR nodes
sums with weight 1, AND nodes products; constants are folded, equal nodes
merged, and OR nodes smoothed, so model counts and weighted model counts
(pccompiler.logic) are exact.

--form nodes (SDD only) stores the circuit node by node (a NodeCircuit:
CSR arrays, scopes as intervals of the vtree's variable order) instead of
one group per vtree node: import and compile then take time linear in the
circuit with no Python per node or per vtree node (large SDDs).
"""

EPILOG = """\
examples:
  pcc import sudoku_4.sdd -o sudoku_4.pcir          # reads sudoku_4.vtree
  pcc import c.sdd --vtree other.vtree -o c.pcir
  pcc import big.sdd --form nodes -o big.pcir        # node form (large SDDs)
  pcc import c.nnf -o c.pcir                         # d-DNNF from c2d or d4
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import", help="import a logic circuit (.sdd + .vtree, or .nnf) as a .pcir model",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="an .sdd or .nnf file")
    p.add_argument("--vtree", default=None, metavar="FILE.vtree",
                   help="the SDD's vtree (default: FILE with the suffix .vtree)")
    p.add_argument("--form", choices=("groups", "nodes"), default="groups",
                   help="SDD only: one group per vtree node (default) or the node form")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pcir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pccompiler import ir
    from pccompiler.cli.paths import check_output
    from pccompiler.errors import LoadError
    from pccompiler.frontend.nnf import from_nnf
    from pccompiler.frontend.sdd import from_sdd

    check_output(args.output)
    if args.file.endswith(".nnf"):
        if args.vtree or args.form != "groups":
            raise LoadError(f"{args.file}: a d-DNNF (.nnf) takes no --vtree and no --form "
                            "(its scopes are not intervals of one order)")
        start = time.perf_counter()
        model = from_nnf(args.file)
    elif args.file.endswith(".sdd"):
        start = time.perf_counter()
        model = from_sdd(args.file, args.vtree, form=args.form)
    else:
        raise LoadError(f"{args.file}: unknown logic circuit format (expected .sdd or .nnf)")
    ir.check(model)
    ir.save(model, args.output)
    nodes = ir.edge_counts(model)["nodes"]
    print(f"imported {args.file}: {len(model.variables)} variables, {len(model.groups)} groups, "
          f"{nodes:,} nodes, {time.perf_counter() - start:.2f} s -> {args.output}")
    return 0
