"""Reading tabular data files: `.data`, `.data.gz` and `.csv` text.

The DEBD format is one sample per line, comma-separated small non-negative
integers (0/1 for the binary sets), no header. Other files may use another
delimiter (`;`, a tab, or whitespace runs), start with a header row, hold
categories above 255 (token ids) or real numbers (Gaussian leaves): see
`DataFormat` and `read_data_file`. Files are parsed with numpy over the raw
bytes (no Python loop per row or value), and a malformed file is reported
with its path, line number (1-based, blank lines counted) and column so the
user can open the file at the right place.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pccompiler.errors import DataError

_NEWLINE, _CR, _SPACE, _TAB = ord("\n"), ord("\r"), ord(" "), ord("\t")
_MAX_DIGITS = 18                # an integer of at most 18 digits fits int64
# Names a user may give for a delimiter; " " means runs of spaces and tabs.
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "space": " ", "whitespace": " "}


@dataclass(frozen=True)
class DataFormat:
    """How a data file is laid out: `delimiter` between the values of a row
    (one character; " " stands for any run of spaces and tabs) and whether
    the first non-blank line is a `header` (column names, skipped)."""
    delimiter: str = ","
    header: bool = False

    def __post_init__(self) -> None:
        d = _DELIMITER_NAMES.get(self.delimiter, self.delimiter)
        if len(d) != 1 or not d.isascii() or d.isalnum() or d in "-+.\r\n\"'":
            raise DataError(f"delimiter {self.delimiter!r}: expected one character such as "
                            "',' ';' '|', 'tab' or 'space' (not a letter, digit, sign, "
                            "point, quote or line end)")
        object.__setattr__(self, "delimiter", d)


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


def read_data_file(path: str | os.PathLike, max_value: int = 255, *,
                   fmt: DataFormat | None = None, real: bool = False) -> np.ndarray:
    """Read a delimited table of numbers into an array [rows, cols].

    Integers (the default) must be non-negative and at most `max_value`; the
    array is uint8 when `max_value` <= 255 (the DEBD sets, MNIST pixels),
    else the smallest unsigned type that holds `max_value`. With `real=True`
    the values are parsed as float64 (no range check: `check_data` checks
    them against the model). Accepts `.data`, `.csv` and their `.gz` forms;
    blank lines and Windows line ends are ignored. Raises DataError naming
    the file and the first bad line (1-based) and column.
    """
    return read_table(path, max_value, fmt=fmt, real=real)[0]


def read_table(path: str | os.PathLike, max_value: int = 255, *, fmt: DataFormat | None = None,
               real: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`read_data_file`, plus the file line (1-based) of every row, so later
    checks (`pccompiler.train.check_data`) can name lines too."""
    values, lines, _ = _read(path, max_value, fmt, real, missing=False)
    return values, lines


def read_table_missing(path: str | os.PathLike, max_value: int = 255, *,
                       fmt: DataFormat | None = None, real: bool = False
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`read_table` of a file with missing values: an empty cell (`1,,0`) or
    a `?` cell (`fill_missing`). Returns (values, lines, missing): values
    hold 0 where `missing` [rows, cols] is True."""
    return _read(path, max_value, fmt, real, missing=True)


def _read(path, max_value: int, fmt: DataFormat | None, real: bool, missing: bool):
    """The one reader behind read_table / read_table_missing."""
    path, fmt = Path(path), fmt or DataFormat()
    raw = np.frombuffer(read_bytes(path), dtype=np.uint8)
    raw = raw[raw != _CR]
    delim = ord(fmt.delimiter)
    if fmt.delimiter == " ":
        raw = _squeeze_whitespace(raw)
    starts, ends = _split_lines(raw)
    lines = _line_numbers(raw, starts)
    cols = _columns(raw, starts, ends, delim)
    if fmt.header and starts.size:
        origin = f"the header, line {int(lines[0])}"
    elif starts.size:
        origin = f"the column count of line {int(lines[0])}"
    num_cols = int(cols[0]) if starts.size else 0
    if fmt.header:
        starts, ends, lines, cols = starts[1:], ends[1:], lines[1:], cols[1:]
    if starts.size == 0:
        raise DataError(f"{path}: the file holds no rows"
                        + (" below the header" if fmt.header else ""))
    bad = np.flatnonzero(cols != num_cols)
    if bad.size:
        row = int(bad[0])
        raise DataError(f"{path}: line {int(lines[row])}: {int(cols[row])} columns, "
                        f"expected {num_cols} ({origin})")
    body = _body(raw, starts, ends, delim)
    mask = None
    if missing:
        body, cells = fill_missing(body, delim)
        mask = cells.reshape(starts.size, num_cols)
    if real:
        values = _parse_floats(path, body, fmt.delimiter, lines, num_cols)
        return values.reshape(starts.size, num_cols), lines, mask
    values = _parse_ints(path, body, delim, lines, num_cols)
    if values.size and int(values.max()) > max_value:
        flat = int(np.argmax(values > max_value))
        row, col = divmod(flat, num_cols)
        raise DataError(f"{path}: line {int(lines[row])}, column {col + 1}: value "
                        f"{int(values[flat])} exceeds {max_value}")
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.int64)
                 if max_value <= np.iinfo(t).max)
    return values.astype(dtype).reshape(starts.size, num_cols), lines, mask


def fill_missing(raw: np.ndarray, delimiter: int = ord(",")) -> tuple[np.ndarray, np.ndarray]:
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


def _squeeze_whitespace(raw: np.ndarray) -> np.ndarray:
    """Whitespace-delimited bytes with every run of spaces/tabs inside a line
    turned into one space and the runs at line starts and ends dropped."""
    ws = (raw == _SPACE) | (raw == _TAB)
    if not ws.any():
        return raw
    before = np.concatenate(([True], ws[:-1] | (raw[:-1] == _NEWLINE)))
    # Index of the next non-whitespace byte (raw.size past the end).
    idx = np.where(ws, raw.size, np.arange(raw.size))
    next_solid = np.minimum.accumulate(idx[::-1])[::-1]
    trailing = next_solid == raw.size
    trailing[~trailing] = raw[next_solid[~trailing]] == _NEWLINE
    keep = ~ws | (~before & ~trailing)
    out = raw[keep].copy()
    out[out == _TAB] = _SPACE
    return out


def _split_lines(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end byte offsets of the non-blank lines (blank lines, such
    as a trailing newline, hold no sample and are skipped)."""
    newline = np.flatnonzero(raw == _NEWLINE)
    bounds_end = np.append(newline, raw.size)
    bounds_start = np.concatenate(([0], newline + 1))
    keep = bounds_end > bounds_start
    return bounds_start[keep].astype(np.int64), bounds_end[keep].astype(np.int64)


def _line_numbers(raw: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """1-based line number of each byte offset in `starts`."""
    newline = np.flatnonzero(raw == _NEWLINE)
    return np.searchsorted(newline, starts) + 1


def _columns(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray, delim: int) -> np.ndarray:
    """Columns per line = delimiters inside the line + 1, without a loop."""
    pos = np.flatnonzero(raw == delim)
    return np.searchsorted(pos, ends) - np.searchsorted(pos, starts) + 1


def _body(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray, delim: int) -> np.ndarray:
    """The bytes of the kept lines joined by the delimiter: one flat token
    stream, row after row (the newline ending a blank line is dropped)."""
    seg = raw[starts[0]:ends[-1]]
    newline = seg == _NEWLINE
    blank = newline[1:] & newline[:-1]
    body = seg[np.concatenate(([True], ~blank))] if blank.any() else seg.copy()
    body[body == _NEWLINE] = delim
    return body


def _tokens(body: np.ndarray, delimiter: str) -> list[str]:
    return body.tobytes().decode("ascii", errors="replace").split(delimiter)


def _where(path: Path, lines: np.ndarray, num_cols: int, flat: int) -> str:
    row, col = divmod(flat, num_cols)
    return f"{path}: line {int(lines[row])}, column {col + 1}"


def _parse_ints(path: Path, body: np.ndarray, delim: int, lines: np.ndarray,
                num_cols: int) -> np.ndarray:
    """The integers of the token stream, flat. Fast path: only digits and
    delimiters, each token at most 18 digits: the value is built one digit
    place at a time over all tokens at once; else numpy's string-to-int
    conversion, which also names a bad token."""
    allowed = np.zeros(256, dtype=bool)
    allowed[[delim, *range(ord("0"), ord("9") + 1)]] = True
    if allowed[body].all():
        cuts = np.flatnonzero(body == delim)
        start = np.concatenate(([0], cuts + 1))
        length = np.append(cuts, body.size) - start
        if length.min() >= 1 and length.max() <= _MAX_DIGITS:
            values = body[start].astype(np.int64) - ord("0")
            for k in range(1, int(length.max())):
                more = np.flatnonzero(length > k)
                values[more] = values[more] * 10 + (body[start[more] + k] - ord("0"))
            return values
    tokens = [t.strip() for t in _tokens(body, chr(delim))]
    try:
        values = np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):     # OverflowError: a token past 2**63
        values = None
    if values is None or (values.size and values.min() < 0):
        flat = next(i for i, t in enumerate(tokens) if not _is_int64(t))
        raise DataError(f"{_where(path, lines, num_cols, flat)}: {tokens[flat][:40]!r} is not "
                        "a non-negative integer below 2**63" + _delimiter_hint(tokens[flat], delim))
    return values


def _parse_floats(path: Path, body: np.ndarray, delimiter: str, lines: np.ndarray,
                  num_cols: int) -> np.ndarray:
    """The real numbers of the token stream, flat (numpy's C parser; a bad
    token is then looked for to name it)."""
    text = body.tobytes().decode("ascii", errors="replace")
    expected = lines.size * num_cols
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(text, dtype=np.float64, sep=delimiter)
        except (ValueError, DeprecationWarning):
            values = None
    if values is not None and values.size == expected:
        return values
    tokens = [t.strip() for t in text.split(delimiter)]
    flat = next((i for i, t in enumerate(tokens) if not _is_float(t)), None)
    if flat is None:            # the C parser refused what Python reads (e.g. '1_0')
        return np.array(tokens, dtype=np.float64)
    raise DataError(f"{_where(path, lines, num_cols, flat)}: {tokens[flat][:40]!r} is not "
                    "a number" + _delimiter_hint(tokens[flat], ord(delimiter)))


_HINT_DELIMITERS = {",": "','", ";": "';'", "\t": "tab", " ": "space"}


def _delimiter_hint(token: str, delim: int) -> str:
    """When the bad token is numbers joined by another common delimiter
    (a space-separated file read as comma-separated), say which one to
    pass; else nothing."""
    for char, name in _HINT_DELIMITERS.items():
        if ord(char) == delim or char not in token:
            continue
        parts = token.split() if char in " \t" else [t.strip() for t in token.split(char)]
        if len(parts) > 1 and all(_is_float(t) for t in parts):
            return (f"; it holds numbers separated by {name}: is the file {name}-separated? "
                    f"(pcc: --delimiter {name if name in ('tab', 'space') else char}; "
                    f"Python: DataFormat(delimiter={char!r}))")
    return ""


def _is_int64(token: str) -> bool:
    return token.isascii() and token.isdigit() and int(token) < 2 ** 63


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


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
