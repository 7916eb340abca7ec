"""The groups of an imported SDD, computed with whole-array numpy steps.

`build` turns the checked node arrays of sdd.py into the groups described
there (one sum group per vtree node, one product group per (prime vtree,
sub vtree) signature, smoothed with the siblings' tautologies). Files reach
10^6 nodes and 10^5 groups, so every per-node and per-element step is one
array operation over all vtree nodes at once (constant folding runs one
step per vtree level); the only Python loop left emits the protobuf groups,
each from slices of the precomputed arrays.
"""

from __future__ import annotations

import math

import numpy as np

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.frontend.logic_groups import TAUT, GroupSink
from pccompiler.frontend.logic_text import Records
from pccompiler.ir.nodes import CHUNK, chunk_bounds, concat_ranges, stable_argsort, stable_order

pcir = ir.pcir
F, T, L, D = 1, 2, 3, 4          # node kinds (sdd.py's codes)


def build(vt, rec: Records, kind: np.ndarray, home: np.ndarray, idx: np.ndarray,
          rec_of: np.ndarray, e_dec: np.ndarray, prime: np.ndarray, sub: np.ndarray,
          root: int, name: str, source: str) -> pcir.Model:
    """The logic-circuit Model of the SDD (see sdd.py for the mapping)."""
    nvt = len(vt.left)
    post = np.asarray(vt.post, dtype=np.int64)
    pos = np.empty(nvt, dtype=np.int64)
    pos[post] = np.arange(nvt)
    false = fold_false(vt, kind, home, e_dec, prime, sub)
    # Live decisions: index in S_w by node id; S_w's tautology comes last.
    dec = np.flatnonzero((kind == D) & ~false)
    dec = dec[np.argsort(home[dec], kind="stable")]
    nd = np.bincount(home[dec], minlength=nvt)
    idx[dec] = np.arange(len(dec)) - (np.cumsum(nd) - nd)[home[dec]]
    inner = vt.left >= 0
    taut = np.where(inner, nd, TAUT)
    el = _elements(vt, rec, kind, home, idx, taut, nd, pos, false, rec_of, e_dec, prime, sub)
    w, ph, sh, pi, si, par = el
    # Product rows: distinct (signature, prime index, sub index), sorted by
    # vtree position, signature, prime, sub. (ph, sh) fixes w (their lca).
    u, sig = unique_inverse(ph * nvt + sh)
    w_of = np.empty(len(u), dtype=np.int64)
    w_of[sig] = w
    by_rank = np.lexsort((u, pos[w_of]))
    rank = np.empty(len(u), dtype=np.int64)
    rank[by_rank] = np.arange(len(u))
    (sig_of_row, r_pi, r_si), row = unique_rows(rank[sig], pi, si)
    s_w, s_up, s_us = w_of[by_rank], u[by_rank] // nvt, u[by_rank] % nvt
    sig_first = _first(sig_of_row, len(u))
    s_rows = np.bincount(sig_of_row, minlength=len(u))
    # Column of an element in S_w: its row's rank among the rows of w.
    col = row - _first(s_w[sig_of_row], nvt)[w]
    # Sum edges: distinct (w, parent, column), sorted.
    (e_pos, e_par, e_col), _ = unique_rows(pos[w], par, col)
    e_w = post[e_pos]
    edges = np.stack([e_par, e_col], axis=1)
    # Smoothing: the siblings on the path from the prime's (sub's) vtree
    # node up to left(w) (right(w)), and each product's child_index matrix.
    lp, lp_n = sibling_paths(vt, s_up, vt.left[s_w])
    ls, ls_n = sibling_paths(vt, s_us, vt.right[s_w])
    width = 2 + lp_n + ls_n
    flat, r_off = child_index(taut, r_pi, r_si, sig_of_row, width, lp, lp_n, ls, ls_n)
    # Group ids: per vtree node in file order its products then its sum
    # (a leaf: its input group then its literal sum).
    nsig = np.bincount(s_w, minlength=nvt)
    count = np.where(inner, nsig + 1, 2)[post]
    gstart = np.zeros(nvt, dtype=np.int64)
    gstart[post] = np.cumsum(count) - count
    sgroup = gstart + np.where(inner, nsig, 1)
    return _emit(vt, post, inner, nd, taut, sgroup, gstart, nsig, s_w, s_up, s_us, s_rows,
                 width, flat, r_off, sig_first, lp, lp_n, ls, ls_n, e_w, edges, kind, home,
                 idx, false, root, name, source)


def fold_false(vt, kind, home, e_dec, prime, sub, live_out: list | None = None) -> np.ndarray:
    """False nodes: F, and decisions all of whose elements have a false prime
    or sub (decided one vtree level at a time, children's levels first).
    live_out: a list, given the elements' live mask ~(false[prime] |
    false[sub]) for the returned `false` (the node form's next step: no
    second pass of two gathers over the 10^7 elements)."""
    false = kind == F
    decs = np.flatnonzero(kind == D)
    live = ~(false[prime] | false[sub])
    if np.bincount(e_dec[live], minlength=len(kind))[decs].all():
        if live_out is not None:
            live_out.append(live)
        return false                    # every decision keeps an element: F stays alone
    height = np.zeros(len(vt.left), dtype=np.int64)
    for u in vt.post:
        if vt.left[u] >= 0:
            height[u] = 1 + max(height[vt.left[u]], height[vt.right[u]])
    levels = np.arange(int(height.max()) + 2)
    e_by, d_by = (np.argsort(height[home[x]], kind="stable") for x in (e_dec, decs))
    e_cut = np.searchsorted(height[home[e_dec[e_by]]], levels)
    d_cut = np.searchsorted(height[home[decs[d_by]]], levels)
    has_elem = np.zeros(len(kind), dtype=bool)
    for h in levels[1:-1]:
        e = e_by[e_cut[h]:e_cut[h + 1]]
        e = e[~(false[prime[e]] | false[sub[e]])]
        has_elem[e_dec[e]] = True
        d = decs[d_by[d_cut[h]:d_cut[h + 1]]]
        false[d[~has_elem[d]]] = True
    if live_out is not None:
        live_out.append(~(false[prime] | false[sub]))
    return false


def _elements(vt, rec, kind, home, idx, taut, nd, pos, false, rec_of, e_dec, prime, sub):
    """(w, prime vtree, sub vtree, prime index, sub index, parent index) of
    every element whose prime and sub are not false, then one tautology
    element (taut(left), taut(right)) per internal vtree node."""
    keep = ~(false[prime] | false[sub])
    dec, p, s = e_dec[keep], prime[keep], sub[keep]
    w = home[dec]
    lw, rw = vt.left[w], vt.right[w]
    pt, st = kind[p] == T, kind[s] == T
    ph, sh = element_homes(vt, rec, kind, home, pos, w, dec, rec_of, p, s)
    iw = np.flatnonzero(vt.left >= 0)
    li, ri = vt.left[iw], vt.right[iw]
    return (np.r_[w, iw], np.r_[ph, li], np.r_[sh, ri],
            np.r_[np.where(pt, taut[lw], idx[p]), taut[li]],
            np.r_[np.where(st, taut[rw], idx[s]), taut[ri]], np.r_[idx[dec], nd[iw]])


def element_homes(vt, rec, kind, home, pos, w, dec, rec_of, p, s):
    """The vtree nodes (ph, sh) the primes p and subs s of elements at w
    cover (a true prime covers left(w), a true sub right(w)); a prime not
    under left(w) or a sub not under right(w) is refused, naming the first
    such element in vtree position order and its line."""
    ph, sh = (np.empty(len(w), dtype=home.dtype) for _ in range(2))
    fine = True
    for a, b in chunk_bounds(len(w)):       # chunks: no 10^7-entry temporaries
        for side, child, out in ((vt.left, p, ph), (vt.right, s, sh)):
            top, c = side[w[a:b]], child[a:b]
            h = np.where(kind[c] == T, top, home[c])
            out[a:b] = h
            fine = fine and bool(((vt.lo[h] >= vt.lo[top]) & (vt.hi[h] <= vt.hi[top])).all())
    if fine:
        return ph, sh
    lw, rw = vt.left[w], vt.right[w]
    bad_p = ~((vt.lo[ph] >= vt.lo[lw]) & (vt.hi[ph] <= vt.hi[lw]))
    bad_s = ~((vt.lo[sh] >= vt.lo[rw]) & (vt.hi[sh] <= vt.hi[rw]))
    first = pos[w[bad_p | bad_s]].min()
    at = pos[w] == first
    bad, h, top, child, what = ((bad_p, ph, lw, p, "prime") if (bad_p & at).any()
                                else (bad_s, sh, rw, s, "sub"))
    i = int(np.argmax(bad & at))
    raise rec.fail(int(rec_of[dec[i]]), f"node {int(dec[i])}: {what} {int(child[i])} lies under "
                                 f"vtree {int(h[i])}, not under vtree {int(top[i])} "
                                 f"(the circuit is not decomposable)")


def sibling_paths(vt, start: np.ndarray, top: np.ndarray):
    """For each i, the siblings on the path from start[i] up to (not
    including) top[i], concatenated in path order; and their counts."""
    cur = start.copy()
    active = np.flatnonzero(cur != top)
    who, sibs = [], []
    while len(active):
        c = cur[active]
        par = vt.parent[c]
        sibs.append(np.where(vt.left[par] == c, vt.right[par], vt.left[par]))
        who.append(active)
        cur[active] = par
        active = active[par != top[active]]
    if not who:
        return np.zeros(0, dtype=np.int64), np.zeros(len(start), dtype=np.int64)
    who, sibs = np.concatenate(who), np.concatenate(sibs)
    o = stable_argsort(who)
    return sibs[o], np.bincount(who, minlength=len(start))


def child_index(taut, r_pi, r_si, sig_of_row, width, lp, lp_n, ls, ls_n, flat=None,
                r_off=None):
    """Every product row's child_index [prime, taut(lp)..., sub, taut(ls)...]
    in one flat array; and each row's offset in it. Given `flat` and
    `r_off` (each row's offset in it), the rows are written there (the node
    form's child array: no second scatter). Each signature's row is made
    once as a template (its tautologies, placeholders for prime and sub);
    rows copy their signature's template and set prime and sub, a chunk of
    rows at a time (no index array over all 10^7 entries); a row of width
    2 (no tautologies: 95% of the products of the block SDDs) only sets
    prime and sub."""
    if flat is None:
        rw = width[sig_of_row]
        r_off = np.cumsum(rw) - rw
        flat = np.empty(int(rw.sum()), dtype=np.int64)
    t_off = np.cumsum(width) - width
    tmpl = np.zeros(int(width.sum()), dtype=flat.dtype)
    tmpl[concat_ranges(t_off + 1, lp_n)] = taut[lp]
    tmpl[concat_ranges(t_off + 2 + lp_n, ls_n)] = taut[ls]
    smoothed = width > 2                          # signatures with sibling tautologies
    steps = np.arange(0, dtype=np.int64)         # 0, 1, 2, ...: grown to the largest chunk
    for a, b in chunk_bounds(len(sig_of_row), CHUNK // 4):
        sg, dst = sig_of_row[a:b], r_off[a:b]
        rows = np.flatnonzero(smoothed[sg])       # only these copy a template (most rows
        if len(rows):                             # of an SDD are [prime, sub] alone)
            wide_sg, wide_dst = sg[rows], dst[rows]
            wd = width[wide_sg]
            first = np.cumsum(wd)
            first -= wd
            m = int(first[-1] + wd[-1])
            if m > len(steps):
                steps = np.arange(m, dtype=np.int64)
            within = steps[:m]
            src = np.repeat(t_off[wide_sg] - first, wd)
            src += within
            pos = np.repeat(wide_dst - first, wd)
            pos += within
            flat[pos] = tmpl[src]
        flat[dst] = r_pi[a:b]
        flat[dst + 1 + lp_n[sg]] = r_si[a:b]
    return flat, r_off


def _emit(vt, post, inner, nd, taut, sgroup, gstart, nsig, s_w, s_up, s_us, s_rows, width,
          flat, r_off, sig_first, lp, lp_n, ls, ls_n, e_w, edges, kind, home, idx, false,
          root, name, source) -> pcir.Model:
    """The groups in id order, each from slices of the arrays above."""
    sink = GroupSink()
    s0, e0 = _first(s_w, len(vt.left)), _first(e_w, len(vt.left))    # both are runs by w
    e_n = np.bincount(e_w, minlength=len(vt.left))
    # Per-signature values as Python lists (numpy scalars are slow to index).
    lp_end, ls_end = np.cumsum(lp_n).tolist(), np.cumsum(ls_n).tolist()
    lp_kids, ls_kids = sgroup[lp].tolist(), sgroup[ls].tolist()
    up_kid, us_kid = sgroup[s_up].tolist(), sgroup[s_us].tolist()
    first, rows, wide = r_off[sig_first].tolist(), s_rows.tolist(), width.tolist()
    s0, e0, e_n = s0.tolist(), e0.tolist(), e_n.tolist()
    nsig, gstart, nd, lo, hi = nsig.tolist(), gstart.tolist(), nd.tolist(), vt.lo, vt.hi
    a1 = b1 = 0
    for w in post.tolist():
        if not inner[w]:
            sink.literals(int(vt.var[w]) - 1)
            continue
        scope = np.sort(vt.order[lo[w]:hi[w]]).tolist()
        label = f"vtree {w} elements"
        for j in range(s0[w], s0[w] + nsig[w]):
            a0, a1, b0, b1 = a1, lp_end[j], b1, ls_end[j]
            r0, nr, wd = first[j], rows[j], wide[j]
            sink.product_sorted([up_kid[j], *lp_kids[a0:a1], us_kid[j], *ls_kids[b0:b1]],
                                flat[r0:r0 + nr * wd].reshape(nr, wd), scope, label)
        g0 = gstart[w]
        sink.sum_edges(list(range(g0, g0 + nsig[w])), nd[w] + 1, scope,
                       edges[e0[w]:e0[w] + e_n[w]], f"vtree {w}")
    if false[root]:
        raise LoadError(f"{source}: the circuit is false (unsatisfiable): nothing to import")
    rh = vt.root if kind[root] == T else int(home[root])
    ri = taut[rh] if kind[root] == T else int(idx[root])
    sibs = vt.siblings(rh, vt.root)
    gid = sink.product([int(sgroup[rh]), *(int(sgroup[x]) for x in sibs)],
                       [[ri, *taut[sibs]]], range(vt.num_vars), "root")
    return sink.model(vt.num_vars, gid, name, "sdd")


def unique_rows(*cols: np.ndarray, first: bool = False):
    """The distinct rows of non-negative int64 columns, sorted (first column
    major), and each input row's index among them (with `first`, also the
    position of each distinct row's first occurrence): one sort of a mixed
    radix key when it fits in int64 (the distinct rows decoded from the
    distinct keys by division by a scalar, which numpy does without a
    hardware divide: 0.1 s for 11.5M keys of 3 columns, where gathering
    them from a row of each, at random positions, took 0.4-1.2 s), else a
    lexsort."""
    return unique_rows_taken(list(cols), first, own=False)


def unique_rows_taken(cols: list, first: bool = False, own: bool = True):
    """unique_rows of the columns in the list `cols`, which it empties.
    own=True: the caller holds no other reference to them, so the first
    column's buffer (when int64) becomes the key and each column is freed
    once packed into it (see pack_rows)."""
    dtypes = [c.dtype for c in cols]
    packed = pack_rows(cols, own)
    if packed is None:
        whole = list(cols)
        cols.clear()
        return _unique_rows_lexsort(whole, first)
    key, span = packed
    values, inv, rep = unique_sorted(key)
    del key, packed
    rows = [r.astype(t, copy=False) for r, t in zip(unpack_rows(values, span), dtypes)]
    return (rows, inv, rep) if first else (rows, inv)


def pack_rows(cols: list, own: bool = True) -> tuple[np.ndarray, list[int]] | None:
    """(the mixed radix int64 key of each row of the non-negative integer
    columns in the list `cols`, first column most significant; each
    column's span), emptying the list; None, the list untouched, when the
    key does not fit in 62 bits. own=True: the caller holds no other
    reference to the columns, so the first column's buffer (when int64)
    becomes the key and each column is freed once packed into it (the
    element rows of a 10^6-node SDD are three columns of 12M entries: no
    fourth array beside them, 190 MB less at the import's peak, paid in
    page faults on a small VM)."""
    span = [int(c.max()) + 1 if len(c) else 1 for c in cols]
    if math.prod(span) >= 2 ** 62:
        return None
    key = cols[0] if own and cols[0].dtype == np.int64 else cols[0].astype(np.int64)
    cols[0] = None
    for i, n in enumerate(span[1:], 1):
        key *= n
        key += cols[i]
        cols[i] = None
    cols.clear()
    return key, span


def _unique_rows_lexsort(cols: list, first: bool):
    """unique_rows for columns whose mixed radix key does not fit in int64."""
    o = np.lexsort(cols[::-1])
    cols = [c[o] for c in cols]
    new = np.r_[True, np.any([c[1:] != c[:-1] for c in cols], axis=0)]
    inv = np.empty(len(o), dtype=np.int64)
    inv[o] = np.cumsum(new) - 1
    rows = [c[new] for c in cols]
    return (rows, inv, o[new]) if first else (rows, inv)       # lexsort is stable


def unpack_rows(key: np.ndarray, span: list[int]) -> list[np.ndarray]:
    """The columns of mixed radix keys (pack_rows' packing: the last
    column least significant, column i below span[i]), decoded a chunk at
    a time into the int64 columns (no quotient arrays of the whole length
    beside them: 180 MB less at the import's peak for 11.5M rows)."""
    cols = [np.empty(len(key), dtype=np.int64) for _ in span]
    for a, b in chunk_bounds(len(key)):
        rest = key[a:b]
        for i in range(len(span) - 1, 0, -1):
            rest, cols[i][a:b] = np.divmod(rest, span[i])
        cols[0][a:b] = rest
    return cols


def unique_few(key: np.ndarray, slots_log2: int = 20):
    """unique_sorted(key) for non-negative int64 keys of few distinct
    values (the element products' signatures: 45k distinct among 11.5M
    keys at 10^6 SDD nodes), by a hash table instead of a sort of every
    key: each key's slot (Fibonacci hashing into 2^slots_log2 slots, at
    most 2n) keeps its first position (np.minimum.at); a key equal to its
    slot's first key has found its first occurrence and takes its slot's
    rank; the keys of collided slots (all occurrences of a key share its
    slot) go through np.unique. Keys of more than one chunk: three passes
    a chunk at a time (the slots hashed again in each), so nothing of n
    entries is made but the ranks (int32 below 2^31 keys): 7 int64 arrays
    of n entries were 0.57 s in a fresh process at 10^6 SDD nodes, mostly
    first touch of memory; fewer keys: _unique_few_whole.
    None when over 1/8 of the keys collide (many distinct values: the
    caller sorts)."""
    n = len(key)
    if len(chunk_bounds(n)) <= 1:
        return _unique_few_whole(key, slots_log2)
    key = np.ascontiguousarray(key, dtype=np.int64)
    slots_log2 = min(slots_log2, n.bit_length() + 1)
    table = np.full(1 << slots_log2, n, dtype=np.int64)
    for a, b in chunk_bounds(n):
        np.minimum.at(table, _slots(key[a:b], slots_log2), np.arange(a, b))
    used = np.flatnonzero(table < n)
    heads = table[used]                             # each used slot's first key's first position
    rank = np.empty(n, dtype=np.int32 if n < 2 ** 31 else np.int64)
    slot_rank = np.zeros(len(table), dtype=rank.dtype)   # filled once the ranks are known
    miss = []
    for a, b in chunk_bounds(n):                     # the collided keys
        part = key[a:b]
        miss.append(np.flatnonzero(key[table[_slots(part, slots_log2)]] != part) + a)
    miss = np.concatenate(miss)
    if len(miss) > n // 8:
        return None
    _, first, inv = np.unique(key[miss], return_index=True, return_inverse=True)
    reps = np.r_[heads, miss[first]]                # first positions of all distinct keys
    o = np.argsort(key[reps])
    order = np.empty(len(reps), dtype=np.int64)
    order[o] = np.arange(len(reps))                 # each rep's rank
    slot_rank[used] = order[:len(heads)]
    for a, b in chunk_bounds(n):                     # the others' ranks, through their slots
        np.take(slot_rank, _slots(key[a:b], slots_log2), out=rank[a:b])
    rank[miss] = order[len(heads):][inv.reshape(-1)]
    return key[reps[o]], rank, reps[o]


def _unique_few_whole(key: np.ndarray, slots_log2: int):
    """unique_few of at most CHUNK keys in one round over the whole array
    (each key hashed once; fewer numpy calls and tables than the passes
    in chunks: 19 against 25 us at 1000 keys, 1.5 against 6.5 ms at 2e5)."""
    n = len(key)
    if not n:
        return unique_sorted(key)
    key = np.ascontiguousarray(key, dtype=np.int64)
    slots_log2 = min(slots_log2, n.bit_length() + 1)    # a small circuit: a small table
    slot = _slots(key, slots_log2)
    table = np.full(1 << slots_log2, n, dtype=np.int64)
    np.minimum.at(table, slot, np.arange(n))
    rep = table[slot]
    del slot, table
    miss = np.flatnonzero(key[rep] != key)
    if len(miss) > n // 8:
        return None
    if len(miss):
        _, first, inv = np.unique(key[miss], return_index=True, return_inverse=True)
        rep[miss] = miss[first][inv.reshape(-1)]
    is_rep = np.zeros(n, dtype=bool)
    is_rep[rep] = True
    reps = np.flatnonzero(is_rep)                # first positions, in position order
    o = np.argsort(key[reps])
    rank = np.empty(n, dtype=np.int64)
    rank[reps[o]] = np.arange(len(reps))
    return key[reps[o]], rank[rep], reps[o]


def _slots(key: np.ndarray, slots_log2: int) -> np.ndarray:
    """Fibonacci hash of int64 keys into 2^slots_log2 slots (int64)."""
    slot = key.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    slot >>= np.uint64(64 - slots_log2)
    return slot.view(np.int64)


def unique_inverse(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(key, return_inverse=True) for non-negative int64 keys,
    through numpy's vectorised sort (see unique_sorted)."""
    values, inv, _ = unique_sorted(key)
    return values, inv


def unique_sorted(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct values sorted, each key's index among them, the position
    of the first key of each value). Keys are ordered by
    ir.nodes.stable_order (radix or packed sorts) where one fits, else by
    np.argsort's stable kind: a timsort for 64-bit keys, which finds the
    ascending runs the keys come in (the element keys of the block SDDs
    rise at 90% of the steps: 0.26 s for 11.9M keys where the unstable
    argsort took 1.4 s) and is no slower on keys in random order."""
    o = stable_order(key)
    if o is None:
        o = np.argsort(key, kind="stable")
    ordered = key[o]
    new = np.empty(len(key), dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    inv = np.empty(len(key), dtype=np.int64)
    rank = 0
    for a, b in chunk_bounds(len(key)):      # inv[o] = cumsum(new) - 1, chunk by chunk
        r = np.cumsum(new[a:b])
        r += rank - 1
        inv[o[a:b]] = r
        rank = int(r[-1]) + 1
    first = o[new]
    return ordered[new], inv, first


def _first(runs: np.ndarray, n: int) -> np.ndarray:
    """The first position of each value 0..n-1 in `runs` (equal values adjacent)."""
    first = np.zeros(n, dtype=np.int64)
    first[runs[::-1]] = np.arange(len(runs))[::-1]
    return first
