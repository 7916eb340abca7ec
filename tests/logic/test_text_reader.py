"""logic_text.read_records' plain reader (the layout the SDD library
writes, read in chunks cut at line ends) gives the general tokenizer's
Records, whatever the chunk size, with comment lines before the header or
among the records; malformed files it leaves to the general reader, which
names the line."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pccompiler.errors import LoadError
from pccompiler.frontend import logic_text
from tests.logic.circuits import SDD, shared_sdd

FIELDS = ("header", "header_line", "lines", "keys", "starts", "counts")


def _records(path, monkeypatch, plain: bool, chunk: int | None = None):
    """read_records of `path` by the plain reader (in chunks of `chunk`
    bytes) or by the general tokenizer only."""
    with monkeypatch.context() as m:
        if chunk:
            m.setattr(logic_text, "_BYTES", chunk)
        if not plain:
            m.setattr(logic_text, "_read_plain", lambda *args: None)
        return logic_text.read_records(path, "sdd", b"FTLD")


def _same(a, b) -> None:
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(a.header_ints, b.header_ints)
    for r in range(len(a.keys)):                      # every record's integers
        np.testing.assert_array_equal(a.ints[a.starts[r]:a.starts[r] + a.counts[r]],
                                      b.ints[b.starts[r]:b.starts[r] + b.counts[r]])


@pytest.mark.parametrize("chunk", [None, 64, 7])
@pytest.mark.parametrize("comments", ["lead", "among"])
def test_plain_reader_in_chunks_is_the_general_reader(tmp_path, monkeypatch, chunk, comments):
    """The tiny SDD, with its comment lines leading or also among the
    records (the bytes to blank are then out of order across chunks)."""
    text = SDD
    if comments == "among":
        lines = text.splitlines()
        lines[-2:-2] = ["c a comment among the records", "c"]
        text = "\n".join(lines) + "\n"
    path = tmp_path / "f.sdd"
    path.write_text(text)
    plain = _records(path, monkeypatch, True, chunk)
    assert plain is not None
    _same(plain, _records(path, monkeypatch, False))
    with monkeypatch.context() as m:                  # the plain reader did read it
        if chunk:
            m.setattr(logic_text, "_BYTES", chunk)
        assert logic_text._read_plain(*_plain_args(path)) is not None


def _plain_args(path):
    data = path.read_bytes()
    return data, np.frombuffer(data, dtype=np.uint8), str(path), "sdd", b"FTLD"


@pytest.mark.parametrize("name", ["road_r", "sudoku_4"])
def test_plain_reader_on_shared_sdds(monkeypatch, name):
    """A shared SDD read in 4 KB chunks is read as by the general tokenizer."""
    path = shared_sdd(name)
    _same(_records(path, monkeypatch, True, 4096), _records(path, monkeypatch, False))


@pytest.mark.parametrize("bad, named", [("D 3 x 1 0 2", True), ("D 3 3 1 0 2 777", False)])
def test_bad_tokens_are_refused_with_the_line(tmp_path, monkeypatch, bad, named):
    """A non-integer token is named with its line whatever the chunk size;
    an extra integer reaches the count check of the importer."""
    lines = SDD.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("D "))
    lines[at] = bad
    path = tmp_path / "bad.sdd"
    path.write_text("\n".join(lines) + "\n")
    if not named:
        rec = _records(path, monkeypatch, True, 16)
        assert 777 in rec.ints
        return
    for chunk in (None, 16):
        with pytest.raises(LoadError, match=f":{at + 1}: 'x' is not an integer"):
            _records(path, monkeypatch, True, chunk)


@pytest.mark.parametrize("big", [False, True])
def test_narrow_integers_fall_back_to_int64(tmp_path, monkeypatch, big):
    """read_records(narrow=True) gives the int64 reader's values, as int32
    when every integer fits and as int64 when one does not (3000000000,
    read again whole)."""
    text = SDD.replace("sdd 10", "sdd 3000000000") if big else SDD
    path = tmp_path / "f.sdd"
    path.write_text(text)
    for chunk in (None, 16):
        with monkeypatch.context() as m:
            if chunk:
                m.setattr(logic_text, "_BYTES", chunk)
            wide = logic_text.read_records(path, "sdd", b"FTLD")
            narrow = logic_text.read_records(path, "sdd", b"FTLD", narrow=True)
        assert narrow.ints.dtype == (np.int64 if big else np.int32)
        _same(narrow, wide)
        assert int(narrow.header_ints[0]) == (3000000000 if big else 10)


@pytest.mark.parametrize("form", ["nodes", "groups"])
@pytest.mark.parametrize("name", ["sudoku_4", "seq_fun"])
def test_int32_and_int64_integers_import_the_same_model(name, form, monkeypatch):
    """The importer's element arrays (decision, prime, sub) take the
    integers' dtype: int32 from the narrow reader, int64 from the wide one
    (forced here); the Model bytes are the same either way."""
    import pccompiler as pc
    from pccompiler.frontend import sdd

    path = shared_sdd(name)
    real, got, dtypes = sdd.read_records, {}, []

    def reader(path, header, keys, narrow=False, allow=True):
        rec = real(path, header, keys, narrow=narrow and allow)
        dtypes.append(rec.ints.dtype)
        return rec
    for allow in (True, False):
        with monkeypatch.context() as m:
            m.setattr(sdd, "read_records", lambda *a, **k: reader(*a, **k, allow=allow))
            got[allow] = pc.from_sdd(path, form=form).SerializeToString(deterministic=True)
    assert np.dtype(np.int32) in dtypes and dtypes[-1] == np.int64
    assert got[True] == got[False]


@pytest.mark.parametrize("chunk", [None, 16, 7])
@pytest.mark.parametrize("swap", [("\n", "\r\n"), ("D 6 1 2", "D 6 1\t2"), ("D 8 1 2", "D 8 1 +2"),
                                  ("D 9 3 3", "D 9 3 :3"), ("L 7 4 3", "L 7 4 3\x00")])
def test_plain_reader_leaves_other_bytes_to_the_general_reader(tmp_path, monkeypatch, chunk,
                                                                swap):
    """A byte other than 0-9, ' ', '-' and the line ends (a CR, a tab, '+',
    ':', a NUL) makes the plain reader's byte count fail in whichever chunk
    holds it (newlines counted from the line ends, not from the bytes), so
    the general reader reads the file (CR, tab and NUL are blanks to it) or
    names the line of the bad token."""
    path = tmp_path / "odd.sdd"
    path.write_bytes(SDD.replace(*swap).encode())
    with monkeypatch.context() as m:
        if chunk:
            m.setattr(logic_text, "_BYTES", chunk)
        assert logic_text._read_plain(*_plain_args(path)) is None
    if swap[1].startswith(("D 8", "D 9")):
        line = 1 + SDD.splitlines().index(next(x for x in SDD.splitlines()
                                                if x.startswith(swap[0])))
        token = swap[1].split()[-1]
        with pytest.raises(LoadError, match=re.escape(f":{line}: '{token}' is not an integer")):
            _records(path, monkeypatch, True, chunk)
    else:
        _same(_records(path, monkeypatch, True, chunk), _records(path, monkeypatch, False))
