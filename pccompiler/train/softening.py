"""Data softening for EM (Liu & Van den Broeck 2021): observed inputs as soft
evidence, so EM's input statistics never collapse onto the training values."""

from __future__ import annotations

import math

import numpy as np
import torch

from pccompiler import ir
from pccompiler.errors import DataError, UnsupportedError
from pccompiler.ir import pcir


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
