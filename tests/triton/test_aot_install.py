"""Stored kernels built straight into the JIT's in-memory cache (aot/install.py),
checked on a CPU machine with a cross-compiled sm_90 artifact (issue #16).

Each scenario runs in a fresh subprocess without TRITON_INTERPRET (it makes
@triton.jit build interpreter functions) under the stand-in driver of
aot/target.py, whose launches are no-ops: the JIT's own launch path
(binder, cache key, in-memory lookup, else `triton.compile`) runs for
every launch the engine makes, so "no triton.compile call" and "Triton's
installation never hashed" are observable without a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

from pccompiler.errors import BackendError, LoadError  # noqa: E402
from pccompiler.ir.artifact import read_pcc  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

BUILD = r"""
import sys
sys.path.append(sys.argv[2])
from factories import small_dense_model
import pccompiler
pccompiler.compile(small_dense_model(), backend="triton", target="cuda:sm_90",
                   batch_sizes=[1], data_dtypes=["int64"]).save(sys.argv[1])
"""

CHILD = r"""
import json, logging, os, sys, tempfile, warnings, torch
import triton
from triton import knobs
from triton.runtime import cache as triton_cache
from pccompiler.backends.triton.aot import CompileCounter, install, store
from pccompiler.backends.triton.aot.record import all_kernels, exercise, kernels_by_name
from pccompiler.backends.triton.aot.target import AOT_DEVICE, cross_driver, parse_target
from pccompiler.backends.triton.engine import TritonEngine
from pccompiler.ir.artifact import read_pcc

path, mode = sys.argv[1], sys.argv[2]
knobs.cache.dir = tempfile.mkdtemp()
art = read_pcc(path)
entry = art.manifest["kernels"]
kernels = store.verify_kernels(entry, art.sections, path)
debug = []
logging.getLogger(install.__name__).addHandler(type("H", (logging.Handler,), {
    "emit": lambda self, record: debug.append((record.levelname, record.getMessage()))})())
logging.getLogger(install.__name__).setLevel(logging.DEBUG)
if mode == "no_compiled_kernel":      # a Triton whose CompiledKernel takes other arguments
    class CompiledKernel:
        def __init__(self, src, metadata_group, hash, extra):
            pass
    triton.compiler.CompiledKernel = CompiledKernel
by_name = kernels_by_name()
if mode == "one_preload_fails":       # a Triton whose preload fails for one kernel
    broken = by_name[kernels[0][0]]
    broken.preload = lambda spec: (_ for _ in ()).throw(RuntimeError("no preload here"))
if mode == "bad_signature":           # a manifest whose first kernel's types disagree with its key
    spec = json.loads(entry["kernels"][0]["spec"])
    first = next(iter(spec["signature"]))
    spec["signature"][first] = "i64"
    entry["kernels"][0]["spec"] = json.dumps(spec)
if mode == "other_thread_compiles":   # a launch on another thread compiles during a swap
    import threading
    victim = by_name[kernels[0][0]]
    seen = []
    real_preload = victim.preload

    def preload_beside_a_compile(spec):
        if not seen:
            t = threading.Thread(target=lambda: seen.append(victim.compile("other thread's src")))
            t.start()
            t.join()
        return real_preload(spec)
    victim.preload = preload_beside_a_compile
out = {"stored": len(kernels)}
engine = TritonEngine(art.model, art.layout, device="cpu", cuda_graphs=False)
with cross_driver(parse_target(entry["target"]), all_kernels()), \
        warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if mode == "other_thread_compiles":    # Triton's compile stands in as a recorder
        victim.device_caches[AOT_DEVICE]
        victim.compile = lambda src, *a, **k: f"triton's compile of {src}"
    left = install.install_kernels(entry, kernels)[1] if mode != "cache" else kernels
    if mode == "other_thread_compiles":
        out["other_thread"] = seen
        out["compile_restored"] = victim.compile("x") == "triton's compile of x"
    out["left"] = [name for name, _, _ in left]
    store.write_to_cache(left, path)
    installed = {}
    for name, khash, files in kernels:
        spec = json.loads(next(k["spec"] for k in entry["kernels"] if k["hash"] == khash))
        ck = by_name[name].device_caches[AOT_DEVICE][0].get(spec["key"])
        if ck is None:
            continue
        installed[khash] = {
            "class": type(ck).__module__ + "." + type(ck).__name__, "hash": ck.hash,
            "name": ck.metadata.name, "meta_hash": ck.metadata.hash,
            "arch": ck.metadata.target.arch, "warps": ck.metadata.num_warps,
            "spec_warps": spec["options"]["num_warps"],
            "cubin": ck.kernel == files[name + ".cubin"],
            "ptx": ck.asm["ptx"] == files[name + ".ptx"].decode(),
            "files_left": any(os.path.exists(p) for p in ck.metadata_group.values())}
    out["installed"] = installed
    with CompileCounter() as counter:
        exercise(engine, [1], [torch.int64])
out.update(compiled=counter.compiled, hits=counter.hits, debug=debug,
           warnings=[str(w.message) for w in caught       # Triton's own are not ours
                     if os.sep + "triton" + os.sep not in w.filename],
           triton_key_hashed=triton_cache.triton_key.cache_info().currsize > 0)
print("RESULT " + json.dumps(out))
"""


def _python(script: str, *args: str, cache: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = cache
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=900)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("install") / "dense_sm90.pcc"
    proc = _python(BUILD, str(path), str(ROOT / "tests"),
                   cache=str(tmp_path_factory.mktemp("triton_cache")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return path


def _scenario(artifact: Path, mode: str, tmp_path: Path) -> dict:
    proc = _python(CHILD, str(artifact), mode, cache=str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_installed_kernels_are_the_artifacts_bytes_and_compile_nothing(artifact, tmp_path):
    out = _scenario(artifact, "install", tmp_path)
    entry = read_pcc(str(artifact)).manifest["kernels"]
    assert out["left"] == [] and out["debug"] == [] and out["warnings"] == []
    assert set(out["installed"]) == {k["hash"] for k in entry["kernels"]}
    for khash, ck in out["installed"].items():
        assert ck["class"] == "triton.compiler.compiler.CompiledKernel"
        assert ck["hash"] == ck["meta_hash"] == khash and ck["arch"] == 90
        assert ck["warps"] == ck["spec_warps"] and ck["cubin"] and ck["ptx"]
        assert not ck["files_left"]          # the private folder is gone
    # every launch found its kernel in memory: no triton.compile call at all,
    # so Triton's installation was never hashed
    assert out["compiled"] == [] and out["hits"] == 0
    assert not out["triton_key_hashed"]


def test_cache_path_goes_through_triton_compile(artifact, tmp_path):
    """load(kernels="cache"), the path before install.py: each kernel is a
    file-cache hit of triton.compile, which hashes Triton's installation."""
    out = _scenario(artifact, "cache", tmp_path)
    assert out["installed"] == {} and out["compiled"] == []
    assert out["hits"] == out["stored"] > 0 and out["triton_key_hashed"]


def test_missing_private_api_falls_back_to_the_cache_path(artifact, tmp_path):
    out = _scenario(artifact, "no_compiled_kernel", tmp_path)
    assert out["installed"] == {} and len(out["left"]) == out["stored"]
    assert out["warnings"] == [] and len(out["debug"]) == 1 and out["debug"][0][0] == "DEBUG"
    assert "CompiledKernel(src, metadata_group, hash) not found" in out["debug"][0][1]
    assert out["compiled"] == [] and out["hits"] == out["stored"]


def test_a_kernel_that_fails_to_install_alone_takes_the_cache_path(artifact, tmp_path):
    """One JITFunction's preload fails: its specializations stay on the
    cache path (file-cache hits), every other kernel is installed."""
    out = _scenario(artifact, "one_preload_fails", tmp_path)
    entry = read_pcc(str(artifact)).manifest["kernels"]
    broken = [k["name"] for k in entry["kernels"] if k["name"] == out["left"][0]]
    assert out["left"] == broken and len(out["installed"]) == out["stored"] - len(broken)
    assert out["warnings"] == [] and len(out["debug"]) == 1
    assert f"{len(broken)} of {out['stored']} left to triton.compile" in out["debug"][0][1]
    assert "no preload here" in out["debug"][0][1]
    assert out["compiled"] == [] and out["hits"] == len(broken)


def test_a_signature_that_disagrees_with_its_key_is_not_installed(artifact, tmp_path):
    """The launcher's argument types come from the stored signature, the
    lookup from the stored key: a manifest where they differ (edited by
    hand) leaves that kernel to the file-cache path, whose launch builds
    both from the actual arguments."""
    out = _scenario(artifact, "bad_signature", tmp_path)
    first = read_pcc(str(artifact)).manifest["kernels"]["kernels"][0]
    assert out["left"] == [first["name"]] and first["hash"] not in out["installed"]
    assert len(out["installed"]) == out["stored"] - 1
    assert "stored signature and key disagree" in out["debug"][0][1]
    assert out["compiled"] == [] and out["hits"] == 1


def test_a_compile_on_another_thread_during_a_swap_goes_to_triton(artifact, tmp_path):
    """While install swaps a JITFunction's compile, a launch on another
    thread that compiles must get Triton's compile, not the stored files."""
    out = _scenario(artifact, "other_thread_compiles", tmp_path)
    assert out["other_thread"] == ["triton's compile of other thread's src"]
    assert out["left"] == [] and len(out["installed"]) == out["stored"]
    assert out["compile_restored"]


def test_tampered_kernel_byte_is_refused_before_any_install(artifact, tmp_path):
    from pccompiler.driver import _install_kernels
    from tests.backends.test_triton_aot import _forged, _tampered
    forged, name = _forged(_tampered(artifact, tmp_path), tmp_path)
    art = read_pcc(str(forged))
    with pytest.raises(LoadError, match=f"kernel section {name} does not match its sha256"):
        _install_kernels(art.manifest["kernels"], art.sections, str(forged),
                         torch.device("cuda"), preload=False)


def test_unknown_kernels_mode_is_refused(artifact):
    import pccompiler
    with pytest.raises(BackendError, match="kernels='fast': expected True, False, 'cache' or"):
        pccompiler.load(str(artifact), kernels="fast")
