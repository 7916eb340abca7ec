"""A float64 numpy interpreter of a Layout (forward only).

It evaluates the buffers exactly as a backend does: values[num_slots, B]
with slot 0 = -inf and slot 1 = 0, the layers in order, each partition
reading slots and packed parameters through the Layout's index tensors.
Tests compare it with the reference evaluator of the Model to prove that
the passes (and packing) preserve the distribution; backends can compare
their buffers with `layout_values` slot by slot.
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.ir import pcir
from pccompiler.backends.common.packing import pack_parameters


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


def _input_values(p: pcir.InputPartition, table, input_params: np.ndarray, x: np.ndarray,
                  missing: np.ndarray | None) -> np.ndarray:
    n = int(p.num_nodes)
    var = np.asarray(table[p.node_vars], dtype=np.int64)
    start = np.asarray(table[p.node_param_starts], dtype=np.int64)
    xv = x[:, var].T                                   # [n, B]
    if p.dist == pcir.CATEGORICAL_DIST:
        idx = start[:, None] + np.clip(xv, 0, p.params_per_node - 1).astype(np.int64)
        out = _log(input_params[idx])
    elif p.dist == pcir.BERNOULLI_DIST:
        prob = input_params[start][:, None]
        out = np.where(xv.astype(np.int64) == 1, _log(prob), _log(1.0 - prob))
    elif p.dist == pcir.GAUSSIAN_DIST:
        mean, std = input_params[start][:, None], input_params[start + 1][:, None]
        z = (xv.astype(np.float64) - mean) / std
        out = -0.5 * z * z - np.log(std) - 0.5 * np.log(2 * np.pi)
    else:
        raise ValueError(f"unknown distribution {p.dist}")
    if missing is not None:
        out = np.where(missing[:, var].T, 0.0, out)
    assert out.shape == (n, x.shape[0])
    return out


def _sum_values(p: pcir.SumPartition, table, values: np.ndarray, sum_params: np.ndarray):
    nb, bs, km = int(p.num_blocks), int(p.block_size), int(p.max_children)
    slots = np.asarray(table[p.block_slots], dtype=np.int64)
    kids = np.asarray(table[p.block_num_children], dtype=np.int64)
    child = np.asarray(table[p.child_slots], dtype=np.int64).reshape(nb, km)
    starts = np.asarray(table[p.block_param_starts], dtype=np.int64)
    real = np.arange(km)[None, :] < kids[:, None]                        # [nb, K]
    widx = starts[:, None, None] + np.arange(km)[None, :, None] * bs + np.arange(bs)
    logw = np.where(real[:, :, None], _log(sum_params[np.where(real[:, :, None], widx, 0)]),
                    -np.inf)                                              # [nb, K, bs]
    terms = logw[:, :, :, None] + values[child][:, :, None, :]           # [nb, K, bs, B]
    top = terms.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.exp(terms - top).sum(axis=1)) + top[:, 0]       # [nb, bs, B]
    return (slots[:, None] + np.arange(bs)).ravel(), out.reshape(nb * bs, -1)


def layout_values(model: pcir.Model, layout: pcir.Layout, x: np.ndarray,
                  missing: np.ndarray | None = None, params=None) -> np.ndarray:
    """The whole value buffer [num_slots, B] (float64 log-values)."""
    table = ir.tensor_table(layout)
    sum_params, input_params = params if params is not None else pack_parameters(model, layout)
    x = np.asarray(x)
    missing = None if missing is None else np.asarray(missing, dtype=bool)
    values = np.zeros((int(layout.num_slots), x.shape[0]), dtype=np.float64)
    values[0] = -np.inf
    for layer in layout.layers:
        for p in layer.input_partitions:
            values[p.slot_start:p.slot_start + p.num_nodes] = _input_values(
                p, table, input_params, x, missing)
        for p in layer.product_partitions:
            child = np.asarray(table[p.child_slots], dtype=np.int64).reshape(
                int(p.num_nodes), int(p.num_children))
            values[p.slot_start:p.slot_start + p.num_nodes] = values[child].sum(axis=1)
        for p in layer.sum_partitions:
            slots, out = _sum_values(p, table, values, sum_params)
            values[slots] = out
    return values


def layout_log_prob(model: pcir.Model, layout: pcir.Layout, x: np.ndarray,
                    missing: np.ndarray | None = None) -> np.ndarray:
    """log p(x) [B] of the layout's root node, float64."""
    return layout_values(model, layout, x, missing)[int(layout.root_slot)]
