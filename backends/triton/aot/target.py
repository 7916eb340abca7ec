"""Named GPU targets and a stand-in Triton driver for cross-compilation.

Triton's JIT asks `driver.active` for the current device, stream and target
before it specializes a launch. To record and build kernels for a GPU this
machine does not have, `cross_driver(target)` makes a small driver that
answers with the named target (no CUDA call), installed with Triton's own
`driver.set_active` and always reset afterwards.
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

from pccompiler.errors import BackendError

#: The device key the stand-in driver reports; JITFunction.device_caches
#: entries under it are dropped after every use (`forget_device`).
AOT_DEVICE = "pccompiler-aot"

CUDA_WARP_SIZE = 32   # what triton/backends/nvidia/driver.py reports for every CUDA GPU


def parse_target(text: str):
    """'cuda:sm_90' (or 'cuda:90', 'sm_90') -> triton GPUTarget('cuda', 90, 32)."""
    from triton.backends.compiler import GPUTarget
    m = re.fullmatch(r"(?:cuda:)?(?:sm_)?([0-9]{2,3})a?", str(text).strip())
    if not m:
        raise BackendError(f"unknown GPU target {text!r}: expected cuda:sm_NN, e.g. cuda:sm_90")
    return GPUTarget("cuda", int(m.group(1)), CUDA_WARP_SIZE)


def target_name(target) -> str:
    """GPUTarget -> 'cuda:sm_90' (the form the manifest records)."""
    return f"{target.backend}:sm_{target.arch}"


def current_target():
    """The running machine's Triton target, or None without a usable GPU."""
    try:
        import torch
        if not torch.cuda.is_available():
            return None
        from triton.runtime.driver import driver
        return driver.active.get_current_target()
    except Exception:  # no driver, no GPU: nothing to match
        return None


class _NullUtils:
    """Kernel loading that loads nothing: a JIT run under the stand-in
    driver gets past its compile step (the part that is checked) and its
    launch is a no-op."""

    @staticmethod
    def get_device_properties(device) -> dict:
        return {"max_shared_mem": 1 << 30, "multiprocessor_count": 132,
                "max_num_regs": 65536, "warpSize": CUDA_WARP_SIZE}

    @staticmethod
    def load_binary(name, kernel, shared, device):
        return None, None, 0, 0, 1 << 30    # module, function, regs, spills, max threads


def _null_launcher(src, metadata):
    return lambda *args, **kwargs: None


class _CrossDriver:
    """Answers the questions JITFunction.run / preload ask, for `target`;
    kernels it "launches" do not run (recording never gets that far, and
    tests use it to see the JIT's own cache lookups on a CPU machine)."""

    utils = _NullUtils()
    launcher_cls = staticmethod(_null_launcher)

    def __init__(self, target):
        self.target = target

    def get_current_device(self):
        return AOT_DEVICE

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return self.target

    def is_active(self):
        return True


@contextlib.contextmanager
def cross_driver(target, kernels) -> Iterator[None]:
    """Make Triton see `target` while the block runs; `kernels` (JITFunctions)
    lose their entries for the stand-in device afterwards."""
    from triton.runtime.driver import driver
    previous = driver._active
    driver.set_active(_CrossDriver(target))
    try:
        yield
    finally:
        driver._active = previous
        for fn in kernels:
            fn.device_caches.pop(AOT_DEVICE, None)
