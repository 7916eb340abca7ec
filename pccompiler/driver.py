"""`pccompiler.compile` and `pccompiler.load`: the one-call entry points.

    circuit = pccompiler.compile(root_or_model)        # passes + backend
    circuit.save("model.pcc")
    circuit = pccompiler.load("model.pcc")             # no pass runs

The default backend is triton when CUDA and triton are available, else torch
on the CPU.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any

import torch

from pccompiler import ir
from pccompiler.errors import BackendError, LoadError
from pccompiler.ir import pcir

if TYPE_CHECKING:
    import threading

    from pccompiler.backends import Backend


def default_backend() -> str:
    """triton on a CUDA machine with triton installed, else torch."""
    if torch.cuda.is_available():
        try:
            import triton  # noqa: F401
            return "triton"
        except ImportError:
            pass
    return "torch"


def default_device(backend: str) -> str:
    """cuda when there is a GPU and the backend runs there, else cpu."""
    if torch.cuda.is_available() and "cuda" in compiling_backend(backend).capabilities.devices:
        return "cuda"
    return "cpu"


def check_device(device: Any, present: bool = True) -> str:
    """`device` as a string, refused with one BackendError line when torch
    does not know it ("nonsense") or, if `present`, when this machine does
    not have it (cuda without CUDA, cuda:N past the last GPU)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise BackendError(f"unknown device {device!r} (expected cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and present:
        if not torch.cuda.is_available():
            raise BackendError(f"device {device!r} requested but torch.cuda.is_available() "
                               "is False (no CUDA GPU or a CPU-only torch); use --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise BackendError(f"device {device!r} requested but this machine has {count} "
                               f"CUDA device(s) (cuda:0..cuda:{count - 1})")
    return str(device)


def compiling_backend(name: str) -> "Backend":
    """The registered backend `name` (the registry admits only `Backend`s)."""
    from pccompiler.backends import get_backend
    return get_backend(name)


def as_model(root_or_model: Any, arrays_out: dict | None = None,
             external: bool = False) -> pcir.Model:
    """A pcir.Model from a Model, a builder group (lowered), or a .pcir path.
    `arrays_out` receives the builder's parameter arrays of a lowered group
    (frontend/lowering.py `lower`); `external=True` leaves their bytes out
    of the Model (`lower(external=True)`)."""
    if isinstance(root_or_model, pcir.Model):
        return root_or_model
    if isinstance(root_or_model, (str, os.PathLike)):
        msg = ir.load(root_or_model)
        if not isinstance(msg, pcir.Model):
            raise LoadError(f"{root_or_model}: expected a Model (.pcir) file")
        return inline_tensors(msg)
    from pccompiler.frontend.lowering import lower
    return lower(root_or_model, arrays_out=arrays_out, external=external)


def inline_tensors(model: pcir.Model) -> pcir.Model:
    """The Model with every external tensor's bytes inline (a .pcc is one
    self-contained file)."""
    if not any(t.HasField("external") for t in model.tensors):
        return model
    table = ir.tensor_table(model)
    out = pcir.Model()
    out.CopyFrom(model)
    for t in out.tensors:
        if t.HasField("external"):
            t.CopyFrom(ir.from_numpy(table[t.name], t.name))
    return out


def compile(root_or_model: Any, backend: str | None = None, device: str | None = None,
            pipeline: str | None = None, cache: Any = None, dtype: str = "float32",
            pass_options: dict | None = None, print_after: Any = None, check_each: bool = False,
            check: bool | None = None, rerun: bool = False, target: str | None = None,
            batch_sizes: Any = (1, 512, 4096), data_dtypes: Any = ("uint8", "int64"),
            **backend_options: Any):
    """Run the passes on a circuit and compile it for a backend.

    root_or_model: a pcir.Model, a builder group (lowered first) or a path.
    A group's parameter arrays are read by reference: on a layout-cache
    hit they are never copied into the Model, the backend packs them
    during `compile` and the circuit's `model` copies them in on its first
    access, so change them in place only after that (or compile
    `pccompiler.lower(root)` instead).
    backend: a registered backend name (default: `default_backend()`).
    device: "cpu", "cuda", "cuda:1" ... (default: cuda if available for
    GPU backends, else cpu). pipeline / pass_options / cache go to
    `passes.compile_model` (cache: None = no layout cache, True = the
    default folder, or a folder), as do print_after and check_each. The
    layout is built with the backend's `block_limit` (triton: 128-row sum
    blocks, see TritonBackend). check: run the `verify` pass (ir.check on
    the input Model); None = yes, unless a builder group was given, which
    `lower` has just validated; pass False for a Model you validated
    yourself. A layout-cache hit runs no pass, unless print_after,
    check_each or rerun=True ask to see the passes work (they then run and
    the result is stored). Returns a
    CompiledCircuit; its `compile_report` holds the pass report.

    target: a GPU ("cuda:sm_90") to build the triton backend's kernels for,
    ahead of time, with this machine's Triton (no GPU needed): every
    specialization the plans launch at `batch_sizes` for data of
    `data_dtypes`. `save` stores them in the .pcc (backends/triton/aot), and
    `load` on a matching GPU + Triton runs them without compiling. Without a
    CUDA GPU here the returned circuit runs on the CPU with the torch
    backend (the layout is still the triton one); the saved file is for
    triton on CUDA.
    """
    from pccompiler import passes
    from pccompiler.backends.interface import refuse_removed_options
    from pccompiler.passes.manager import DEFAULT_BLOCK_LIMIT
    refuse_removed_options(backend_options)          # before any pass runs
    lowered_here = not isinstance(root_or_model, (pcir.Model, str, os.PathLike))
    # A lowered group's parameter arrays, by reference: its Model holds no
    # bytes of them (a cache hit never copies them; compile_model writes
    # them in before anything else reads them).
    arrays: dict = {}
    model = as_model(root_or_model, arrays, external=lowered_here)
    name = layout_name = backend or ("triton" if target is not None else default_backend())
    impl = layout_impl = compiling_backend(name)
    if target is not None:
        name, impl, device = _aot_runner(name, device, target)
    device = check_device(device, present=False) if device is not None else default_device(name)
    impl.check(model, device=device, dtype=dtype)   # what the backend runs on, first
    check_device(device)                             # then whether this machine has it
    verify = (not lowered_here) if check is None else bool(check)
    result = passes.compile_model(model, pipeline=pipeline, options=pass_options, cache=cache,
                                  backend=layout_name, print_after=print_after,
                                  check_each=check_each,
                                  rerun=rerun,
                                  block_limit=int(getattr(layout_impl, "block_limit",
                                                          DEFAULT_BLOCK_LIMIT)),
                                  verify=verify,
                                  backward=reads_backward(layout_impl),
                                  release_heap=not plans_on_first_use(impl),
                                  layout_arrays=plans_on_first_use(impl),
                                  arrays=arrays or None)
    run_options = backend_options
    if name != "triton":   # a CPU stand-in for a cross-compiled triton circuit
        run_options = {k: v for k, v in backend_options.items() if k not in TRITON_ONLY}
    # When no pass replaced the Model, the backend packs the builder's own
    # arrays (no copy back out of protobuf); else the new Model's bytes.
    circuit = compile_with_arrays(impl, result.model, result.layout,
                                  {"device": device, "dtype": dtype, **run_options},
                                  arrays if result.input_kept else None)
    _adopt_layout_arrays(circuit, result)
    if target is not None:
        from pccompiler.backends.triton.aot import build_kernels, kernel_manifest
        # the kernels are recorded from launches of an engine of their own:
        # it packs the Model's bytes (a group's are written in here)
        from pccompiler.ir.external_arrays import inline_arrays
        circuit.aot_kernels = kernel_manifest(build_kernels(
            inline_arrays(result.model, arrays), result.layout, target, _int_list(batch_sizes),
            [str(d) for d in data_dtypes], str(backend_options.get("precision", "tf32")),
            bool(backend_options.get("compact", True))))
    return circuit.record_origin(compile_report=result.report)


def _adopt_layout_arrays(circuit: Any, result: Any) -> None:
    """Hand the layout pass's index arrays (CompileResult.layout_arrays) to
    an engine that decodes its Layout's tensors into a table for its plans
    (the triton engine's `layout_table`), so the plans built on first use
    decode nothing the pass had in hand (a logic circuit's hundreds of
    small tensors: ~1 ms of seq_fun's build)."""
    engine = getattr(circuit, "engine", None)
    if result.layout_arrays and getattr(engine, "layout", None) is result.layout and \
            hasattr(type(engine), "layout_table"):
        engine.layout_table.adopt(result.layout_arrays)


TRITON_ONLY = ("precision", "cuda_graphs", "compact", "autotune_batch", "fuse_products",
               "persistent")


def _aot_runner(name: str, device: str | None, target: str
                ) -> tuple[str, "Backend", str | None]:
    """The backend that runs a circuit compiled with `target=`: triton on
    CUDA when this machine has a GPU, else torch on the CPU."""
    if name != "triton":
        raise BackendError(f"target= builds Triton kernels: it needs backend='triton', "
                           f"not {name!r}")
    from pccompiler.backends.triton.aot.target import parse_target
    parse_target(target)        # a bad name fails before any pass runs
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        return name, compiling_backend(name), device
    return "torch", compiling_backend("torch"), "cpu"


def _int_list(batch_sizes: Any) -> list[int]:
    """1,512,4096 as a list of positive ints (a string or a sequence)."""
    items = batch_sizes.split(",") if isinstance(batch_sizes, str) else list(batch_sizes)
    try:
        out = [int(b) for b in items]
    except (TypeError, ValueError):
        raise BackendError(f"batch sizes {batch_sizes!r}: expected integers like 1,512,4096") \
            from None
    if not out or min(out) < 1:
        raise BackendError(f"batch sizes {batch_sizes!r}: expected positive integers")
    return out


#: load(kernels=...): use them (in-memory install), ignore them, today's
#: file-cache path, or that path plus loading every kernel at once.
KERNEL_MODES = (True, False, "cache", "preload")


def load(path: str | os.PathLike, device: str | None = None, backend: str | None = None,
         dtype: str | None = None, kernels: bool | str = True):
    """Run a .pcc file: its Model and Layout go straight to the backend.

    The backend and dtype recorded in the file are used unless given; the
    device defaults to the recorded one when it exists here, else the CPU
    with the torch backend. kernels: use the Triton kernels the file holds
    (compiled with `target=`): their sha256 are checked (LoadError if one
    differs) and, for triton on a matching GPU + Triton version, they go into
    the JIT's in-memory cache for the device loaded on, so the first
    launches call no compiler code (backends/triton/aot/install.py); on
    another GPU or Triton version one KernelMismatchWarning says what
    differs. kernels=False ignores them (their sections are still checked
    against the container's section table, like every section of the file);
    kernels="cache" only puts them into Triton's cache, where each first
    launch's `triton.compile` finds them (the path before install.py, kept
    to compare); kernels="preload" also loads them all into the GPU at
    once, on a thread pool (backends/triton/aot/warm.py: a cold machine
    builds Triton's launchers in parallel instead of one per first launch).
    """
    from pccompiler.ir.artifact import read_pcc
    if device is not None:
        device = check_device(device)
    if not (isinstance(kernels, bool) or kernels in KERNEL_MODES):
        raise BackendError(f"kernels={kernels!r}: expected True, False, 'cache' or 'preload'")
    # The parameters stay in the file's memory map and reach the backend by
    # reference; their sha256 is computed on a thread while the backend
    # packs them and checked before the circuit is returned (a mismatch
    # drops the engine: ir/external_arrays.py).
    art = read_pcc(os.fspath(path), defer_hash=True)
    target = art.manifest.get("target", {})
    name = backend or art.manifest.get("backend", "torch")
    if device is None:
        device = target.get("device", "cpu")
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            device = "cpu"
            if backend is None:      # compiled for a GPU: run it with torch here
                name = "torch"
    try:
        impl = compiling_backend(name)
    except BackendError:
        if backend is not None:
            raise
        name, impl = "torch", compiling_backend("torch")
    if backend is None and torch.device(device).type not in impl.capabilities.devices:
        name, impl = "torch", compiling_backend("torch")
    entry = art.manifest.get("kernels") if kernels else None
    hashing = None
    try:
        if entry is not None:
            hashing = _use_kernels(entry, art.sections, os.fspath(path), name, device, kernels)
        circuit = compile_with_arrays(impl, art.mapped_model, art.layout,
                                      {"device": device,
                                       "dtype": dtype or target.get("dtype", "float32")},
                                      art.arrays)
        art.arrays.verify()
    except BaseException:
        if hashing is not None:
            hashing.join()
        art.arrays.verify()      # a corrupt file is the first thing to report
        raise
    if hashing is not None:
        # joined before the first launch (after the lazily built plan), not
        # here: the plan's build then runs beside the hash (aot/warm.py)
        wait = getattr(circuit.engine, "wait_before_first_launch", None)
        wait(hashing.join) if wait is not None else hashing.join()
    if entry is not None and backend is None:   # a re-save (pcc train) keeps them
        from pccompiler.backends.triton.aot.store import SECTION_PREFIX
        circuit.aot_kernels = (entry, {k: bytes(v) for k, v in art.sections.items()
                                       if k.startswith(SECTION_PREFIX)})
    return circuit.record_origin(manifest=art.manifest)


def _use_kernels(entry: Any, sections: Any, path: str, name: str, device: str,
                 kernels: bool | str) -> threading.Thread | None:
    """The file's ahead-of-time kernels: each file checked against the
    manifest's sha256 (the section table's sha256 was checked by read_pcc);
    for triton on CUDA, when they were built for this GPU and Triton, also
    (kernels=True / "preload") built straight into the JIT's in-memory
    cache (aot/install.py), or (kernels="cache", and any kernel the install
    leaves) put into Triton's cache; "preload" loads them into the GPU too.
    Returns the thread hashing Triton's installation for a first launch
    that goes through `triton.compile` (aot/warm.py), which the caller
    joins, or None when no launch will."""
    from pccompiler.backends.triton.aot import verify_kernels
    if name != "triton" or torch.device(device).type != "cuda":
        verify_kernels(entry, sections, path)
        return None
    from pccompiler.backends.triton.aot.install import compiled_kernel_class
    from pccompiler.backends.triton.aot.warm import hash_triton_in_background
    if kernels in (True, "preload") and compiled_kernel_class() is not None:
        if _install_kernels(entry, sections, path, torch.device(device),
                            preload=kernels == "preload"):
            return None
        return hash_triton_in_background()
    hashing = hash_triton_in_background()
    _restore_kernels(entry, sections, path, device, preload=kernels == "preload")
    return hashing


def _install_kernels(entry: Any, sections: Any, path: str, device: torch.device,
                     preload: bool) -> bool:
    """Verify the kernels and install them in the JIT's in-memory cache of
    `device` (with `preload`, also load them into the GPU at once); those
    that fail go into Triton's cache (today's path). True when every one
    was installed."""
    from pccompiler.backends.triton.aot import verify_kernels
    from pccompiler.backends.triton.aot.install import install_kernels
    from pccompiler.backends.triton.aot.store import mismatch, warn_mismatch, write_to_cache
    from pccompiler.backends.triton.aot.warm import load_installed
    kernels = verify_kernels(entry, sections, path)
    why = mismatch(entry)
    if why is not None:
        warn_mismatch(path, why)
        return False
    with torch.cuda.device(device):       # the device Triton's launches ask for
        installed, left = install_kernels(entry, kernels)
    if preload:
        load_installed(installed, path, device)
    if left:
        write_to_cache(left, path)
    return not left


def _restore_kernels(entry: Any, sections: Any, path: str, device: str, preload: bool) -> None:
    """The file-cache path (kernels="cache", or a Triton without the API
    aot/install.py uses): the kernels go into Triton's cache, where the
    first launches' `triton.compile` finds them; "preload" also loads them
    all into the GPU on a thread pool."""
    from pccompiler.backends.triton.aot import restore_kernels
    from pccompiler.backends.triton.aot.store import mismatch
    from pccompiler.backends.triton.aot.warm import preload_kernels
    restore_kernels(entry, sections, path)
    if preload and mismatch(entry) is None:
        preload_kernels(entry, path, torch.device(device))


def plans_on_first_use(impl: "Backend") -> bool:
    """Whether backend `impl`'s engine builds its plans from the Layout on
    first use, inside its own retained heap (ir/heap.py): the compile then
    leaves its free pages to that build."""
    return bool(getattr(impl, "plans_on_first_use", False))


def reads_backward(impl: "Backend") -> bool:
    """Whether backend `impl` reads a Layout's backward sum partitions."""
    return bool(getattr(impl, "reads_backward_partitions", True))


def _backward_deferred(layout: pcir.Layout) -> bool:
    """Whether `layout` still lacks its backward partitions: asked before
    importing the passes package (~20 ms of a load that needs none of it;
    a .pcc's Layout has them)."""
    from pccompiler.ir.layout_rules_deep import is_backward_deferred
    return is_backward_deferred(layout)


def compile_with_arrays(impl: "Backend", model: pcir.Model, layout: pcir.Layout,
                        options: dict, arrays: Any):
    """impl.compile(model, layout, options, arrays=arrays); a backend whose
    compile takes no `arrays` gets a self-contained Model instead. A node
    Layout whose backward partitions were deferred gets them first (in
    place) when the backend reads them."""
    if reads_backward(impl) and _backward_deferred(layout):
        from pccompiler.passes.node_backward import add_backward
        add_backward(layout)
    if not arrays:
        return impl.compile(model, layout, options)
    if "arrays" not in inspect.signature(impl.compile).parameters:
        from pccompiler.ir.external_arrays import inline_arrays
        return impl.compile(inline_arrays(model, arrays, getattr(arrays, "verify", None)),
                            layout, options)
    return impl.compile(model, layout, options, arrays=arrays)


def open_circuit(path: str, backend: str | None = None, device: str | None = None,
                 dtype: str | None = None):
    """A CompiledCircuit from a .pcc (loaded) or a .pcir (compiled) file."""
    from pccompiler.ir.artifact import is_pcc
    if device is not None:
        check_device(device)
    if not os.path.exists(path):
        raise LoadError(f"{path}: no such file")
    if is_pcc(path):
        return load(path, device=device, backend=backend, dtype=dtype)
    return compile(path, backend=backend, device=device, dtype=dtype or "float32")
