"""The expected EM update, from first principles, in float64 numpy.

Node values come from the reference interpreter (`log_prob_groups`); flows
are propagated here group by group over the Model itself (not the Layout):

    flow(root) = 1;  flow(child) += flow(parent) * w * exp(v(child) - v(parent))
    stat(edge) = sum over the batch of flow(parent) * w * exp(v(child) - v(parent))

and the update is the one documented in backends/engine.py (`em_update`):
new = (stat + pseudocount / fan) / (total + pseudocount), blended with the
old parameters by the step size, where fan counts the node's edges of
non-zero weight and an edge of weight 0 stays 0; tied groups add their statistics into their
owner's tensor.
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.backends.reference import log_prob_groups, prepare_data
from pccompiler.ir.model_view import ModelView, sum_edge_list
from pccompiler.ir import pcir


def _param_tensor(model: pcir.Model, gid: int) -> str:
    owner = model.groups[ir.tie_targets(model).get(gid, gid)]
    return owner.input.params if owner.kind == pcir.INPUT else owner.sum.weights


def em_expected(model: pcir.Model, x: np.ndarray, missing: np.ndarray | None,
                step_size: float, pseudocount: float, min_std: float = 1e-3
                ) -> dict[str, np.ndarray]:
    """Parameter tensors (by name) after one EM step on (x, missing)."""
    view = ModelView(model)
    table = ir.tensor_table(model)
    values = log_prob_groups(view, x, missing)
    xf, miss = prepare_data(view, x, missing)
    B = xf.shape[0]
    flows = [np.zeros((B, g.num_nodes)) for g in view.groups]
    flows[view.root][:, 0] = 1.0
    stats: dict[str, np.ndarray] = {}
    node_stats: dict[str, np.ndarray] = {}   # per input row: total flow
    edge_parents: dict[str, np.ndarray] = {}
    for g, msg in zip(reversed(view.groups), reversed(model.groups)):
        f = flows[g.id]
        if g.kind == pcir.PRODUCT:
            for j, c in enumerate(g.children):
                np.add.at(flows[c], (slice(None), g.index[:, j]), f)
        elif g.kind == pcir.SUM:
            name = _param_tensor(model, g.id)
            sizes = [view.groups[c].num_nodes for c in g.children]
            weights = np.asarray(table[name], dtype=np.float64)
            parents, cols, w = sum_edge_list(msg, table, weights, sizes)
            child_vals = np.concatenate([values[c] for c in g.children], axis=1)
            pv = values[g.id][:, parents]
            with np.errstate(divide="ignore", invalid="ignore"):
                edge_flow = np.where(f[:, parents] > 0,
                                     f[:, parents] * w[None, :] * np.exp(child_vals[:, cols] - pv), 0.0)
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            for j, c in enumerate(g.children):
                sel = (cols >= offsets[j]) & (cols < offsets[j + 1])
                np.add.at(flows[c], (slice(None), cols[sel] - offsets[j]), edge_flow[:, sel])
            stats[name] = stats.get(name, 0.0) + edge_flow.sum(0)
            edge_parents[name] = parents
        else:
            name = _param_tensor(model, g.id)
            params = g.params
            xv, mv = xf[:, g.var], miss[:, g.var]
            obs_f = np.where(mv[:, None], 0.0, f)           # [B, N]
            miss_f = np.where(mv[:, None], f, 0.0).sum(0)    # [N]
            if g.dist == pcir.CATEGORICAL_DIST:
                s = np.zeros_like(params)
                cats = xv.astype(np.int64)
                for c in range(params.shape[1]):
                    s[:, c] += obs_f[cats == c].sum(0)
                s += miss_f[:, None] * params
            elif g.dist == pcir.BERNOULLI_DIST:
                s = ((obs_f * (xv[:, None] == 1)).sum(0) + miss_f * params[:, 0])[:, None]
            else:
                mean, std = params[:, 0], params[:, 1]
                sx = (obs_f * xv[:, None]).sum(0) + miss_f * mean
                sxx = (obs_f * xv[:, None] ** 2).sum(0) + miss_f * (mean ** 2 + std ** 2)
                s = np.stack([sx, sxx], 1)
            stats[name] = stats.get(name, 0.0) + s
            node_stats[name] = node_stats.get(name, 0.0) + f.sum(0)

    out = {}
    for g in model.groups:
        name = g.sum.weights if g.kind == pcir.SUM else g.input.params if g.kind == pcir.INPUT else ""
        if not name:
            continue
        old = np.asarray(table[name], dtype=np.float64)
        if g.kind == pcir.SUM:
            s, parents = stats[name], edge_parents[name]
            total = np.bincount(parents, weights=s, minlength=g.num_nodes)[parents]
            live = old.reshape(-1) != 0        # a zero-weight edge (block padding) stays 0
            fan = np.bincount(parents, weights=live.astype(np.float64),
                              minlength=g.num_nodes)[parents]
            new = (s + pseudocount / np.maximum(fan, 1)) / (total + pseudocount)
            new = np.where((total + pseudocount > 0) & (fan > 0), new, old.reshape(-1))
            new = np.where(live, new, 0.0).reshape(old.shape)
        elif g.input.dist == pcir.CATEGORICAL_DIST:
            s = stats[name]
            total = s.sum(1, keepdims=True)
            new = (s + pseudocount / s.shape[1]) / (total + pseudocount)
        elif g.input.dist == pcir.BERNOULLI_DIST:
            total = node_stats[name][:, None]
            new = (stats[name] + pseudocount / 2) / (total + pseudocount)
            new = new.reshape(old.shape)
        else:
            total = node_stats[name]
            m0, s0 = old[:, 0], old[:, 1]
            mean = (stats[name][:, 0] + pseudocount * m0) / (total + pseudocount)
            ex2 = (stats[name][:, 1] + pseudocount * (m0 ** 2 + s0 ** 2)) / (total + pseudocount)
            std = np.sqrt(np.maximum(ex2 - mean ** 2, min_std ** 2))
            new = np.stack([mean, std], 1)
        out[name] = (1 - step_size) * old + step_size * new
    return out
