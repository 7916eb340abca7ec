"""`pcc parse FILE.txt -o OUT.pcir`: turn the exact text form back into a file."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Read the exact text form of a model (what `pcc dump --exact` prints, what
PCC_DUMP writes as NN-<stage>.exact.txt, what the golden pass fixtures hold)
and write it as a .pcir file. The model is checked first, so a hand edit that
breaks an invariant is refused with the rule and the group; --no-check writes
it anyway (to make a broken file for a test). A text that does not parse is
refused with the line number and what was expected there.
"""

EPILOG = """\
examples:
  pcc dump model.pcir --exact > model.txt     # edit model.txt ...
  pcc parse model.txt -o edited.pcir
  pcc parse broken.txt -o broken.pcir --no-check
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "parse", help="turn the exact text form (pcc dump --exact) into a .pcir file",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a text file in the exact form ('-' for stdin)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pcir", help="the file to write")
    p.add_argument("--no-check", action="store_true",
                   help="write the model without running the checker first")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from pccompiler import ir
    from pccompiler.errors import LoadError
    from pccompiler.cli.paths import check_output

    check_output(args.output)
    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    except OSError as exc:
        raise LoadError(f"{args.file}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise LoadError(f"{args.file}: cannot read: {exc}") from None
    try:
        model = ir.parse_text(text)
    except LoadError as exc:
        raise LoadError(f"{args.file}: {exc}") from None
    if not args.no_check:
        ir.check(model)
    ir.save(model, args.output)
    print(f"wrote {args.output}: model {model.name!r}, {len(model.groups)} groups, "
          f"{len(model.tensors)} tensors")
    return 0
