"""Triton kernels built ahead of time for sm_90 on a CPU-only machine (issue #16 A).

The build runs in a subprocess without TRITON_INTERPRET (tests/triton sets
it for this session, and it makes @triton.jit build interpreter functions).
That subprocess also checks the load path's mechanism without a GPU: after
the stored files are restored into an empty Triton cache, the JIT's own
launch path (run -> binder -> cache key -> triton.compile, with no-op
launches from the stand-in driver) finds every kernel the engine launches
there (zero compilations), while with an empty cache each one compiles.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("triton")

from pccompiler.errors import LoadError  # noqa: E402
from pccompiler.ir.artifact import read_pcc  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

BUILD = r"""
import json, sys, tempfile, torch
sys.path.append(sys.argv[2])
from factories import small_dense_model
import pccompiler
from triton import knobs
from pccompiler.backends.triton.aot import CompileCounter, restore_kernels, store
from pccompiler.backends.triton.aot.record import all_kernels, exercise, kernels_by_name
from pccompiler.backends.triton.aot.target import cross_driver, parse_target
from pccompiler.backends.triton.engine import TritonEngine
from pccompiler.ir.artifact import read_pcc

circuit = pccompiler.compile(small_dense_model(), backend="triton", target="cuda:sm_90",
                             batch_sizes=[1], data_dtypes=["int64"])
circuit.save(sys.argv[1])
art = read_pcc(sys.argv[1])
entry = art.manifest["kernels"]

def jit_run():
    # The JIT's own path (binder, cache key, triton.compile) for every launch
    # the engine makes; the stand-in driver turns the launches into no-ops.
    engine = TritonEngine(art.model, art.layout, device="cpu", cuda_graphs=False)
    with cross_driver(parse_target(entry["target"]), all_kernels()), CompileCounter() as c:
        exercise(engine, [1], [torch.int64])
    return c

out = {}
with tempfile.TemporaryDirectory() as empty:
    knobs.cache.dir = empty
    out["cold"] = len(jit_run().compiled)
with tempfile.TemporaryDirectory() as restored:
    knobs.cache.dir = restored
    store.mismatch = lambda entry: None       # this CPU machine stands in for the sm_90 one
    out["written"] = restore_kernels(entry, art.sections, sys.argv[1])
    c = jit_run()
    out["warm_compiled"], out["warm_hits"] = c.compiled, c.hits
with tempfile.TemporaryDirectory() as restored:
    # kernels="preload": Triton's preload puts each kernel in the JIT's
    # in-memory cache under the key the launches then look up
    from pccompiler.backends.triton.aot import warm
    knobs.cache.dir = restored
    restore_kernels(entry, art.sections, sys.argv[1])
    by_name = kernels_by_name()
    engine = TritonEngine(art.model, art.layout, device="cpu", cuda_graphs=False)
    with cross_driver(parse_target(entry["target"]), all_kernels()), CompileCounter() as c:
        for k in entry["kernels"]:
            warm._load_one(by_name[k["name"]], k["spec"])
        preloaded = c.hits
        exercise(engine, [1], [torch.int64])
    out["preload"] = {"hits": preloaded, "compiled": c.compiled, "hits_after_run": c.hits}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("aot") / "dense_sm90.pcc"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path_factory.mktemp("triton_cache"))
    proc = subprocess.run([sys.executable, "-c", BUILD, str(path), str(ROOT / "tests")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return path, json.loads(line[len("RESULT "):])


def test_kernel_list_and_checksums(built):
    import triton
    path, _ = built
    art = read_pcc(str(path))
    entry = art.manifest["kernels"]
    assert art.manifest["backend"] == "triton" and art.manifest["target"]["device"] == "cuda"
    assert entry["target"] == "cuda:sm_90" and entry["triton_version"] == triton.__version__
    assert entry["batch_sizes"] == [1] and entry["data_dtypes"] == ["int64"]
    names = {k["name"] for k in entry["kernels"]}
    # forward, backward (compact plan: log ratios), parameter flows, EM, MPE
    assert {"input_fwd_kernel", "product_fwd_kernel", "sum_fwd_dot_kernel",
            "sum_bwd_flow_kernel", "sum_param_flow_kernel", "product_bwd_kernel",
            "input_bwd_kernel", "sum_em_kernel", "categorical_em_kernel",
            "sum_fwd_max_kernel", "log_ratio_kernel"} <= names
    assert len({k["hash"] for k in entry["kernels"]}) == len(entry["kernels"])
    for k in entry["kernels"]:
        assert set(k["files"]) == {f"{k['name']}.{ext}" for ext in ("json", "cubin", "ptx")}
        for fname, digest in k["files"].items():
            data = bytes(art.sections[f"kernels/{k['hash']}/{fname}"])
            assert hashlib.sha256(data).hexdigest() == digest
        cubin = bytes(art.sections[f"kernels/{k['hash']}/{k['name']}.cubin"])
        assert cubin[:4] == b"\x7fELF"
        meta = json.loads(bytes(art.sections[f"kernels/{k['hash']}/{k['name']}.json"]))
        assert meta["target"]["arch"] == 90 and meta["hash"] == k["hash"]
    # no host code: only Triton metadata and GPU binaries
    kernel_sections = {n for n in art.sections if n.startswith("kernels/")}
    assert set(art.sections) - kernel_sections == {"model", "layout", "params"}
    assert {name.rsplit(".", 1)[1] for name in kernel_sections} == {"json", "cubin", "ptx"}
    # container v2: each kernel file is a section of its own, checksummed by
    # the section table as well as by the kernels entry
    assert art.manifest["container_version"] == 2
    table = {e["name"]: e for e in art.manifest["sections"]}
    for k in entry["kernels"]:
        for fname, digest in k["files"].items():
            e = table[f"kernels/{k['hash']}/{fname}"]
            assert e["sha256"] == digest and e["offset"] % 4096 == 0


def test_restored_kernels_compile_nothing(built):
    _, out = built
    assert out["cold"] > 0                       # the same specializations compile cold
    assert out["written"] == out["cold"]
    assert out["warm_compiled"] == [] and out["warm_hits"] == out["cold"]
    # preloaded kernels: the launches find them in memory, no triton.compile call at all
    assert out["preload"] == {"hits": out["cold"], "compiled": [], "hits_after_run": out["cold"]}


def _tampered(path: Path, tmp_path: Path) -> Path:
    art = read_pcc(str(path))
    k = art.manifest["kernels"]["kernels"][0]
    cubin = bytes(art.sections[f"kernels/{k['hash']}/{k['name']}.cubin"])
    data = bytearray(path.read_bytes())
    at = bytes(data).index(cubin) + len(cubin) // 2
    data[at] ^= 0x01
    out = tmp_path / "tampered.pcc"
    out.write_bytes(bytes(data))
    return out


def _forged(bad: Path, tmp_path: Path) -> tuple[Path, str]:
    """`bad` with the section table's sha256 of the tampered section set to
    its new bytes' (a hand-edited file), so only the kernels entry's sha256
    still tells."""
    data = bytearray(bad.read_bytes())
    (n,) = struct.unpack_from("<Q", data, 8)
    manifest = json.loads(bytes(data[16:16 + n]))
    for e in manifest["sections"]:
        blob = bytes(data[e["offset"]:e["offset"] + e["length"]])
        if e["name"].startswith("kernels/") and hashlib.sha256(blob).hexdigest() != e["sha256"]:
            e["sha256"], name = hashlib.sha256(blob).hexdigest(), e["name"]
    text = json.dumps(manifest, sort_keys=True).encode()
    assert len(text) == n        # same length: only one hex digest changed
    data[16:16 + n] = text
    out = tmp_path / "forged.pcc"
    out.write_bytes(bytes(data))
    return out, name


def _verify_cli(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pccompiler.cli.main", "verify", str(path)],
                          capture_output=True, text=True, cwd=ROOT)


def test_tampered_kernel_byte_is_refused(built, tmp_path):
    import pccompiler
    bad = _tampered(built[0], tmp_path)
    # the section table catches it first: a corrupt file, with or without kernels
    for kernels in (True, False):
        with pytest.raises(LoadError, match=r"the kernels/[0-9a-f]+/\w+\.cubin section does "
                                            r"not match its sha256"):
            pccompiler.load(str(bad), kernels=kernels)
    proc = _verify_cli(bad)
    assert proc.returncode == 1 and "does not match its sha256" in proc.stderr


def test_forged_section_table_is_caught_by_the_kernels_entry(built, tmp_path):
    import pccompiler
    forged, name = _forged(_tampered(built[0], tmp_path), tmp_path)
    with pytest.raises(LoadError, match=f"kernel section {name} does not match its sha256"):
        pccompiler.load(str(forged))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        circuit = pccompiler.load(str(forged), kernels=False)     # ignores the kernels
    assert circuit.log_prob([[0] * 4]).shape == (1,)
    proc = _verify_cli(forged)
    assert proc.returncode == 1 and f"kernel section {name} does not match" in proc.stderr


def test_mismatch_warns_once_naming_what_differs(built):
    import triton
    from pccompiler.backends.triton.aot import KernelMismatchWarning, restore_kernels
    art = read_pcc(str(built[0]))
    entry = dict(art.manifest["kernels"], triton_version="0.0.1")
    with pytest.warns(KernelMismatchWarning) as record:
        assert restore_kernels(entry, art.sections, "m.pcc") == 0
    assert len(record) == 1
    assert f"triton 0.0.1 vs {triton.__version__} here" in str(record[0].message)


def test_dump_and_verify_list_the_kernels(built):
    path = str(built[0])
    dump = subprocess.run([sys.executable, "-m", "pccompiler.cli.main", "dump", "--kernels", path],
                          capture_output=True, text=True, cwd=ROOT)
    assert dump.returncode == 0, dump.stderr
    entry = read_pcc(path).manifest["kernels"]
    assert dump.stdout.startswith(f"kernels: {len(entry['kernels'])} for cuda:sm_90")
    assert all(k["hash"][:16] in dump.stdout for k in entry["kernels"])
    ok = subprocess.run([sys.executable, "-m", "pccompiler.cli.main", "verify", path],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and "match their sha256" in ok.stdout


def test_resave_keeps_the_kernels(built, tmp_path):
    import pccompiler
    path = str(built[0])
    again = str(tmp_path / "again.pcc")
    pccompiler.load(path).save(again)
    before, after = read_pcc(path), read_pcc(again)
    assert after.manifest["kernels"] == before.manifest["kernels"]
    assert after.manifest["backend"] == "triton" and after.manifest["target"]["device"] == "cuda"
    assert {k: bytes(v) for k, v in after.sections.items()} == \
        {k: bytes(v) for k, v in before.sections.items()}


def test_target_needs_the_triton_backend(tmp_path):
    from pccompiler.ir import save
    from tests.factories import small_dense_model
    model = str(tmp_path / "m.pcir")
    save(small_dense_model(), model)
    proc = subprocess.run([sys.executable, "-m", "pccompiler.cli.main", "compile", model,
                           "--backend", "torch", "--target", "cuda:sm_90"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0
    assert "target= builds Triton kernels: it needs backend='triton', not 'torch'" in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "pccompiler.cli.main", "compile", model,
                          "--backend", "triton", "--target", "rocm:gfx90a"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "unknown GPU target 'rocm:gfx90a'" in bad.stderr


def test_triton_key_is_hashed_on_a_thread_and_memoised():
    """load() starts Triton's installation hash beside its own work
    (aot/warm.py); after the join the first launch's call is a cache hit."""
    from triton.runtime import cache

    from pccompiler.backends.triton.aot.warm import hash_triton_in_background
    cache.triton_key.cache_clear()
    thread = hash_triton_in_background()
    assert thread is not None and thread.daemon
    thread.join()
    info = cache.triton_key.cache_info()
    assert (info.misses, info.currsize) == (1, 1)
    key = cache.triton_key()
    assert cache.triton_key.cache_info().hits == info.hits + 1
    assert key.startswith(__import__("triton").__version__)


def test_waits_registered_at_load_run_once_before_the_first_launch():
    """load() hands its triton_key thread to the engine (driver.load): the
    wait runs once, when the first plan is built (every launch reads one),
    after the plan, and at once when a plan already exists."""
    import pccompiler
    from tests.factories import small_dense_model

    engine = pccompiler.compile(small_dense_model(), backend="triton", device="cpu").engine
    calls = []
    engine.wait_before_first_launch(lambda: calls.append(engine._fast_plan is not None
                                                         or engine._plan is not None))
    assert calls == []
    engine.fast_plan
    engine.plan
    assert calls == [True]
    engine.wait_before_first_launch(lambda: calls.append("late"))
    assert calls == [True, "late"]
