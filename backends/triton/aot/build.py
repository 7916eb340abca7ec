"""Cross-compile recorded specializations and collect Triton's cache files.

Each specialization is handed back to Triton through `JITFunction.preload`
(the JIT's own path from a serialized specialization to `triton.compile`)
under the stand-in driver for the named target, with Triton's cache pointed
at a private temporary folder. What lands there is exactly what the JIT on
the target machine would write for that launch, under the key it will
recompute: the artifact keeps the metadata JSON and the GPU binaries
(cubin, ptx) of each group; IR dumps (ttir, ttgir, llir, source) are left out.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch

from pccompiler.backends.triton.aot.record import all_kernels, record_specializations
from pccompiler.backends.triton.aot.target import cross_driver, parse_target, target_name
from pccompiler.errors import BackendError
from pccompiler.ir import pcir

KEPT_SUFFIXES = (".json", ".cubin", ".ptx")


@dataclass
class BuiltKernel:
    """One compiled specialization: Triton's cache hash and its files."""
    name: str
    hash: str
    spec: str
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class BuiltKernels:
    target: str
    triton_version: str
    batch_sizes: list[int]
    data_dtypes: list[str]
    precision: str
    kernels: list[BuiltKernel]


@contextlib.contextmanager
def _private_cache(folder: str) -> Iterator[None]:
    from triton import knobs
    with knobs.cache.scope():          # Triton restores its cache knobs on exit
        knobs.cache.dir = folder
        yield


def _group_files(kernel) -> dict[str, bytes]:
    """The kept files of a CompiledKernel's cache group, by file name."""
    out = {}
    for name, path in sorted(kernel.metadata_group.items()):
        if name.endswith(KEPT_SUFFIXES):
            with open(path, "rb") as fh:
                out[name] = fh.read()
    if not any(n.endswith(".json") for n in out) or len(out) < 2:
        raise BackendError(f"triton wrote no metadata/binary for kernel {kernel.name} "
                           f"(group {sorted(kernel.metadata_group)})")
    return out


def _compile_one(spec, target: str) -> BuiltKernel:
    """One specialization through Triton's preload (threads: Triton's own
    async compile mode runs compiles concurrently the same way)."""
    try:
        ck = spec.kernel.preload(spec.data)
    except Exception as exc:
        raise BackendError(f"cross-compiling kernel {spec.name} for {target} failed: "
                           f"{type(exc).__name__}: {exc}") from exc
    return BuiltKernel(spec.name, ck.hash, spec.data, _group_files(ck))


def build_kernels(model: pcir.Model, layout: pcir.Layout, target: str = "cuda:sm_90",
                  batch_sizes: Sequence[int] = (1, 512, 4096),
                  data_dtypes: Sequence[str] = ("uint8", "int64"),
                  precision: str = "tf32", compact: bool = True,
                  workers: int | None = None) -> BuiltKernels:
    """Every kernel the Triton plans of (model, layout) launch at
    `batch_sizes` on `target`, compiled by this machine's Triton (no GPU
    needed), `workers` compiles at a time (default: one per CPU)."""
    import triton
    gpu = parse_target(target)
    dtypes = [getattr(torch, d) for d in data_dtypes]
    specs = record_specializations(model, layout, gpu, batch_sizes, dtypes, precision, compact)
    with tempfile.TemporaryDirectory(prefix="pcc-aot-") as tmp, _private_cache(tmp), \
            cross_driver(gpu, all_kernels()), \
            ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        built = list(pool.map(lambda spec: _compile_one(spec, target), specs))
    return BuiltKernels(target_name(gpu), triton.__version__, [int(b) for b in batch_sizes],
                        list(data_dtypes), precision, built)


def default_cache_dir() -> str:
    """Where this process's Triton keeps its kernels (TRITON_CACHE_DIR or ~/.triton/cache)."""
    from triton import knobs
    return knobs.cache.dir or os.path.join(os.path.expanduser("~"), ".triton", "cache")
