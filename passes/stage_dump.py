"""`PCC_DUMP=dir`: write the IR after every stage of a compile to a folder.

One switch, like tinygrad's DEBUG=: with PCC_DUMP set, `compile_model` (and
so `pccompiler.compile`) writes the input Model, the IR after each pass and
the final Layout as numbered files

    00-input.txt  00-input.exact.txt  01-verify.txt  01-verify.exact.txt  ...
    06-layerize.txt  07-layout.txt

`NN-<stage>.txt` is the people dump (ir.dump_text / ir.dump_layout_text);
a Model stage also gets `NN-<stage>.exact.txt` (ir.dump_exact), which
`pcc parse` turns back into a .pcir, so any intermediate Model can be
replayed through a single pass. Numbers continue after the highest one
already in the folder, so several compiles in one run never overwrite
each other. Dumping is a debugging aid and must never break a compile: the
first failure (an unwritable folder, a full disk) prints one warning line
and turns dumping off for the rest of that compile.
"""

from __future__ import annotations

import os
import re
import sys

from pccompiler.ir import pcir

ENV = "PCC_DUMP"
_NUMBERED = re.compile(r"^(\d+)-")


class StageDump:
    """Writes numbered stage files into `folder` (see the module docstring)."""

    def __init__(self, folder: str):
        self.folder = folder
        self.next = None          # the next number, found on the first write
        self.failed = False

    @classmethod
    def from_env(cls) -> "StageDump | None":
        folder = os.environ.get(ENV, "")
        return cls(folder) if folder else None

    def _first_number(self) -> int:
        os.makedirs(self.folder, exist_ok=True)
        used = [int(m.group(1)) for m in map(_NUMBERED.match, os.listdir(self.folder)) if m]
        return max(used, default=-1) + 1

    def write(self, stage: str, obj: pcir.Model | pcir.Layout) -> None:
        """Write `obj` as stage `stage`; never raises."""
        if self.failed:
            return
        try:
            from pccompiler.ir.text import dump_layout_text, dump_text
            from pccompiler.ir.text_exact import dump_exact
            if self.next is None:
                self.next = self._first_number()
            base = os.path.join(self.folder, f"{self.next:02d}-{stage}")
            self.next += 1
            if isinstance(obj, pcir.Model):
                _write(base + ".txt", dump_text(obj))
                _write(base + ".exact.txt", dump_exact(obj))
            else:
                _write(base + ".txt", dump_layout_text(obj))
        except Exception as exc:  # noqa: BLE001 - a dump must never break a compile
            self.failed = True
            print(f"pccompiler: warning: {ENV}={self.folder}: cannot write the IR dump "
                  f"({type(exc).__name__}: {exc}); compiling on without it", file=sys.stderr)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


__all__ = ["StageDump", "ENV"]
