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
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable, TextIO

import numpy as np
import torch

from pccompiler import ir
from pccompiler.errors import DataError, UnsupportedError
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


# ---------------------------------------------------------------- data softening
SOFTEN_KERNELS = ("uniform", "marginal")


class Softening:
    """Data softening: every observed input x of a training sample is soft
    evidence on its variable's value c (Liu & Van den Broeck, "Tractable
    Regularization of Probabilistic Circuits", NeurIPS 2021).

    The evidence weights are q_x(c) = a [c == x] + g(c), so an input node
    with parameters p contributes v(x) = sum_c q_x(c) p(c) = a p(x) + <g, p>.
      uniform kernel (default): q_x(x) = beta, q_x(c) = (1 - beta) / (C - 1)
        for c != x, i.e. g = b = (1 - beta) / (C - 1) and a = beta - b; then
        p' = a p + b is again a distribution (the channel K(x|c) of the paper).
      marginal kernel (our reading of the authors' `soften(data, 1 - beta;
        scale_by_marginal = true)`, whose source we have not seen): a = beta,
        g = (1 - beta) * m with m the variable's category frequencies in the
        training data (categorical inputs and complete data only: p' is not
        normalised, so neither a Bernoulli row nor marginalisation holds it).
    Any engine computes v by running on p'(c) = a p(c) + <g, p> in place of p
    (`apply`): its parameter flows are then the flows n'(x) of the observed
    categories. EM's expected counts under the soft evidence are
        E(c) = p(c) * (a n'(c) / p'(c) + g(c) sum_x n'(x) / p'(x)),
    which `restore` writes into the flows before putting p back. Both steps
    are linear in the flows, so batches, shards and ranks add up as before.
    A missing entry (flows f p'(c)) maps to f p(c) under the uniform kernel:
    plain marginalisation. Bernoulli rows (uniform only, C = 2) use the same
    formula with n'(1) = flows[r], n'(0) = node_flows[r] - flows[r]; node
    totals need no change (sum_c E(c) = sum_x n'(x)). Gaussian inputs are
    refused. The log-likelihoods returned between `apply` and `restore` are
    those of the softened data; evaluation uses p (outside that window).
    """

    def __init__(self, circuit, beta: float, kernel: str = "uniform",
                 train: np.ndarray | None = None):
        if not (math.isfinite(beta) and 0 < beta <= 1):
            raise DataError(f"softening beta {beta} must lie in (0, 1]")
        if kernel not in SOFTEN_KERNELS:
            raise DataError(f"softening kernel must be one of {', '.join(SOFTEN_KERNELS)}, "
                            f"not {kernel!r}")
        eng = circuit.engine
        model, layout = eng.model, eng.layout
        for g in model.groups:
            if g.kind == pcir.INPUT and g.input.dist not in (pcir.CATEGORICAL_DIST,
                                                             pcir.BERNOULLI_DIST):
                raise UnsupportedError(
                    f"data softening needs categorical or Bernoulli inputs; group {g.id} "
                    f"{g.name!r} is Gaussian (train without --soften)")
            if (kernel == "marginal" and g.kind == pcir.INPUT
                    and g.input.dist == pcir.BERNOULLI_DIST):
                raise UnsupportedError(
                    f"the marginal softening kernel needs categorical inputs; group {g.id} "
                    f"{g.name!r} is Bernoulli (use the uniform kernel)")
        if kernel == "marginal" and train is None:
            raise DataError("the marginal softening kernel needs the training data")
        self.engine, self.beta, self.kernel = eng, float(beta), kernel
        table = ir.tensor_table(layout)
        cat: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        bern: list[np.ndarray] = []
        for layer in layout.layers:
            for ip in layer.input_partitions:
                n = int(ip.num_nodes)
                starts = np.asarray(table[ip.node_param_starts], dtype=np.int64).reshape(n)
                nvars = np.asarray(table[ip.node_vars], dtype=np.int64).reshape(n)
                if ip.dist == pcir.CATEGORICAL_DIST:
                    cat.setdefault(int(ip.params_per_node), []).append((starts, nvars))
                elif ip.dist == pcir.BERNOULLI_DIST:
                    bern.append(starts)
        dev, dt = eng.device, eng.dtype
        # per category count C: (cols [R, C], a, g [R, C]); tied rows appear once
        self.cat: list[tuple[torch.Tensor, float, torch.Tensor]] = []
        for c, parts in sorted(cat.items()):
            starts = np.concatenate([s for s, _ in parts])
            starts, first = np.unique(starts, return_index=True)
            nvars = np.concatenate([v for _, v in parts])[first]
            cols = torch.as_tensor(starts[:, None] + np.arange(c)[None, :], device=dev)
            if kernel == "uniform":
                b = (1.0 - beta) / (c - 1) if c > 1 else 0.0
                a, g = beta - b, np.full((len(starts), c), b)
            else:
                a, g = beta, (1.0 - beta) * _category_frequencies(train, nvars, c)
            self.cat.append((cols, a, torch.as_tensor(g, dtype=dt, device=dev)))
        self.bern_rows = torch.as_tensor(np.unique(np.concatenate(bern)) if bern
                                         else np.zeros(0, dtype=np.int64), device=dev)
        self._saved: torch.Tensor | None = None

    def apply(self) -> None:
        """Replace the input parameters by the softened ones p' (in place)."""
        params = self.engine.input_params.data
        self._saved = params.clone()
        for cols, a, g in self.cat:
            p = self._saved[cols]
            params[cols] = a * p + (g * p).sum(1, keepdim=True)
        if self.bern_rows.numel():
            b = 1.0 - self.beta
            params[self.bern_rows] = (2 * self.beta - 1) * self._saved[self.bern_rows] + b

    def restore(self, convert: bool = True) -> None:
        """Turn the flows gathered under p' into soft-evidence expected counts
        (if `convert`) and put the parameters p back."""
        eng, saved = self.engine, self._saved
        if saved is None:
            raise RuntimeError("Softening.restore without apply")
        params, flows = eng.input_params.data, eng.input_param_flows
        if convert:
            for cols, a, g in self.cat:
                ratio = _safe_ratio(flows[cols], params[cols])
                flows[cols] = saved[cols] * (a * ratio + g * ratio.sum(1, keepdim=True))
            rows = self.bern_rows
            if rows.numel():
                b = 1.0 - self.beta
                n1 = flows[rows]
                n0 = eng.input_node_flows[rows] - n1
                p1 = params[rows]
                r1, r0 = _safe_ratio(n1, p1), _safe_ratio(n0, 1 - p1)
                flows[rows] = saved[rows] * ((2 * self.beta - 1) * r1 + b * (r0 + r1))
        params.copy_(saved)
        self._saved = None

    def __enter__(self) -> "Softening":
        self.apply()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.restore(convert=exc_type is None)


def _safe_ratio(n: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """n / p, 0 where p is 0 (then n is 0 too: no sample reached that value)."""
    return torch.where(p > 0, n / p.clamp_min(torch.finfo(p.dtype).tiny), torch.zeros_like(n))


def _category_frequencies(train: np.ndarray, nvars: np.ndarray, c: int) -> np.ndarray:
    """[len(nvars), c] frequency of each category of each node's variable."""
    freq = np.zeros((train.shape[1], c))
    for v in np.unique(nvars):
        freq[v] = np.bincount(np.asarray(train[:, v], dtype=np.int64), minlength=c)[:c]
    return freq[nvars] / max(1, len(train))


def make_softening(circuit, soften: float | None, kernel: str = "uniform",
                   train: np.ndarray | None = None) -> Softening | None:
    """A Softening for `circuit`, or None when `soften` is None or 1 (plain EM)."""
    if soften is None:
        return None
    soft = Softening(circuit, soften, kernel, train)
    return None if soften == 1 else soft


# ---------------------------------------------------------------- entropy regularisation
def _per_key_sum(values: torch.Tensor, key: torch.Tensor, num_keys: int) -> torch.Tensor:
    """[num_keys]: the sum of `values` over the entries of each key."""
    return torch.zeros(num_keys, dtype=values.dtype, device=values.device).index_add_(
        0, key, values)


def entropy_regularised(a: torch.Tensor, b: torch.Tensor, key: torch.Tensor, num_keys: int,
                        outer: int = 30, inner: int = 4) -> torch.Tensor:
    """Per node k, the maximiser of sum_j a_j log t_j + b_k H(t) over the
    simplex (j over the entries with key k; a >= 0 with a positive sum per
    node, b >= 0 per entry, equal within a node).

    Stationarity: a_j / t_j - b log t_j = c_k (one constant per node). For a
    given c each t_j follows from a few Newton steps on u = log t_j (the
    left side is convex and decreasing in u); c is found by Newton steps on
    sum_j t_j(c) = 1 (decreasing in c). b = 0 gives t = a / sum a."""
    a, b = a.double(), b.double()
    total = _per_key_sum(a, key, num_keys)
    u = torch.log((a / total[key]).clamp_min(1e-300)).clamp_min(-700.0)
    # c from the b = 0 solution, averaged per node
    cnt = _per_key_sum(torch.ones_like(a), key, num_keys)
    c_ent = a * torch.exp(-u) - b * u
    c = _per_key_sum(c_ent, key, num_keys)
    c = (c / cnt.clamp_min(1))[key]
    for _ in range(outer):
        for _ in range(inner):
            ae = a * torch.exp(-u)
            u = u + (ae - b * u - c) / (ae + b).clamp_min(1e-300)
            u = u.clamp(-700.0, 700.0)
        t = torch.exp(u)
        ae = a * torch.exp(-u)
        dt_dc = -t / (ae + b).clamp_min(1e-300)
        s = _per_key_sum(t, key, num_keys) - 1.0
        ds = _per_key_sum(dt_dc, key, num_keys)
        c = c - (s / ds.clamp_max(-1e-300))[key]
        if float(s.abs().max()) < 1e-12:
            break
    for _ in range(inner):
        ae = a * torch.exp(-u)
        u = (u + (ae - b * u - c) / (ae + b).clamp_min(1e-300)).clamp(-700.0, 700.0)
    t = torch.exp(u)
    norm = _per_key_sum(t, key, num_keys)
    return t / norm[key]


def apply_entropy_reg(circuit, tau: float, pseudocount: float) -> None:
    """Entropy regularisation of the next EM update (Liu & Van den Broeck's
    `entropy_reg`): per sum node and categorical input node, the M-step
    maximises sum_j n_j log t_j + b H(t) with n_j the expected counts plus
    the pseudocount spread over the node's parameters and b = tau * (the
    node's total flow + pseudocount): the node's expected count stands in for
    the authors' top-down reach probability times the data count (equal when
    the model's marginals match the data's). Works on any engine with the
    common flow buffers: the flows are rewritten so that the engine's own
    `em_update` (with the same pseudocount and any step size) lands on the
    regularised optimum. Nodes with an exactly-zero parameter (pass-throughs'
    identity blocks) and nodes without flow are left to plain EM. Call after
    the flows are accumulated (and softening restored), before em_update."""
    if not tau:
        return
    eng = circuit.engine
    idx = eng.index
    with torch.no_grad():
        for params, flows, key in ((eng.sum_params, eng.sum_param_flows, idx.sum_param_parent),
                                   (eng.input_params, eng.input_param_flows,
                                    idx.input_param_row)):
            sel = torch.nonzero(key >= 0).squeeze(1)
            if sel.numel() == 0:
                continue
            k = key[sel]
            nk = int(key.max()) + 1
            f = flows[sel].double()
            cnt = _per_key_sum(torch.ones_like(f), k, nk)
            tot = _per_key_sum(f, k, nk)
            zero = _per_key_sum((params.data[sel] <= 0).double(), k, nk)
            ok = ((cnt > 1) & (zero == 0) & (tot + pseudocount > 0))[k]
            if not bool(ok.any()):
                continue
            s2, k2 = sel[ok], k[ok]
            a = (f[ok] + pseudocount / cnt[k2]).clamp_min(0.0)
            b = tau * (tot[k2] + pseudocount)
            t = entropy_regularised(a, b, k2, nk)
            # em_update computes (f' + pc / n) / (sum f' + pc); with
            # f' = t (T + pc) - pc / n the sum stays T and the result is t.
            new = t * (tot[k2] + pseudocount) - pseudocount / cnt[k2]
            flows[s2] = new.to(flows.dtype)


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
                        on_batch: Callable[[int], None] | None = None, sync=None,
                        soften: Softening | None = None, entropy_reg: float = 0.0) -> float:
    """One full-batch EM update from the flows of every shard; returns the
    average LL of the data under the parameters before the update (of the
    softened data with `soften`). With `sync` (data-parallel,
    pccompiler/distributed.py) the shards are this rank's and the flows and
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
                    on_batch(done)
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
            total = 0.0
            for i, rows in enumerate(batches(len(train), batch_size, rng.permutation(len(train)))):
                s = step_size + (end - step_size) * step / max(1, total_steps - 1)
                if sync is None:
                    total += float(em_step(circuit, train[rows], s, pseudocount,
                                           soft, entropy_reg).double().sum())
                else:
                    total += _em_step_shared(circuit, train, sync.split(rows), s, pseudocount,
                                             sync, soft)
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
