"""Version and environment shims for the Triton backend.

The kernels target Triton 3.2 .. 3.9 (the lead's H100 runs 3.6, CI's CPU
image 3.9 under `TRITON_INTERPRET=1`). Everything that differs between those
versions or between the interpreter and a GPU is decided here, once, so the
kernels themselves stay version-free:

* `tl.dot` precision: every version in range takes `input_precision`
  ("ieee" | "tf32" | "tf32x3"); older ones only had `allow_tf32`. We refuse
  a Triton without `input_precision` with a clear error rather than silently
  computing in the wrong precision.
* The interpreter runs kernels on CPU tensors; on a GPU the tensors must be
  CUDA tensors. `device_ok` tells an engine which devices it can serve.
"""

from __future__ import annotations

import functools
import inspect
import os

import torch

from pccompiler.errors import BackendError

try:  # Triton ships wheels for Linux x86_64 only.
    import triton
    import triton.language as tl
    HAVE_TRITON = True
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None
    tl = None
    HAVE_TRITON = False

#: Precisions a caller may ask for; "tf32" is the fast default on tensor cores,
#: "ieee" the exact fp32 one (what the conformance tests use), "tf32x3" a
#: three-pass split that is near fp32 accuracy at about a third of tf32 speed,
#: "bf16" sum-layer dots with bfloat16 operands and fp32 accumulation
#: (dots.py; the other kernels stay fp32).
PRECISIONS = ("ieee", "tf32", "tf32x3", "bf16")


def interpreting() -> bool:
    """True when kernels run under Triton's CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def require_triton() -> None:
    """Raise BackendError if Triton is missing or too old for these kernels."""
    if not HAVE_TRITON:
        raise BackendError("the triton backend needs the `triton` package "
                           "(Linux x86_64 wheels only); use backend='torch' instead")
    if not _dot_takes_input_precision():
        raise BackendError(f"triton {triton.__version__} is too old: tl.dot has no "
                           "`input_precision` (need triton >= 3.0)")


@functools.cache
def _dot_takes_input_precision() -> bool:
    """Whether tl.dot has `input_precision`: a fact of the process's Triton,
    read once (inspect.signature costs ~50 us, every engine asked again)."""
    return "input_precision" in inspect.signature(tl.dot).parameters


def check_precision(precision: str) -> str:
    """Validate a dot precision name. Under the interpreter the tf32 names
    are exact fp32 and "bf16" rounds the operands by bit arithmetic (dots.py)."""
    if precision not in PRECISIONS:
        raise BackendError(f"unknown dot precision {precision!r}; choose one of {PRECISIONS}")
    return precision


def check_fuse_products(value: object) -> bool:
    """Validate the `fuse_products` option: a bool (True / False, or the
    strings "true" / "false" of a command line); anything else is refused
    rather than read as truthy."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BackendError(f"fuse_products must be True or False, not {value!r}")


def device_ok(device: torch.device) -> bool:
    """Whether kernels can run on `device` in this process."""
    if not HAVE_TRITON:
        return False
    if interpreting():
        return device.type == "cpu"
    return device.type == "cuda" and torch.cuda.is_available()


def next_pow2(n: int) -> int:
    """Smallest power of two >= max(n, 1) (tile extents must be powers of two)."""
    n = max(int(n), 1)
    return 1 << (n - 1).bit_length()


def cdiv(a: int, b: int) -> int:
    return -(-int(a) // int(b))
