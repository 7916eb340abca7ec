"""The persistent small-batch forward: every layer in one launch.

One launch of `grid` programs (about one per SM); each program loops:

    ticket = atomic_add(counters[0], 1)         claim the next item
    stop when the ticket's item >= n_items
    wait until counters[1 + level - 1] >= (epoch + 1) * items of level - 1
    compute the item (input / product / sum rows, persistent.py)
    all threads' stores, bar.sync, release atomic_add(counters[1 + level], 1)

Memory ordering (PTX model): the waiting program polls the counter with
volatile loads (ld.volatile: no atomic traffic while spinning), then one
acquire atomic (gpu scope) on it synchronises with the producers' release
atomics, and a bar.sync (tl.debug_barrier) orders every thread's later
loads after it. Producers make all threads' stores visible with a bar.sync
before the one release atomic (Triton issues a scalar atomic from one
thread; release is cumulative over what that thread observed). Child
values are loaded with `.cg` (L2, not L1): a cache line of the values
buffer holds rows of several items, and L1 is not coherent across SMs.
The launch takes num_stages=1: Triton's software pipelining would turn the
chunk loop's loads into cp.async copies (4-byte ones only exist as .ca,
through L1) and stage them in shared memory (53 KB instead of 16 KB).

Counters need no host reset between calls (a CUDA graph replays the same
launch): each launch takes exactly n_items + grid tickets (one failing
claim per program), so the epoch of a launch is ticket // (n_items + grid)
and level L is done in epoch e when its counter reaches (e + 1) * count(L).
Counters are int64 (2^63 tickets). Launches of one counter buffer must be
ordered (one stream) and keep one grid: `PersistentForward` owns both.

Sums: R rows of one block over its children in chunks of C, an online
log-sum-exp as sum_forward.py's (fp32 "ieee" dots: CUDA-core FMAs, no
tf32). The first chunk's weights and grand slots are loaded before the
wait (they do not depend on it: their latency leaves the chain of
levels, which then holds the value loads only). Children come through the
block's grand-slot rows (fusion.py): a folded product's value is the sum of
its children's, added on load.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from pccompiler.backends.triton import persistent as tabs
from pccompiler.backends.triton.io_kernels import (bernoulli_log_prob, categorical_log_prob,
                                                   gaussian_log_prob)


@triton.jit
def _grand_col(at, a: tl.constexpr, k_mask, first, ARITY: tl.constexpr):
    """Column a of the children's grand slots; `first` past ARITY (unused)."""
    return tl.load(at + a, mask=k_mask, other=1) if a < ARITY else first


@triton.jit
def _grand_rows(table_ptr, grand_at, kk, k_mask, ARITY: tl.constexpr):
    """The grand slots of children kk (table entries grand_at + k * ARITY +
    a), as eight [C] vectors (ARITY <= 8; the unused ones repeat the first):
    separate from the value loads so that a sum item issues them before its
    wait (they do not depend on it). Masked children read slot 1."""
    at = table_ptr + grand_at + kk * ARITY
    g0 = tl.load(at, mask=k_mask, other=1)
    return (g0, _grand_col(at, 1, k_mask, g0, ARITY), _grand_col(at, 2, k_mask, g0, ARITY),
            _grand_col(at, 3, k_mask, g0, ARITY), _grand_col(at, 4, k_mask, g0, ARITY),
            _grand_col(at, 5, k_mask, g0, ARITY), _grand_col(at, 6, k_mask, g0, ARITY),
            _grand_col(at, 7, k_mask, g0, ARITY))


@triton.jit
def _plus_row(acc, values_ptr, g, mask, offs_b, batch, USE: tl.constexpr):
    """acc + values[g[k], b] when USE; slot 1 (log 1, padding) adds 0."""
    if USE:
        acc += tl.load(values_ptr + g[:, None] * batch + offs_b[None, :],
                       mask=mask & (g != 1)[:, None], other=0.0, cache_modifier=".cg")
    return acc


@triton.jit
def _summed_values(values_ptr, g0, g1, g2, g3, g4, g5, g6, g7, k_mask, offs_b, b_mask, batch,
                   ARITY: tl.constexpr):
    """[C, B] child values: the sum of each child's ARITY grand-slot rows
    (a folded product's value, fusion.py, added in its children's order);
    masked children are -inf."""
    mask = k_mask[:, None] & b_mask[None, :]
    acc = _plus_row(tl.zeros(mask.shape, dtype=tl.float32), values_ptr, g0, mask, offs_b,
                    batch, True)
    acc = _plus_row(_plus_row(acc, values_ptr, g1, mask, offs_b, batch, ARITY > 1),
                    values_ptr, g2, mask, offs_b, batch, ARITY > 2)
    acc = _plus_row(_plus_row(acc, values_ptr, g3, mask, offs_b, batch, ARITY > 3),
                    values_ptr, g4, mask, offs_b, batch, ARITY > 4)
    acc = _plus_row(_plus_row(acc, values_ptr, g5, mask, offs_b, batch, ARITY > 5),
                    values_ptr, g6, mask, offs_b, batch, ARITY > 6)
    acc = _plus_row(acc, values_ptr, g7, mask, offs_b, batch, ARITY > 7)
    return tl.where(mask, acc, float("-inf"))


@triton.jit
def _child_values(values_ptr, table_ptr, grand_at, kk, k_mask, offs_b, b_mask, batch,
                  ARITY: tl.constexpr):
    """[C, B] values of children kk (grand slots loaded here)."""
    g0, g1, g2, g3, g4, g5, g6, g7 = _grand_rows(table_ptr, grand_at, kk, k_mask, ARITY)
    return _summed_values(values_ptr, g0, g1, g2, g3, g4, g5, g6, g7, k_mask, offs_b, b_mask,
                          batch, ARITY)


@triton.jit
def _lse_step(acc, run_max, c, w):
    """One chunk of the online log-sum-exp: (acc, max) after children c [C, B]
    with weights w [R, C]."""
    new_max = tl.maximum(run_max, tl.max(c, axis=0))
    safe = tl.where(new_max == float("-inf"), 0.0, new_max)
    e = tl.exp(c - safe[None, :])
    acc = acc * tl.exp(run_max - safe)[None, :] + tl.dot(w, e, input_precision="ieee")
    return acc, new_max


@triton.jit
def _wait_level(ctr_ptr, level, target, abort_ptr, epoch, bad_ptr, POLL_ATOMIC: tl.constexpr,
                SPIN_LIMIT: tl.constexpr):
    """Spin until counters[level] (the done count of level - 1) >= target:
    POLL_ATOMIC polls with acquire atomics (the last poll is the acquire:
    one round trip less after the release), else with volatile loads and
    one acquire atomic after them (no atomic traffic while spinning).

    A wait that sees no progress in SPIN_LIMIT polls (only a bug can cause
    that: every wait is for lower items, already claimed by running
    programs) gives up instead of hanging the GPU: it marks this launch
    aborted (abort = epoch + 1: later waits of the launch skip) and lowers
    the bad-entry flag to -1, which `take_bad_entry` reports as an error."""
    if tl.load(abort_ptr, volatile=True) <= epoch:
        spins = 0
        if POLL_ATOMIC:
            seen = tl.atomic_add(ctr_ptr + level, 0, sem="acquire", scope="gpu")
            while (seen < target) & (spins < SPIN_LIMIT):
                seen = tl.atomic_add(ctr_ptr + level, 0, sem="acquire", scope="gpu")
                spins += 1
        else:
            seen = tl.load(ctr_ptr + level, volatile=True)
            while (seen < target) & (spins < SPIN_LIMIT):
                seen = tl.load(ctr_ptr + level, volatile=True)
                spins += 1
            tl.atomic_add(ctr_ptr + level, 0, sem="acquire", scope="gpu")
        if seen < target:
            tl.atomic_max(abort_ptr, epoch + 1)
            tl.atomic_min(bad_ptr, -1)
    tl.debug_barrier()


@triton.jit
def _input_item(values_ptr, in_params_ptr, x_ptr, miss_ptr, bad_ptr, table_ptr, slot, nrows,
                var_at, ps_at, cats, dist, offs_w, offs_b, b_mask, batch, num_vars, row0,
                HAS_MISSING: tl.constexpr):
    """Leaf rows of one partition, as io_kernels.input_fwd_kernel computes
    them: dist 0 categorical log p[var, x] (a bad category is reported at
    row offs_b + row0: a chunk of a batch), 1 Bernoulli, 2 Gaussian; a
    missing entry marginalises to 0."""
    n_mask = offs_w < nrows
    var = tl.load(table_ptr + var_at + offs_w, mask=n_mask, other=0)
    ps = tl.load(table_ptr + ps_at + offs_w, mask=n_mask, other=0)
    mask = n_mask[:, None] & b_mask[None, :]
    xoff = offs_b[None, :].to(tl.int64) * num_vars + var[:, None]
    obs = mask
    if HAS_MISSING:
        miss = tl.load(miss_ptr + xoff, mask=mask, other=0) != 0
        obs = mask & (miss == 0)
    if dist == 0:
        out = categorical_log_prob(in_params_ptr, x_ptr, bad_ptr, ps, var, xoff, obs,
                                   offs_b + row0, cats)
    elif dist == 1:
        p = tl.load(in_params_ptr + ps, mask=n_mask, other=0.5)
        out = bernoulli_log_prob(x_ptr, xoff, obs, p)
    else:
        mean = tl.load(in_params_ptr + ps, mask=n_mask, other=0.0)
        std = tl.load(in_params_ptr + ps + 1, mask=n_mask, other=1.0)
        out = gaussian_log_prob(x_ptr, xoff, obs, mean, std)
    if HAS_MISSING:
        out = tl.where(miss, 0.0, out)
    tl.store(values_ptr + (slot + offs_w)[:, None] * batch + offs_b[None, :], out, mask=mask)


@triton.jit
def _product_item(values_ptr, table_ptr, slot, nrows, child_at, arity, offs_w, offs_b, b_mask,
                  batch, WIDE: tl.constexpr, BLOCK_B: tl.constexpr):
    """Product rows: the sum of the children's log-values (a runtime arity)."""
    n_mask = offs_w < nrows
    mask = n_mask[:, None] & b_mask[None, :]
    acc = tl.zeros((WIDE, BLOCK_B), dtype=tl.float32)
    for a in range(0, arity):
        cs = tl.load(table_ptr + child_at + offs_w * arity + a, mask=n_mask, other=1)
        acc += tl.load(values_ptr + cs[:, None] * batch + offs_b[None, :], mask=mask,
                       other=0.0, cache_modifier=".cg")
    tl.store(values_ptr + (slot + offs_w)[:, None] * batch + offs_b[None, :], acc, mask=mask)


@triton.jit
def _store_rows(values_ptr, slot, rows, r_mask, out, offs_b, b_mask, batch):
    tl.store(values_ptr + (slot + rows)[:, None] * batch + offs_b[None, :], out,
             mask=r_mask[:, None] & b_mask[None, :])


@triton.jit
def _sum_item(values_ptr, params_ptr, table_ptr, slot, nrows, ps, grand_at, bs, nc, w0,
              g0, g1, g2, g3, g4, g5, g6, g7, offs_r, offs_k, offs_b, b_mask, batch,
              ROWS: tl.constexpr, CHUNK: tl.constexpr, ARITY: tl.constexpr,
              BLOCK_B: tl.constexpr):
    """nrows rows of one sum block (tiles of ROWS) over its nc children; w0
    and g0..g7: the first tile's first chunk of weights [ROWS, CHUNK] and
    the first chunk's grand slots, loaded before the wait. Up to CHUNK
    children are gathered once for every tile (one exp per child value);
    longer lists run an online log-sum-exp per tile."""
    if nc <= CHUNK:
        c = _summed_values(values_ptr, g0, g1, g2, g3, g4, g5, g6, g7, offs_k < nc, offs_b,
                           b_mask, batch, ARITY)
        top = tl.max(c, axis=0)
        safe = tl.where(top == float("-inf"), 0.0, top)
        e = tl.exp(c - safe[None, :])
        w = w0
        for r0 in range(0, nrows, ROWS):     # the next tile's weights load during this one
            rows = r0 + offs_r
            after = rows + ROWS
            w_next = tl.load(params_ptr + (ps + after)[:, None] + offs_k[None, :] * bs,
                             mask=(after < nrows)[:, None] & (offs_k < nc)[None, :], other=0.0)
            out = tl.log(tl.dot(w, e, input_precision="ieee")) + safe[None, :]
            _store_rows(values_ptr, slot, rows, rows < nrows, out, offs_b, b_mask, batch)
            w = w_next
    else:
        for r0 in range(0, nrows, ROWS):
            rows = r0 + offs_r
            r_mask = rows < nrows
            acc = tl.zeros((ROWS, BLOCK_B), dtype=tl.float32)
            run_max = tl.full((BLOCK_B,), float("-inf"), dtype=tl.float32)
            for k0 in range(0, nc, CHUNK):
                kk = k0 + offs_k
                k_mask = kk < nc
                c = _child_values(values_ptr, table_ptr, grand_at, kk, k_mask, offs_b, b_mask,
                                  batch, ARITY)
                w = tl.load(params_ptr + (ps + rows)[:, None] + kk[None, :] * bs,
                            mask=r_mask[:, None] & k_mask[None, :], other=0.0)
                acc, run_max = _lse_step(acc, run_max, c, w)
            safe = tl.where(run_max == float("-inf"), 0.0, run_max)
            _store_rows(values_ptr, slot, rows, r_mask, tl.log(acc) + safe[None, :], offs_b,
                        b_mask, batch)


@triton.jit
def _fields(items_ptr, item, n_items, NF: tl.constexpr):
    """The item's table row (kind, level, wait_n, slot, nrows, off, a, b, c);
    zeros past the last item."""
    row = items_ptr + item * NF
    ok = item < n_items
    return (tl.load(row + 0, mask=ok, other=0), tl.load(row + 1, mask=ok, other=0),
            tl.load(row + 2, mask=ok, other=0), tl.load(row + 3, mask=ok, other=0),
            tl.load(row + 4, mask=ok, other=0), tl.load(row + 5, mask=ok, other=0),
            tl.load(row + 6, mask=ok, other=0), tl.load(row + 7, mask=ok, other=0),
            tl.load(row + 8, mask=ok, other=0))


@triton.jit(do_not_specialize=["n_items", "n_levels", "batch", "num_vars", "row0"])
def persistent_forward_kernel(values_ptr, sum_params_ptr, in_params_ptr, x_ptr, miss_ptr,
                              bad_ptr, items_ptr, table_ptr, ctr_ptr, n_items, n_levels, batch,
                              num_vars, row0, HAS_MISSING: tl.constexpr, ROWS: tl.constexpr,
                              CHUNK: tl.constexpr, WIDE: tl.constexpr, ARITY: tl.constexpr,
                              BLOCK_B: tl.constexpr, NF: tl.constexpr,
                              POLL_ATOMIC: tl.constexpr, SPIN_LIMIT: tl.constexpr):
    """values [num_slots, batch]; x, miss [batch, num_vars] (miss uint8);
    items int64 [n_items, NF] (persistent.py's columns); ctr int64
    [2 + n_levels]: tickets, the levels' done counts, the abort epoch. Each program claims its next item (and reads its row)
    before it waits for the current one's inputs, so the claim's round trip
    hides behind the wait; it still takes items in increasing order, which
    keeps the scheme deadlock-free (the lowest unfinished item's owner is
    working on it, and everything it waits for is lower)."""
    offs_b = tl.arange(0, BLOCK_B)
    b_mask = offs_b < batch
    offs_r = tl.arange(0, ROWS)
    offs_w = tl.arange(0, WIDE)
    offs_k = tl.arange(0, CHUNK)
    per = n_items + tl.num_programs(0).to(tl.int64)
    abort_ptr = ctr_ptr + n_levels + 1
    ticket = tl.atomic_add(ctr_ptr, 1)
    epoch = ticket // per
    item = ticket - epoch * per
    kind, level, wait_n, slot, nrows, off, arg_a, arg_b, arg_c = _fields(items_ptr, item,
                                                                         n_items, NF)
    while item < n_items:
        # a sum's first weight chunk and grand slots do not depend on the wait
        k0_mask = offs_k < tl.where(kind == 2, arg_c, 0)
        w0 = tl.load(sum_params_ptr + (arg_a + offs_r)[:, None] + offs_k[None, :] * arg_b,
                     mask=(offs_r < nrows)[:, None] & k0_mask[None, :], other=0.0)
        g0, g1, g2, g3, g4, g5, g6, g7 = _grand_rows(table_ptr, off, offs_k, k0_mask, ARITY)
        nxt = tl.atomic_add(ctr_ptr, 1) - epoch * per
        n_kind, n_level, n_wait, n_slot, n_rows, n_off, n_a, n_b, n_c = _fields(
            items_ptr, nxt, n_items, NF)
        if wait_n > 0:
            _wait_level(ctr_ptr, level, (epoch + 1) * wait_n, abort_ptr, epoch, bad_ptr,
                        POLL_ATOMIC, SPIN_LIMIT)
        if kind == 0:
            _input_item(values_ptr, in_params_ptr, x_ptr, miss_ptr, bad_ptr, table_ptr, slot,
                        nrows, off, arg_a, arg_b, arg_c, offs_w, offs_b, b_mask, batch,
                        num_vars, row0, HAS_MISSING)
        elif kind == 1:
            _product_item(values_ptr, table_ptr, slot, nrows, off, arg_b, offs_w, offs_b,
                          b_mask, batch, WIDE, BLOCK_B)
        else:
            _sum_item(values_ptr, sum_params_ptr, table_ptr, slot, nrows, arg_a, off, arg_b,
                      arg_c, w0, g0, g1, g2, g3, g4, g5, g6, g7, offs_r, offs_k, offs_b, b_mask,
                      batch, ROWS, CHUNK, ARITY, BLOCK_B)
        tl.debug_barrier()
        tl.atomic_add(ctr_ptr + 1 + level, 1, sem="release", scope="gpu")
        item = nxt
        kind, level, wait_n, slot, nrows = n_kind, n_level, n_wait, n_slot, n_rows
        off, arg_a, arg_b, arg_c = n_off, n_a, n_b, n_c


class PersistentForward:
    """One launch of the persistent forward for batches of up to B_MAX, with
    its own counters (whose launches must stay on one stream: see the
    module docstring). `run(values, x, missing)` writes every node row of
    `values` [num_slots, batch] that the forward needs, root included."""

    def __init__(self, engine, rows: int | None = None, wide: int | None = None,
                 chunk: int | None = None, grid: int | None = None,
                 num_warps: int | None = None, spread: int | None = None,
                 poll_atomic: bool | None = None):
        self.engine = engine
        self.tables = tabs.tables_for(engine, rows, wide, spread)
        self.poll_atomic = tabs.POLL_ATOMIC if poll_atomic is None else bool(poll_atomic)
        self.chunk = tabs.CHUNK if chunk is None else int(chunk)
        if self.chunk < 16 or self.chunk & (self.chunk - 1):
            raise tabs.BackendError(f"persistent: chunk ({self.chunk}) must be a power of two "
                                    ">= 16")
        self.grid = tabs.default_grid(engine.device, self.tables.n_items) if grid is None \
            else int(grid)
        self.num_warps = tabs.NUM_WARPS if num_warps is None else int(num_warps)
        # tickets, one done-count per level, the abort epoch (_wait_level)
        self.counters = torch.zeros(2 + self.tables.depth, dtype=torch.int64,
                                    device=engine.device)

    def new_values(self, batch: int) -> torch.Tensor:
        """A values buffer [num_slots, batch] (the Layout's slots) with the
        constant rows 0 (log 0) and 1 (log 1) filled."""
        values = torch.empty(self.tables.num_slots, batch, dtype=torch.float32,
                             device=self.engine.device)
        values[0].fill_(float("-inf"))
        values[1].fill_(0.0)
        return values

    def run(self, values: torch.Tensor, x: torch.Tensor, missing: torch.Tensor | None,
            row0: int = 0) -> None:
        """values [num_slots, B] (`new_values`); x [B, V] integers, contiguous;
        missing [B, V] bool or uint8, or None; B <= B_MAX. An out-of-range
        category lowers engine.bad_entry with its row + row0 (the caller
        resets it)."""
        batch = values.shape[1]
        if batch > tabs.B_MAX:
            raise tabs.BackendError(f"persistent forward: batch {batch} > B_MAX {tabs.B_MAX}")
        eng, t = self.engine, self.tables
        miss = missing.view(torch.uint8) if missing is not None and \
            missing.dtype == torch.bool else missing
        persistent_forward_kernel[(self.grid,)](
            values, eng.sum_params.data, eng.input_params.data, x,
            miss if miss is not None else x, eng.bad_entry, t.items, t.table, self.counters,
            t.n_items, t.depth, batch, x.shape[1], row0, HAS_MISSING=miss is not None, ROWS=t.rows,
            CHUNK=self.chunk, WIDE=t.wide, ARITY=t.arity, BLOCK_B=tabs.B_MAX,
            NF=tabs.FIELDS, POLL_ATOMIC=self.poll_atomic, SPIN_LIMIT=tabs.SPIN_LIMIT,
            num_warps=self.num_warps, num_stages=1)
