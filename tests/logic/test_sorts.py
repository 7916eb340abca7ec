"""The importer's sorts (ir.nodes.radix_argsort, stable_order, and
frontend/sdd_groups.unique_sorted on top of them) give numpy's answers at
every key width, on each side of the widths where they change method
(16 / 24 bits: radix; packable with the positions: packed sort; up to 48
bits: radix again; wider: numpy's stable argsort), and unique_few's hash table gives
unique_sorted's answer or declines."""

from __future__ import annotations

import numpy as np
import pytest

from pccompiler.frontend.sdd_groups import unique_few, unique_rows, unique_sorted
from pccompiler.ir.nodes import radix_argsort, stable_order


@pytest.mark.parametrize("bits", [1, 8, 9, 16, 17, 24, 25, 32, 33, 40, 47, 48])
@pytest.mark.parametrize("n", [1, 2, 777])
def test_radix_argsort_is_the_stable_order(bits, n):
    rng = np.random.default_rng(bits * 1000 + n)
    keys = rng.integers(0, 2 ** bits, size=n)
    keys[::3] = keys[0]                                   # ties: the stable order matters
    np.testing.assert_array_equal(radix_argsort(keys, bits), np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("n, bits, stable", [(0, 5, True), (1000, 12, True), (1000, 20, True),
                                             (1000, 30, True), (1 << 17, 46, True),
                                             (1000, 61, False), (300, 63, False)])
def test_unique_sorted_is_numpys_unique(n, bits, stable):
    """(values, inverse, first position) as np.unique gives them; with 2^17
    keys of 46 bits the positions do not pack and the 48-bit radix runs;
    61 and 63 bits fit no radix or packed method (`stable` False):
    numpy's stable argsort (a timsort)."""
    rng = np.random.default_rng(n + bits)
    keys = rng.integers(0, 2 ** bits, size=n)
    if n:
        keys[rng.integers(0, n, size=n // 2)] = keys[rng.integers(0, n, size=n // 2)]
    values, inv, first = unique_sorted(keys)
    want, want_first, want_inv = np.unique(keys, return_index=True, return_inverse=True)
    np.testing.assert_array_equal(values, want)
    np.testing.assert_array_equal(inv, want_inv)
    np.testing.assert_array_equal(first, want_first)
    assert (stable_order(keys) is not None) == stable


def test_unique_rows_wide_keys():
    """Three columns whose mixed-radix key needs 46 bits (as the elements
    (vtree, prime, sub) of a 10^5-node SDD): the distinct rows, in order."""
    rng = np.random.default_rng(7)
    cols = [rng.integers(0, 4000, 50000), rng.integers(0, 110000, 50000),
            rng.integers(0, 110000, 50000)]
    cols[1][::2], cols[2][::2] = cols[1][0], cols[2][0]
    cols[0][::2] = cols[0][0]
    rows, inv, first = unique_rows(*cols, first=True)
    want, want_first, want_inv = np.unique(np.stack(cols, axis=1), axis=0, return_index=True,
                                           return_inverse=True)
    np.testing.assert_array_equal(np.stack(rows, axis=1), want)
    np.testing.assert_array_equal(inv, want_inv.reshape(-1))
    np.testing.assert_array_equal(first, want_first)


def test_many_unpackable_keys_take_the_argsort(monkeypatch):
    """Above RADIX_WIDE_MAX keys the three-pass radix gives way to argsort
    (stable_order None), and unique_sorted still gives np.unique's answer."""
    monkeypatch.setattr("pccompiler.ir.nodes.RADIX_WIDE_MAX", 1000)
    keys = np.random.default_rng(2).integers(0, 2 ** 46, size=1 << 17)
    keys[::5] = keys[1]
    assert stable_order(keys) is None
    values, inv, first = unique_sorted(keys)
    want, want_first, want_inv = np.unique(keys, return_index=True, return_inverse=True)
    np.testing.assert_array_equal(values, want)
    np.testing.assert_array_equal(inv, want_inv)
    np.testing.assert_array_equal(first, want_first)


@pytest.mark.parametrize("n, distinct, slots_log2, declines", [
    (1, 1, 20, False), (5000, 40, 20, False), (5000, 1000, 14, False),
    (20000, 20000, 20, False), (5000, 40, 3, True), (20000, 3000, 8, True)])
def test_unique_few_is_numpys_unique_or_declines(n, distinct, slots_log2, declines):
    """unique_few gives np.unique's (values, inverse, first); the cases
    with 2^14 and 2^20 slots have keys of collided slots (152 and 116 of
    them: np.unique sorts those); with 8 or 256 slots over 1/8 of the keys
    collide and it declines (None: unique_sorted runs)."""
    rng = np.random.default_rng(distinct + slots_log2)
    values = rng.choice(2 ** 40, size=distinct, replace=False)
    keys = values[rng.integers(0, distinct, size=n)]
    got = unique_few(keys, slots_log2)
    assert (got is None) == declines
    want, want_first, want_inv = np.unique(keys, return_index=True, return_inverse=True)
    for a, b in zip(got or unique_sorted(keys), (want, want_inv, want_first)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("slots_log2", [20, 12])
def test_unique_few_in_chunks_is_numpys_unique(slots_log2, monkeypatch):
    """Its passes a chunk of keys at a time (ir.nodes.CHUNK made small):
    first positions, ranks and collided keys (2^12 slots) across chunks
    still give np.unique's (values, inverse, first), ranks as int32."""
    monkeypatch.setattr("pccompiler.ir.nodes.CHUNK", 700)
    rng = np.random.default_rng(slots_log2)
    values = rng.choice(2 ** 40, size=900, replace=False)
    keys = values[rng.integers(0, 900, size=6000)]
    got = unique_few(keys, slots_log2)
    assert got is not None and got[1].dtype == np.int32
    want, want_first, want_inv = np.unique(keys, return_index=True, return_inverse=True)
    for a, b in zip(got, (want, want_inv, want_first)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("monotone", [True, False])
def test_distinct_pairs_sort_only_the_decisions_out_of_order(monotone):
    """_distinct_pairs gives np.unique's sorted (decision, product) pairs
    whether it sorts the keys of a few decisions (decision nodes rising
    with the elements, as the importer numbers them) or all of them (a
    step down between decisions)."""
    from pccompiler.frontend.sdd_nodes import _distinct_pairs

    rng = np.random.default_rng(11)
    decisions = 300
    dec = np.repeat(np.arange(decisions), rng.integers(1, 6, size=decisions))
    node_of = 1000 + np.arange(decisions) * 3
    if not monotone:
        node_of = rng.permutation(node_of)
    prod_id = rng.permutation(5000)
    inv = rng.integers(0, 5000, size=len(dec))
    inv[::7] = np.r_[inv[1:], inv[:1]][::7]                     # some repeated pairs
    got = _distinct_pairs(node_of, dec, prod_id, inv)
    want = np.unique(np.stack([node_of[dec], prod_id[inv]], axis=1), axis=0)
    np.testing.assert_array_equal(np.stack(got, axis=1), want)


def _pairs_by_np_unique(node_of, dec, prod_id, inv):
    """_distinct_pairs as it was: every element key sorted (np.unique)."""
    width = int(prod_id.max(initial=0)) + 1
    return np.divmod(np.unique(node_of[dec] * width + prod_id[inv]), width)


@pytest.mark.parametrize("name", ["sudoku_4", "4-grid", "seq_fun", "road_r", "random"])
def test_fast_paths_import_the_models_of_the_old_paths(name, tmp_path, monkeypatch):
    """The node-form Model bytes are the same with the radix sorts, the
    signature hash table and the partial sort of decision children as with
    the sorts they replaced (packed sort / argsort, unique_sorted, one sort
    of every pair), on the shared SDDs and a random PySDD one."""
    import pccompiler as pc
    from tests.logic.circuits import random_cnf_sdd, shared_sdd

    path = random_cnf_sdd(tmp_path, np.random.default_rng(8), 12, 30)[0] if name == "random" \
        else shared_sdd(name)
    fast = pc.from_sdd(path, form="nodes").SerializeToString(deterministic=True)
    monkeypatch.setattr("pccompiler.ir.nodes.RADIX_BITS", 0)
    monkeypatch.setattr("pccompiler.ir.nodes.RADIX_WIDE_MAX", 0)
    monkeypatch.setattr("pccompiler.frontend.sdd_nodes.unique_few", lambda key: None)
    monkeypatch.setattr("pccompiler.frontend.sdd_nodes._distinct_pairs", _pairs_by_np_unique)
    assert pc.from_sdd(path, form="nodes").SerializeToString(deterministic=True) == fast


def _new_ids_by_sort(first, inv, erec, dec_rec, base):
    """sdd_nodes._new_ids as it was: one stable sort of (record, kind) keys."""
    first_rec = erec[first]
    key = np.r_[2 * first_rec, 2 * dec_rec + 1]
    new_id = np.empty(len(key), dtype=np.int64)
    new_id[np.argsort(key, kind="stable")] = base + np.arange(len(key))
    return new_id[:len(first_rec)], new_id[len(first_rec):]


@pytest.mark.parametrize("seed", range(6))
def test_new_ids_count_what_the_sort_gave(seed):
    """_new_ids numbers products and decisions as the stable sort of
    (record, product before decision, row) did: rows of a record in and out
    of key order, rows reused by later records, records without a decision."""
    from pccompiler.frontend.sdd_nodes import _new_ids

    rng = np.random.default_rng(seed)
    records = 200
    erec = np.repeat(np.arange(records), rng.integers(0, 7, size=records))
    rows = 1 + len(erec) // 2
    inv = rng.integers(0, rows, size=len(erec))
    if seed % 2:
        inv = np.sort(inv)                    # products in order: no record is sorted
    used = np.unique(inv)
    inv = np.searchsorted(used, inv)         # every row used
    first = np.full(len(used), len(erec))
    np.minimum.at(first, inv, np.arange(len(erec)))
    dec_rec = np.flatnonzero(rng.random(records) < 0.8)
    by_first = np.argsort(first)             # _product_rows' numbering: rows by first element,
    got = _new_ids(by_first, erec[first[by_first]], dec_rec, 77)   # keyed by their sorted rank
    want = _new_ids_by_sort(first, inv, erec, dec_rec, 77)
    np.testing.assert_array_equal(got[0], want[0][by_first])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("own", [True, False])
@pytest.mark.parametrize("wide", [False, True])
def test_unique_rows_taken_is_unique_rows(own, wide):
    """unique_rows_taken gives unique_rows' answer whether it packs the key
    into the first column's own buffer (own) or a copy, and through the
    lexsort when the key does not fit in int64 (wide); it empties the list."""
    from pccompiler.frontend.sdd_groups import unique_rows_taken

    rng = np.random.default_rng(5 + wide)
    top = 2 ** 40 if wide else 3000
    cols = [rng.integers(0, 50, 4000), rng.integers(0, top, 4000), rng.integers(0, top, 4000)]
    cols[1][::3], cols[2][::3] = cols[1][0], cols[2][0]
    want = unique_rows(*cols, first=True)
    kept = [c.copy() for c in cols]
    taken = [c.copy() for c in cols] if own else list(cols)
    got = unique_rows_taken(taken, first=True, own=own)
    assert taken == []
    for a, b in zip([*got[0], *got[1:]], [*want[0], *want[1:]]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(cols, kept):                        # not own: the caller's columns kept
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("live", [1.0, 0.9, 0.3, 0.0])
def test_live_elements_are_the_masked_arrays(live, monkeypatch):
    """sdd_nodes._live compacts the element arrays in place, chunk by chunk
    (chunks of 1000 here), to exactly a[keep] for each array."""
    from pccompiler.frontend import sdd_nodes

    monkeypatch.setattr(sdd_nodes, "chunk_bounds",
                        lambda n, step=None: [(i, min(n, i + 1000)) for i in range(0, n, 1000)])
    rng = np.random.default_rng(int(live * 10))
    arrays = [rng.integers(0, 10 ** 6, 5500) for _ in range(4)]
    keep = rng.random(5500) < live
    want = [a[keep] for a in arrays]
    given = [a.copy() for a in arrays]
    got = sdd_nodes._live(keep, given)
    assert given == []
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bits", [12, 57])
def test_product_rows_number_distinct_keys_by_first_element(bits):
    """sdd_nodes._product_rows: each element's row is its key's rank among
    the distinct keys ordered by first occurrence (np.unique's first
    positions, sorted), with each row's key and record; at 12 bits the
    radix sort orders the keys, at 57 bits numpy's stable argsort."""
    from pccompiler.frontend.sdd_nodes import _product_rows

    rng = np.random.default_rng(bits)
    keys = rng.integers(0, 2 ** bits, size=6000)
    keys[rng.integers(0, 6000, 2000)] = keys[rng.integers(0, 6000, 2000)]
    erec = np.sort(rng.integers(0, 900, size=6000))
    inv, row_key, row_rec = _product_rows(keys, np.arange(900), erec)   # record = decision
    _, first, u_inv = np.unique(keys, return_index=True, return_inverse=True)
    by_first = np.argsort(first)
    rank = np.empty(len(first), dtype=np.int64)
    rank[by_first] = np.arange(len(first))
    np.testing.assert_array_equal(inv, rank[u_inv])
    np.testing.assert_array_equal(row_key, keys[np.sort(first)])
    np.testing.assert_array_equal(row_rec, erec[np.sort(first)])


@pytest.mark.parametrize("name", ["sudoku_4", "seq_fun"])
def test_unpackable_element_rows_import_the_same_model(name, monkeypatch):
    """When the (vtree, prime, sub) key does not fit in int64, the element
    rows are keyed by their rank among the sorted distinct rows (lexsort):
    the node-form Model bytes are those of the packed key."""
    import pccompiler as pc
    from tests.logic.circuits import shared_sdd

    path = shared_sdd(name)
    packed = pc.from_sdd(path, form="nodes").SerializeToString(deterministic=True)
    monkeypatch.setattr("pccompiler.frontend.sdd_nodes.pack_rows", lambda cols: None)
    monkeypatch.setattr("pccompiler.frontend.sdd_groups.pack_rows", lambda cols, own: None)
    assert pc.from_sdd(path, form="nodes").SerializeToString(deterministic=True) == packed


@pytest.mark.parametrize("chunk", [None, 40])
@pytest.mark.parametrize("given", [False, True])
def test_child_index_equals_rows_made_one_by_one(chunk, given, monkeypatch):
    """child_index's rows (templates copied only for signatures with
    sibling tautologies, prime and sub set in every row; chunks of
    CHUNK // 4 rows, here 10) are [prime, taut(lp)..., sub, taut(ls)...]
    row by row, into a new array or (`given`) a given one at given
    offsets."""
    from pccompiler.frontend.sdd_groups import child_index

    if chunk:
        monkeypatch.setattr("pccompiler.frontend.sdd_groups.CHUNK", chunk)
    rng = np.random.default_rng(4)
    taut = 1000 + np.arange(50)
    lp_n, ls_n = rng.integers(0, 3, size=12), rng.integers(0, 3, size=12)
    lp_n[:4] = ls_n[:4] = 0                                     # width-2 signatures
    lp, ls = rng.integers(0, 50, size=lp_n.sum()), rng.integers(0, 50, size=ls_n.sum())
    width = 2 + lp_n + ls_n
    sig = rng.integers(0, 12, size=300)
    sig[:100] = rng.integers(0, 4, size=100)
    r_pi, r_si = rng.integers(0, 900, size=300), rng.integers(0, 900, size=300)
    lp_at, ls_at = np.cumsum(lp_n) - lp_n, np.cumsum(ls_n) - ls_n
    want = [np.r_[r_pi[i], taut[lp[lp_at[g]:lp_at[g] + lp_n[g]]], r_si[i],
                  taut[ls[ls_at[g]:ls_at[g] + ls_n[g]]]] for i, g in enumerate(sig)]
    if given:
        r_off = 3 + np.cumsum(width[sig]) - width[sig]             # after 3 other entries
        out = np.full(3 + int(width[sig].sum()), -7, dtype=np.int32)
        flat, _ = child_index(taut, r_pi, r_si, sig, width, lp, lp_n, ls, ls_n, out, r_off)
        assert flat is out and (out[:3] == -7).all()
    else:
        flat, r_off = child_index(taut, r_pi, r_si, sig, width, lp, lp_n, ls, ls_n)
    for i, row in enumerate(want):
        np.testing.assert_array_equal(flat[r_off[i]:r_off[i] + len(row)], row)
