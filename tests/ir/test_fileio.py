"""ir.save / ir.load: round trips, external data with checksums, atomic
writes, hostile files, and the upgrade chain."""

from __future__ import annotations


import numpy as np
import pytest

from pccompiler import ir
from pccompiler.errors import LoadError, PCError
from pccompiler.ir import fileio, pcir, upgrade, version
from tests import factories as F


def _parse(path) -> pcir.Model:
    data = open(path, "rb").read()
    msg = pcir.Model() if data[:4] == b"PCIR" else pcir.Layout()
    msg.ParseFromString(data[8:])
    return msg


def _write_raw(path, msg, magic=version.MODEL_MAGIC, fmt=version.FILE_FORMAT_VERSION):
    with open(path, "wb") as f:
        f.write(magic + fmt.to_bytes(3, "big") + msg.SerializeToString())


@pytest.mark.parametrize("name", sorted(F.ALL_FACTORIES))
def test_round_trip_inline(tmp_path, name):
    model = F.ALL_FACTORIES[name](seed=7)
    path = tmp_path / "m.pcir"
    ir.save(model, path)
    assert open(path, "rb").read(8) == b"PCIR\x00\x00\x00\x01"
    assert not (tmp_path / "m.pcir.data").exists()
    loaded = ir.load(path)
    assert loaded == model
    ir.check(loaded)


@pytest.mark.parametrize("name", ["dense", "block_sparse", "tied", "gaussian"])
def test_round_trip_external(tmp_path, name):
    model = F.ALL_FACTORIES[name](seed=8)
    path = tmp_path / "m.pcir"
    ir.save(model, path, external_threshold=40)
    raw = _parse(path)
    ext = [t for t in raw.tensors if t.HasField("external")]
    big = [t for t in model.tensors if len(t.raw_data) > 40]
    assert {t.name for t in ext} == {t.name for t in big} and ext
    assert all(t.external.location == "m.pcir.data" and not t.raw_data for t in ext)
    assert all(t.external.offset % fileio.ALIGN == 0 for t in ext)
    loaded = ir.load(path)
    assert loaded == model
    table, ref = ir.tensor_table(loaded), ir.tensor_table(model)
    for t in model.tensors:
        np.testing.assert_array_equal(table[t.name], ref[t.name])


def test_external_modes_and_stale_data_file(tmp_path):
    model = F.small_sparse_model()
    path = tmp_path / "m.pcir"
    ir.save(model, path, external=True)
    assert all(t.HasField("external") for t in _parse(path).tensors)
    assert ir.load(path) == model
    ir.save(model, path, external=False, external_threshold=0)
    assert not any(t.HasField("external") for t in _parse(path).tensors)
    assert not (tmp_path / "m.pcir.data").exists()     # the stale data file is gone
    assert ir.load(path) == model


def test_messages_past_the_protobuf_limit_go_external(tmp_path, monkeypatch):
    model = F.small_dense_model()
    monkeypatch.setattr(fileio, "MAX_INLINE_BYTES", model.ByteSize() - 40)
    path = tmp_path / "m.pcir"
    ir.save(model, path, external_threshold=1 << 30)
    ext = [t.name for t in _parse(path).tensors if t.HasField("external")]
    largest = max(model.tensors, key=lambda t: len(t.raw_data)).name
    assert largest in ext and len(ext) < len(model.tensors)
    assert ir.load(path) == model
    with pytest.raises(LoadError, match="protobuf limit"):
        ir.save(model, path, external=False)


def test_layout_round_trip(tmp_path):
    model = F.tied_model()
    layout = F.naive_layout(model)
    path = tmp_path / "plan.pcly"
    ir.save(layout, path, external_threshold=32)
    assert open(path, "rb").read(5) == b"PCLY\x00"
    loaded = ir.load(path, kind="layout")
    assert loaded == layout
    ir.check_layout(loaded, model)
    with pytest.raises(LoadError, match="is a layout file, expected a model"):
        ir.load(path, kind="model")


def test_tampered_external_bytes_name_tensor_and_file(tmp_path):
    model = F.small_dense_model()
    path = tmp_path / "m.pcir"
    ir.save(model, path, external_threshold=40)
    victim = next(t for t in _parse(path).tensors if t.HasField("external"))
    data = bytearray((tmp_path / "m.pcir.data").read_bytes())
    data[victim.external.offset + 3] ^= 0xFF
    (tmp_path / "m.pcir.data").write_bytes(bytes(data))
    with pytest.raises(LoadError, match=f"tensor '{victim.name}': checksum mismatch.*m.pcir.data"):
        ir.load(path)


def test_truncated_or_missing_data_file(tmp_path):
    model = F.small_dense_model()
    path = tmp_path / "m.pcir"
    ir.save(model, path, external_threshold=40)
    data = tmp_path / "m.pcir.data"
    data.write_bytes(data.read_bytes()[:-10])
    with pytest.raises(LoadError, match="beyond the end"):
        ir.load(path)
    data.unlink()
    with pytest.raises(LoadError, match="cannot open external data file"):
        ir.load(path)


@pytest.mark.parametrize("location", ["../m.pcir.data", "/etc/passwd", "sub/x.data", "", ".."])
def test_external_location_must_be_a_bare_name(tmp_path, location):
    model = F.small_dense_model()
    path = tmp_path / "m.pcir"
    ir.save(model, path, external_threshold=40)
    raw = _parse(path)
    next(t for t in raw.tensors if t.HasField("external")).external.location = location
    _write_raw(path, raw)
    with pytest.raises(LoadError, match="bare file name"):
        ir.load(path)


def test_external_length_must_match_dims(tmp_path):
    path = tmp_path / "m.pcir"
    ir.save(F.small_dense_model(), path, external_threshold=40)
    raw = _parse(path)
    next(t for t in raw.tensors if t.HasField("external")).external.length += 4
    _write_raw(path, raw)
    with pytest.raises(LoadError, match="external length"):
        ir.load(path)


class Boom(OSError):
    pass


@pytest.mark.parametrize("failing_write", [0, 1])   # 0: data file, 1: model file
def test_atomic_write_keeps_old_files(tmp_path, monkeypatch, failing_write):
    old, new = F.small_dense_model(seed=1), F.small_dense_model(seed=2)
    path = tmp_path / "m.pcir"
    ir.save(old, path, external_threshold=40)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = []
    real_finish = fileio._finish

    def finish(handle):
        calls.append(handle)
        if len(calls) - 1 == failing_write:
            handle.write(b"partial")
            raise Boom("disk full")
        real_finish(handle)

    monkeypatch.setattr(fileio, "_finish", finish)
    with pytest.raises(PCError, match="m.pcir: cannot write: disk full"):
        ir.save(new, path, external_threshold=40)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before                 # no temp file left, old files intact
    assert ir.load(path) == old


def test_unwritable_directory_is_a_clear_error(tmp_path):
    with pytest.raises(PCError, match="cannot write"):
        ir.save(F.small_dense_model(), tmp_path / "no" / "such" / "m.pcir")


def test_failed_serialization_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pcir"
    monkeypatch.setattr(fileio, "header", lambda kind: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ir.save(F.small_dense_model(), path)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- hostile files

def _bad_files(tmp_path):
    good = tmp_path / "good.pcir"
    ir.save(F.small_dense_model(), good)
    data = good.read_bytes()
    rng = np.random.default_rng(0)
    files = {
        "empty": b"",
        "random": rng.bytes(4096),
        "wrong-magic": b"ONNX\x00\x00\x00\x01" + data[8:],
        "truncated-header": b"PCIR\x00\x00",
        "truncated": data[: len(data) // 2],
        "garbage-after-magic": data[:8] + rng.bytes(2000),
        "newer-format": data[:5] + (9).to_bytes(3, "big") + data[8:],
    }
    for name, value in files.items():
        (tmp_path / name).write_bytes(value)
    model = F.small_dense_model()
    model.ir_version = version.IR_VERSION + 1
    _write_raw(tmp_path / "newer-ir", model)
    model.ir_version = 0
    _write_raw(tmp_path / "older-ir", model)
    model = F.small_dense_model()
    model.tensors[0].dims[:] = [10 ** 6, 10 ** 6]
    _write_raw(tmp_path / "huge-tensor", model)
    model = F.small_dense_model()
    model.tensors[1].dims[:] = [-1, 4]
    _write_raw(tmp_path / "negative-dim", model)
    model = F.small_dense_model()
    model.tensors[1].dtype = 42
    _write_raw(tmp_path / "unknown-dtype", model)
    return [*files, "newer-ir", "older-ir", "huge-tensor", "negative-dim", "unknown-dtype"]


EXPECTED = {"empty": "magic", "random": "magic", "wrong-magic": "magic",
            "truncated-header": "truncated header", "truncated": "corrupt or truncated",
            "garbage-after-magic": "corrupt or truncated", "newer-format": "format version 9",
            "newer-ir": "newer than this pccompiler", "older-ir": "older than the oldest",
            "huge-tensor": "need 4000000000000 bytes", "negative-dim": "negative dimension",
            "unknown-dtype": "unknown dtype"}


def test_hostile_files_give_one_load_error(tmp_path):
    names = _bad_files(tmp_path)
    assert set(names) == set(EXPECTED)
    for name in names:
        with pytest.raises(LoadError) as info:
            ir.load(tmp_path / name)
        assert EXPECTED[name] in str(info.value), (name, str(info.value))
        assert str(tmp_path / name) in str(info.value)
    with pytest.raises(LoadError, match="cannot read"):
        ir.load(tmp_path / "does-not-exist.pcir")


# ---------------------------------------------------------------- upgrades

def test_upgrade_chain_runs_steps_in_order(tmp_path, monkeypatch):
    """Pretend the current IR is version 3 and this file is version 1."""
    model = F.small_dense_model()
    _write_raw(tmp_path / "v1.pcir", model)
    seen = []

    def step1(msg, kind):
        seen.append((1, msg.ir_version, kind))
        msg.metadata["upgraded"] = "1"

    def step2(msg, kind):
        seen.append((2, msg.ir_version, kind))
        msg.metadata["upgraded"] += ",2"

    monkeypatch.setattr(version, "IR_VERSION", 3)
    monkeypatch.setattr(upgrade, "UPGRADES", {1: step1, 2: step2})
    loaded = ir.load(tmp_path / "v1.pcir")
    assert seen == [(1, 1, "model"), (2, 2, "model")]
    assert loaded.ir_version == 3 and loaded.metadata["upgraded"] == "1,2"
    monkeypatch.setattr(upgrade, "UPGRADES", {1: step1})
    with pytest.raises(LoadError, match="no upgrade step from ir_version 2 to 3"):
        ir.load(tmp_path / "v1.pcir")


def test_current_version_needs_no_upgrade():
    model = F.small_dense_model()
    upgrade.upgrade(model)
    assert model.ir_version == version.IR_VERSION
    assert upgrade.UPGRADES == {} or min(upgrade.UPGRADES) >= version.MIN_SUPPORTED_IR_VERSION


def test_atomic_write_keeps_the_mode_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "out.bin"
    fileio.atomic_write(path, b"one")
    assert path.read_bytes() == b"one" and path.stat().st_mode & 0o777 == fileio._FILE_MODE
    path.chmod(0o640)
    fileio.atomic_write(path, b"two")
    assert path.read_bytes() == b"two" and path.stat().st_mode & 0o777 == 0o640

    def refuse(src, dst):
        raise Boom("disk full")
    monkeypatch.setattr(fileio.os, "replace", refuse)
    with pytest.raises(Boom):
        fileio.atomic_write(path, b"three")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"] and path.read_bytes() == b"two"
