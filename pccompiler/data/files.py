"""Reading tabular data files: `.data`, `.data.gz` and `.csv` text.

The DEBD format is one sample per line, comma-separated small non-negative
integers (0/1 for the binary sets), no header. Files are parsed with numpy
over the raw bytes (no Python loop per value), and a malformed file is
reported with its path, line number and column count so the user can open
the file at the right place.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np

from pccompiler.errors import DataError

_COMMA, _NEWLINE, _CR = ord(","), ord("\n"), ord("\r")


def read_bytes(path: str | os.PathLike) -> bytes:
    """The decompressed bytes of `path` (gzip when it ends in `.gz`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:       # zlib.error: corrupt deflate data
        raise DataError(f"{path}: cannot read: {exc}") from exc


def read_data_file(path: str | os.PathLike, max_value: int = 255, missing: bool = False):
    """Read a comma-separated integer table into a uint8 array [rows, cols].

    Accepts `.data`, `.csv` and their `.gz` forms. Blank trailing lines and
    Windows line ends are ignored. Raises DataError naming the file and the
    first bad line (1-based): a wrong column count, a token that is not a
    non-negative integer, or a value above `max_value`.
    missing=True: an empty cell or `?` is a missing value (see
    `fill_missing`); returns (values, mask) with mask True where missing
    (the value there is 0).
    """
    path = Path(path)
    raw = np.frombuffer(read_bytes(path), dtype=np.uint8)
    raw = raw[raw != _CR]
    if missing:
        raw, cells = fill_missing(raw)
    starts, ends = _split_lines(raw)
    if starts.size == 0:
        raise DataError(f"{path}: the file holds no rows")
    # Columns per line = commas inside the line + 1, counted without a loop.
    comma_pos = np.flatnonzero(raw == _COMMA)
    cols = np.searchsorted(comma_pos, ends) - np.searchsorted(comma_pos, starts) + 1
    num_cols = int(cols[0])
    bad = np.flatnonzero(cols != num_cols)
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"{path}: line {_line_number(raw, starts[row])}: {int(cols[row])} columns, "
            f"expected {num_cols} (the column count of line {_line_number(raw, starts[0])})")
    values = _parse_values(path, raw, starts, ends, num_cols)
    if values.size and int(values.max()) > max_value:
        flat = int(np.argmax(values.reshape(-1) > max_value))
        row, col = divmod(flat, num_cols)
        raise DataError(
            f"{path}: line {_line_number(raw, starts[row])}, column {col + 1}: value "
            f"{int(values.reshape(-1)[flat])} exceeds {max_value}")
    values = values.astype(np.uint8).reshape(starts.size, num_cols)
    return (values, cells.reshape(values.shape)) if missing else values


def fill_missing(raw: np.ndarray, delimiter: int = _COMMA) -> tuple[np.ndarray, np.ndarray]:
    """Missing cells of a text table: an empty cell (`1,,0`, a line that
    starts or ends with the delimiter) or a cell that is exactly `?`.

    `raw`: the file's bytes (uint8, line ends without CR). Returns the bytes
    with "0" in every missing cell (so any reader parses them) and a flat
    bool mask over the cells of the non-blank lines in reading order, True
    where missing: reshape it to [rows, cols] once the rows are known. A
    one-column file marks a missing value with `?` (an empty line is a blank
    line). Vectorized: no loop over lines or cells.
    """
    raw = np.asarray(raw, dtype=np.uint8)
    seps = np.flatnonzero((raw == delimiter) | (raw == _NEWLINE))
    bounds = np.concatenate(([-1], seps, [raw.size]))
    starts, lengths = bounds[:-1] + 1, bounds[1:] - bounds[:-1] - 1
    newline_at = np.concatenate(([True], raw[seps] == _NEWLINE, [True]))
    blank_line = newline_at[:-1] & newline_at[1:] & (lengths == 0)
    starts, lengths = starts[~blank_line], lengths[~blank_line]
    question = np.zeros(starts.size, dtype=bool)
    one = lengths == 1
    question[one] = raw[starts[one]] == ord("?")
    filled = raw.copy()
    filled[starts[question]] = ord("0")
    filled = np.insert(filled, starts[lengths == 0], ord("0"))
    return filled, (lengths == 0) | question


def _split_lines(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end byte offsets of the non-blank lines (blank lines, such
    as a trailing newline, hold no sample and are skipped)."""
    newline = np.flatnonzero(raw == _NEWLINE)
    bounds_end = np.append(newline, raw.size)
    bounds_start = np.concatenate(([0], newline + 1))
    keep = bounds_end > bounds_start
    return bounds_start[keep].astype(np.int64), bounds_end[keep].astype(np.int64)


def _line_number(raw: np.ndarray, offset: int) -> int:
    return int(np.count_nonzero(raw[:offset] == _NEWLINE)) + 1


def _parse_values(path: Path, raw: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                  num_cols: int) -> np.ndarray:
    """Integers of every line. Fast path: every token is one digit (the
    binary DEBD sets); general path: numpy's string-to-int conversion."""
    lengths = ends - starts
    if np.all(lengths == 2 * num_cols - 1):
        offsets = starts[:, None] + 2 * np.arange(num_cols)[None, :]
        digits = raw[offsets].astype(np.int16) - ord("0")
        if np.all((digits >= 0) & (digits <= 9)):
            return digits
    text = raw.tobytes().decode("ascii", errors="replace")
    rows = [text[s:e] for s, e in zip(starts.tolist(), ends.tolist())]
    tokens = ",".join(rows).split(",")
    try:
        values = np.array([t.strip() for t in tokens], dtype=np.int64)
    except (ValueError, OverflowError):     # OverflowError: a token past 2**63
        values = None
    if values is None or (values.size and values.min() < 0):
        flat = next(i for i, t in enumerate(tokens) if not _is_int64(t.strip()))
        row, col = divmod(flat, num_cols)
        raise DataError(
            f"{path}: line {_line_number(raw, starts[row])}, column {col + 1}: "
            f"{tokens[flat].strip()[:40]!r} is not a non-negative integer below 2**63")
    return values.reshape(len(rows), num_cols)


def _is_int64(token: str) -> bool:
    return token.isascii() and token.isdigit() and int(token) < 2 ** 63


def sha256_of_content(path: str | os.PathLike) -> str:
    """sha256 (hex) of the decompressed content, as SHA256SUMS lists it."""
    return hashlib.sha256(read_bytes(path)).hexdigest()


def verify_checksum(path: str | os.PathLike, sums_file: str | os.PathLike | None = None) -> bool:
    """Check `path` against a SHA256SUMS file (default: the one beside it).

    SHA256SUMS lists the sha256 of each file's decompressed content under its
    uncompressed name. Returns False when no entry exists for the file (no
    claim either way); raises DataError when the entry does not match.
    """
    path = Path(path)
    sums_file = Path(sums_file) if sums_file is not None else path.parent / "SHA256SUMS"
    if not sums_file.is_file():
        return False
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    expected = None
    for line in sums_file.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == name:
            expected = parts[0].lower()
    if expected is None:
        return False
    actual = sha256_of_content(path)
    if actual != expected:
        raise DataError(f"{path}: sha256 {actual} does not match {expected} listed in {sums_file}")
    return True
