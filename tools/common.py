"""Loading for the look-at-a-file tools (`pcc dump | stat | dot`).

The tools read any file `ir.save` wrote and, unless asked not to, run the
checker first: the tools then work on a model whose shapes and indices are
known to be sane, and a broken file gets one clear error (rule and group)
instead of a crash somewhere in a statistic.
"""

from __future__ import annotations

import os

from pccompiler import ir
from pccompiler.errors import CheckError
from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.fileio import load


def load_checked(path: str | os.PathLike, verify: bool = True,
                 kind: str | None = None, pcc_part: str = "model") -> pcir.Model | pcir.Layout:
    """Load a Model or Layout file (`kind` insists on one), or the Model (the
    Layout with pcc_part="layout") of a compiled .pcc file; with `verify`, raise its first
    CheckError (prefixed with the file name and a hint to run `pcc verify`)."""
    from pccompiler.ir.artifact import is_pcc, read_pcc
    if is_pcc(os.fspath(path)):
        artifact = read_pcc(os.fspath(path))
        msg = artifact.layout if pcc_part == "layout" else artifact.model
    else:
        msg = load(path, kind)
    if verify:
        try:
            if isinstance(msg, pcir.Layout):
                ir.check_layout(msg)
            else:
                ir.check(msg)
        except CheckError as exc:
            exc.args = (f"{os.fspath(path)}: {exc} (`pcc verify` lists every problem)",)
            raise exc from None
    return msg
