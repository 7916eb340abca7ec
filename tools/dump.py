"""`pcc dump`: the text (or JSON) form of a Model or Layout file.

The formatting lives in ir/text.py (so the passes can print any
intermediate IR the same way); this module picks the form for a file.
"""

from __future__ import annotations

import os

from pccompiler.errors import LoadError
from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.text import dump_json, dump_layout_text, dump_text
from pccompiler.ir.text_exact import dump_exact
from pccompiler.tools.common import load_checked


def dump_message(msg: pcir.Model | pcir.Layout, as_json: bool = False,
                 max_groups: int | None = None, exact: bool = False) -> str:
    """Text or JSON dump of an in-memory Model or Layout; `exact`: the
    parseable form of a Model (ir.dump_exact)."""
    if exact:
        if isinstance(msg, pcir.Layout):
            raise LoadError("--exact is for model files; a layout prints its summary only")
        return dump_exact(msg)
    if as_json:
        return dump_json(msg, max_groups)
    if isinstance(msg, pcir.Layout):
        return dump_layout_text(msg)
    return dump_text(msg, max_groups)


def dump_file(path: str | os.PathLike, as_json: bool = False, max_groups: int | None = None,
              layout: bool = False, verify: bool = True, exact: bool = False) -> str:
    """Dump a file; `layout=True` insists that it is a Layout file."""
    msg = load_checked(path, verify, pcc_part="layout" if layout else "model")
    if layout and not isinstance(msg, pcir.Layout):
        raise LoadError(f"{os.fspath(path)}: is a model file; --layout needs a layout file")
    return dump_message(msg, as_json, max_groups, exact)
