"""Training data checked against a Model: the table a loop trains on must
hold one column per variable and only values the variables can take, and a
bad entry is reported by row and column (or file line) before any work."""

from __future__ import annotations

import numpy as np

from pccompiler.errors import DataError
from pccompiler.ir import pcir


def check_data(x: np.ndarray, model: pcir.Model, source: str = "data",
               file_lines: bool = False) -> np.ndarray:
    """Validate a data table against the Model's variables and return it
    typed: int64, or float64 when the model has real variables.

    A DataError names the first bad entry: "row r, column c" (0-based) for an
    array, or "line l, column c" (1-based, like the file readers) when
    `file_lines` says the table was read from the file `source`.
    """
    x = np.asarray(x)

    def at(r: int, c: int) -> str:
        return f"line {r + 1}, column {c + 1}" if file_lines else f"row {r}, column {c}"

    num_vars = len(model.variables)
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"{source}: expected a non-empty table [rows, {num_vars}], got shape "
                        f"{x.shape}")
    if x.shape[1] != num_vars:
        raise DataError(f"{source}: {x.shape[1]} columns; the model has {num_vars} variables")
    kinds = np.array([v.kind for v in model.variables])
    cats = np.array([v.num_cats for v in model.variables], dtype=np.int64)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{source}: data of dtype {x.dtype} is not numeric")
    xf = x.astype(np.float64)
    bad = ~np.isfinite(xf)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise DataError(f"{source}: {at(r, c)}: value {xf[r, c]} is not finite")
    discrete = kinds != pcir.REAL
    bad = discrete[None, :] & ((xf != np.round(xf)) | (xf < 0) | (xf >= cats[None, :]))
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise DataError(f"{source}: {at(r, c)}: value {xf[r, c]:g} is not a category "
                        f"of variable {c} (0..{cats[c] - 1})")
    return xf if (~discrete).any() else xf.astype(np.int64)


def load_data(path: str, model: pcir.Model) -> np.ndarray:
    """Read a data file (.data/.csv, optionally .gz) and check it against the Model."""
    if any(v.kind == pcir.REAL for v in model.variables):
        from pccompiler.data.files import read_bytes
        text = read_bytes(path).decode(errors="replace")
        rows = [r for r in text.splitlines() if r.strip()]
        if not rows:
            raise DataError(f"{path}: the file holds no rows")
        table = []
        for r, line in enumerate(rows):
            fields = line.split(",")
            if len(fields) != len(model.variables):
                raise DataError(f"{path}: line {r + 1}: {len(fields)} columns; the model has "
                                f"{len(model.variables)} variables")
            try:
                table.append([float(f) for f in fields])
            except ValueError as exc:
                raise DataError(f"{path}: line {r + 1}: {exc}") from exc
        return check_data(np.array(table), model, path, file_lines=True)
    from pccompiler.data.files import read_data_file
    return check_data(read_data_file(path, max_value=255), model, path, file_lines=True)


def load_data_missing(path: str, model: pcir.Model) -> tuple[np.ndarray, np.ndarray]:
    """Read a data file whose empty cells (`1,,0`) and `?` cells are missing
    values (pccompiler.data.files.fill_missing) and check the rest against
    the Model. Returns (x, missing): x holds 0 where missing."""
    from pccompiler.data.files import fill_missing, read_bytes, read_data_file
    if not any(v.kind == pcir.REAL for v in model.variables):
        x, missing = read_data_file(path, max_value=255, missing=True)
        return check_data(x, model, path, file_lines=True), missing
    import io
    raw = np.frombuffer(read_bytes(path), dtype=np.uint8)
    filled, cells = fill_missing(raw[raw != ord("\r")])
    try:
        x = np.loadtxt(io.BytesIO(filled.tobytes()), delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
    if cells.size != x.size:
        raise DataError(f"{path}: rows of different lengths")
    return check_data(x, model, path, file_lines=True), cells.reshape(x.shape)
