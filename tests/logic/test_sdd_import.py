"""The SDD importer (pccompiler/frontend/sdd.py) on a hand-written SDD and
on the shared KLay circuits, and its errors on bad files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.frontend.sdd import from_sdd
from pccompiler.logic import model_count

from tests.logic.circuits import CIRCUITS, SDD, shared_sdd, SHARED, VTREE, assignments, tiny_formula, write


def test_tiny_sdd_is_smooth_decomposable_and_exact(tmp_path):
    model = from_sdd(write(tmp_path))
    ir.check(model)                              # smoothness, decomposability, indices
    assert model.metadata["semantics"] == "logic"
    assert [v.num_cats for v in model.variables] == [2, 2, 2]
    assert model_count(model) == [4]
    x = assignments(3)
    counts = model_count(model, x, np.zeros(x.shape, dtype=bool))
    assert counts == tiny_formula(x).tolist()    # the formula, assignment by assignment


def test_duplicate_elements_are_merged(tmp_path):
    """The same element twice in a decision is one edge (an OR of equal
    terms), and equal elements of two decisions share one product node."""
    sdd = SDD.replace("sdd 10", "sdd 11").replace("D 9 3 3 6 5 2 7 8 4",
                                                 "D 9 3 4 6 5 2 7 8 4 2 7\nD 10 3 1 6 5")
    model = from_sdd(write(tmp_path, sdd))
    ir.check(model)
    assert model_count(model) == [2]             # the last node (x1 & x2) is the root


# sha256 (first 32 hex digits) of Model.SerializeToString(deterministic=True),
# producer_version cleared, as written by the per-vtree-node importer before
# the array rewrite (pccompiler/frontend/sdd_groups.py): same groups, order,
# tensors and names, byte for byte.
GOLDEN = {
    "sudoku_4": "c3d262a6c0304d6429c0c5c821189b1d",
    "4-grid": "b720659d90ef1498f90b4e83d466d613",
    "seq_fun": "a2a797482bc435a9e307f2df502b2572",
    "road_r": "90ad7e7f263deaacee5938b36701df8d",
}


@pytest.mark.parametrize("name", SHARED)
def test_shared_circuits_import_and_check(name):
    path = shared_sdd(name)
    model = from_sdd(path)
    ir.check(model)
    assert len(model.variables) == int((CIRCUITS / f"{name}.vtree").read_text()
                                       .split("\nvtree ")[1].split()[0]) // 2 + 1
    model.producer_version = ""
    digest = hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
    assert digest[:32] == GOLDEN[name]


@pytest.mark.parametrize("edit, message", [
    (("L 1 2 2", "L 1 2 x2"), ":4: 'x2' is not an integer"),
    (("F 4", "Q 4"), ":7: unknown record 'Q'"),
    (("sdd 10", "sdd 11"), ":2: the header says 11 nodes, the file has 10"),
    (("D 6 1 2 0 1 2 4", "D 6 1 2 0 1 2"), ":9: a 'D' record needs 7 integers"),
    (("D 6 1 2 0 1 2 4", "D 6 1 2 0 1 2 11"), ":9: sub 11 is not a node defined on an earlier"),
    (("D 6 1 2 0 1 2 4", "D 6 1 2 9 1 2 4"), ":9: prime 9 is not a node defined on an earlier"),
    (("D 8 1 2 0 3 2 4", "D 8 1 2 0 3 2 -1"), ":11: sub -1 is not a node defined on an earlier"),
    (("D 6 1 2 0 1 2 4", "D 6 1 2 0 7 2 8"),
     ":9: sub 7 is not a node defined on an earlier"),
    (("L 1 2 2", "L 1 2 3"), ":4: literal 3 does not belong to vtree node 2"),
    (("L 3 2 -2", "L 3 2 -2\nL 3 2 2"), "sdd node id 3 is defined twice"),
    (("D 9 3 3 6 5 2 7 8 4", "D 9 3 1 7 5"),
     ":12: node 9: prime 7 lies under vtree 4, not under vtree 1 (the circuit is not decomposable)"),
    (("sdd 10", "vtree 10"), ":2: expected the header 'sdd ...'"),
])
def test_bad_files_name_the_line(tmp_path, edit, message):
    sdd = SDD.replace(*edit)
    if edit[1].startswith("L 3 2 -2\n"):
        sdd = sdd.replace("sdd 10", "sdd 11")
    with pytest.raises(LoadError, match=None) as err:
        from_sdd(write(tmp_path, sdd))
    assert message in str(err.value) and "f.sdd" in str(err.value)


def test_false_decisions_fold_up_the_vtree(tmp_path):
    # D 6 = (x1 & F) | (~x1 & F) is false, so D 9's element (6, 5) drops:
    # f = ~x1 & x3; with D 9's last live element gone too, f is false.
    text = SDD.replace("D 6 1 2 0 1 2 4", "D 6 1 2 0 4 2 4")
    assert model_count(from_sdd(write(tmp_path, text))) == [2]
    with pytest.raises(LoadError, match="unsatisfiable"):
        from_sdd(write(tmp_path, text.replace("D 9 3 3 6 5 2 7 8 4", "D 9 3 2 6 5 8 4")))


def test_bad_vtree_and_false_root(tmp_path):
    with pytest.raises(LoadError, match=r"f\.vtree:5: left child 7 is not a vtree node"):
        from_sdd(write(tmp_path, vtree=VTREE.replace("I 1 0 2", "I 1 7 2")))
    with pytest.raises(LoadError, match="unsatisfiable"):
        from_sdd(write(tmp_path, "sdd 1\nF 0\n"))
    with pytest.raises(LoadError, match="cannot read"):
        from_sdd(tmp_path / "nothing.sdd")


@pytest.mark.parametrize("token", ["-", "1-2", "--2", "2-", "+2", "2.0"])
def test_malformed_integers_are_refused(tmp_path, token):
    with pytest.raises(LoadError) as err:
        from_sdd(write(tmp_path, SDD.replace("L 1 2 2", f"L 1 2 {token}")))
    assert f"f.sdd:4: {token!r} is not an integer" in str(err.value)


def test_crlf_tabs_and_no_final_newline_read_the_same(tmp_path):
    plain = from_sdd(write(tmp_path))
    odd = SDD.replace("\n", "\r\n").replace("D 9 3 ", "D\t9 3 ").rstrip()
    other = from_sdd(write(tmp_path, odd, VTREE.replace("\n", "\r\n"), name="g"))
    assert ir.structure_hash(plain) == ir.structure_hash(other)


@pytest.mark.parametrize("edit", [("F 4\n", "c mid-file comment\nF 4\n"), ("T 5", "T  5"),
                                  ("T 5", "T 5 "), ("F 4\n", "F 4\n\n"), ("D 9", " D 9")])
def test_plain_and_general_tokenizers_agree(tmp_path, edit):
    """The few-pass reader of plain files (logic_text._read_plain) and the
    per-token reader it falls back to give the same records."""
    from pccompiler.frontend import logic_text
    path = write(tmp_path, SDD.replace(*edit))
    data = path.read_bytes()
    general = logic_text.read_records(path, "sdd", b"FTLD")
    plain = logic_text._read_plain(data, np.frombuffer(data, np.uint8), str(path), "sdd", b"FTLD")
    assert (plain is None) == (edit[1] != "c mid-file comment\nF 4\n")
    reference = plain or logic_text.read_records(write(tmp_path, SDD), "sdd", b"FTLD")
    for field in ("header_ints", "keys", "starts", "counts", "ints"):
        assert np.array_equal(getattr(general, field), getattr(reference, field)), field
    if plain is not None:
        assert np.array_equal(general.lines, plain.lines)


@pytest.mark.parametrize("big", [0, 2 ** 40])
def test_unique_rows_key_and_lexsort_paths_agree_with_np_unique(big):
    """sdd_groups.unique_rows packs the columns into one int64 key when they
    fit and lexsorts when they would overflow (big = 2**40 forces that)."""
    from pccompiler.frontend.sdd_groups import unique_rows
    rng = np.random.default_rng(0)
    cols = [rng.integers(0, 4, 200), rng.integers(0, 3, 200) + big, rng.integers(0, 5, 200) + big]
    rows, inv = unique_rows(*cols)
    want, want_inv = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)
    assert np.array_equal(np.stack(rows, axis=1), want)
    assert np.array_equal(inv, want_inv.reshape(-1))


@pytest.mark.parametrize("name", SHARED)
def test_plain_reader_in_small_chunks_reads_the_same_records(name, monkeypatch):
    """The plain reader cuts the bytes into chunks at line ends (its checks,
    spaces per line and integers chunk by chunk): any chunk size, down to a
    line per chunk (and comment-only chunks), gives the records of one pass."""
    from pccompiler.frontend import logic_text
    path = shared_sdd(name)
    for file, header, keys in ((path, "sdd", b"FTLD"), (path.with_suffix(".vtree"), "vtree", b"LI")):
        data = file.read_bytes()
        buf = np.frombuffer(data, dtype=np.uint8)
        whole = logic_text._read_plain(data, buf, str(file), header, keys)
        assert whole is not None
        for size in (1, 7, 4096):
            monkeypatch.setattr(logic_text, "_BYTES", size)
            part = logic_text._read_plain(data, buf, str(file), header, keys)
            for field in ("lines", "keys", "starts", "counts", "ints", "header_ints"):
                np.testing.assert_array_equal(getattr(part, field), getattr(whole, field))


def test_plain_reader_chunks_refuse_a_bad_byte(tmp_path, monkeypatch):
    """A bad byte in a later chunk still sends the file to the checked reader
    (which names its line)."""
    from pccompiler.frontend import logic_text
    monkeypatch.setattr(logic_text, "_BYTES", 8)
    path = write(tmp_path, sdd=SDD.replace("L 2 0 -1", "L 2 0 -x"))
    with pytest.raises(LoadError, match=r"'-x' is not an integer"):
        from_sdd(path)


@pytest.mark.parametrize("name", SHARED)
def test_mapped_file_reads_the_same_records_as_its_bytes(name, tmp_path, monkeypatch):
    """read_records maps the file (logic_text._file_data) where it can and
    the file has _READ_MAX bytes or more (smaller ones are read): the
    same records as from the file's bytes read into memory; an empty file
    (which cannot be mapped) and a folder are read or refused as before."""
    import mmap

    from pccompiler.frontend import logic_text
    path = shared_sdd(name)
    assert path.stat().st_size < logic_text._READ_MAX
    assert isinstance(logic_text._file_data(path), bytes)
    monkeypatch.setattr(logic_text, "_READ_MAX", path.stat().st_size)
    assert isinstance(logic_text._file_data(path), mmap.mmap)
    mapped = logic_text.read_records(path, "sdd", b"FTLD")
    monkeypatch.setattr(logic_text, "_file_data", lambda p: Path(p).read_bytes())
    read = logic_text.read_records(path, "sdd", b"FTLD")
    monkeypatch.undo()
    for field in ("header_ints", "lines", "keys", "starts", "counts", "ints"):
        assert np.array_equal(getattr(mapped, field), getattr(read, field)), field
    (tmp_path / "e.sdd").write_bytes(b"")
    assert logic_text._file_data(tmp_path / "e.sdd") == b""
    with pytest.raises(LoadError, match="empty file"):
        logic_text.read_records(tmp_path / "e.sdd", "sdd", b"FTLD")
    with pytest.raises(LoadError, match="cannot read"):
        logic_text.read_records(tmp_path, "sdd", b"FTLD")


@pytest.mark.parametrize("size", [7, 1 << 23])
def test_plain_reader_never_ends_a_parsed_buffer_inside_a_token(size, monkeypatch):
    """np.fromstring's text parser reads a token until a byte that cannot
    continue it, past the end of its buffer if need be: every buffer the
    plain reader parses must end in a byte that is not a digit, even where
    the file's last line has no newline (seq_fun's .sdd and .vtree)."""
    from pccompiler.frontend import logic_text
    real = np.fromstring
    ends = []

    def checked(buf, *args, **kwargs):
        last = bytes(memoryview(buf)[-1:]) if len(buf) else b" "
        ends.append(last)
        assert not last.isdigit(), "a parsed buffer ends inside a token"
        return real(buf, *args, **kwargs)
    monkeypatch.setattr(logic_text.np, "fromstring", checked)
    monkeypatch.setattr(logic_text, "_BYTES", size)
    path = shared_sdd("seq_fun")
    for file, header, keys in ((path, "sdd", b"FTLD"), (path.with_suffix(".vtree"), "vtree", b"LI")):
        data = file.read_bytes()
        assert data[-1:].isdigit()                     # the case: no newline at the end
        got = logic_text._read_plain(data, np.frombuffer(data, dtype=np.uint8), str(file),
                                     header, keys)
        assert got is not None and got.ints[-1] == int(data.split()[-1])
    assert ends
