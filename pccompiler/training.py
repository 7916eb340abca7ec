"""Training loops (EM) and evaluation over a CompiledCircuit, plus data checks.

Mini-batch EM (PyJuice-style): per batch, flows then
`params = (1 - s) * params + s * normalise(flows + pseudocount)`, with the
step size s annealed linearly from `step_size` to `step_size_end` over all
steps. Full-batch EM: flows accumulated over every batch (or data shard),
then one update with step size s per epoch; on shards this gives exactly the
same update as on the whole data (flows add up).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable, TextIO

import numpy as np
import torch

from pccompiler.errors import DataError
from pccompiler.ir import pcir


@dataclass
class EpochStats:
    epoch: int
    train_ll: float
    valid_ll: float | None
    seconds: float

    def line(self) -> str:
        valid = f"  valid LL {self.valid_ll:.4f}" if self.valid_ll is not None else ""
        return f"epoch {self.epoch:3d}  train LL {self.train_ll:.4f}{valid}  {self.seconds:.2f}s"


# ---------------------------------------------------------------- data
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


# ---------------------------------------------------------------- progress
class Progress:
    """A plain-text progress bar on stderr (no dependency)."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 30):
        self.total, self.label, self.width = max(1, total), label, width
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream is not None

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        filled = int(self.width * done / self.total)
        self.stream.write(f"\r{self.label} [{'#' * filled}{' ' * (self.width - filled)}] "
                          f"{done}/{self.total}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (len(self.label) + self.width + 24) + "\r")
            self.stream.flush()


def batches(n: int, batch_size: int, order: np.ndarray | None = None) -> Iterable[np.ndarray]:
    order = np.arange(n) if order is None else order
    for start in range(0, n, batch_size):
        yield order[start: start + batch_size]


# ---------------------------------------------------------------- loops
def evaluate(circuit, data: np.ndarray, batch_size: int = 1024,
             missing: np.ndarray | None = None) -> float:
    """Average log-likelihood (nats per sample) of `data`."""
    total = 0.0
    with torch.no_grad():
        for rows in batches(len(data), batch_size):
            m = None if missing is None else missing[rows]
            total += float(circuit.log_prob(data[rows], m).double().sum())
    return total / len(data)


def full_batch_em_epoch(circuit, shards: Iterable[np.ndarray], batch_size: int,
                        step_size: float = 1.0, pseudocount: float = 0.0,
                        on_batch: Callable[[int], None] | None = None, sync=None) -> float:
    """One full-batch EM update from the flows of every shard; returns the
    average LL of the data under the parameters before the update. With
    `sync` (data-parallel, pccompiler/distributed.py) the shards are this
    rank's and the flows and totals are summed over ranks before the update."""
    circuit.zero_flows()
    total, count, done = 0.0, 0, 0
    for shard in shards:
        for rows in batches(len(shard), batch_size):
            total += float(circuit.accumulate_flows(shard[rows]).double().sum())
            count += len(rows)
            done += 1
            if on_batch:
                on_batch(done)
    if sync is not None:
        sync.reduce_flows(circuit)
        total, count = sync.sum(total), sync.sum(count)
    circuit.em_update(step_size, pseudocount)
    circuit.zero_flows()
    return total / max(1, count)


def _em_step_shared(circuit, data: np.ndarray, part: np.ndarray, step_size: float,
                    pseudocount: float, sync) -> float:
    """`em_step` of one rank: flows of its part of the batch (maybe empty),
    summed over ranks, then the update; returns its part's LL total."""
    circuit.zero_flows()
    total = float(circuit.accumulate_flows(data[part]).double().sum()) if len(part) else 0.0
    sync.reduce_flows(circuit)
    circuit.em_update(step_size, pseudocount)
    circuit.zero_flows()
    return total


def train_em(circuit, train: np.ndarray, valid: np.ndarray | None = None, epochs: int = 10,
             batch_size: int = 512, em: str = "mini", step_size: float = 0.1,
             step_size_end: float | None = None, pseudocount: float = 0.1, seed: int = 0,
             log: Callable[[str], None] | None = None, progress: TextIO | None = None,
             sync=None, start_epoch: int = 1, rng_state: dict | None = None,
             on_epoch: Callable[[EpochStats, dict], None] | None = None) -> list[EpochStats]:
    """Train with mini-batch ("mini") or full-batch ("full") EM.

    `log` receives one line per epoch; `progress` (a stream) shows a bar.
    `sync` (a `pccompiler.distributed.DataParallel`) makes this one rank of
    data-parallel training: the global batches are the same, the rank works
    on `sync.split(batch)` and the flows are summed over ranks before every
    update. Returns the per-epoch statistics.

    Resuming (`pcc train --resume`): `start_epoch` skips the epochs already
    done and `rng_state` restores the batch-order generator, so a resumed run
    applies exactly the updates of an uninterrupted one. `on_epoch(stats,
    state)` runs after every epoch with the state to resume from after it
    ({"epoch", "rng_state"}); `pcc train --checkpoint-every` saves it.
    """
    if em not in ("mini", "full"):
        raise ValueError(f"em must be 'mini' or 'full', not {em!r}")
    rng = np.random.default_rng(seed)
    if rng_state is not None:
        rng.bit_generator.state = rng_state
    num_batches = math.ceil(len(train) / batch_size)
    total_steps = max(1, epochs * num_batches)
    end = step_size if step_size_end is None else step_size_end
    history = []
    step = (start_epoch - 1) * num_batches if em == "mini" else 0
    for epoch in range(start_epoch, epochs + 1):
        start = time.perf_counter()
        bar = Progress(num_batches, f"epoch {epoch}/{epochs}", progress) if progress else None
        if em == "full":
            shards = [train] if sync is None else (
                train[sync.split(rows)] for rows in batches(len(train), batch_size))
            train_ll = full_batch_em_epoch(circuit, shards, batch_size, step_size, pseudocount,
                                           bar.update if bar else None, sync)
        else:
            total = 0.0
            for i, rows in enumerate(batches(len(train), batch_size, rng.permutation(len(train)))):
                s = step_size + (end - step_size) * step / max(1, total_steps - 1)
                if sync is None:
                    total += float(circuit.em_step(train[rows], step_size=s,
                                                   pseudocount=pseudocount).double().sum())
                else:
                    total += _em_step_shared(circuit, train, sync.split(rows), s, pseudocount, sync)
                step += 1
                if bar:
                    bar.update(i + 1)
            train_ll = (total if sync is None else sync.sum(total)) / len(train)
        if bar:
            bar.close()
        valid_ll = evaluate(circuit, valid, max(batch_size, 1024)) if valid is not None else None
        stats = EpochStats(epoch, train_ll, valid_ll, time.perf_counter() - start)
        history.append(stats)
        if log:
            log(stats.line())
        if on_epoch:
            on_epoch(stats, {"epoch": epoch, "rng_state": rng.bit_generator.state})
    return history
