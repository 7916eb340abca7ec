"""Which kernel specializations will the Triton plans launch?

The answer comes from Triton itself: the engine runs its forward, backward
and EM (compact plan) and its all-node forward (sum and max) and backward
(Layout plan) on CPU tensors, with the stand-in driver of `target.py` and
Triton's `jit_cache_hook` installed. Each launch then goes through the JIT's
own binder (argument dtypes, ints equal to 1 or divisible by 16, pointer
alignment, constexprs, num_warps) and reaches the hook, which records
Triton's serialized specialization (`specialization_data`, the format
`JITFunction.preload` reads back) and returns True: nothing compiles and
nothing runs. Launch sizes depend on the batch size and the data dtype
only, never on data values, so a dry run per (batch size, dtype) sees every
launch the GPU will make.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from pccompiler.backends.triton.aot.target import cross_driver
from pccompiler.ir import pcir


@dataclass(frozen=True)
class Specialization:
    """One kernel variant: its JITFunction and Triton's serialized key."""
    kernel: object          # triton.runtime.jit.JITFunction
    data: str               # JSON from triton's serialize_specialization_data

    @property
    def name(self) -> str:
        return self.kernel.fn.__name__


def all_kernels() -> list:
    """Every JITFunction the launch module can start (those of the five
    kernel modules), so their device caches can be cleaned after a dry run."""
    from triton.runtime.jit import JITFunction
    from pccompiler.backends.triton import (
        em_kernels, io_kernels, sum_backward, sum_forward, tile_flows,
    )
    return [obj for mod in (io_kernels, sum_forward, sum_backward, tile_flows, em_kernels)
            for obj in vars(mod).values() if isinstance(obj, JITFunction)]


def kernels_by_name() -> dict:
    """all_kernels() by kernel name, the name an artifact's manifest stores
    for each specialization."""
    return {k.fn.__name__: k for k in all_kernels()}


@contextlib.contextmanager
def _recording(seen: dict[tuple[int, str], Specialization]) -> Iterator[None]:
    from triton import knobs

    def hook(*, fn, compile, **_) -> bool:
        kernel = fn.jit_function
        spec = Specialization(kernel, compile["specialization_data"])
        seen.setdefault((id(kernel), spec.data), spec)
        return True     # skip the compile and the launch

    with knobs.runtime.scope():        # Triton restores its runtime knobs on exit
        knobs.runtime.jit_cache_hook = hook
        yield


def _batch(engine, batch: int, dtype: torch.dtype) -> torch.Tensor:
    """A batch of valid values (category 0 / real 0.0) of the given dtype."""
    if bool(engine.real_vars.any()):
        dtype = torch.float32
    return torch.zeros(batch, len(engine.num_cats), dtype=dtype)


def record_specializations(model: pcir.Model, layout: pcir.Layout, target,
                           batch_sizes: Sequence[int], data_dtypes: Sequence[torch.dtype],
                           precision: str = "tf32", compact: bool = True) -> list[Specialization]:
    """The distinct specializations a CUDA TritonEngine on `target` launches
    for log-likelihoods, training (forward, backward, EM) and the all-node
    queries at each batch size and data dtype, in first-launch order."""
    from pccompiler.backends.triton.compat import interpreting
    from pccompiler.backends.triton.engine import TritonEngine
    from pccompiler.errors import BackendError
    if interpreting():
        raise BackendError("building GPU kernels needs real Triton kernels: unset "
                           "TRITON_INTERPRET (it makes @triton.jit build interpreter functions)")
    engine = TritonEngine(model, layout, device="cpu", precision=precision, cuda_graphs=False,
                          compact=compact)
    seen: dict[tuple[int, str], Specialization] = {}
    with cross_driver(target, all_kernels()), _recording(seen):
        exercise(engine, batch_sizes, data_dtypes)
    return list(seen.values())


def exercise(engine, batch_sizes: Sequence[int], data_dtypes: Sequence[torch.dtype]) -> None:
    """Every engine entry point whose launches the artifact covers: the
    compact plan's log-likelihood, forward + backward and EM update, the
    Layout plan's all-node forward (sum and max) and backward."""
    for batch in batch_sizes:
        for dtype in data_dtypes:
            x = _batch(engine, int(batch), dtype)
            engine.root_log_prob(x)
            engine.forward_backward(x)
            engine.em_update(1.0, 0.0)
            values = engine.forward(x)
            engine.backward(values, x)
            engine.forward(x, mode="max")
