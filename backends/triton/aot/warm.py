"""Load restored kernels into the GPU before the first launch, in parallel.

After `store.restore_kernels` every first launch is a cache hit, but each
still does, one after the other on the launching thread: read the cache
files, build Triton's host-side C launcher for that signature when this
machine has not built it yet (a C compiler run, the bulk of a cold
machine's cost) and load the cubin. `preload_kernels` does that work for
every stored specialization up front on a thread pool (the compiler runs
are subprocesses), through Triton's own `JITFunction.preload`, which also
puts each kernel in the JIT's in-memory cache under the key the launch will
look up: the first launches then find their kernels without touching the
file cache. Opt-in (`pccompiler.load(..., kernels="preload")`): on a
machine whose launchers are built it loads kernels of batch sizes a run
may never use. Where aot/install.py has put the kernels in the JIT's
memory already, `load_installed` does the same loading for them without
`triton.compile`; `preload_kernels` is the path for the others.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping

from pccompiler.backends.triton.aot.store import KernelMismatchWarning


def _load_one(kernel, spec: str) -> None:
    _init_handles(kernel.preload(spec))


def _init_handles(compiled) -> None:
    init = getattr(compiled, "_init_handles", None)  # private in Triton 3.x: launcher + cubin
    if init is not None:
        init()


def preload_kernels(entry: Mapping[str, Any], path: str, device=None,
                    workers: int | None = None) -> int:
    """Preload every stored kernel of `entry` (already restored and matching
    this machine) for the CUDA `device`; returns how many loaded. Failures
    cost one warning: those kernels load on first use as usual."""
    from pccompiler.backends.triton.aot.record import kernels_by_name
    by_name = kernels_by_name()
    return _on_pool([(k["name"], functools.partial(_load_one, by_name[k["name"]], k["spec"]))
                     for k in entry["kernels"] if k.get("name") in by_name],
                    path, device, workers)


def load_installed(kernels: list, path: str, device=None, workers: int | None = None) -> int:
    """Load CompiledKernels already in the JIT's memory (aot/install.py)
    into the GPU at once: launcher and cubin of each, on a thread pool, as
    `preload_kernels` does without going through `triton.compile`."""
    return _on_pool([(getattr(k, "name", "?"), functools.partial(_init_handles, k))
                     for k in kernels], path, device, workers)


def _on_pool(jobs: list[tuple[str, Callable[[], None]]], path: str, device,
             workers: int | None) -> int:
    """Run each (kernel name, job) on a thread pool with the CUDA `device`
    current; returns how many succeeded, one warning for the failures."""
    import torch
    index = torch.device(device if device is not None else "cuda").index
    index = torch.cuda.current_device() if index is None else index
    torch.cuda.synchronize(index)        # the CUDA context exists before the workers start
    errors: list[str] = []

    def run(job) -> bool:
        try:
            torch.cuda.set_device(index)     # Triton asks torch for the thread's device
            job[1]()
            return True
        except Exception as exc:  # the first launch redoes this and reports real errors
            errors.append(f"{job[0]}: {type(exc).__name__}: {exc}")
            return False

    with ThreadPoolExecutor(max_workers=workers or min(32, os.cpu_count() or 1)) as pool:
        loaded = sum(pool.map(run, jobs))
    if errors:
        warnings.warn(f"{path}: {len(errors)} stored kernel(s) not preloaded ({errors[0]}); "
                      f"they load on first use", KernelMismatchWarning, stacklevel=4)
    return loaded


def hash_triton_in_background() -> threading.Thread | None:
    """Start computing Triton's key of its own installation on a thread.

    Every process pays `triton.runtime.cache.triton_key` once, inside its
    first kernel launch, cache hit or not: a sha256 over Triton's compiler
    and language sources and the whole libtriton shared library (0.37 s of
    the 1.08 s from load to first log-likelihood of hclt32 on the H100 host,
    `bench/results/load_checks-h100-2026-12-07.md`). hashlib releases the
    GIL while it hashes large buffers, so on a thread started when the load
    begins it runs beside the load's own work; Triton memoises the result,
    so the first launch finds it. `pccompiler.load` has the engine join
    the thread once its first plan is built, just before the first launch
    (`TritonEngine.wait_before_first_launch`): the plan's build runs beside
    the hash too, and two first calls never hash twice.
    None when this Triton has no such function.
    """
    from triton.runtime import cache
    key = getattr(cache, "triton_key", None)
    if key is None:
        return None
    thread = threading.Thread(target=key, name="pcc-triton-key", daemon=True)
    thread.start()
    return thread
