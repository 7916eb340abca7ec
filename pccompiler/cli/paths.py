"""Checks every `pcc` command runs at the start of `run()`, before it reads
data, builds, compiles or trains: output paths a write could not succeed on
and numbers the command cannot use are refused with one PCError line naming
the option (so `pcc train ... -o nofolder/x.pcc` stops at once instead of
after the last epoch)."""

from __future__ import annotations

import math

from pccompiler.errors import DataError
from pccompiler.ir.fileio import check_writable


def check_output(path: str | None, flag: str = "-o") -> str | None:
    """`path` if an atomic write there can succeed (its folder exists and
    is writable, it is not a directory); None stays None (stdout)."""
    return None if path is None else check_writable(path, flag)


def check_positive(flag: str, value: int | None) -> None:
    """Refuse a count that must be at least 1 (--batch-size, --epochs, -n)."""
    if value is not None and value < 1:
        raise DataError(f"{flag} must be a positive integer, not {value}")


def check_finite(flag: str, value: float | None, minimum: float = 0.0) -> None:
    """Refuse NaN, infinities and values below `minimum` (--alpha)."""
    if value is not None and not (math.isfinite(value) and value >= minimum):
        raise DataError(f"{flag} {value} must be a finite number >= {minimum:g}")
