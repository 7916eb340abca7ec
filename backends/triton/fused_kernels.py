"""One-launch forward and backward over a whole circuit (fused_plan.py).

Why one launch is legal: samples are independent. Program i owns the batch
columns [i * BLOCK_B, (i + 1) * BLOCK_B) of the values / flows buffers
(slots x batch) and walks every step of the plan in order; it reads only
its own columns, so no other program can race with it, and a CTA-wide
`tl.debug_barrier()` after each step makes its own global writes of step s
visible to all its threads before step s + 1 reads them. No grid-wide sync
is needed. (Under TRITON_INTERPRET=1 programs run one after another, which
is a legal schedule of this kernel.)

Forward, per row of a step (a tile of TILE_N rows x BLOCK_B samples):

    input:   log p(x) (categorical, Bernoulli, Gaussian; missing -> 0, or the
             mode in the max pass), or log sum_c p[c] * soft[v, c, b] (soft
             evidence: logic literal weights)
    product: sum of the children's log-values
    sum:     log sum_k w_k exp(child_k), online rescaled per element
             (`_lse_step`); max_k (log w_k + child_k) in the max pass

looping over the tile's largest fan-in, two children per iteration so that
their gathers are in flight together. The next step's descriptor is read
while a step runs; the forward also writes the constant rows 0 (-inf) and
1 (0) that padding reads, and reads soft evidence through its strides (the
caller's [B, V, K] tensor, no transposed copy).

Backward (node flows, flow = d log root / d log value): flows are zeroed
in the program's columns, the root's set to 1, and the steps run in
reverse; a row's flow is final when its step comes (all its parents sit in
later steps), and the row pushes it to its children:

    product child:  flow(c) += flow(p)
    sum child k:    flow(c) += flow(p) * w_k * exp(value(c) - value(p))

(bounded: exp(value(c) - value(p)) <= 1 / w_k). Pushing costs the fan-in
per row; gathering from parents instead would cost the fan-out, which is
much larger at the literals of an SDD (seq_fun: 90 against 12). Several
rows of a step can share a child, so the push is an atomic add (relaxed:
the barrier orders it), only ever into the program's own columns; flows
are read back at L2 (".cg"), never from a stale L1 line.

Soft-evidence gradient (SOFT_GRAD), once all flows are final, gathered per
variable v and category c over the input nodes n over v (no atomics):

    grad[v, c, b] = gout[b] * sum_n flow[n, b] * p_n[c] / exp(value[n, b])
"""

from __future__ import annotations

import triton
import triton.language as tl

from pccompiler.backends.triton.io_kernels import categorical_log_prob


@triton.jit
def _lse_step(m, acc, y):
    """Online log-sum-exp: fold y into (running max m, sum acc of exp(. - m))
    with one exp; -inf terms change nothing."""
    take = y > m
    e = tl.exp(tl.where(take, m - y, y - m))
    e = tl.where(y == float("-inf"), 0.0, e)
    acc = tl.where(take, acc * e + 1.0, acc + e)
    return tl.maximum(m, y), acc


@triton.jit
def _child(values_ptr, params_ptr, edge_slot_ptr, edge_w_ptr, beg, cnt, k, n_mask, offs_b,
           b_mask, stride, IS_SUM: tl.constexpr):
    """Child k of each row: (its log-value, plus log w_k for a sum) [TILE_N, BLOCK_B]
    and whether it exists; a missing child reads -inf (sum) or 0 (product)."""
    km = n_mask & (k < cnt)
    cs = tl.load(edge_slot_ptr + beg + k, mask=km, other=0).to(tl.int64)
    mask = km[:, None] & b_mask[None, :]
    if IS_SUM:
        w = tl.load(params_ptr + tl.load(edge_w_ptr + beg + k, mask=km, other=0), mask=km,
                    other=0.0)
        y = tl.load(values_ptr + cs[:, None] * stride + offs_b[None, :], mask=mask,
                    other=float("-inf"))
        return y + tl.log(w)[:, None]
    return tl.load(values_ptr + cs[:, None] * stride + offs_b[None, :], mask=mask, other=0.0)


@triton.jit
def _sum_rows(values_ptr, params_ptr, edge_slot_ptr, edge_w_ptr, beg, cnt, n_mask, offs_b,
              b_mask, stride, MODE_MAX: tl.constexpr, TILE_N: tl.constexpr,
              BLOCK_B: tl.constexpr):
    kmax = tl.max(cnt, axis=0)
    m = tl.full((TILE_N, BLOCK_B), float("-inf"), dtype=tl.float32)
    acc = tl.zeros((TILE_N, BLOCK_B), dtype=tl.float32)
    for k in range(0, kmax, 2):
        y0 = _child(values_ptr, params_ptr, edge_slot_ptr, edge_w_ptr, beg, cnt, k, n_mask,
                    offs_b, b_mask, stride, True)
        y1 = _child(values_ptr, params_ptr, edge_slot_ptr, edge_w_ptr, beg, cnt, k + 1, n_mask,
                    offs_b, b_mask, stride, True)
        if MODE_MAX:
            m = tl.maximum(m, tl.maximum(y0, y1))
        else:
            m, acc = _lse_step(m, acc, y0)
            m, acc = _lse_step(m, acc, y1)
    if MODE_MAX:
        return m
    return tl.log(acc) + m


@triton.jit
def _product_rows(values_ptr, edge_slot_ptr, beg, cnt, n_mask, offs_b, b_mask, stride,
                  TILE_N: tl.constexpr, BLOCK_B: tl.constexpr):
    kmax = tl.max(cnt, axis=0)
    acc = tl.zeros((TILE_N, BLOCK_B), dtype=tl.float32)
    for k in range(0, kmax, 2):
        acc += _child(values_ptr, values_ptr, edge_slot_ptr, edge_slot_ptr, beg, cnt, k,
                      n_mask, offs_b, b_mask, stride, False)
        acc += _child(values_ptr, values_ptr, edge_slot_ptr, edge_slot_ptr, beg, cnt, k + 1,
                      n_mask, offs_b, b_mask, stride, False)
    return acc


@triton.jit
def _soft_rows(params_ptr, soft_ptr, var, ps, cats, n_mask, mask, offs_b, soft_sv, soft_sc,
               soft_sb, MODE_MAX: tl.constexpr, TILE_N: tl.constexpr, BLOCK_B: tl.constexpr):
    """log sum_c (or max_c) p[c] * soft[var, c, b] (element strides sv, sc, sb:
    the caller's [B, V, K] weights read in place, no transposed copy)."""
    acc = tl.zeros((TILE_N, BLOCK_B), dtype=tl.float32)
    for c in range(0, cats):
        p = tl.load(params_ptr + ps + c, mask=n_mask, other=0.0)
        s = tl.load(soft_ptr + (var * soft_sv + c * soft_sc)[:, None]
                    + offs_b.to(tl.int64)[None, :] * soft_sb,
                    mask=mask, other=0.0)
        if MODE_MAX:
            acc = tl.maximum(acc, p[:, None] * s)
        else:
            acc += p[:, None] * s
    return tl.log(acc)


@triton.jit
def _evidence_rows(params_ptr, x_ptr, miss_ptr, bad_ptr, var, ps, n_mask, mask, offs_b, batch,
                   dist, cats, HAS_MISSING: tl.constexpr, MODE_MAX: tl.constexpr,
                   TILE_N: tl.constexpr, BLOCK_B: tl.constexpr):
    """Log-densities of observed entries, as io_kernels.input_fwd_kernel
    (same formulas, same bad-category record)."""
    xoff = var[:, None] * batch + offs_b[None, :]
    obs = mask
    if HAS_MISSING:
        miss = tl.load(miss_ptr + xoff, mask=mask, other=0) != 0
        obs = mask & (miss == 0)
    if dist == 0:
        out = categorical_log_prob(params_ptr, x_ptr, bad_ptr, ps, var, xoff, obs, offs_b, cats)
        if HAS_MISSING and MODE_MAX:
            top = tl.zeros((TILE_N,), dtype=tl.float32)
            for c in range(0, cats):
                top = tl.maximum(top, tl.load(params_ptr + ps + c, mask=n_mask, other=0.0))
            out = tl.where(miss, tl.log(top)[:, None], out)
    elif dist == 1:
        p = tl.load(params_ptr + ps, mask=n_mask, other=0.5)
        xv = tl.load(x_ptr + xoff, mask=obs, other=0).to(tl.float32)
        out = tl.where(xv > 0.5, tl.log(p)[:, None], tl.log(1.0 - p)[:, None])
        if HAS_MISSING and MODE_MAX:
            out = tl.where(miss, tl.log(tl.maximum(p, 1.0 - p))[:, None], out)
    else:
        mean = tl.load(params_ptr + ps, mask=n_mask, other=0.0)
        std = tl.load(params_ptr + ps + 1, mask=n_mask, other=1.0)
        xv = tl.load(x_ptr + xoff, mask=obs, other=0).to(tl.float32)
        z = (xv - mean[:, None]) / std[:, None]
        out = -0.5 * z * z - tl.log(std)[:, None] - 0.9189385332046727
        if HAS_MISSING and MODE_MAX:
            out = tl.where(miss, (-tl.log(std) - 0.9189385332046727)[:, None], out)
    if HAS_MISSING and not MODE_MAX:
        out = tl.where(miss, 0.0, out)
    return out


@triton.jit
def _step(steps_ptr, s, num_steps):
    """Descriptor s (kind, first row, end row, dist, categories); zeros past the end."""
    ok = s < num_steps
    return (tl.load(steps_ptr + s * 5, mask=ok, other=0),
            tl.load(steps_ptr + s * 5 + 1, mask=ok, other=0),
            tl.load(steps_ptr + s * 5 + 2, mask=ok, other=0),
            tl.load(steps_ptr + s * 5 + 3, mask=ok, other=0),
            tl.load(steps_ptr + s * 5 + 4, mask=ok, other=0))


@triton.jit
def fused_fwd_kernel(values_ptr, sum_params_ptr, in_params_ptr, x_ptr, miss_ptr, soft_ptr,
                     bad_ptr, steps_ptr, num_steps, row_slot_ptr, row_var_ptr, row_ps_ptr,
                     beg_ptr, cnt_ptr, edge_slot_ptr, edge_w_ptr, batch, stride, soft_sv,
                     soft_sc, soft_sb,
                     SOFT: tl.constexpr, HAS_MISSING: tl.constexpr, MODE_MAX: tl.constexpr,
                     TILE_N: tl.constexpr, BLOCK_B: tl.constexpr):
    """Every value row of the circuit for this program's batch columns, and
    the constant rows 0 (-inf) and 1 (0) that padding reads."""
    offs_b = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    b_mask = offs_b < batch
    lanes = tl.arange(0, TILE_N)
    tl.store(values_ptr + offs_b, tl.full((BLOCK_B,), float("-inf"), tl.float32), mask=b_mask)
    tl.store(values_ptr + stride + offs_b, tl.zeros((BLOCK_B,), tl.float32), mask=b_mask)
    tl.debug_barrier()
    kind, lo, hi, dist, cats = _step(steps_ptr, 0, num_steps)
    for s in range(0, num_steps):
        # the next step's descriptor is read while this one runs
        n_kind, n_lo, n_hi, n_dist, n_cats = _step(steps_ptr, s + 1, num_steps)
        for r0 in range(lo, hi, TILE_N):
            rows = r0 + lanes
            n_mask = rows < hi
            mask = n_mask[:, None] & b_mask[None, :]
            slot = tl.load(row_slot_ptr + rows, mask=n_mask, other=0).to(tl.int64)
            if kind == 0:
                var = tl.load(row_var_ptr + rows, mask=n_mask, other=0).to(tl.int64)
                ps = tl.load(row_ps_ptr + rows, mask=n_mask, other=0)
                if SOFT:
                    out = _soft_rows(in_params_ptr, soft_ptr, var, ps, cats, n_mask, mask, offs_b,
                                     soft_sv, soft_sc, soft_sb, MODE_MAX, TILE_N, BLOCK_B)
                else:
                    out = _evidence_rows(in_params_ptr, x_ptr, miss_ptr, bad_ptr, var, ps,
                                         n_mask, mask, offs_b, batch, dist, cats, HAS_MISSING,
                                         MODE_MAX, TILE_N, BLOCK_B)
            else:
                beg = tl.load(beg_ptr + rows, mask=n_mask, other=0)
                cnt = tl.load(cnt_ptr + rows, mask=n_mask, other=0)
                if kind == 1:
                    out = _product_rows(values_ptr, edge_slot_ptr, beg, cnt, n_mask, offs_b,
                                        b_mask, stride, TILE_N, BLOCK_B)
                else:
                    out = _sum_rows(values_ptr, sum_params_ptr, edge_slot_ptr, edge_w_ptr, beg,
                                    cnt, n_mask, offs_b, b_mask, stride, MODE_MAX, TILE_N,
                                    BLOCK_B)
            tl.store(values_ptr + slot[:, None] * stride + offs_b[None, :], out, mask=mask)
        tl.debug_barrier()
        kind, lo, hi, dist, cats = n_kind, n_lo, n_hi, n_dist, n_cats


@triton.jit
def _push(flows_ptr, values_ptr, params_ptr, edge_slot_ptr, edge_w_ptr, beg, cnt, k, n_mask,
          f, y, offs_b, b_mask, stride, IS_SUM: tl.constexpr):
    """Add row flows f [TILE_N, BLOCK_B] (log-values y) into child k of each row."""
    km = n_mask & (k < cnt)
    cs = tl.load(edge_slot_ptr + beg + k, mask=km, other=0).to(tl.int64)
    live = km & (cs > 1)                     # slots 0 / 1 are constants: no flow
    mask = live[:, None] & b_mask[None, :] & (f != 0.0)
    off = cs[:, None] * stride + offs_b[None, :]
    if IS_SUM:
        w = tl.load(params_ptr + tl.load(edge_w_ptr + beg + k, mask=live, other=0), mask=live,
                    other=0.0)
        yc = tl.load(values_ptr + off, mask=mask, other=float("-inf"))
        add = f * w[:, None] * tl.exp(yc - tl.where(mask, y, 0.0))
    else:
        add = f
    tl.atomic_add(flows_ptr + off, add, mask=mask & (add != 0.0), sem="relaxed")


@triton.jit
def fused_bwd_kernel(values_ptr, flows_ptr, sum_params_ptr, in_params_ptr, grad_ptr, gout_ptr,
                     steps_ptr, num_steps, row_slot_ptr, beg_ptr, cnt_ptr, edge_slot_ptr,
                     edge_w_ptr, var_beg_ptr, var_cnt_ptr, var_slot_ptr, var_ps_ptr,
                     var_cats_ptr, num_vars, num_slots, root_slot, batch, stride, soft_k,
                     grad_sv, grad_sc, grad_sb,
                     SOFT_GRAD: tl.constexpr, TILE_N: tl.constexpr, BLOCK_B: tl.constexpr):
    """Node flows of every row for this program's columns (steps_ptr: the
    plan's steps in reverse), then, with SOFT_GRAD, the gradient of
    gout . log root with respect to the soft evidence into grad [V, K, B]."""
    offs_b = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    b_mask = offs_b < batch
    lanes = tl.arange(0, TILE_N)
    zero = tl.zeros((TILE_N, BLOCK_B), dtype=tl.float32)
    for z0 in range(0, num_slots, TILE_N):
        zrows = (z0 + lanes).to(tl.int64)
        tl.store(flows_ptr + zrows[:, None] * stride + offs_b[None, :],
                 tl.where((zrows == root_slot)[:, None], 1.0, zero),
                 mask=(zrows < num_slots)[:, None] & b_mask[None, :])
    tl.debug_barrier()
    kind, lo, hi, dist, cats = _step(steps_ptr, 0, num_steps)
    for s in range(0, num_steps):
        n_kind, n_lo, n_hi, n_dist, n_cats = _step(steps_ptr, s + 1, num_steps)
        if kind != 0:
            for r0 in range(lo, hi, TILE_N):
                rows = r0 + lanes
                n_mask = rows < hi
                mask = n_mask[:, None] & b_mask[None, :]
                slot = tl.load(row_slot_ptr + rows, mask=n_mask, other=0).to(tl.int64)
                off = slot[:, None] * stride + offs_b[None, :]
                f = tl.load(flows_ptr + off, mask=mask, other=0.0, cache_modifier=".cg")
                beg = tl.load(beg_ptr + rows, mask=n_mask, other=0)
                cnt = tl.load(cnt_ptr + rows, mask=n_mask, other=0)
                kmax = tl.max(cnt, axis=0)
                if kind == 1:
                    for k in range(0, kmax, 2):       # two children in flight per iteration
                        for u in tl.static_range(2):
                            _push(flows_ptr, values_ptr, sum_params_ptr, edge_slot_ptr,
                                  edge_w_ptr, beg, cnt, k + u, n_mask, f, f, offs_b, b_mask,
                                  stride, False)
                else:
                    y = tl.load(values_ptr + off, mask=mask, other=0.0)
                    for k in range(0, kmax, 2):
                        for u in tl.static_range(2):
                            _push(flows_ptr, values_ptr, sum_params_ptr, edge_slot_ptr,
                                  edge_w_ptr, beg, cnt, k + u, n_mask, f, y, offs_b, b_mask,
                                  stride, True)
            tl.debug_barrier()
        kind, lo, hi, dist, cats = n_kind, n_lo, n_hi, n_dist, n_cats
    if SOFT_GRAD:
        g = tl.load(gout_ptr + offs_b, mask=b_mask, other=0.0)
        for v0 in range(0, num_vars, TILE_N):
            vs = v0 + lanes
            v_mask = vs < num_vars
            vbeg = tl.load(var_beg_ptr + vs, mask=v_mask, other=0)
            vcnt = tl.load(var_cnt_ptr + vs, mask=v_mask, other=0)
            vmax = tl.max(vcnt, axis=0)
            for c in range(0, soft_k):
                acc = tl.zeros((TILE_N, BLOCK_B), dtype=tl.float32)
                for j in range(0, vmax):
                    jm = v_mask & (j < vcnt)
                    nslot = tl.load(var_slot_ptr + vbeg + j, mask=jm, other=0).to(tl.int64)
                    nps = tl.load(var_ps_ptr + vbeg + j, mask=jm, other=0)
                    ncats = tl.load(var_cats_ptr + vbeg + j, mask=jm, other=0)
                    pm = jm & (c < ncats)
                    p = tl.load(in_params_ptr + nps + c, mask=pm, other=0.0)
                    noff = nslot[:, None] * stride + offs_b[None, :]
                    nmask = pm[:, None] & b_mask[None, :]
                    nf = tl.load(flows_ptr + noff, mask=nmask, other=0.0, cache_modifier=".cg")
                    ny = tl.load(values_ptr + noff, mask=nmask, other=0.0)
                    live = nmask & (nf != 0.0)
                    acc += tl.where(live, nf * tl.exp(-tl.where(live, ny, 0.0)) * p[:, None], 0.0)
                tl.store(grad_ptr + (vs.to(tl.int64) * grad_sv + c * grad_sc)[:, None]
                         + offs_b.to(tl.int64)[None, :] * grad_sb, acc * g[None, :],
                         mask=v_mask[:, None] & b_mask[None, :])
