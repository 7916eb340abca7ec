"""Training curves: `pcc train --history FILE.csv` and `--plot FILE.png`.

The history is a CSV with one row per finished epoch:

    epoch,train_ll,valid_ll,test_ll,seconds,step_size

log-likelihoods in nats per sample (empty where there is no such set),
`seconds` the epoch's wall time, `step_size` that of the epoch's last EM
update. The whole file is rewritten atomically after every epoch, so a run
killed at any moment leaves the epochs done so far. A resumed run
(`--resume`) keeps the rows before the epoch it restarts from and goes on
from there. The plot (matplotlib, an optional extra: `pip install
pccompiler[plot]`) draws the log-likelihood curves against the epoch.
"""

from __future__ import annotations

import csv
import io
import math
import os

from pccompiler.errors import DataError, PCError

COLUMNS = ("epoch", "train_ll", "valid_ll", "test_ll", "seconds", "step_size")
PLOT_INSTALL = "--plot needs matplotlib: pip install 'pccompiler[plot]' (or pip install matplotlib)"


def require_matplotlib() -> None:
    """Fail (one line saying how to install it) unless matplotlib imports."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PCError(PLOT_INSTALL) from None


class History:
    """The rows of one training run, saved to `path` (if not None) after
    every epoch."""

    def __init__(self, path: str | None, start_epoch: int = 1):
        self.path = path
        self.rows: list[dict] = []
        if path is not None and start_epoch > 1 and os.path.exists(path):
            self.rows = [r for r in read_history(path) if r["epoch"] < start_epoch]

    def add(self, epoch: int, train_ll: float, valid_ll: float | None, test_ll: float | None,
            seconds: float, step_size: float | None) -> None:
        self.rows.append({"epoch": epoch, "train_ll": train_ll, "valid_ll": valid_ll,
                          "test_ll": test_ll, "seconds": seconds, "step_size": step_size})
        self.save()

    def save(self) -> None:
        from pccompiler.ir.fileio import atomic_write
        if self.path is None:
            return
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in self.rows:
            writer.writerow(["" if row[c] is None else _number(row[c]) for c in COLUMNS])
        atomic_write(self.path, out.getvalue().encode())


def _number(value) -> str:
    """Exact: an int as is, a float as Python's shortest round-trip text."""
    return str(value) if isinstance(value, int) else repr(float(value))


def read_history(path: str) -> list[dict]:
    """The rows of a history CSV (None for empty cells); DataError naming
    the file when it is not one."""
    try:
        with open(path, newline="") as f:
            table = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the training history: {exc}") from None
    if not table or tuple(table[0]) != COLUMNS:
        raise DataError(f"{path}: not a training history (expected the header "
                        f"{','.join(COLUMNS)})")
    rows = []
    for line, cells in enumerate(table[1:], start=2):
        try:
            values = [float(c) if c else None for c in cells]
            row = dict(zip(COLUMNS, values, strict=True))
            row["epoch"] = int(row["epoch"])
        except (ValueError, TypeError) as exc:
            raise DataError(f"{path}: line {line}: not a history row ({exc})") from None
        rows.append(row)
    return rows


def plot_history(rows: list[dict], path: str) -> None:
    """Draw the train/valid/test log-likelihood against the epoch to `path`
    (any format matplotlib writes, from the suffix), atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pccompiler.ir.fileio import atomic_write
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label, style in (("train_ll", "train", "-o"), ("valid_ll", "valid", "-s"),
                              ("test_ll", "test", "-^")):
        points = [(r["epoch"], r[key]) for r in rows
                  if r[key] is not None and math.isfinite(r[key])]
        if points:
            ax.plot(*zip(*points), style, label=label, markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("log-likelihood (nats per sample)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format=os.path.splitext(path)[1].lstrip(".").lower() or "png")
    plt.close(fig)
    atomic_write(path, out.getvalue())
