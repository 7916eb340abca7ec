"""`from_nnf(path)`: a d-DNNF in the c2d / d4 `.nnf` text format as a
logic-circuit pcir.Model (the same mapping as `sdd.py`: indicator inputs,
sums with weight 1, metadata semantics=logic).

Format: `nnf V E N` (nodes, edges, variables), then one node per line, in
order (children before parents, ids = line order from 0): `L lit`,
`A k c1..ck` (AND; `A 0` is true), `O j k c1..ck` (OR deciding variable j,
0 if none; `O 0 0` is false). The root is the last node.

There is no vtree, so nodes are grouped by (level, kind, scope): levels are
computed round by round (Kahn's order, vectorised within a round), scopes
are bitsets ORed over the children. Constants fold (an AND with a false
child is false, true children drop; an OR's false children drop), ANDs and
ORs with one child are aliased to it, equal ANDs of one group merge. An AND
whose children share a variable is refused (not decomposable), naming the
node's line. Smoothing happens here, as in sdd.py: a child of an OR missing
variables D is multiplied by the tautology nodes (x_v or not x_v) of D; a
true child of an OR is the tautology of the OR's scope.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.frontend.logic_groups import TAUT, GroupSink
from pccompiler.frontend.logic_text import Records, column, read_records
from pccompiler.ir.nodes import concat_ranges

pcir = ir.pcir
_POP = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
_NONE, _TRUE, _FALSE = 0, 1, 2


def _parse(rec: Records, path: str):
    if len(rec.header_ints) != 3:
        raise LoadError(f"{path}:{rec.header_line}: expected 'nnf NODES EDGES VARIABLES'")
    n_nodes, _, n_vars = (int(v) for v in rec.header_ints)
    if len(rec.keys) != n_nodes:
        raise LoadError(f"{path}:{rec.header_line}: the header says {n_nodes} nodes, "
                        f"the file has {len(rec.keys)}")
    is_a, is_o = rec.keys == ord("A"), rec.keys == ord("O")
    skip = np.where(is_a, 1, np.where(is_o, 2, 1))
    short = rec.counts < skip
    if short.any():
        raise rec.fail(int(np.argmax(short)), "a record is missing its child count")
    k = np.where(is_a | is_o, rec.ints[np.minimum(rec.starts + skip - 1, len(rec.ints) - 1)], 0)
    bad = rec.counts != np.where(is_a | is_o, skip + k, 1)
    if bad.any():
        r = int(np.argmax(bad))
        raise rec.fail(r, f"the record has {int(rec.counts[r])} integers, its child count "
                          f"says {int(skip[r] + k[r]) if is_a[r] or is_o[r] else 1}")
    owner = np.repeat(np.arange(n_nodes), k)
    child = rec.ints[concat_ranges(rec.starts + skip, k)]
    bad = (child < 0) | (child >= owner)
    if bad.any():
        e = int(np.argmax(bad))
        raise rec.fail(int(owner[e]), f"child {int(child[e])} is not a node of an earlier line")
    lsel = np.flatnonzero(rec.keys == ord("L"))
    lit = np.zeros(n_nodes, dtype=np.int64)
    lit[lsel] = column(rec, lsel, 0)
    bad = (lit[lsel] == 0) | (np.abs(lit[lsel]) > n_vars)
    if bad.any():
        raise rec.fail(int(lsel[np.argmax(bad)]), f"literal {int(lit[lsel][np.argmax(bad)])} is "
                                                  f"not in +-1..{n_vars}")
    return n_vars, is_a, is_o, lit, owner, child, k


def _levels(n: int, owner: np.ndarray, child: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Longest path from a leaf, round by round (Kahn's algorithm)."""
    by_child = np.argsort(child, kind="stable")
    cstart = np.searchsorted(child[by_child], np.arange(n + 1))
    left, level = k.copy(), np.zeros(n, dtype=np.int64)
    ready, r = np.flatnonzero(k == 0), 0
    while len(ready):
        level[ready] = r
        lens = cstart[ready + 1] - cstart[ready]
        e = by_child[concat_ranges(cstart[ready], lens)]
        parents, drop = np.unique(owner[e], return_counts=True)
        left[parents] -= drop
        ready, r = parents[left[parents] == 0], r + 1
    return level


def from_nnf(path: str | Path, name: str = "") -> pcir.Model:
    """Import a d-DNNF (.nnf, c2d / d4 format)."""
    path = Path(path)
    rec = read_records(path, "nnf", b"LAO")
    n_vars, is_a, is_o, lit, owner, child, k = _parse(rec, str(path))
    n = len(is_a)
    level = _levels(n, owner, child, k)
    return _Builder(rec, n_vars, is_a, is_o, lit, owner, child, level).build(
        name or path.stem)


class _Builder:
    """Folds constants, computes scopes and emits groups, level by level."""

    def __init__(self, rec, n_vars, is_a, is_o, lit, owner, child, level):
        self.rec, self.n_vars = rec, n_vars
        self.is_a, self.is_o, self.lit = is_a, is_o, lit
        order = np.lexsort((child, owner))
        self.owner, self.child = owner[order], child[order]
        n = len(is_a)
        self.estart = np.searchsorted(self.owner, np.arange(n + 1))
        self.level = level
        self.const = np.full(n, _NONE)
        self.const[is_a & (np.diff(self.estart) == 0)] = _TRUE
        self.const[is_o & (np.diff(self.estart) == 0)] = _FALSE
        self.scope = np.zeros((n, (n_vars + 7) // 8), dtype=np.uint8)
        ls = np.flatnonzero(lit != 0)
        v = np.abs(lit[ls]) - 1
        self.scope[ls, v // 8] = (1 << (7 - v % 8)).astype(np.uint8)
        self.group = np.full(n, -1)
        self.idx = np.full(n, -1)
        self.sink = GroupSink()

    # ------------------------------------------------------------ helpers
    def _vars(self, row: np.ndarray) -> list[int]:
        return [int(v) for v in np.flatnonzero(np.unpackbits(row)[:self.n_vars])]

    def _edges(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lens = self.estart[nodes + 1] - self.estart[nodes]
        e = concat_ranges(self.estart[nodes], lens)
        return self.owner[e], self.child[e]

    # ------------------------------------------------------------ levels
    def _fold(self, nodes: np.ndarray) -> None:
        """Constants and scopes of one level's nodes (children are done)."""
        own, ch = self._edges(nodes)
        cc = self.const[ch]
        n = len(self.const)
        any_false = np.bincount(own, cc == _FALSE, minlength=n) > 0
        live = np.bincount(own, cc == _NONE, minlength=n)
        any_true = np.bincount(own, cc == _TRUE, minlength=n) > 0
        a, o = nodes[self.is_a[nodes]], nodes[self.is_o[nodes]]
        self.const[a[any_false[a]]] = _FALSE
        self.const[a[~any_false[a] & (live[a] == 0)]] = _TRUE
        self.const[o[(live[o] == 0) & any_true[o]]] = _TRUE
        self.const[o[(live[o] == 0) & ~any_true[o]]] = _FALSE
        alive = cc == _NONE                      # constants have no scope
        np.bitwise_or.at(self.scope, own[alive], self.scope[ch[alive]])
        bits = _POP[self.scope[ch]].sum(axis=1) * alive
        a_edges = self.is_a[own] & (self.const[own] == _NONE)
        total = np.bincount(own[a_edges], bits[a_edges], minlength=n)
        bad = a[(self.const[a] == _NONE) & (total[a] != _POP[self.scope[a]].sum(axis=1))]
        if len(bad):
            raise self.rec.fail(int(bad[0]), f"node {int(bad[0])}: the children of this AND "
                                             "share a variable (the circuit is not decomposable)")

    def _ands(self, nodes: np.ndarray) -> None:
        own, ch = self._edges(nodes)
        live = self.const[ch] == _NONE
        own, ch = own[live], ch[live]
        cg, ci = self.group[ch], self.idx[ch]
        order = np.lexsort((cg, own))
        own, cg, ci = own[order], cg[order], ci[order]
        first = np.searchsorted(own, nodes)
        arity = np.searchsorted(own, nodes, side="right") - first
        single = arity == 1
        self.group[nodes[single]], self.idx[nodes[single]] = cg[first[single]], ci[first[single]]
        multi = nodes[~single]
        if not len(multi):
            return
        num_groups = len(self.sink.groups)
        rand = np.random.default_rng(num_groups).integers(1, 2 ** 62, size=num_groups)
        sel = np.isin(own, multi)
        key = np.zeros(len(self.const), dtype=np.uint64)
        np.add.at(key, own[sel], rand[cg[sel]].astype(np.uint64))
        keys, which = np.unique(key[multi], return_inverse=True)
        by_key = np.argsort(which.reshape(-1), kind="stable")
        kb = np.searchsorted(which.reshape(-1)[by_key], np.arange(len(keys) + 1))
        for j in range(len(keys)):
            members = multi[by_key[kb[j]:kb[j + 1]]]
            at = np.searchsorted(nodes, members)
            m_first, m_arity = first[at], int(arity[at[0]])
            cols = m_first[:, None] + np.arange(m_arity)
            groups_of = cg[cols]
            if (groups_of != groups_of[0]).any():
                raise LoadError(f"{self.rec.path}: internal: AND grouping collision")
            rows, inv = np.unique(ci[cols], axis=0, return_inverse=True)
            gid = self.sink.product(groups_of[0], rows, self._vars(self.scope[members[0]]),
                                f"and level {int(self.level[members[0]])}")
            self.group[members], self.idx[members] = gid, inv.reshape(-1)

    def _ors(self, nodes: np.ndarray) -> None:
        own, ch = self._edges(nodes)
        cc = self.const[ch]
        n = len(self.const)
        has_true = np.bincount(own, cc == _TRUE, minlength=n) > 0
        live = cc == _NONE
        own, ch = own[live], ch[live]
        count = np.bincount(own, minlength=n)
        single = nodes[(count[nodes] == 1) & ~has_true[nodes]]
        pos = np.searchsorted(own, single)
        self.group[single], self.idx[single] = self.group[ch[pos]], self.idx[ch[pos]]
        rest = nodes[~np.isin(nodes, single)]
        if not len(rest):
            return
        sid_rows, sid = np.unique(self.scope[rest], axis=0, return_inverse=True)
        sid = sid.reshape(-1)
        by_sid = np.argsort(sid, kind="stable")
        sb = np.searchsorted(sid[by_sid], np.arange(len(sid_rows) + 1))
        node_sid = np.full(len(self.const), -1)
        node_sid[rest] = sid
        esid = node_sid[own]
        by_e = np.argsort(esid, kind="stable")
        eb = np.searchsorted(esid[by_e], np.arange(len(sid_rows) + 1))
        for j in range(len(sid_rows)):
            members = rest[by_sid[sb[j]:sb[j + 1]]]
            scope = self._vars(sid_rows[j])
            sel = by_e[eb[j]:eb[j + 1]]
            par = np.searchsorted(members, own[sel])
            cg, ci = self.group[ch[sel]], self.idx[ch[sel]]
            children, cols, offset = [], np.zeros(len(par), dtype=np.int64), 0
            for g in np.unique(cg):
                m = cg == g
                gscope = list(self.sink.groups[g].scope)
                if gscope == scope:
                    children.append(int(g))
                    cols[m] = offset + ci[m]
                    offset += self.sink.groups[g].num_nodes
                    continue
                missing = sorted(set(scope) - set(gscope))
                uniq, inv = np.unique(ci[m], return_inverse=True)
                index = np.concatenate([uniq[:, None], np.full((len(uniq), len(missing)), TAUT)], 1)
                gid = self.sink.product([g, *(self.leaf[v] for v in missing)], index, scope,
                                        "smooth")
                children.append(gid)
                cols[m] = offset + inv.reshape(-1)
                offset += len(uniq)
            tmem = np.flatnonzero(has_true[members])
            if len(tmem):
                gid = self.sink.product([self.leaf[v] for v in scope], [[TAUT] * len(scope)],
                                        scope, "true")
                children.append(gid)
                par = np.r_[par, tmem]
                cols = np.r_[cols, np.full(len(tmem), offset)]
            gid = self.sink.sum(children, len(members), scope, par, cols,
                                f"or level {int(self.level[members[0]])}")
            self.group[members], self.idx[members] = gid, np.arange(len(members))

    # ------------------------------------------------------------ build
    def build(self, name: str) -> pcir.Model:
        self.leaf = [self.sink.literals(v) for v in range(self.n_vars)]
        ls = np.flatnonzero(self.lit != 0)
        self.group[ls] = np.array(self.leaf, dtype=np.int64)[np.abs(self.lit[ls]) - 1]
        self.idx[ls] = (self.lit[ls] > 0).astype(np.int64)
        order = np.argsort(self.level, kind="stable")
        bounds = np.searchsorted(self.level[order], np.arange(int(self.level.max()) + 2))
        for r in range(1, len(bounds) - 1):
            nodes = np.sort(order[bounds[r]:bounds[r + 1]])
            self._fold(nodes)
            live = nodes[self.const[nodes] == _NONE]
            self._ands(live[self.is_a[live]])
            self._ors(live[self.is_o[live]])
        root = len(self.const) - 1
        if self.const[root] == _FALSE:
            raise LoadError(f"{self.rec.path}: the circuit is false (unsatisfiable): "
                            "nothing to import")
        if self.const[root] == _TRUE:
            kids, index = [], []
            have = []
        else:
            kids, index = [int(self.group[root])], [int(self.idx[root])]
            have = list(self.sink.groups[self.group[root]].scope)
        missing = sorted(set(range(self.n_vars)) - set(have))
        gid = self.sink.product([*kids, *(self.leaf[v] for v in missing)],
                                [[*index, *([TAUT] * len(missing))]], range(self.n_vars), "root")
        return self.sink.model(self.n_vars, gid, name, "nnf")
