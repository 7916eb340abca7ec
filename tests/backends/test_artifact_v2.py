"""Container version 2: named page-aligned sections, memory-mapped
parameters, deferred hashing, extra sections, version 1 still read, and
parameters handed to the backend by reference."""

from __future__ import annotations

import json
import mmap
import struct

import numpy as np
import pytest
import torch

import pccompiler
from pccompiler.errors import LoadError
from pccompiler.ir import artifact, pcir
from pccompiler.backends.common import packing_upload
from tests.conformance.circuits import random_data, tied


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tied()
    circuit = pccompiler.compile(model, backend="torch", device="cpu")
    x = random_data(model, 50, seed=1)
    circuit.em_step(x, step_size=0.5, pseudocount=0.1)
    path = str(tmp_path_factory.mktemp("pcc2") / "m.pcc")
    circuit.save(path)
    return path, circuit, x


def _manifest(data: bytes) -> dict:
    (n,) = struct.unpack_from("<Q", data, 8)
    return json.loads(data[16:16 + n])


def _section(data: bytes, name: str) -> dict:
    return next(e for e in _manifest(data)["sections"] if e["name"] == name)


def _rewrite_manifest(data: bytes, manifest: dict) -> bytes:
    """`data` with its manifest replaced (same reserved space)."""
    blob = json.dumps(manifest, sort_keys=True).encode()
    (n,) = struct.unpack_from("<Q", data, 8)
    assert len(blob) <= artifact.SECTION_ALIGN - 16
    head = data[:8] + struct.pack("<Q", len(blob)) + blob
    return head + bytes(16 + n - len(head)) + data[16 + n:] if len(head) <= 16 + n else \
        head + data[len(head):]


def test_sections_are_page_aligned_and_listed(saved):
    data = open(saved[0], "rb").read()
    assert data[:8] == artifact.MAGIC + (2).to_bytes(3, "big")
    table = _manifest(data)["sections"]
    assert [e["name"] for e in table] == ["model", "layout", "params"]
    for e in table:
        assert e["offset"] % 4096 == 0
        assert len(e["sha256"]) == 64
    assert table[-1]["offset"] + table[-1]["length"] == len(data)


def test_round_trip_maps_parameters_without_copy(saved):
    path, circuit, x = saved
    art = artifact.read_pcc(path)
    assert art.arrays, "parameter tensors should be external"
    for name, array in art.arrays.items():
        base = array
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        assert isinstance(base, (mmap.mmap, memoryview)), type(base)
        assert not array.flags.writeable
        proto = next(t for t in art.mapped_model.tensors if t.name == name)
        assert proto.HasField("external") and not proto.raw_data
    loaded = pccompiler.load(path)
    torch.testing.assert_close(loaded.log_prob(x), circuit.log_prob(x))
    # the self-contained Model view has the same parameters inline
    for t in art.model.tensors:
        assert not t.HasField("external")


def test_backend_packs_the_mapped_arrays(saved, monkeypatch):
    seen = []
    real = packing_upload._values

    def spy(proto, arrays):
        out = real(proto, arrays)
        seen.append((proto.name, out, arrays))
        return out
    monkeypatch.setattr(packing_upload, "_values", spy)
    pccompiler.load(saved[0])
    assert seen
    for name, values, arrays in seen:
        assert np.shares_memory(values, arrays[name])


def test_tampered_parameter_byte_is_refused_before_return(saved, tmp_path):
    data = bytearray(open(saved[0], "rb").read())
    params = _section(bytes(data), "params")
    data[params["offset"] + 5] ^= 0x01     # a low mantissa bit: still a valid model
    bad = tmp_path / "bad.pcc"
    bad.write_bytes(bytes(data))
    with pytest.raises(LoadError, match="params section does not match its sha256"):
        pccompiler.load(str(bad))
    with pytest.raises(LoadError, match="params section does not match its sha256"):
        artifact.read_pcc(str(bad))
    art = artifact.read_pcc(str(bad), defer_hash=True, check=False)
    with pytest.raises(LoadError, match="sha256"):
        art.arrays.verify()


def test_truncated_file_is_refused(saved, tmp_path):
    data = open(saved[0], "rb").read()
    for cut in (len(data) - 1, _section(data, "params")["offset"] + 3, 20, 12):
        (tmp_path / "t.pcc").write_bytes(data[:cut])
        with pytest.raises(LoadError, match="truncated"):
            artifact.read_pcc(str(tmp_path / "t.pcc"))


def test_bad_section_tables_are_refused(saved, tmp_path):
    data = open(saved[0], "rb").read()
    manifest = _manifest(data)
    cases = {
        "overlaps": lambda t: t[1].update(offset=t[0]["offset"]),
        "aligned": lambda t: t[1].update(offset=t[1]["offset"] + 8),
        "truncated file": lambda t: t[2].update(length=t[2]["length"] + 10 ** 9),
        "malformed section": lambda t: t[0].update(offset=-4096),
        "twice": lambda t: t[1].update(name="model"),
        "malformed chunk hashes": lambda t: t[2].update(chunk_sha256=[]),
    }
    for message, change in cases.items():
        m = json.loads(json.dumps(manifest))
        change(m["sections"])
        (tmp_path / "s.pcc").write_bytes(_rewrite_manifest(data, m))
        with pytest.raises(LoadError, match=message):
            artifact.read_pcc(str(tmp_path / "s.pcc"))


def test_tensor_range_outside_its_section_is_refused(saved):
    art = artifact.read_pcc(saved[0])
    params = art.sections["params"]
    t0 = next(t for t in art.mapped_model.tensors if t.HasField("external"))
    for field, value in (("offset", len(params) - 4), ("offset", 1 << 40),
                         ("length", t0.external.length + 8), ("offset", -8)):
        model = pcir.Model()
        model.CopyFrom(art.mapped_model)
        t = next(t for t in model.tensors if t.name == t0.name)
        setattr(t.external, field, value)
        with pytest.raises(LoadError, match=f"tensor {t0.name!r}.*params section"):
            artifact._param_arrays(model, params, "f.pcc")
    model = pcir.Model()
    model.CopyFrom(art.mapped_model)
    next(t for t in model.tensors if t.name == t0.name).external.location = "layout"
    with pytest.raises(LoadError, match="refers to section 'layout'"):
        artifact._param_arrays(model, params, "f.pcc")
    model = pcir.Model()
    model.CopyFrom(art.mapped_model)
    index = next(t for t in model.tensors if not t.HasField("external"))
    index.ClearField("raw_data")
    index.external.CopyFrom(t0.external)
    with pytest.raises(LoadError, match="holds no parameters"):
        artifact._param_arrays(model, params, "f.pcc")


def test_extra_sections_round_trip(saved):
    art = artifact.read_pcc(saved[0])
    blob = bytes(range(256)) * 50
    data = artifact.encode(art.model, art.layout, "triton", "cuda", "float32",
                           extra={"kernels_for": "sm90"},
                           sections={"kernels": blob, "kernels/ab12.cubin": b"\x7fELF"})
    back = artifact.decode(data)
    assert bytes(back.sections["kernels"]) == blob
    assert bytes(back.sections["kernels/ab12.cubin"]) == b"\x7fELF"
    assert back.manifest["kernels_for"] == "sm90"
    assert _section(data, "kernels")["offset"] % 4096 == 0
    with pytest.raises(ValueError, match="reserved"):
        artifact.encode(art.model, art.layout, "torch", "cpu", "float32",
                        sections={"params": b"x"})
    bad = bytearray(data)
    bad[_section(data, "kernels")["offset"]] ^= 1
    with pytest.raises(LoadError, match="kernels section does not match its sha256"):
        artifact.decode(bytes(bad))


def _encode_v1(art) -> bytes:
    import hashlib
    model_bytes = art.model.SerializeToString(deterministic=True)
    layout_bytes = art.layout.SerializeToString(deterministic=True)
    manifest = {k: v for k, v in art.manifest.items() if k != "sections"}
    manifest.update(container_version=1,
                    model_sha256=hashlib.sha256(model_bytes).hexdigest(),
                    layout_sha256=hashlib.sha256(layout_bytes).hexdigest())
    parts = [json.dumps(manifest).encode(), model_bytes, layout_bytes]
    return artifact.MAGIC + (1).to_bytes(3, "big") + \
        b"".join(struct.pack("<Q", len(p)) + p for p in parts)


def test_version_1_files_still_read_and_unknown_versions_are_refused(saved, tmp_path):
    path, circuit, x = saved
    art = artifact.read_pcc(path)
    v1 = tmp_path / "v1.pcc"
    v1.write_bytes(_encode_v1(art))
    loaded = pccompiler.load(str(v1))
    torch.testing.assert_close(loaded.log_prob(x), circuit.log_prob(x))
    data = bytearray(open(path, "rb").read())
    data[5:8] = (3).to_bytes(3, "big")
    (tmp_path / "v3.pcc").write_bytes(bytes(data))
    with pytest.raises(LoadError, match="container version 3.*recompile"):
        pccompiler.load(str(tmp_path / "v3.pcc"))


def test_in_process_compile_packs_the_builders_arrays(monkeypatch):
    import pccompiler as pc
    root = pc.hclt(None, 4, num_cats=3, tree=_tiny_tree(), seed=0)
    seen = []
    real = packing_upload._values

    def spy(proto, arrays):
        out = real(proto, arrays)
        seen.append((proto.name, out))
        return out
    monkeypatch.setattr(packing_upload, "_values", spy)
    circuit = pccompiler.compile(root, backend="torch", device="cpu")
    builder = {}
    pc.lower(root, arrays_out=builder)
    assert builder and len(seen) == len(builder)
    for name, values in seen:
        assert np.shares_memory(values, builder[name]), name
    # and the result equals a compile of the lowered Model (raw_data path)
    again = pccompiler.compile(pc.lower(root), backend="torch", device="cpu")
    x = np.random.default_rng(0).integers(0, 3, size=(20, 5))
    torch.testing.assert_close(circuit.log_prob(x), again.log_prob(x))


def _tiny_tree():
    import networkx as nx
    tree = nx.Graph()
    tree.add_edges_from([(0, 1), (1, 2), (1, 3), (3, 4)])
    return tree


@pytest.mark.parametrize("sizes", [{}, {"chunk_bytes": 64, "segment_bytes": 256},
                                   {"chunk_bytes": 256, "direct_bytes": 300}])
def test_batched_packing_from_mapped_arrays_matches_protobuf_bytes(saved, sizes):
    """The device path (pinned chunks, direct uploads) reading the mapped
    arrays gives the same bits as the per-tensor path reading protobuf."""
    art = artifact.read_pcc(saved[0])
    layout = art.layout

    def pack(fn, model, arrays, **kw):
        s = torch.full((int(layout.num_sum_params),), float("nan"))
        i = torch.full((int(layout.num_input_params),), float("nan"))
        jobs = packing_upload._jobs(model, layout, s, i)
        fn(jobs, {t.name: t for t in model.tensors}, arrays=arrays, **kw)
        return s, i
    want = pack(packing_upload._pack_jobs, art.model, None)
    got = pack(packing_upload._pack_batched, art.mapped_model, art.arrays, **sizes)
    for w, g in zip(want, got):
        assert not torch.isnan(g).any()
        assert torch.equal(w.view(torch.int32), g.view(torch.int32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_load_onto_cuda_from_the_mapping(saved):
    path, circuit, x = saved
    loaded = pccompiler.load(path, device="cuda", backend="torch")
    torch.testing.assert_close(loaded.log_prob(x).cpu(), circuit.log_prob(x))


def test_loaded_circuit_saves_again_and_exposes_a_plain_model(saved, tmp_path):
    path, circuit, x = saved
    loaded = pccompiler.load(path)
    again = tmp_path / "again.pcc"
    loaded.save(str(again))              # to_model reads the mapped parameters
    torch.testing.assert_close(pccompiler.load(str(again)).log_prob(x), circuit.log_prob(x))
    assert not any(t.HasField("external") for t in loaded.model.tensors)
    torch.testing.assert_close(loaded.log_prob(x), circuit.log_prob(x))


def test_params_hashed_in_chunks_on_threads(tmp_path, monkeypatch):
    """Small chunks: several chunk hashes, each checked; a flipped byte in
    any chunk but the first is still refused."""
    import pccompiler as pc
    path = str(tmp_path / "h.pcc")
    pccompiler.compile(pc.hclt(None, 16, num_cats=64, tree=_tiny_tree(), seed=0),
                       backend="torch", device="cpu").save(path)
    art = artifact.read_pcc(path)
    monkeypatch.setattr(artifact, "CHUNK_BYTES", 4096)
    data = artifact.encode(art.mapped_model, art.layout, "torch", "cpu", "float32",
                           arrays=art.arrays)
    entry = _section(data, "params")
    assert entry["chunk_bytes"] == 4096
    assert len(entry["chunk_sha256"]) == -(-entry["length"] // 4096) > 2
    back = artifact.decode(data, defer_hash=True)
    back.arrays.verify()
    bad = bytearray(data)
    bad[entry["offset"] + 2 * 4096 + 7] ^= 0x01
    with pytest.raises(LoadError, match="params section does not match its sha256"):
        artifact.decode(bytes(bad))


def test_same_content_is_checked_once_but_hashed_every_time(tmp_path, monkeypatch):
    import pccompiler as pc
    path = str(tmp_path / "c.pcc")
    pccompiler.compile(pc.hclt(None, 8, num_cats=16, tree=_tiny_tree(), seed=3),
                       backend="torch", device="cpu").save(path)
    calls = []
    real = artifact._check_ir
    monkeypatch.setattr(artifact, "_check_ir", lambda *a: (calls.append(1), real(*a)))
    pccompiler.load(path)
    pccompiler.load(path)
    artifact.read_pcc(path)
    assert len(calls) == 1
    data = bytearray(open(path, "rb").read())
    data[_section(bytes(data), "params")["offset"] + 9] ^= 0x01   # same manifest
    (tmp_path / "bad.pcc").write_bytes(bytes(data))
    with pytest.raises(LoadError, match="params section does not match its sha256"):
        pccompiler.load(str(tmp_path / "bad.pcc"))
    assert len(calls) == 1
