"""Training loops (EM) and evaluation over a CompiledCircuit, plus data checks.

Mini-batch EM (PyJuice-style): per batch, flows then
`params = (1 - s) * params + s * normalise(flows + pseudocount)`, with the
step size s annealed linearly from `step_size` to `step_size_end` over all
steps. Full-batch EM: flows accumulated over every batch (or data shard),
then one update with step size s per epoch; on shards this gives exactly the
same update as on the whole data (flows add up).

Data softening (`soften=BETA`, Liu & Van den Broeck 2021): every observed
input is soft evidence; see `Softening`. Sum-node statistics are unchanged.
"""


from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, TextIO

import numpy as np
import torch

from pccompiler.errors import UnsupportedError
from pccompiler.train.entropy_reg import apply_entropy_reg
from pccompiler.train.progress import Progress, batches
from pccompiler.train.softening import Softening, make_softening


@dataclass
class EpochStats:
    epoch: int
    train_ll: float
    valid_ll: float | None
    seconds: float
    step_size: float | None = None      # of the epoch's last EM update

    def line(self) -> str:
        valid = f"  valid LL {self.valid_ll:.4f}" if self.valid_ll is not None else ""
        return f"epoch {self.epoch:3d}  train LL {self.train_ll:.4f}{valid}  {self.seconds:.2f}s"


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
                        on_batch: Callable[[int, float], None] | None = None, sync=None,
                        soften: Softening | None = None, entropy_reg: float = 0.0) -> float:
    """One full-batch EM update from the flows of every shard; returns the
    average LL of the data under the parameters before the update (of the
    softened data with `soften`). `on_batch(done, running_ll)` follows the
    batches (the progress bar). With `sync` (data-parallel,
    pccompiler/train/distributed.py) the shards are this rank's and the flows and
    totals are summed over ranks before the update."""
    circuit.zero_flows()
    total, count, done = 0.0, 0, 0
    with soften if soften is not None else contextlib.nullcontext():
        for shard in shards:
            for rows in batches(len(shard), batch_size):
                total += float(circuit.accumulate_flows(shard[rows]).double().sum())
                count += len(rows)
                done += 1
                if on_batch:
                    on_batch(done, total / count)
    if sync is not None:
        sync.reduce_flows(circuit)
        total, count = sync.sum(total), sync.sum(count)
    apply_entropy_reg(circuit, entropy_reg, pseudocount)
    circuit.em_update(step_size, pseudocount)
    circuit.zero_flows()
    return total / max(1, count)


def em_step(circuit, x: np.ndarray, step_size: float, pseudocount: float,
            soften: Softening | None = None, entropy_reg: float = 0.0) -> torch.Tensor:
    """`circuit.em_step(x, ...)`, with the statistics of softened data if
    `soften` and entropy regularisation `entropy_reg` (`apply_entropy_reg`);
    returns log p(x) [B] (of the softened data) before the update."""
    if soften is None and not entropy_reg:
        return circuit.em_step(x, step_size=step_size, pseudocount=pseudocount)
    circuit.zero_flows()
    with soften if soften is not None else contextlib.nullcontext():
        lls = circuit.accumulate_flows(x)
    apply_entropy_reg(circuit, entropy_reg, pseudocount)
    circuit.em_update(step_size, pseudocount)
    circuit.zero_flows()
    return lls


def _em_step_shared(circuit, data: np.ndarray, part: np.ndarray, step_size: float,
                    pseudocount: float, sync, soften: Softening | None = None) -> float:
    """`em_step` of one rank: flows of its part of the batch (maybe empty),
    summed over ranks, then the update; returns its part's LL total."""
    circuit.zero_flows()
    total = 0.0
    if len(part):
        with soften if soften is not None else contextlib.nullcontext():
            total = float(circuit.accumulate_flows(data[part]).double().sum())
    sync.reduce_flows(circuit)
    circuit.em_update(step_size, pseudocount)
    circuit.zero_flows()
    return total


def train_em(circuit, train: np.ndarray, valid: np.ndarray | None = None, epochs: int = 10,
             batch_size: int = 512, em: str = "mini", step_size: float = 0.1,
             step_size_end: float | None = None, pseudocount: float = 0.1, seed: int = 0,
             log: Callable[[str], None] | None = None, progress: TextIO | None = None,
             sync=None, start_epoch: int = 1, rng_state: dict | None = None,
             on_epoch: Callable[[EpochStats, dict], None] | None = None,
             soften: float | None = None, soften_kernel: str = "uniform",
             entropy_reg: float = 0.0) -> list[EpochStats]:
    """Train with mini-batch ("mini") or full-batch ("full") EM.

    `log` receives one line per epoch; `progress` (a stream) shows a bar
    (tqdm: ETA and the running train LL; nothing when the stream is not a
    terminal).
    `sync` (a `pccompiler.train.distributed.DataParallel`) makes this one rank of
    data-parallel training: the global batches are the same, the rank works
    on `sync.split(batch)` and the flows are summed over ranks before every
    update. Returns the per-epoch statistics.

    Resuming (`pcc train --resume`): `start_epoch` skips the epochs already
    done and `rng_state` restores the batch-order generator, so a resumed run
    applies exactly the updates of an uninterrupted one. `on_epoch(stats,
    state)` runs after every epoch with the state to resume from after it
    ({"epoch", "rng_state"}); `pcc train --checkpoint-every` saves it.

    `soften` (beta in (0, 1], None or 1: off) trains on softened data
    (`Softening`, kernel `soften_kernel`); the train LL then is that of the
    softened data, the validation LL that of the model as it is.
    `entropy_reg` (tau > 0) adds entropy regularisation to every M-step
    (`apply_entropy_reg`; single process only).
    """
    if entropy_reg and sync is not None:
        raise UnsupportedError("entropy regularisation is not implemented for data-parallel EM")
    if em not in ("mini", "full"):
        raise ValueError(f"em must be 'mini' or 'full', not {em!r}")
    soft = make_softening(circuit, soften, soften_kernel, train)
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
                                           bar.update if bar else None, sync, soft,
                                           entropy_reg)
        else:
            total, seen = 0.0, 0
            for i, rows in enumerate(batches(len(train), batch_size, rng.permutation(len(train)))):
                s = step_size + (end - step_size) * step / max(1, total_steps - 1)
                if sync is None:
                    total += float(em_step(circuit, train[rows], s, pseudocount,
                                           soft, entropy_reg).double().sum())
                else:
                    total += _em_step_shared(circuit, train, sync.split(rows), s, pseudocount,
                                             sync, soft)
                step += 1
                seen += len(rows)
                if bar:
                    bar.update(i + 1, total / seen if sync is None else None)
            train_ll = (total if sync is None else sync.sum(total)) / len(train)
        if bar:
            bar.close()
        valid_ll = evaluate(circuit, valid, max(batch_size, 1024)) if valid is not None else None
        last = step_size if em == "full" else \
            step_size + (end - step_size) * (step - 1) / max(1, total_steps - 1)
        stats = EpochStats(epoch, train_ll, valid_ll, time.perf_counter() - start, last)
        history.append(stats)
        if log:
            log(stats.line())
        if on_epoch:
            on_epoch(stats, {"epoch": epoch, "rng_state": rng.bit_generator.state})
    return history
