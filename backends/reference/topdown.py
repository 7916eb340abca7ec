"""Top-down queries of the reference interpreter: sampling and MPE.

Both walk the groups from the root down, keeping for every group a boolean
[rows, num_nodes] "reached" matrix. A reached product reaches all its
children; a reached sum reaches exactly one child, the edge with the best
score among its own edges; a reached input node writes its variable.

- Sampling (`conditional_sample`): the score of edge k of node n is
  log w_k + log p_k(x_obs) + Gumbel noise, so the pick follows
  w_k p_k(x_obs) / p_n(x_obs), the posterior of the edge given the evidence
  (with no evidence, p_k = 1 and it is plain ancestral sampling).
  Missing variables are drawn from the reached input node.
- MPE (`mpe`): the circuit's max-product semantics. The upward pass replaces
  every sum by a max (max_k w_k v_k) and every missing input by its mode;
  backtracking takes the argmax edge. The result is the assignment of the
  best induced tree: exact MPE for deterministic circuits (at most one
  child of a sum is non-zero for any complete assignment); for other
  circuits a lower bound, since several trees may add up to p(x).
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.errors import DataError

from pccompiler.backends.reference.evaluate import (chunk_rows, prepare_data, sum_scores,
                                                    upward)
from pccompiler.ir.model_view import GroupView, ModelView

pcir = ir.pcir


def _pick_edges(g: GroupView, reached: np.ndarray, values: list, rng) -> tuple:
    """(rows, chosen edge ids) for every reached node of sum group g."""
    e = g.edges
    rows = np.flatnonzero(reached.any(axis=1))
    scores = sum_scores(g, {c: values[c][rows] for c in g.children})
    if rng is not None:
        scores = scores + rng.gumbel(size=scores.shape)
    seg_max = np.maximum.reduceat(scores, e.seg_starts, axis=1)
    wanted = reached[rows][:, e.parents] & (scores == seg_max[:, e.seg_of_edge])
    r, edge = np.nonzero(wanted)
    # At most one edge per (row, parent): keep the first of exact ties.
    key = r * len(e.seg_starts) + e.seg_of_edge[edge]
    _, first = np.unique(key, return_index=True)
    return rows[r[first]], edge[first]


def _draw_inputs(g: GroupView, r: np.ndarray, n: np.ndarray, rng) -> np.ndarray:
    """Values for nodes n of input group g (one per row r): a draw, or the
    mode when rng is None."""
    params = g.params[n]
    if g.dist == pcir.CATEGORICAL_DIST:
        if rng is None:
            return params.argmax(axis=1).astype(np.float64)
        cum = np.cumsum(params, axis=1)
        u = rng.random(len(n)) * cum[:, -1]
        return np.minimum((cum <= u[:, None]).sum(axis=1), params.shape[1] - 1).astype(np.float64)
    if g.dist == pcir.BERNOULLI_DIST:
        p = params[:, 0]
        return (p >= 0.5).astype(np.float64) if rng is None else \
            (rng.random(len(n)) < p).astype(np.float64)
    mean, std = params[:, 0], params[:, 1]
    return mean.copy() if rng is None else mean + std * rng.standard_normal(len(n))


def _topdown(view: ModelView, values: list, xf: np.ndarray, missing: np.ndarray,
             rng) -> np.ndarray:
    rows = len(xf)
    out = xf.copy()
    reached = [None] * len(view.groups)
    reached[view.root] = np.zeros((rows, view.groups[view.root].num_nodes), dtype=bool)
    reached[view.root][:, 0] = True
    for g in reversed(view.groups):
        here = reached[g.id]
        if here is None or not here.any():
            continue
        for c in g.children:
            if reached[c] is None:
                reached[c] = np.zeros((rows, view.groups[c].num_nodes), dtype=bool)
        if g.kind == pcir.PRODUCT:
            r, n = np.nonzero(here)
            for j, c in enumerate(g.children):
                reached[c][r, g.index[n, j]] = True
        elif g.kind == pcir.SUM:
            r, edge = _pick_edges(g, here, values, rng)
            cols = g.edges.cols[edge]
            child_pos = np.searchsorted(g.edges.col_offsets, cols, side="right") - 1
            for k, c in enumerate(g.children):
                sel = child_pos == k
                reached[c][r[sel], cols[sel] - g.edges.col_offsets[k]] = True
        else:
            r, n = np.nonzero(here & missing[:, g.var][:, None])
            out[r, g.var] = _draw_inputs(g, r, n, rng)
        reached[g.id] = None   # free as we go
    return out


def _as_output(view: ModelView, out: np.ndarray) -> np.ndarray:
    return out if view.has_real else out.astype(np.int64)


def conditional_sample(model: pcir.Model | ModelView, x, missing,
                       rng: np.random.Generator | int | None = None) -> np.ndarray:
    """One sample of the missing variables of each row from
    p(missing | observed); observed entries are copied. Returns [B, V]
    (int64, or float64 when a variable is real)."""
    view = model if isinstance(model, ModelView) else ModelView(model)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    xf, miss = prepare_data(view, x, missing)
    step = chunk_rows(view)
    parts = []
    for i in range(0, len(xf), step):
        values = upward(view, xf[i:i + step], miss[i:i + step], "sum")
        bad = np.flatnonzero(~np.isfinite(values[view.root][:, 0]))
        if bad.size:
            raise DataError(f"row {i + bad[0]}: the evidence has probability 0; "
                            "cannot sample from p(missing | observed)")
        parts.append(_topdown(view, values, xf[i:i + step], miss[i:i + step], rng))
    out = np.concatenate(parts) if parts else np.zeros((0, view.num_vars))
    return _as_output(view, out)


def sample(model: pcir.Model | ModelView, num_samples: int,
           rng: np.random.Generator | int | None = None) -> np.ndarray:
    """`num_samples` exact ancestral samples of the circuit: [num_samples, V]."""
    view = model if isinstance(model, ModelView) else ModelView(model)
    x = np.zeros((num_samples, view.num_vars))
    return conditional_sample(view, x, np.ones(x.shape, dtype=bool), rng)


def mpe(model: pcir.Model | ModelView, x, missing=None) -> tuple[np.ndarray, np.ndarray]:
    """Max-product completion of each row (see the module docstring).

    Returns (assignment [B, V] with observed entries copied, the max-product
    log-value [B] of that assignment's induced tree).
    """
    view = model if isinstance(model, ModelView) else ModelView(model)
    xf, miss = prepare_data(view, x, missing)
    step = chunk_rows(view)
    assignments, scores = [], []
    for i in range(0, len(xf), step):
        values = upward(view, xf[i:i + step], miss[i:i + step], "max")
        scores.append(values[view.root][:, 0])
        assignments.append(_topdown(view, values, xf[i:i + step], miss[i:i + step], None))
    if not assignments:
        return _as_output(view, np.zeros((0, view.num_vars))), np.zeros(0)
    return _as_output(view, np.concatenate(assignments)), np.concatenate(scores)
