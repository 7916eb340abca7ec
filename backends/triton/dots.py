"""The one tl.dot of every sum kernel, at the engine's precision.

`PREC` is a constexpr: "ieee", "tf32" and "tf32x3" go to tl.dot's own
`input_precision`; precision "bf16" (PREC = BF16_TOKEN) rounds both
operands to bfloat16 and accumulates in fp32 (twice tf32's tensor-core
rate on an H100, 8 mantissa bits per operand instead of 11). The operands of every sum dot are weights in [0, 1]
and exponentials of log-values shifted by their running maximum, also in
[0, 1], so bf16's range is never the issue, only its precision.

Triton 3.9's interpreter gets bf16 dots wrong (numpy has no bfloat16: the
raw bits are multiplied), so under TRITON_INTERPRET=1 "bf16" rounds each
operand to the nearest bfloat16 (ties to even) by bit arithmetic on fp32
and takes an exact fp32 dot: the same products (a product of two bf16
values is exact in fp32) and fp32 sums, so the conformance suite checks the
arithmetic the GPU does, up to the order of the additions.
"""

from __future__ import annotations

import triton
import triton.language as tl

from pccompiler.backends.triton.compat import interpreting

#: The kernels' PREC token for precision="bf16". Not "bf16" itself: Triton's
#: JITFunction.preload (the AOT kernels' path) turns a constexpr string that
#: names a dtype into that dtype, and tl.dot would then get a dtype as its
#: input_precision.
BF16_TOKEN = "bf16_operands"


@triton.jit
def _round_bf16(x):
    """fp32 -> the nearest bfloat16 value (ties to even), still fp32."""
    bits = x.to(tl.uint32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _sum_dot_device(a, b, PREC: tl.constexpr):
    if PREC == "bf16_operands":
        return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))
    else:
        return tl.dot(a, b, input_precision=PREC)


@triton.jit
def _sum_dot_interpreted(a, b, PREC: tl.constexpr):
    if PREC == "bf16_operands":
        return tl.dot(_round_bf16(a), _round_bf16(b), input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision=PREC)


#: a @ b with fp32 accumulation; operands rounded to bf16 when PREC is BF16_TOKEN.
sum_dot = _sum_dot_interpreted if interpreting() else _sum_dot_device
