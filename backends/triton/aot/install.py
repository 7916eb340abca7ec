"""Stored kernels straight into the JIT's in-memory cache: no `triton.compile`.

Today's path (`store.restore_kernels`) writes each stored kernel's files
into Triton's cache, and the JIT's first launch of that specialization
finds them through `triton.compile`: a cache hit, but one that first
computes Triton's key of its own installation (`triton_key`: a sha256 over
libtriton and Triton's sources, 0.26 s on the H100 host, once per
process), hashes the kernel's source and looks up the file cache; the
writes themselves cost four files, a temporary folder and a rename per
kernel. `install_kernels` does what that cache hit ends with, at load: it
builds each kernel's `triton.compiler.CompiledKernel` from its verified
bytes and puts it in its JITFunction's in-memory cache
(`device_caches[device][0]`) under the key stored with its
specialization. The first launch then finds it there, as every later
launch does, and runs no compiler code at all.

It goes through Triton's own `JITFunction.preload`, which reads the stored
specialization back (signature, constexprs, attributes, options) and
inserts the kernel under its key, with the JIT's `compile` (an attribute
`create_binder` sets on the JITFunction) swapped, for that one call, for a
function that builds the CompiledKernel. CompiledKernel reads a cache
group's files by path, so the verified bytes are written to one private
temporary folder first (deleted once the kernels are built: they keep
their bytes in memory). Those are private Triton APIs, the same in Triton
3.6 and 3.9; they are checked by feature, not by version, and a kernel
whose install fails a check stays on today's path (the caller writes it
to Triton's cache), with one debug-level log line for all of them.
Nothing here reads host code from the artifact: Triton's CompiledKernel
reads the metadata JSON and the GPU binaries only (sha256-checked by
`store.verify_kernels` first). The stored specialization, which the
file-cache path does not read (its launches specialize from their own
arguments), here gives the argument types of the launcher Triton builds:
it must agree with the key the launch looks the kernel up by and with the
kernel's parameters (`_check_signature`), so a launch never reads its
arguments as other types.

Switch: `pccompiler.load(..., kernels="cache")` skips this (today's path).
Threads: swaps are made under one lock, and a compile that another thread's
launch starts while a swap is in place goes to Triton's own `compile`.
Kernels are installed for Triton's current device, the one the loaded
circuit's launches use; a launch on another device compiles as without an
artifact (kernels="cache" also serves other devices from the file cache).
"""

from __future__ import annotations

import ast
import inspect
import json
import logging
import os
import tempfile
import threading
from typing import Any, Mapping

log = logging.getLogger(__name__)

#: Held while a JITFunction's `compile` is swapped: two loads installing at
#: once restore each swap in order.
_SWAP = threading.Lock()

#: CompiledKernel's constructor as Triton 3.2 .. 3.9 define it: the kernel's
#: source object, its cache group {file name: path} and its cache hash.
COMPILED_KERNEL_PARAMS = ["src", "metadata_group", "hash"]


def compiled_kernel_class():
    """Triton's CompiledKernel when its constructor is the one this module
    calls, else None (the caller keeps today's path)."""
    try:
        from triton.compiler import CompiledKernel
        params = list(inspect.signature(CompiledKernel.__init__).parameters)[1:]
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    return CompiledKernel if params == COMPILED_KERNEL_PARAMS else None


class _NotInstalled(Exception):
    """Why one kernel stays on today's path."""


def _kernel_cache(fn) -> dict:
    """The JIT's in-memory kernel cache of `fn` for the current device
    (created with its binder, as the first launch would)."""
    from triton.runtime.driver import driver
    caches = getattr(fn, "device_caches", None)
    if caches is None or not callable(getattr(fn, "preload", None)):
        raise _NotInstalled("JITFunction has no device_caches / preload")
    entry = caches[driver.active.get_current_device()]
    if not (isinstance(entry, tuple) and entry and isinstance(entry[0], dict)):
        raise _NotInstalled("device_caches entry is not (kernel_cache, ...)")
    if "compile" not in vars(fn):
        raise _NotInstalled("JITFunction sets no compile attribute")
    return entry[0]


def _key_types(key: str) -> list | None:
    """The argument types of a JIT cache key, `str(specialization)` +
    `str(options)` in Triton 3.2 .. 3.9 (specialization: a list of (type,
    value) tuples, one per argument): None when it does not read so."""
    for end in (i for i, c in enumerate(key) if c == "]"):
        try:
            spec = ast.literal_eval(key[:end + 1])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(spec, list) and all(isinstance(t, tuple) and t for t in spec):
            return [t[0] for t in spec]
        return None
    return None


def _check_signature(fn, signature: Any, key: str) -> None:
    """The launcher Triton builds for an installed kernel takes its argument
    types from the stored signature, the launch finds the kernel by its key:
    both come from the manifest, so they must agree with each other and
    with the kernel's parameters, else a launch could read its arguments as
    other types (the JIT's own path takes both from the launch)."""
    names = list(getattr(fn, "arg_names", []))
    types = _key_types(key)
    if not isinstance(signature, dict) or list(signature) != names or types is None \
            or [signature[n] for n in names] != types:
        raise _NotInstalled("stored signature and key disagree with the kernel's parameters")


def _install_one(fn, spec: str, group: Mapping[str, str], khash: str, compiled_kernel) -> Any:
    """Build the CompiledKernel of one stored specialization from its
    restored `group` and put it in `fn`'s in-memory cache; returns it."""
    kernel_cache = _kernel_cache(fn)
    data = json.loads(spec)
    key = data.get("key")
    if not isinstance(key, str):
        raise _NotInstalled("no key in the specialization")
    _check_signature(fn, data.get("signature"), key)
    if key in kernel_cache:          # an earlier load in this process put it there
        return kernel_cache[key]
    built = []
    installer = threading.get_ident()

    def from_files(src, *args, **kwargs):
        if threading.get_ident() != installer:   # another thread's launch compiles meanwhile
            return saved(src, *args, **kwargs)
        built.append(compiled_kernel(src, dict(group), khash))
        return built[-1]

    with _SWAP:
        saved = vars(fn)["compile"]
        fn.compile = from_files
        try:
            kernel = fn.preload(spec)
        finally:
            fn.compile = saved
    if not built or kernel is not built[0] or kernel_cache.get(key) is not kernel:
        if built and kernel_cache.get(key) is built[0]:
            del kernel_cache[key]
        raise _NotInstalled("preload did not build and cache the kernel from its files")
    meta = kernel.metadata
    if getattr(meta, "hash", None) != khash or getattr(meta, "name", None) != fn.fn.__name__:
        del kernel_cache[key]
        raise _NotInstalled(f"metadata names {getattr(meta, 'name', '?')} "
                            f"{getattr(meta, 'hash', '?')}")
    return kernel


def _write_files(folder: str, khash: str, files: Mapping[str, bytes]) -> dict[str, str]:
    """One kernel's verified files in `folder` ({file name: path}); the
    paths keep each file's suffix, which CompiledKernel reads them by."""
    group = {}
    for fname, data in files.items():
        group[fname] = os.path.join(folder, f"{khash}.{fname}")
        with open(group[fname], "wb") as fh:
            fh.write(data)
    return group


def _scratch_root() -> str | None:
    """Where the private folder of `_write_files` goes: Linux's memory-backed
    /dev/shm when it is a writable folder (the four files of each kernel are
    written and read back once, and on a disk-backed /tmp those 220 opens of
    a 55-kernel circuit took 67-212 ms against 15 ms on the CPU box), else
    the default temporary folder."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def install_kernels(entry: Mapping[str, Any], kernels: list[tuple[str, str, dict[str, bytes]]]
                    ) -> tuple[list, list[tuple[str, str, dict[str, bytes]]]]:
    """Install the verified `kernels` of `entry` (`store.verify_kernels`'
    list, for a matching machine) into the JIT's in-memory cache for
    Triton's current device; returns (the CompiledKernels installed, the
    kernels left to today's path; one debug line says how many and why)."""
    from pccompiler.backends.triton.aot.record import kernels_by_name
    compiled_kernel = compiled_kernel_class()
    if compiled_kernel is None:
        log.debug("stored kernels: triton.compiler.CompiledKernel(%s) not found; all %d "
                  "load through triton.compile", ", ".join(COMPILED_KERNEL_PARAMS), len(kernels))
        return [], list(kernels)
    specs = {k.get("hash"): k.get("spec") for k in entry.get("kernels", [])}
    by_name = kernels_by_name()
    installed, left, failures = [], [], []
    try:
        scratch = tempfile.TemporaryDirectory(prefix="pcc-kernels-", dir=_scratch_root(),
                                              ignore_cleanup_errors=True)
    except OSError as exc:       # no writable temporary folder: today's path for all
        log.debug("stored kernels: no temporary folder (%s); all %d load through "
                  "triton.compile", exc, len(kernels))
        return [], list(kernels)
    with scratch as folder:
        for name, khash, files in kernels:
            try:
                if name not in by_name:
                    raise _NotInstalled("no such kernel")
                installed.append(_install_one(by_name[name], specs[khash],
                                              _write_files(folder, khash, files), khash,
                                              compiled_kernel))
            except Exception as exc:   # any failure: this kernel takes today's path
                left.append((name, khash, files))
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
    if failures:
        log.debug("stored kernels: %d of %d left to triton.compile (first: %s)",
                  len(failures), len(kernels), failures[0])
    return installed, left
