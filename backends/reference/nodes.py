"""The reference interpreter of node-form Models (pcir.NodeCircuit).

Values live in one [B, N] array; the nodes are evaluated level by level
(passes/helpers/node_levels.py), each level one gather and one segmented
reduction per kind (np.add / maximum / multiply .reduceat over the level's
edges), so there is no Python per node. Semirings:

- "sum": log-sum-product (log-likelihood, log WMC with literal weights);
- "max": max-product (MPE; `node_mpe` then walks down the argmax edges);
- "count": exact integers (object arrays), for model counting.

Input node values: categorical parameters at the observed value, their sum
where the variable is missing (their max under "max"), or with soft evidence
(literal weights [B, V, K]) sum_c params[c] * soft[v, c] (max_c under "max").
"""

from __future__ import annotations

import numpy as np

from pccompiler.errors import DataError
from pccompiler.ir import pcir
from pccompiler.ir.nodes import INPUT, PRODUCT, SUM, NodeArrays, node_arrays
from pccompiler.passes.helpers.node_levels import edges_of, node_levels


class NodeView:
    """A node-form Model decoded once: arrays, levels and per-level node lists."""

    def __init__(self, model: pcir.Model):
        self.model = model
        self.a = node_arrays(model)
        self.num_vars = len(model.variables)
        self.root = int(self.a.roots[0])
        level = node_levels(self.a)
        order = np.argsort(level, kind="stable")
        cuts = np.searchsorted(level[order], np.arange(int(level.max()) + 2))
        self.levels = [order[cuts[i]:cuts[i + 1]] for i in range(len(cuts) - 1)]
        self.inputs = np.flatnonzero(self.a.kind == INPUT)
        sums = self.a.kind == SUM
        fan = self.a.fan_in()
        self.weight_start = np.zeros(self.a.num_nodes, dtype=np.int64)
        self.weight_start[sums] = np.cumsum(fan[sums]) - fan[sums]


def _log(x):
    with np.errstate(divide="ignore"):
        return np.log(x)


def _input_values(v: NodeView, x, missing, soft, mode: str) -> np.ndarray:
    """[B, I] input node values (log, or linear integers under "count")."""
    a = v.a
    var = a.input_vars.astype(np.int64)
    params = a.input_params.astype(np.float64)
    if mode == "count":
        if not np.array_equal(params, np.round(params)):
            raise DataError("model_count: the input parameters are not integers (indicators)")
        params = np.round(params).astype(np.int64).astype(object)
    if soft is not None:
        w = params[None, :, :] * soft[:, var, :]                          # [B, I, K]
        out = w.max(axis=2) if mode == "max" else w.sum(axis=2)
        return out if mode == "count" else _log(out)
    cats = np.clip(np.asarray(x, dtype=np.int64)[:, var], 0, params.shape[1] - 1)
    observed = params[np.arange(len(var))[None, :], cats]               # [B, I]
    free = params.max(axis=1) if mode == "max" else params.sum(axis=1)
    out = np.where(np.asarray(missing, dtype=bool)[:, var], free[None, :], observed)
    return out if mode == "count" else _log(out.astype(np.float64))


def upward(v: NodeView, x=None, missing=None, mode: str = "sum", soft=None) -> np.ndarray:
    """[B, N] value of every node: log under "sum"/"max", exact ints under "count"."""
    a = v.a
    leaf = _input_values(v, x, missing, soft, mode)
    rows = len(leaf)
    values = np.zeros((rows, a.num_nodes), dtype=object if mode == "count" else np.float64)
    values[:, v.inputs] = leaf
    logw = a.sum_weights.astype(np.float64)
    if mode == "count":
        if not np.array_equal(logw, np.round(logw)):
            raise DataError("model_count: the sum weights are not integers (a logic circuit "
                            "has weight 1 on every edge)")
        lin = np.round(logw).astype(np.int64).astype(object)
    else:
        logw = _log(logw)
    for nodes in v.levels[1:]:
        for kind in (PRODUCT, SUM):
            sel = nodes[a.kind[nodes] == kind]
            if not len(sel):
                continue
            e, seg = edges_of(a, sel)
            cv = values[:, a.child_ids[e]]
            if kind == SUM:
                w = np.repeat(v.weight_start[sel], np.diff(np.r_[seg, len(e)])) + \
                    np.arange(len(e)) - np.repeat(seg, np.diff(np.r_[seg, len(e)]))
                values[:, sel] = _sum_reduce(cv, lin[w] if mode == "count" else logw[w], seg,
                                             mode)
            elif mode == "count":
                values[:, sel] = np.multiply.reduceat(cv, seg, axis=1)
            else:
                values[:, sel] = np.add.reduceat(cv, seg, axis=1)
    return values


def _sum_reduce(cv: np.ndarray, w: np.ndarray, seg: np.ndarray, mode: str) -> np.ndarray:
    if mode == "count":
        return np.add.reduceat(cv * w[None, :], seg, axis=1)
    s = cv + w[None, :]
    top = np.maximum.reduceat(s, seg, axis=1)
    if mode == "max":
        return top
    safe = np.where(np.isfinite(top), top, 0.0)
    fan = np.diff(np.r_[seg, s.shape[1]])
    with np.errstate(divide="ignore"):
        return safe + np.log(np.add.reduceat(np.exp(s - np.repeat(safe, fan, axis=1)), seg,
                                             axis=1))


def top_down(v: NodeView, values: np.ndarray, x=None, missing=None, soft=None,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """int64 [B, V] by walking down from the root: a reached product reaches
    all its children, a reached sum the child of best score log w_k +
    values[child] (plus Gumbel noise when `rng` is given: a sample of the
    posterior edge; without it the argmax, ties to the first child: MPE of
    max-product `values`). A reached input writes its variable where it is
    missing: its mode (argmax of params x soft evidence) or a draw."""
    a = v.a
    rows = len(values)
    reached = np.zeros((rows, a.num_nodes), dtype=bool)
    reached[:, v.root] = True
    logw = _log(a.sum_weights.astype(np.float64))
    for nodes in reversed(v.levels[1:]):
        for kind in (PRODUCT, SUM):
            sel = nodes[a.kind[nodes] == kind]
            if len(sel):
                _reach(v, sel, kind, values, logw, reached, rng)
    out = np.zeros((rows, v.num_vars), dtype=np.int64)
    if x is not None:
        out[:] = np.asarray(x, dtype=np.int64)
    params = a.input_params.astype(np.float64)
    var = a.input_vars.astype(np.int64)
    rr, ii = np.nonzero(reached[:, v.inputs])
    if missing is not None:
        keep = np.asarray(missing, dtype=bool)[rr, var[ii]]
        rr, ii = rr[keep], ii[keep]
    score = params[ii] * (soft[rr, var[ii], :] if soft is not None else 1.0)   # [R, K]
    if rng is None:
        pick = score.argmax(axis=1)
    else:
        cum = np.cumsum(score, axis=1)
        u = rng.random(len(ii)) * cum[:, -1]
        pick = np.minimum((cum <= u[:, None]).sum(axis=1), score.shape[1] - 1)
    out[rr, var[ii]] = pick
    return out


def _reach(v: NodeView, sel: np.ndarray, kind: int, values: np.ndarray, logw: np.ndarray,
           reached: np.ndarray, rng) -> None:
    """Mark the children that reached nodes `sel` (one kind, one level) reach."""
    a = v.a
    e, seg = edges_of(a, sel)
    fan = np.diff(np.r_[seg, len(e)])
    parent = np.repeat(sel, fan)
    kids = a.child_ids[e]
    if kind == PRODUCT:
        rr, ee = np.nonzero(reached[:, parent])
        reached[rr, kids[ee]] = True
        return
    w = np.repeat(v.weight_start[sel] - seg, fan) + np.arange(len(e))
    s = values[:, kids] + logw[w][None, :]
    if rng is not None:
        s = s + rng.gumbel(size=s.shape)
    best = np.maximum.reduceat(s, seg, axis=1)
    hit = s == np.repeat(best, fan, axis=1)
    first = np.minimum.reduceat(np.where(hit, np.arange(len(e))[None, :], len(e)), seg, axis=1)
    rows = len(values)
    pick = np.zeros((rows, len(e)), dtype=bool)
    pick[np.repeat(np.arange(rows), len(sel)), first.ravel()] = True
    rr, ee = np.nonzero(pick & reached[:, parent])
    reached[rr, kids[ee]] = True
