"""Training data checked against a Model: the table a loop trains on must
hold one column per variable and only values the variables can take, and a
bad entry is reported by row and column (or file line) before any work."""

from __future__ import annotations

import numpy as np

from pccompiler.data import load_debd, load_mnist
from pccompiler.data.files import DataFormat, read_table, read_table_missing
from pccompiler.errors import DataError
from pccompiler.ir import pcir


def check_data(x: np.ndarray, model: pcir.Model, source: str = "data",
               file_lines: bool | np.ndarray = False) -> np.ndarray:
    """Validate a data table against the Model's variables and return it
    typed: int64, or float64 when the model has real variables.

    A DataError names the first bad entry: "row r, column c" (0-based) for an
    array, or "line l, column c" (1-based, like the file readers) when
    `file_lines` says the table was read from the file `source` (True: row r
    is line r + 1; an array: the file line of every row, as
    `pccompiler.data.files.read_table` returns it).
    """
    x = np.asarray(x)

    def at(r: int, c: int) -> str:
        if isinstance(file_lines, np.ndarray):
            return f"line {int(file_lines[r])}, column {c + 1}"
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


def load_data(path: str, model: pcir.Model, fmt: DataFormat | None = None) -> np.ndarray:
    """Read a data file (.data/.csv, optionally .gz; layout `fmt`: delimiter
    and header) and check it against the Model. Categories may go up to the
    Model's largest `num_cats` (token ids of an HMM over 1,000 symbols);
    a Model with real (Gaussian) variables reads the file as float64."""
    real = any(v.kind == pcir.REAL for v in model.variables)
    # Any int64 is read; check_data then names the first value that is not
    # a category of its column's variable (0..num_cats-1).
    table, lines = read_table(path, np.iinfo(np.int64).max, fmt=fmt, real=real)
    return check_data(table, model, str(path), file_lines=lines)


def load_data_missing(path: str, model: pcir.Model, fmt: DataFormat | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """`load_data` of a file whose empty cells (`1,,0`) and `?` cells are
    missing values (`pccompiler.data.files.fill_missing`). Returns
    (x, missing): x holds 0 where missing, the rest checked against the Model."""
    real = any(v.kind == pcir.REAL for v in model.variables)
    table, lines, missing = read_table_missing(path, np.iinfo(np.int64).max, fmt=fmt, real=real)
    return check_data(table, model, str(path), file_lines=lines), missing


def load_dataset(name: str, split: str, model: pcir.Model) -> np.ndarray:
    """A named data set's split checked against the Model: a DEBD set
    (pccompiler.data.load_debd) or "mnist" (train or test images)."""
    if name == "mnist":
        table = load_mnist(split)
    else:
        table = load_debd(name, split)
    return check_data(table, model, f"{name} ({split} split)")


def load_sets(model: pcir.Model, data: str | None = None, dataset: str | None = None,
              valid: str | None = None, test: str | None = None,
              fmt: DataFormat | None = None) -> tuple[np.ndarray, np.ndarray | None,
                                                      np.ndarray | None]:
    """(train, valid, test) of `pcc train`: the files `data`, `valid`,
    `test`, or, with `dataset`, its train split and its valid and test splits
    where no file is given (MNIST has no valid split). Each is checked
    against the Model before anything is trained."""
    def one(path: str | None, split: str) -> np.ndarray | None:
        if path is not None:
            return load_data(path, model, fmt)
        if dataset is None or (dataset == "mnist" and split == "valid"):
            return None
        return load_dataset(dataset, split, model)
    return one(data, "train"), one(valid, "valid"), one(test, "test")
