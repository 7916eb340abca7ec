"""A vectorised screen of the Model checker's per-group rules.

`ir.check` used to run every group's rules one group at a time: about
70 us of small numpy calls per group, 0.13 s for a 1,896-group HCLT, most
of `pccompiler.load`'s host time. The screen reads every group's fields in
one pass into flat arrays (kinds, sizes, scopes and children as CSR,
tensor dtypes and shapes) and evaluates each rule with a few numpy
expressions over all groups at once; tensor values are concatenated in
batches of at most BATCH_BYTES so small groups share one numpy call and a
big group is never copied.

It only *screens*: `screen_groups` returns a per-group mask that is False
only where every per-group rule provably holds. The checker then runs the
exact per-group rules of ir/checker.py on the flagged groups, so the error
messages (group, rule, wording) and their order are those rules', and a
screen that flags a valid group costs time, never correctness. Comparisons
of float sums use a slack (SUM_SLACK) towards flagging, so a different
summation order can never pass a group the exact rule would refuse.

Screened: header rules, input groups, product groups and dense sum groups.
Block-sparse and sparse sum groups are always flagged (their exact rules
run as before).
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np

from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.nodes import concat_ranges
from pccompiler.ir.tensors import FLOAT_DTYPES, INT_DTYPES, from_checked_bytes

# Bytes of tensor values concatenated per numpy call (cache-sized), and
# the size from which a tensor is checked on its own, in place.
BATCH_BYTES = 4 << 20
SOLO_BYTES = 256 << 10
# Slack towards flagging when a float sum is compared with a tolerance.
SUM_SLACK = 1e-9

_FLOAT_CODES = np.array(sorted(FLOAT_DTYPES), dtype=np.int64)
_INT_CODES = np.array(sorted(INT_DTYPES), dtype=np.int64)
_MAX_DIMS = 3
_DECODABLE = (FLOAT_DTYPES | INT_DTYPES) - {pcir.BFLOAT16}


class _Groups:
    """The fields of every group as flat arrays (one Python pass)."""

    def __init__(self, model: pcir.Model):
        count = len(model.groups)
        kinds, ids, nodes, slens, scopes = [], [], [], [], []
        clens, children, names = [], [], []
        var, dist, pattern = [0] * count, [0] * count, [0] * count
        for i, g in enumerate(model.groups):
            kind = g.kind
            kinds.append(kind)
            ids.append(g.id)
            nodes.append(g.num_nodes)
            scope = g.scope
            slens.append(len(scope))
            scopes.append(scope)
            kids, name = (), ""
            if kind == pcir.INPUT:
                inp = g.input
                name, var[i], dist[i] = inp.params, inp.variable, inp.dist
            elif kind == pcir.PRODUCT:
                part = g.product
                kids, name = part.children, part.child_index
            elif kind == pcir.SUM:
                part = g.sum
                kids, name, pattern[i] = part.children, part.weights, part.pattern
            clens.append(len(kids))
            children.append(kids)
            names.append(name)
        i64 = np.int64
        self.count = len(kinds)
        self.kind = np.array(kinds, dtype=i64)
        self.id = np.array(ids, dtype=i64)
        self.nodes = np.array(nodes, dtype=i64)
        self.var = np.array(var, dtype=i64)
        self.dist = np.array(dist, dtype=i64)
        self.pattern = np.array(pattern, dtype=i64)
        self.scope_len = np.array(slens, dtype=i64)
        self.scope_off = np.concatenate([[0], np.cumsum(self.scope_len)]).astype(i64)
        self.scope = np.fromiter(itertools.chain.from_iterable(scopes), dtype=i64,
                                 count=int(self.scope_off[-1]))
        self.child_len = np.array(clens, dtype=i64)
        self.child_off = np.concatenate([[0], np.cumsum(self.child_len)]).astype(i64)
        self.children = np.fromiter(itertools.chain.from_iterable(children), dtype=i64,
                                    count=int(self.child_off[-1]))
        self.child_group = np.repeat(np.arange(self.count, dtype=i64), self.child_len)
        self.names = names


def _flag(bad: np.ndarray, groups: np.ndarray, mask: np.ndarray) -> None:
    """bad[groups[mask]] = True."""
    bad[groups[mask]] = True


def _header(gs: _Groups, num_vars: int, bad: np.ndarray) -> None:
    """group-id, group-kind, num-nodes, scope, children, topological-order."""
    from pccompiler.ir.checker import MAX_NODES
    bad |= gs.id != np.arange(gs.count)
    bad |= ~np.isin(gs.kind, (pcir.INPUT, pcir.PRODUCT, pcir.SUM))
    bad |= (gs.nodes < 1) | (gs.nodes >= MAX_NODES)
    bad |= gs.scope_len == 0
    owner = np.repeat(np.arange(gs.count), gs.scope_len)
    same = owner[1:] == owner[:-1]
    _flag(bad, owner[1:], same & (gs.scope[1:] <= gs.scope[:-1]))
    has = gs.scope_len > 0
    first = gs.scope[gs.scope_off[:-1][has]]
    last = gs.scope[gs.scope_off[1:][has] - 1]
    _flag(bad, np.flatnonzero(has), (first < 0) | (last >= num_vars))
    bad |= (gs.kind != pcir.INPUT) & (gs.child_len == 0)
    _flag(bad, gs.child_group, (gs.children < 0) | (gs.children >= gs.id[gs.child_group]))


def _scope_rows(gs: _Groups, groups: np.ndarray) -> np.ndarray:
    return gs.scope[concat_ranges(gs.scope_off[groups], gs.scope_len[groups])]


def _decomposable(gs: _Groups, num_vars: int, products: np.ndarray, bad: np.ndarray) -> None:
    """The children's scopes are disjoint and their union is the scope."""
    entries = np.flatnonzero(np.isin(gs.child_group, products))
    kids = gs.children[entries]
    parent = np.repeat(gs.child_group[entries], gs.scope_len[kids])
    span = np.int64(num_vars + 1)
    union = np.sort(parent * span + _scope_rows(gs, kids))
    _flag(bad, union[1:] // span, union[1:] == union[:-1])
    own = np.repeat(products, gs.scope_len[products]) * span + _scope_rows(gs, products)
    if not np.array_equal(union, own):
        bad[np.setxor1d(union, own) // span] = True


def _smooth(gs: _Groups, sums: np.ndarray, bad: np.ndarray) -> None:
    """Every child of a sum group has the group's scope."""
    entries = np.flatnonzero(np.isin(gs.child_group, sums))
    parent, kids = gs.child_group[entries], gs.children[entries]
    differ = gs.scope_len[kids] != gs.scope_len[parent]
    _flag(bad, parent, differ)
    parent, kids = parent[~differ], kids[~differ]
    mismatch = _scope_rows(gs, kids) != _scope_rows(gs, parent)
    _flag(bad, np.repeat(parent, gs.scope_len[parent]), mismatch)


class _TensorInfo:
    """dtype, ndim and dims (padded with -1) of each group's tensor."""

    def __init__(self, gs: _Groups, shapes: dict[str, tuple], wanted: np.ndarray):
        count = gs.count
        self.shapes = shapes
        self.dtype = np.full(count, -1, dtype=np.int64)
        self.ndim = np.full(count, -1, dtype=np.int64)
        self.dims = np.full((count, _MAX_DIMS), -1, dtype=np.int64)
        for i in np.flatnonzero(wanted).tolist():
            entry = shapes.get(gs.names[i])
            if entry is None:
                continue
            dtype, dims = entry[0], entry[1]
            self.dtype[i] = dtype
            self.ndim[i] = len(dims)
            if len(dims) <= _MAX_DIMS:
                self.dims[i, :len(dims)] = dims

    def mismatch(self, groups: np.ndarray, codes: np.ndarray, shape: list[np.ndarray]) -> np.ndarray:
        """Per group of `groups`: the tensor is missing, of another dtype or shape."""
        bad = ~np.isin(self.dtype[groups], codes) | (self.ndim[groups] != len(shape))
        for axis, size in enumerate(shape):
            bad |= self.dims[groups, axis] != size
        return bad


def _fetch(table, shapes: dict[str, tuple], gs: _Groups, groups: np.ndarray,
           bad: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(group, array) of each group's tensor (whose dtype and dims the
    screen has checked), decoded once into the checker's table cache; a
    tensor numpy cannot hold (bfloat16) flags its group."""
    out = []
    cache, arrays = table.cache, table.arrays
    for g in groups.tolist():
        name = gs.names[g]
        array = cache.get(name)
        if array is None:
            dtype, dims, data = shapes[name]
            if data is None:
                array = np.asarray(arrays[name]).reshape(dims)
            elif dtype in _DECODABLE:
                array = from_checked_bytes(dtype, dims, data)
            else:
                bad[g] = True
                continue
            cache[name] = array
        out.append((g, array))
    return out


def _batches(items: list[tuple[int, np.ndarray]], test: Callable, bad: np.ndarray) -> None:
    """Run `test(groups, arrays) -> per-group bad mask` on runs of small
    items of at most BATCH_BYTES, and on each item of SOLO_BYTES or more
    alone (copying it into a batch would cost more than its numpy calls)."""
    run: list[tuple[int, np.ndarray]] = []
    size = 0

    def flush(run):
        if run:
            groups = np.array([g for g, _ in run], dtype=np.int64)
            _flag(bad, groups, test(groups, [a for _, a in run]))

    for item in items:
        if item[1].nbytes >= SOLO_BYTES:
            flush([item])
            continue
        run.append(item)
        size += item[1].nbytes
        if size >= BATCH_BYTES:
            flush(run)
            run, size = [], 0
    flush(run)


def _flat(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0].reshape(-1) if len(arrays) == 1 else \
        np.concatenate([a.reshape(-1) for a in arrays])


def _segment_any(mask: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per segment (consecutive runs of `lengths` entries): any True."""
    hits = np.flatnonzero(mask)
    out = np.zeros(len(lengths), dtype=bool)
    out[np.searchsorted(np.cumsum(lengths), hits, side="right")] = True
    return out


def _products(gs: _Groups, info: _TensorInfo, table, products: np.ndarray,
              bad: np.ndarray) -> None:
    """child_index tensors: dtype, [num_nodes, num_children] shape, range."""
    _flag(bad, products, info.mismatch(products, _INT_CODES,
                                       [gs.nodes[products], gs.child_len[products]]))
    ok = products[~bad[products]]
    items = _fetch(table, info.shapes, gs, ok, bad)

    def test(groups, arrays):
        index = _flat(arrays).astype(np.int64, copy=False)
        sizes = gs.nodes[groups] * gs.child_len[groups]
        owner = np.repeat(np.arange(len(groups)), sizes)
        local = np.arange(len(index)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        width = gs.child_len[groups][owner]
        limit = gs.nodes[gs.children[gs.child_off[groups][owner] + local % width]]
        return _segment_any((index < 0) | (index >= limit), sizes)
    _batches(items, test, bad)


def _rows_off_one(rows: np.ndarray) -> np.ndarray:
    """Per row of a 2-D array of non-negative values: may its float64 sum
    differ from 1 by more than NORMALIZATION_TOL (the exact rules' test)?
    A row with a non-finite value has a non-finite sum: flagged.

    float32 rows are summed in float32, 1.6x faster: numpy sums a
    contiguous row pairwise, with an error of at most about (26 + log2
    width) float32 units of the row's magnitude (<= 1 + tol wherever the
    answer matters); the slack covers (64 + log2 width) units, so a row is
    never cleared that the float64 test would refuse. Other dtypes are
    summed in float64."""
    from pccompiler.ir.checker import NORMALIZATION_TOL
    limit = NORMALIZATION_TOL - SUM_SLACK
    if rows.dtype == np.float32 and rows.flags.c_contiguous and rows.ndim == 2:
        limit -= (64 + np.log2(max(rows.shape[1], 2))) * 2.0 ** -24 * (1 + NORMALIZATION_TOL)
        sums = rows.sum(axis=1).astype(np.float64)
    else:
        sums = rows.sum(axis=1, dtype=np.float64)
    return ~(np.abs(sums - 1.0) <= limit)


def _dense_sums(gs: _Groups, info: _TensorInfo, table, sums: np.ndarray, logic: bool,
                bad: np.ndarray) -> None:
    """Untied dense sums: weights [num_nodes, child columns], values >= 0,
    finite, rows summing to 1 (unless a logic circuit). Groups of one
    width are batched as the rows of one 2-D array."""
    kid_nodes = gs.nodes[np.clip(gs.children, 0, max(gs.count - 1, 0))]
    cum = np.concatenate([[0], np.cumsum(kid_nodes)])
    cols = cum[gs.child_off[1:]] - cum[gs.child_off[:-1]]
    _flag(bad, sums, info.mismatch(sums, _FLOAT_CODES, [gs.nodes[sums], cols[sums]]))
    sums = sums[~bad[sums]]
    by_width: dict[int, list[int]] = {}
    for g, w in zip(sums.tolist(), cols[sums].tolist()):
        by_width.setdefault(w, []).append(g)

    def test(groups, arrays):
        rows = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
        flagged = np.zeros(len(rows), dtype=bool)
        # min and max make no temporaries; NaN propagates through min
        if not (rows.size == 0 or (rows.min() >= 0 and np.isfinite(rows.max()))):
            flagged = (~np.isfinite(rows) | (rows < 0)).any(axis=1)
        elif not logic:
            flagged = _rows_off_one(rows)
        return _segment_any(flagged, gs.nodes[groups])
    for members in by_width.values():
        _batches(_fetch(table, info.shapes, gs, np.array(members, dtype=np.int64), bad),
                 test, bad)


def _input_rows_flagged(rows: np.ndarray, dist: int) -> np.ndarray:
    """Rows that may break a value rule: two passes (a reduction and the
    row sums) when all is well, the checker's full per-row mask otherwise."""
    from pccompiler.ir.checker import _bad_input_rows
    if rows.size == 0:
        return np.zeros(len(rows), dtype=bool)
    if dist == pcir.CATEGORICAL_DIST:
        if not rows.min() >= 0:              # also NaN
            return _bad_input_rows(rows, dist)
        return _rows_off_one(rows)
    if dist == pcir.BERNOULLI_DIST and rows.min() >= 0 and rows.max() <= 1:
        return np.zeros(len(rows), dtype=bool)
    if dist == pcir.GAUSSIAN_DIST and np.isfinite(rows.min()) and np.isfinite(rows.max()) \
            and rows[:, 1].min() > 0:
        return np.zeros(len(rows), dtype=bool)
    return _bad_input_rows(rows, dist)


def _inputs(gs: _Groups, model: pcir.Model, info: _TensorInfo, table, inputs: np.ndarray,
            tied: np.ndarray, bad: np.ndarray) -> list[tuple[int, tuple[int, int]]]:
    """Input groups: scope [variable], a distribution the variable allows,
    params [num_nodes, width] (empty when tied) and their values. Returns
    the (group, (dist, width)) of each input group the checker batches."""
    from pccompiler.ir.checker import _BATCH_ROWS
    num_vars = len(model.variables)
    var = np.clip(gs.var[inputs], 0, max(num_vars - 1, 0))
    _flag(bad, inputs, (gs.scope_len[inputs] != 1) |
          (gs.scope[np.minimum(gs.scope_off[inputs], len(gs.scope) - 1)] != gs.var[inputs]))
    vkind = np.array([v.kind for v in model.variables], dtype=np.int64)[var] if num_vars \
        else np.zeros(len(inputs), np.int64)
    cats = np.array([v.num_cats for v in model.variables], dtype=np.int64)[var] if num_vars \
        else np.zeros(len(inputs), np.int64)
    dist = gs.dist[inputs]
    ok = np.where(dist == pcir.CATEGORICAL_DIST, np.isin(vkind, (pcir.CATEGORICAL, pcir.BINARY)),
                  np.where(dist == pcir.BERNOULLI_DIST,
                           (vkind == pcir.BINARY) | ((vkind == pcir.CATEGORICAL) & (cats == 2)),
                           (dist == pcir.GAUSSIAN_DIST) & (vkind == pcir.REAL)))
    _flag(bad, inputs, ~ok)
    width = np.where(dist == pcir.BERNOULLI_DIST, 1, np.where(dist == pcir.GAUSSIAN_DIST, 2, cats))
    named = np.array([bool(gs.names[g]) for g in inputs.tolist()], dtype=bool)
    _flag(bad, inputs, tied[inputs] & named)
    own = ~tied[inputs]
    groups, width = inputs[own], width[own]
    _flag(bad, groups, info.mismatch(groups, _FLOAT_CODES, [gs.nodes[groups], width]))
    keep = ~bad[groups]
    groups, width = groups[keep], width[keep]
    batched = [(g, (int(d), int(w))) for g, d, w in zip(
        groups.tolist(), gs.dist[groups].tolist(), width.tolist())
        if gs.nodes[g] <= _BATCH_ROWS]
    by_class: dict[tuple[int, int], list[int]] = {}
    for g, d, w in zip(groups.tolist(), gs.dist[groups].tolist(), width.tolist()):
        by_class.setdefault((d, w), []).append(g)
    for (d, _), members in by_class.items():
        items = _fetch(table, info.shapes, gs, np.array(members, dtype=np.int64), bad)

        def test(groups, arrays, d=d):
            rows = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
            return _segment_any(_input_rows_flagged(rows, d), gs.nodes[groups])
        _batches(items, test, bad)
    return batched


def screen_groups(model: pcir.Model, table, shapes: dict[str, tuple], ties: dict[int, int],
                  logic: bool) -> tuple[np.ndarray, list[tuple[int, tuple[int, int]]]]:
    """(flagged, batched): flagged[g] is False only when every per-group
    rule of ir/checker.py holds for group g; batched lists (group,
    (dist, width)) of the unflagged input groups the checker checks in
    batches (it needs their order to order its messages as before)."""
    gs = _Groups(model)
    bad = np.zeros(gs.count, dtype=bool)
    num_vars = len(model.variables)
    _header(gs, num_vars, bad)
    # A parent's rules read its children's sizes and scopes: a child that
    # breaks a header rule flags its parents too.
    kids = np.clip(gs.children, 0, max(gs.count - 1, 0))
    _flag(bad, gs.child_group, bad[kids] if gs.count else np.zeros(0, bool))
    # Later rules index by children and variables: only unflagged groups.
    tied = np.zeros(gs.count, dtype=bool)
    if ties:
        tied[np.fromiter(ties.keys(), dtype=np.int64, count=len(ties))] = True
    kind = np.where(bad, 0, gs.kind)
    products = np.flatnonzero(kind == pcir.PRODUCT)
    sums = np.flatnonzero(kind == pcir.SUM)
    inputs = np.flatnonzero(kind == pcir.INPUT)
    _decomposable(gs, num_vars, products, bad)
    _smooth(gs, sums, bad)
    _flag(bad, sums, gs.pattern[sums] != pcir.DENSE)
    named = np.array([bool(gs.names[g]) for g in sums.tolist()], dtype=bool)
    _flag(bad, sums, tied[sums] & named)
    wanted = np.zeros(gs.count, dtype=bool)
    wanted[products] = True
    wanted[sums] = ~tied[sums]
    wanted[inputs] = ~tied[inputs]
    info = _TensorInfo(gs, shapes, wanted & ~bad)
    _products(gs, info, table, products[~bad[products]], bad)
    dense = sums[~bad[sums] & ~tied[sums]]
    _dense_sums(gs, info, table, dense, logic, bad)
    batched = _inputs(gs, model, info, table, inputs[~bad[inputs]], tied, bad)
    return bad, [(g, key) for g, key in batched if not bad[g]]
