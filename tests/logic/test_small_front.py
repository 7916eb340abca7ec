"""The small-file paths of the SDD import against the general ones they
stand in for: the same Model bytes, Records and error messages."""

from __future__ import annotations

import numpy as np
import pytest

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.frontend import logic_text
from pccompiler.frontend.sdd import from_sdd
from pccompiler.frontend.sdd_nodes import binary_variables

from tests.logic.circuits import SDD, VTREE, shared_sdd, write

pcir = ir.pcir


@pytest.mark.parametrize("nv", [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 12345])
def test_binary_variables_as_made_messages(nv):
    """The wire bytes of x1..xn equal the Model made one variables.add at
    a time, and read back as those variables (every digit count's
    boundary)."""
    made = pcir.Model(name="m")
    for v in range(1, nv + 1):
        made.variables.add(name=f"x{v}", kind=pcir.CATEGORICAL, num_cats=2)
    merged = pcir.Model(name="m")
    merged.MergeFromString(binary_variables(nv))
    assert merged.SerializeToString() == made.SerializeToString()
    assert [(x.name, x.kind, x.num_cats) for x in merged.variables] == \
        [(f"x{v}", pcir.CATEGORICAL, 2) for v in range(1, nv + 1)]


# (sdd edit, vtree edit, message): the count checks name the same line as
# the keyword-by-keyword checks did before the one-comparison fast path
# (F, T, L, then short D records, then D lengths; vtree L, then I), even
# where a later keyword's bad record sits on an earlier line.
COUNT_ERRORS = [
    (("F 4", "F 4 4"), None, "f.sdd:7: a 'F' record needs 1 integers (id), got 2"),
    (("T 5", "T"), None, "f.sdd:8: a 'T' record needs 1 integers (id), got 0"),
    (("L 7 4 3", "L 7 4"), None, "f.sdd:10: a 'L' record needs 3 integers"),
    (("D 6 1 2 0 1 2 4", "D 6 1"), None, "f.sdd:9: a 'D' record needs id vtree count"),
    (("D 8 1 2 0 3 2 4", "D 8 1 2 0 3 2 4 5"), None, "f.sdd:11: a 'D' record needs 7 integers"),
    (("D 8 1 2 0 3 2 4", "D 8 1 -2 0 3 2 4"), None, "f.sdd:11: a 'D' record needs -1 integers"),
    (("L 0 0 1", "L 0 0 1 1"), None, "f.sdd:3: a 'L' record needs 3"),
    ((("L 0 0 1", "L 0 0 1 1"), ("T 5", "T 5 5")), None, "f.sdd:8: a 'T' record needs 1"),
    (None, ("L 2 2", "L 2 2 2"), "f.vtree:4: a 'L' record needs 2 integers (id variable)"),
    (None, ("I 3 1 4", "I 3 1"), "f.vtree:7: a 'I' record needs 3 integers (id left right)"),
    (None, (("I 1 0 2", "I 1 0"), ("L 4 3", "L 4")), "f.vtree:6: a 'L' record needs 2"),
]


def _edited(text: str, edit) -> str:
    """text with one (old, new) edit or a tuple of them applied."""
    if edit is None:
        return text
    for old, new in (edit if isinstance(edit[0], tuple) else (edit,)):
        assert old in text
        text = text.replace(old, new, 1)
    return text


@pytest.mark.parametrize("sdd_edit, vtree_edit, message", COUNT_ERRORS)
def test_count_errors_name_the_line(tmp_path, sdd_edit, vtree_edit, message):
    path = write(tmp_path, _edited(SDD, sdd_edit), _edited(VTREE, vtree_edit))
    with pytest.raises(LoadError) as err:
        from_sdd(path, form="nodes")
    assert message in str(err.value)


@pytest.mark.parametrize("name", ["sudoku_4", "4-grid", "seq_fun", "road_r"])
@pytest.mark.parametrize("suffix", [".sdd", ".vtree"])
def test_whole_file_reader_is_the_chunked_one(monkeypatch, name, suffix):
    """A shared SDD or vtree read as one chunk (the whole-file path of
    _read_plain and _spaces_per_line) gives the Records of a read in
    1000-byte chunks and of the general tokenizer."""
    path = shared_sdd(name).with_suffix(suffix)
    header, keys = ("sdd", b"FTLD") if suffix == ".sdd" else ("vtree", b"LI")

    def read(chunk=None, plain=True):
        with monkeypatch.context() as m:
            if chunk:
                m.setattr(logic_text, "_BYTES", chunk)
            if not plain:
                m.setattr(logic_text, "_read_plain", lambda *args: None)
            return logic_text.read_records(path, header, keys)

    whole = read()
    assert logic_text._read_plain(path.read_bytes(), np.frombuffer(path.read_bytes(), np.uint8),
                                  str(path), header, keys) is not None
    for other in (read(1000), read(plain=False)):
        for field in ("header", "header_line", "header_ints", "lines", "keys", "starts",
                      "counts", "ints"):
            np.testing.assert_array_equal(getattr(whole, field), getattr(other, field))
