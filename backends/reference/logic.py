"""The semirings of logic circuits on the reference interpreter (the oracle).

- counting: `model_count` evaluates sums and products over exact Python
  integers (object arrays, vectorised per group), so counts beyond 2^53
  (seq_fun has about 2.4e111 models) stay exact; evidence fixes variables.
- log-sum-product with literal weights: `wmc` gives log WMC per row, the
  literal weights entering as soft evidence (evaluate.soft_input_values).
- max-product with literal weights: `weighted_mpe` gives the most weighted
  model per row and its log weight (the top-down pass of topdown.mpe).

Literal weights are P(x_v = 1) as a [B, V] array (the weight of -v is
1 - w) or both literal weights as a [B, V, 2] array ([..., 0] for -v).
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.backends.reference import nodes as _nodes
from pccompiler.backends.reference.evaluate import chunk_rows, prepare_data, upward
from pccompiler.backends.reference.topdown import _as_output, _topdown
from pccompiler.errors import DataError
from pccompiler.ir.model_view import GroupView, ModelView
from pccompiler.ir.nodes import is_node_model

pcir = ir.pcir


def literal_weights(weights, num_vars: int) -> np.ndarray:
    """[B, V] P(x=1) or [B, V, 2] literal weights -> float64 [B, V, 2]."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2 and w.shape[1] == num_vars:
        w = np.stack([1.0 - w, w], axis=2)
    if w.ndim != 3 or w.shape[1:] != (num_vars, 2):
        raise DataError(f"literal weights must have shape [batch, {num_vars}] or "
                        f"[batch, {num_vars}, 2], got {list(np.shape(weights))}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise DataError("literal weights must be finite and non-negative")
    return w


def _view(model) -> ModelView | _nodes.NodeView:
    """The decoded model: a ModelView (groups) or a NodeView (node form)."""
    if isinstance(model, (ModelView, _nodes.NodeView)):
        return model
    return _nodes.NodeView(model) if is_node_model(model) else ModelView(model)


def wmc(model: pcir.Model | ModelView, weights) -> np.ndarray:
    """log of the weighted model count of each row: float64 [B]."""
    view = _view(model)
    soft = literal_weights(weights, view.num_vars)
    if isinstance(view, _nodes.NodeView):
        return _nodes.upward(view, mode="sum", soft=soft)[:, view.root]
    none = np.zeros(soft.shape[:2])
    step = chunk_rows(view)
    out = [upward(view, none[i:i + step], none[i:i + step] > 0, "sum", soft[i:i + step])
           [view.root][:, 0] for i in range(0, len(soft), step)]
    return np.concatenate(out) if out else np.zeros(0)


def weighted_mpe(model: pcir.Model | ModelView, weights) -> tuple[np.ndarray, np.ndarray]:
    """The model of largest weight per row: (assignment int64 [B, V], its log weight [B])."""
    view = _view(model)
    soft = literal_weights(weights, view.num_vars)
    if isinstance(view, _nodes.NodeView):
        values = _nodes.upward(view, mode="max", soft=soft)
        return _nodes.top_down(view, values, soft=soft), values[:, view.root]
    xf, missing = np.zeros(soft.shape[:2]), np.ones(soft.shape[:2], dtype=bool)
    values = upward(view, xf, missing, "max", soft)
    return _as_output(view, _topdown(view, values, xf, missing, None)), values[view.root][:, 0]


def _integral(array: np.ndarray, what: str, g: GroupView) -> np.ndarray:
    if not np.array_equal(array, np.round(array)):
        raise DataError(f"model_count: group {g.id} has non-integer {what}; counting needs "
                        "a logic circuit (weights 1, indicator leaves)")
    return np.round(array).astype(np.int64).astype(object)


def _count_input(g: GroupView, xf: np.ndarray, missing: np.ndarray) -> np.ndarray:
    if g.dist != pcir.CATEGORICAL_DIST:
        raise DataError(f"model_count: group {g.id} is not a categorical (indicator) input")
    params = _integral(g.params, "input parameters", g)                # [N, K]
    cats = xf[:, g.var].astype(np.int64)
    vals = params[:, cats].T                                            # [B, N]
    return np.where(missing[:, g.var][:, None], params.sum(axis=1)[None, :], vals)


def _count_sum(g: GroupView, values: list) -> np.ndarray:
    e = g.edges
    cols = np.concatenate([values[c] for c in g.children], axis=1)
    w = _integral(np.exp(e.log_weights), "sum weights", g)
    total = np.add.reduceat(cols[:, e.cols] * w[None, :], e.seg_starts, axis=1)
    out = np.zeros((len(cols), g.num_nodes), dtype=object)
    out[:, e.seg_parents] = total
    return out


def model_count(model: pcir.Model | ModelView, x=None, missing=None) -> list[int]:
    """Exact number of models per row consistent with the observed entries
    of x (default: one row, nothing observed)."""
    view = _view(model)
    if x is None:
        x = np.zeros((1, view.num_vars), dtype=np.int64)
        missing = np.ones(x.shape, dtype=bool)
    if isinstance(view, _nodes.NodeView):
        x = np.asarray(x)
        miss = np.zeros(x.shape, dtype=bool) if missing is None else np.asarray(missing)
        return [int(c) for c in _nodes.upward(view, x, miss, "count")[:, view.root]]
    xf, miss = prepare_data(view, x, missing)
    values: list = [None] * len(view.groups)
    for g in view.groups:
        if g.kind == pcir.INPUT:
            values[g.id] = _count_input(g, xf, miss)
        elif g.kind == pcir.PRODUCT:
            out = np.ones((len(xf), g.num_nodes), dtype=object)
            for j, c in enumerate(g.children):
                out = out * values[c][:, g.index[:, j]]
            values[g.id] = out
        else:
            values[g.id] = _count_sum(g, values)
    return [int(v) for v in values[view.root][:, 0]]
