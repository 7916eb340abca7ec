"""Hostile .pcir / layout / .pcc files: loading ends in LoadError, within
bounded time and memory, and never executes code named by the file.

"One load error class": every bad file ends in `pccompiler.errors.LoadError`.
`ir.load(path, check=True)` (and the .pcc reader) run the checker too; a file
that parses but breaks an invariant raises `InvalidFileError`, a LoadError
that is also a CheckError carrying the rule and group.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pccompiler import ir, passes
from pccompiler.ir import artifact
from pccompiler.errors import CheckError, InvalidFileError, LoadError
from pccompiler.ir import pcir
from tests import factories as F

REPO = Path(__file__).resolve().parents[2]
FUZZ_CASES = int(os.environ.get("PCC_FUZZ_CASES", "5000"))
FUZZ_MEM_MB = 256          # address space the worker may add on top of its imports
MAX_CASE_SECONDS = 1.0


def write_seeds(folder: Path) -> None:
    """The valid files the fuzzer mutates (see fuzz_worker.py)."""
    import pccompiler
    folder.mkdir(parents=True, exist_ok=True)
    model = F.small_block_sparse_model(seed=1)
    ir.save(model, folder / "model.pcir")
    ir.save(passes.compile_model(model).layout, folder / "layout.pcly")
    ir.save(F.tied_model(seed=2), folder / "ext.pcir", external=True)
    ir.save(F.small_sparse_model(seed=3), folder / "sparse.pcir")
    pccompiler.compile(model, backend="torch").save(str(folder / "circuit.pcc"))


def test_fuzzed_files_end_in_load_error_within_bounds(tmp_path):
    """A few thousand mutants of four valid files (model, layout, model with
    external data, .pcc), loaded in a subprocess whose address space is
    capped: every case loads or raises LoadError, none takes a second."""
    seeds = tmp_path / "seeds"
    write_seeds(seeds)
    out = tmp_path / "fuzz.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tests.robustness.fuzz_worker", str(seeds),
                           str(FUZZ_CASES), "20261123", str(FUZZ_MEM_MB), str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    print(f"\nfuzz: {summary['count']} mutants in {summary['seconds']:.1f}s "
          f"(slowest case {summary['slowest_s'] * 1e3:.1f} ms, peak RSS "
          f"{summary['peak_rss_kb'] / 1024:.0f} MB, RLIMIT_AS "
          f"{summary['rlimit_as_bytes'] / 2 ** 20:.0f} MB)")
    assert not summary["failures"], json.dumps(summary["failures"][:3], indent=1)
    assert summary["count"] == FUZZ_CASES
    assert sum(summary["outcomes"].values()) == FUZZ_CASES
    assert summary["slowest_s"] < MAX_CASE_SECONDS
    assert wall < 90
    # every mutation family ran and was refused at least once per file kind
    refused = {k.rsplit(":", 1)[0] for k, v in summary["outcomes"].items()
               if k.endswith(":LoadError") and v}
    for kind in ("model", "layout", "ext", "sparse"):
        for op in ("flip", "truncate", "insert", "duplicate_field", "huge_varint",
                   "structured", "flip-header"):
            assert f"{kind}:{op}" in refused, f"{kind}:{op} never refused"
    assert "ext:external" in refused
    assert {f"pcc:{op}" for op in ("flip", "truncate", "insert", "flip-header")} <= refused


# ---------------------------------------------------------------- targeted cases
def _write(path: Path, msg) -> None:
    kind = "model" if isinstance(msg, pcir.Model) else "layout"
    path.write_bytes(ir.fileio.header(kind) + msg.SerializeToString())


@pytest.mark.parametrize("dims", [[10 ** 12], [2 ** 31, 2 ** 31], [10 ** 6, 10 ** 6, 10 ** 6]])
def test_huge_claimed_dims_are_refused_before_allocation(tmp_path, dims):
    model = F.small_dense_model()
    model.tensors[0].dims[:] = dims
    _write(tmp_path / "m.pcir", model)
    tracemalloc.start()
    with pytest.raises(LoadError, match="need .* bytes"):
        ir.load(tmp_path / "m.pcir")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 << 20


def test_huge_num_nodes_is_invalid_file_with_rule(tmp_path):
    model = F.small_dense_model()
    model.groups[8].num_nodes = 10 ** 12
    _write(tmp_path / "m.pcir", model)
    ir.load(tmp_path / "m.pcir")                      # parses: it is a well-formed message
    with pytest.raises(InvalidFileError) as info:
        ir.load(tmp_path / "m.pcir", check=True)
    assert isinstance(info.value, LoadError) and isinstance(info.value, CheckError)
    assert info.value.rule and info.value.group == 8
    assert str(tmp_path / "m.pcir") in str(info.value)


@pytest.mark.parametrize("field,value", [("num_slots", 10 ** 12), ("num_sum_params", 10 ** 12),
                                         ("num_input_params", 10 ** 12),
                                         ("max_block_size", 2 ** 30)])
def test_layout_header_claims_beyond_its_content_are_refused(tmp_path, field, value):
    """A backend allocates values [num_slots, B] and the parameter buffers
    from these header fields, so claims not backed by layers are refused."""
    layout = passes.compile_model(F.small_dense_model()).layout
    setattr(layout, field, value)
    _write(tmp_path / "l.pcly", layout)
    with pytest.raises(InvalidFileError, match="layout-size|layout-header"):
        ir.load(tmp_path / "l.pcly", check=True)


def _external_model(tmp_path: Path) -> tuple[Path, pcir.Model]:
    ir.save(F.small_dense_model(), tmp_path / "m.pcir", external=True)
    raw = (tmp_path / "m.pcir").read_bytes()
    return tmp_path / "m.pcir", pcir.Model.FromString(raw[8:])


@pytest.mark.parametrize("where", ["parent", "absolute", "subfolder"])
def test_external_data_only_beside_the_model(tmp_path, where):
    """Even a data file with the right bytes and checksum is refused when the
    location leaves the model's folder."""
    sub = tmp_path / "models"
    sub.mkdir()
    path, skeleton = _external_model(sub)
    data = (sub / "m.pcir.data").read_bytes()
    target = {"parent": tmp_path / "x.data", "absolute": tmp_path / "abs.data",
              "subfolder": sub / "inner" / "x.data"}[where]
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(data)                      # identical bytes: checksums would pass
    location = {"parent": "../x.data", "absolute": str(target),
                "subfolder": "inner/x.data"}[where]
    for t in skeleton.tensors:
        if t.HasField("external"):
            t.external.location = location
    _write(path, skeleton)
    with pytest.raises(LoadError, match="bare file name beside the model file"):
        ir.load(path)


def test_external_length_past_end_of_data_file(tmp_path):
    path, skeleton = _external_model(tmp_path)
    t = next(t for t in skeleton.tensors if t.HasField("external"))
    t.dims[:] = [10 ** 9]
    t.external.length = 10 ** 9 * 4
    _write(path, skeleton)
    tracemalloc.start()
    with pytest.raises(LoadError, match="beyond the end|need"):
        ir.load(path)
    assert tracemalloc.get_traced_memory()[1] < 4 << 20
    tracemalloc.stop()


# ---------------------------------------------------------------- hypothesis
_MODEL_BYTES = None


def _valid_model_bytes() -> bytes:
    global _MODEL_BYTES
    if _MODEL_BYTES is None:
        _MODEL_BYTES = F.small_sparse_model(seed=3).SerializeToString()
    return _MODEL_BYTES


@settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 10 ** 6)),
       tail=st.binary(max_size=24))
def test_hypothesis_mutated_model_loads_or_raises_load_error(tmp_path, edits, cut, tail):
    data = bytearray(_valid_model_bytes())
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[:cut % (len(data) + 1)]
    path = tmp_path / "h.pcir"
    path.write_bytes(ir.fileio.header("model") + bytes(data) + tail)
    try:
        msg = ir.load(path, check=True)
    except LoadError:
        return
    ir.check(msg)                                 # what loads is valid


# ---------------------------------------------------------------- .pcc
def _reseal(data: bytes, manifest_edit=None, model_edit=None) -> bytes:
    """.pcc bytes with edited sections and recomputed checksums (a forger's
    file; its Model keeps every tensor inline, which version 2 allows)."""
    art = artifact.decode(data, check=False)
    model = pcir.Model()
    model.CopyFrom(art.model)
    if model_edit is not None:
        model_edit(model)
    manifest = {k: v for k, v in art.manifest.items() if k != "sections"}
    if manifest_edit is not None:
        manifest_edit(manifest)
    blobs = [(name, len(b), hashlib.sha256(b).hexdigest(), [(0, b)])
             for name, b in (("model", model.SerializeToString()),
                             ("layout", bytes(art.sections["layout"])))]
    return b"".join(bytes(p) for p in artifact.assemble(manifest, blobs))


@pytest.fixture(scope="module")
def pcc_bytes(tmp_path_factory) -> bytes:
    import pccompiler
    path = tmp_path_factory.mktemp("pcc") / "c.pcc"
    pccompiler.compile(F.small_dense_model(seed=4), backend="torch").save(str(path))
    return path.read_bytes()


def test_pcc_naming_an_unregistered_module_imports_nothing(tmp_path, pcc_bytes, monkeypatch):
    """The manifest's backend name only selects a registered backend; a file
    naming a module path never gets it imported."""
    import pccompiler
    marker = tmp_path / "imported"
    (tmp_path / "evil_pcc_module.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\nclass B: name = 'evil'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("evil_pcc_module", "evil_pcc_module:B", "os:system"):
        data = _reseal(pcc_bytes, manifest_edit=lambda m, name=name: m.update(backend=name))
        (tmp_path / "e.pcc").write_bytes(data)
        circuit = pccompiler.load(str(tmp_path / "e.pcc"))
        assert circuit.backend_name == "torch"
    assert not marker.exists()
    assert "evil_pcc_module" not in sys.modules


@pytest.mark.parametrize("edit", ["num_nodes", "index", "weights_nan", "dims"])
def test_forged_pcc_with_broken_model_is_load_error(tmp_path, pcc_bytes, edit):
    """A .pcc whose checksums were recomputed after breaking the Model is
    refused by the reader with LoadError (not a crash in a backend)."""
    import pccompiler

    def model_edit(model):
        if edit == "num_nodes":
            model.groups[8].num_nodes = 10 ** 12
        elif edit == "index":
            t = next(t for t in model.tensors if t.name == "g8.index")
            a = ir.to_numpy(t).copy()
            a[0, 0] = 10 ** 6
            t.CopyFrom(ir.from_numpy(a, t.name))
        elif edit == "weights_nan":
            t = next(t for t in model.tensors if t.name == "g9.weights")
            a = ir.to_numpy(t).copy()
            a[0, 0] = np.nan
            t.CopyFrom(ir.from_numpy(a, t.name))
        else:
            model.tensors[0].dims[:] = [10 ** 12]

    (tmp_path / "f.pcc").write_bytes(_reseal(pcc_bytes, model_edit=model_edit))
    with pytest.raises(LoadError):
        pccompiler.load(str(tmp_path / "f.pcc"))


# ---------------------------------------------------------------- source scan
LOAD_PATHS = ["ir/fileio.py", "ir/tensors.py", "ir/upgrade.py", "ir/checker.py",
              "ir/layout_checker.py", "ir/layout_rules_deep.py", "ir/helpers.py", "ir/artifact.py",
              "pccompiler/driver.py", "pccompiler/train/em.py", "passes/cache.py",
              "backends/interface.py", "backends/engine.py", "backends/compiled.py",
              "backends/registry.py", "tools/common.py"]
LOAD_PATHS += [f"pccompiler/data/{p.name}" for p in (REPO / "pccompiler/data").glob("*.py")]
FORBIDDEN = [
    (r"\bpickle\b|\bcPickle\b|\bdill\b|\bmarshal\b|\bshelve\b", "pickle-like deserialisation"),
    (r"(?<![\w.])eval\(|(?<![\w.])exec\(|\bcompile\(\s*[^)]*['\"]exec['\"]", "eval/exec"),
    (r"__import__\(", "dynamic import"),
    (r"allow_pickle\s*=\s*True", "numpy pickle"),
    (r"yaml\.load\(", "yaml.load"),
]


def _source(rel: str) -> str:
    """The file's code without its comments."""
    text = (REPO / rel).read_text()
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


@pytest.mark.parametrize("rel", sorted(set(LOAD_PATHS)))
def test_load_paths_never_execute_file_content(rel):
    path = REPO / rel
    if not path.exists():
        pytest.skip(f"{rel} does not exist in this tree")
    code = _source(rel)
    for pattern, what in FORBIDDEN:
        hits = [m.group(0) for m in re.finditer(pattern, code)]
        assert not hits, f"{rel}: {what}: {hits}"
    for m in re.finditer(r"torch\.load\(([^)]*)\)", code):
        assert "weights_only=True" in m.group(1), f"{rel}: torch.load without weights_only=True"
    imports = re.findall(r"import_module\(", code)
    if rel == "backends/registry.py":
        # only targets of registered backends (built-ins, installed entry
        # points): a name read from a file selects among them, never a module
        assert len(imports) == 1 and "_BUILTIN.get(name)" in code
    else:
        assert not imports, f"{rel}: importlib.import_module in a load path"


MANIFEST_EDITS = {
    "backend-list": lambda m: m.update(backend=[1]),
    "backend-null": lambda m: m.update(backend=None),
    "target-string": lambda m: m.update(target="cpu"),
    "device-number": lambda m: m.update(target={"device": 5, "dtype": "float32"}),
    "device-garbage": lambda m: m.update(target={"device": "garbage:x", "dtype": "float32"}),
    "dtype-unknown": lambda m: m.update(target={"device": "cpu", "dtype": "float16"}),
    "dtype-list": lambda m: m.update(target={"device": "cpu", "dtype": ["float32"]}),
}


@pytest.mark.parametrize("edit", sorted(MANIFEST_EDITS))
def test_malformed_manifest_fields_are_load_errors(tmp_path, pcc_bytes, edit):
    """The manifest is not covered by a checksum: every field read from it is
    validated (a LoadError, or a documented fallback), never a crash."""
    import pccompiler
    (tmp_path / "m.pcc").write_bytes(_reseal(pcc_bytes, manifest_edit=MANIFEST_EDITS[edit]))
    try:
        circuit = pccompiler.load(str(tmp_path / "m.pcc"))
    except LoadError:
        return
    assert circuit.backend_name == "torch" and str(circuit.device) == "cpu"


@pytest.mark.parametrize("blob", [b"[]", b"null", b"1e999", b"[" * 100_000 + b"]" * 100_000,
                                  b'{"compiler_version": {"a": 1}}'])
def test_manifest_that_is_not_an_object(tmp_path, pcc_bytes, blob):
    pos = len(artifact.HEADER)
    (n,) = struct.unpack_from("<Q", pcc_bytes, pos)
    data = pcc_bytes[:pos] + struct.pack("<Q", len(blob)) + blob + pcc_bytes[pos + 8 + n:]
    with pytest.raises(LoadError):
        artifact.decode(data, "m.pcc")
