"""The upward pass of the reference interpreter, group by group, in float64.

`semiring="sum"` computes log-likelihoods (missing variables marginalized:
their input nodes have value log 1); `semiring="max"` computes the
max-product values that MPE backtracks through (a missing variable's input
node takes its largest log-density). Sums use a stable segment
log-sum-exp: the maximum is taken per (row, parent node), so no node's
value underflows because another node is much larger.
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.errors import DataError

from pccompiler.ir.model_view import GroupView, ModelView

pcir = ir.pcir
_HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)
# Rows per chunk are chosen so one [rows, edges] temporary stays near this size.
_CHUNK_ELEMENTS = 1 << 22


def prepare_data(view: ModelView, x, missing=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate (x, missing) against the model's variables.

    x: [B, V] ints (floats where a variable is real); NaN entries of a float
    x count as missing when `missing` is None. Returns (x as float64 with
    missing entries set to 0, missing as bool [B, V]).
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != view.num_vars:
        raise DataError(f"x must have shape [batch, {view.num_vars}], got {list(x.shape)}")
    if missing is None:
        missing = np.isnan(x) if x.dtype.kind == "f" else np.zeros(x.shape, dtype=bool)
    missing = np.asarray(missing, dtype=bool)
    if missing.shape != x.shape:
        raise DataError(f"missing must have the shape of x {list(x.shape)}, "
                        f"got {list(missing.shape)}")
    xf = np.where(missing, 0.0, x.astype(np.float64))
    discrete = view.var_kinds != pcir.REAL
    observed = ~missing & discrete[None, :]
    if np.any(np.isnan(xf)):
        row, col = np.argwhere(np.isnan(xf))[0]
        raise DataError(f"x[{row}, {col}] is NaN but not marked missing")
    bad = observed & ((xf < 0) | (xf >= view.var_cats[None, :]) | (xf != np.round(xf)))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"x[{row}, {col}] = {x[row, col]} is not a category of variable {col} "
                        f"(0..{view.var_cats[col] - 1})")
    return xf, missing


def soft_input_values(g: GroupView, soft: np.ndarray, semiring: str) -> np.ndarray:
    """[B, N] log-values of a categorical input group under soft evidence:
    soft[b, v, c] >= 0 weighs category c of variable v in row b, and node n's
    value is sum_c params[n, c] * soft[b, v, c] (max_c under "max"). For the
    indicator leaves of a logic circuit this is the literal's weight, which
    is how weighted model counting enters the log-sum-product semiring."""
    if g.dist != pcir.CATEGORICAL_DIST:
        raise DataError(f"reference: soft evidence needs categorical inputs; group {g.id} "
                        f"has distribution {g.dist}")
    w = g.params[None, :, :] * soft[:, g.var, None, :]                 # [B, N, K]
    with np.errstate(divide="ignore"):
        return np.log(w.sum(axis=2) if semiring == "sum" else w.max(axis=2))


def input_values(g: GroupView, xf: np.ndarray, missing: np.ndarray, semiring: str,
                 soft: np.ndarray | None = None) -> np.ndarray:
    """[B, N] log-values of an input group (soft: see soft_input_values)."""
    if soft is not None:
        return soft_input_values(g, soft, semiring)
    xv, miss = xf[:, g.var], missing[:, g.var]
    with np.errstate(divide="ignore"):
        if g.dist == pcir.CATEGORICAL_DIST:
            logp = np.log(g.params)                                    # [N, K]
            cats = np.minimum(xv.astype(np.int64), logp.shape[1] - 1)
            vals = logp[:, cats].T
            best = logp.max(axis=1)
        elif g.dist == pcir.BERNOULLI_DIST:
            p = g.params[:, 0]
            log1, log0 = np.log(p), np.log1p(-p)
            vals = np.where(xv[:, None] > 0.5, log1[None, :], log0[None, :])
            best = np.maximum(log1, log0)
        elif g.dist == pcir.GAUSSIAN_DIST:
            mean, std = g.params[:, 0], g.params[:, 1]
            z = (xv[:, None] - mean[None, :]) / std[None, :]
            vals = -0.5 * z * z - np.log(std)[None, :] - _HALF_LOG_2PI
            best = -np.log(std) - _HALF_LOG_2PI
        else:
            raise DataError(f"reference: group {g.id} has unknown distribution {g.dist}")
    fill = np.zeros_like(best) if semiring == "sum" else best
    return np.where(miss[:, None], fill[None, :], vals)


def product_values(g: GroupView, values: list) -> np.ndarray:
    out = None
    for j, child in enumerate(g.children):
        part = values[child][:, g.index[:, j]]
        out = part if out is None else out + part
    return out


def sum_scores(g: GroupView, values: list) -> np.ndarray:
    """[B, E] log weight + child value of every edge."""
    cols = np.concatenate([values[c] for c in g.children], axis=1) \
        if len(g.children) > 1 else values[g.children[0]]
    return g.edges.log_weights[None, :] + cols[:, g.edges.cols]


def sum_values(g: GroupView, values: list, semiring: str) -> np.ndarray:
    e = g.edges
    scores = sum_scores(g, values)
    seg_max = np.maximum.reduceat(scores, e.seg_starts, axis=1)
    if semiring == "sum":
        shift = np.where(np.isfinite(seg_max), seg_max, 0.0)
        total = np.add.reduceat(np.exp(scores - shift[:, e.seg_of_edge]), e.seg_starts, axis=1)
        with np.errstate(divide="ignore"):
            seg_val = np.log(total) + shift
    else:
        seg_val = seg_max
    out = np.full((scores.shape[0], g.num_nodes), -np.inf)
    out[:, e.seg_parents] = seg_val
    return out


def upward(view: ModelView, xf: np.ndarray, missing: np.ndarray, semiring: str = "sum",
           soft: np.ndarray | None = None) -> list:
    """Node values of every group: list indexed by group id of [B, N] arrays.
    `soft` [B, V, K] replaces the evidence (xf, missing) by literal weights."""
    values: list = [None] * len(view.groups)
    for g in view.groups:
        if g.kind == pcir.INPUT:
            values[g.id] = input_values(g, xf, missing, semiring, soft)
        elif g.kind == pcir.PRODUCT:
            values[g.id] = product_values(g, values)
        else:
            values[g.id] = sum_values(g, values, semiring)
    return values


def chunk_rows(view: ModelView) -> int:
    widest = max([g.num_nodes for g in view.groups] +
                 [len(g.edges.cols) for g in view.groups if g.edges is not None])
    return max(1, _CHUNK_ELEMENTS // max(widest, 1))


def log_prob_groups(model: pcir.Model | ModelView, x, missing=None,
                    semiring: str = "sum") -> list[np.ndarray]:
    """Log-values of every node: a list, by group id, of float64 [B, N] arrays."""
    view = model if isinstance(model, ModelView) else ModelView(model)
    if semiring not in ("sum", "max"):
        raise ValueError(f"semiring must be 'sum' or 'max', got {semiring!r}")
    xf, miss = prepare_data(view, x, missing)
    step = chunk_rows(view)
    parts = [upward(view, xf[i:i + step], miss[i:i + step], semiring)
             for i in range(0, max(len(xf), 1), step)]
    if len(parts) == 1:
        return parts[0]
    return [np.concatenate([p[gid] for p in parts], axis=0) for gid in range(len(view.groups))]


def log_prob(model: pcir.Model | ModelView, x, missing=None) -> np.ndarray:
    """log p(x_observed) per row: float64 [B] (the first root's first node)."""
    view = model if isinstance(model, ModelView) else ModelView(model)
    xf, miss = prepare_data(view, x, missing)
    step = chunk_rows(view)
    out = [upward(view, xf[i:i + step], miss[i:i + step])[view.root][:, 0]
           for i in range(0, len(xf), step)]
    return np.concatenate(out) if out else np.zeros(0)
