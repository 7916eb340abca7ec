"""The exact text form: print -> parse gives the same Model (protobuf
equality) and print -> parse -> print the same text, on every test circuit;
odd tensors (NaN payloads, bfloat16, external, broken bytes) too; bad text
names its line and what was expected."""

from __future__ import annotations

import numpy as np
import pytest

from pccompiler import ir, structures
from pccompiler.errors import LoadError
from pccompiler.ir import pcir
from tests import factories as F
from tests.conformance.circuits import all_circuits
from tests.passes import circuits as P


def _pass_circuits() -> dict:
    rng = np.random.default_rng(0)
    blocks = P.expand_blocks(P.block_mask(rng, 4, 4, 0.5), 2)
    return {
        "two_level": lambda: P.two_level_model(blocks, 8, 8),
        "hmm": lambda: P.hmm_model(3, 2, 3),
        "hmm_untied": lambda: P.hmm_model(3, 2, 3, declare_ties=False, shared_values=False),
    }


def _structure_circuits() -> dict:
    data = (np.random.default_rng(1).random((50, 5)) < 0.5).astype(np.int64)
    return {
        "hclt": lambda: structures.hclt(data, num_latents=2, seed=0),
        "pd": lambda: structures.pd((2, 2), num_latents=2, split_intervals=1, num_cats=2, seed=0),
        "hmm": lambda: structures.hmm(3, num_latents=2, num_emits=3, seed=0),
    }


def _as_model(made) -> pcir.Model:
    if isinstance(made, pcir.Model):
        return made
    import pccompiler as pc
    return pc.lower(made)


CIRCUITS = {f"factory-{n}": (lambda f=f: f(seed=0)) for n, f in F.ALL_FACTORIES.items()}
CIRCUITS.update({f"passes-{n}": f for n, f in _pass_circuits().items()})
CIRCUITS.update({f"conformance-{n}": f for n, f in all_circuits().items()})
CIRCUITS.update({f"structure-{n}": f for n, f in _structure_circuits().items()})


def assert_round_trip(model: pcir.Model) -> str:
    text = ir.dump_exact(model)
    back = ir.parse_text(text)
    assert back == model
    assert ir.dump_exact(back) == text
    return text


@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_round_trip(name):
    assert_round_trip(_as_model(CIRCUITS[name]()))


@pytest.mark.parametrize("name", ["factory-sparse", "factory-tied", "passes-two_level"])
def test_round_trip_after_the_passes(name):
    """model' of the default pipeline: int32 indices, block-sparse groups."""
    from pccompiler import passes
    assert_round_trip(passes.compile_model(CIRCUITS[name]()).model)


def test_dump_text_is_unchanged_and_differs():
    model = F.small_dense_model(0)
    assert ir.dump_exact(model) != ir.dump_text(model)
    assert ir.dump_text(model).startswith("model 'dense'")


def _model_with(*tensors: pcir.Tensor) -> pcir.Model:
    model = F.small_dense_model(0)
    model.tensors.extend(tensors)
    return model


def test_odd_floats_round_trip():
    f32 = np.array([0.1, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4028235e38], np.float32)
    bits = f32.view(np.uint32).copy()
    bits[4] = 0xffc00001                             # a negative NaN with a payload
    f64 = np.array([0.1, 1 / 3, 5e-324, np.nan, -np.nan], np.float64)
    f16 = np.array([0.1, 65504, np.nan], np.float16)
    bf16 = pcir.Tensor(name="bf", dtype=pcir.BFLOAT16, dims=[3],
                       raw_data=np.array([0x3f80, 0x7fc1, 0xc049], "<u2").tobytes())
    text = assert_round_trip(_model_with(
        ir.from_numpy(bits.view(np.float32), "f32"), ir.from_numpy(f64, "f64"),
        ir.from_numpy(f16, "f16"), bf16, ir.from_numpy(np.array([0, 255], np.uint8), "u8"),
        ir.from_numpy(np.array([-2**31, 2**31 - 1], np.int32), "i32"),
        ir.from_numpy(np.zeros((0, 2), np.int64), "empty"),
        ir.from_numpy(np.float32(2.5), "scalar")))
    assert "nan:0xffc00001" in text and 'tensor "scalar" float32 [] = [2.5]' in text


def test_undecodable_and_external_tensors_print_their_bytes():
    short = pcir.Tensor(name="short", dtype=pcir.FLOAT32, dims=[3], raw_data=b"\x00\x01")
    ext = pcir.Tensor(name="ext", dtype=pcir.FLOAT32, dims=[4])
    ext.external.location, ext.external.offset = "m.pcir.data", 64
    ext.external.length, ext.external.sha256 = 16, "ab" * 32
    empty_ext = pcir.Tensor(name="empty_ext", dtype=pcir.INT64, dims=[0])
    empty_ext.external.SetInParent()
    odd = pcir.Tensor(name="odd", dtype=99, dims=[1], raw_data=b"\x07")
    text = assert_round_trip(_model_with(short, ext, empty_ext, odd))
    assert 'tensor "short" float32 [3] raw="0001"' in text
    assert 'location="m.pcir.data" offset=64 length=16' in text


def test_broken_models_round_trip():
    """The text keeps what the checker would refuse: it is for debugging."""
    model = F.small_dense_model(0)
    model.groups[3].id = 7
    model.groups[4].kind = 9
    model.groups[4].ClearField("product")
    model.groups[5].product.children.append(-1)
    model.variables[0].kind = 42
    model.metadata["weird \"key\"\n"] = "tab\there é"
    model.name = ""
    assert_round_trip(model)
    assert_round_trip(pcir.Model())


def test_sub_messages_of_another_kind_are_dropped():
    """The documented normalisation: only the sub-message of a group's kind
    is printed (the only one ir.check reads)."""
    model = F.small_dense_model(0)
    model.groups[4].input.params = "stray"
    back = ir.parse_text(ir.dump_exact(model))
    assert not back.groups[4].HasField("input")
    model.groups[4].ClearField("input")
    assert back == model


def test_comments_and_blank_lines_are_ignored():
    text = ir.dump_exact(F.tied_model(0))
    noted = "# a fixture\n\n" + text.replace("\ntie g2 -> g0\n", "\ntie g2 -> g0   # emissions\n")
    assert ir.parse_text(noted) == F.tied_model(0)


GOOD = ir.dump_exact(F.small_sparse_model(0)).splitlines()


def _edit(line_no: int, new: str | None) -> str:
    """GOOD with line `line_no` (1-based) replaced (None: removed)."""
    lines = list(GOOD)
    if new is None:
        del lines[line_no - 1]
    else:
        lines[line_no - 1] = new
    return "\n".join(lines) + "\n"


def _line_of(prefix: str) -> int:
    return next(i for i, line in enumerate(GOOD, 1) if line.startswith(prefix))


@pytest.mark.parametrize("text,line,expected", [
    ("g0 = input n=1", 1, "expected 'model"),
    ("", 1, "found no statement"),
    (_edit(_line_of("g6 ="), GOOD[_line_of("g6 =") - 1].replace("pattern=sparse",
                                                                 "pattern=lumpy")),
     _line_of("g6 ="), "edge pattern (dense | block-sparse | sparse), found 'lumpy'"),
    (_edit(_line_of("g6 ="), GOOD[_line_of("g6 =") - 1].replace(' weights="g6.weights"', "")),
     _line_of("g6 ="), "group g6: missing weights"),
    (_edit(_line_of("g4 ="), GOOD[_line_of("g4 =") - 1] + " color=3"),
     _line_of("g4 ="), "unknown key 'color'"),
    (_edit(_line_of("g4 ="), GOOD[_line_of("g4 =") - 1].replace("n=4", "n=four")),
     _line_of("g4 ="), "expected an integer for group g4: n, found 'four'"),
    (_edit(_line_of("g4 ="), GOOD[_line_of("g4 =") - 1].replace("[g0,g1]", "[g0,1]")),
     _line_of("g4 ="), "expected a group reference g<id>"),
    (_edit(_line_of("g4 ="), GOOD[_line_of("g4 =") - 1].replace('"g4.index"', "g4.index")),
     _line_of("g4 ="), 'expected a "string" for index'),
    (_edit(_line_of("v2 ="), None), _line_of("v2 ="), "expected v2"),
    (_edit(_line_of("tie") if any(l.startswith("tie") for l in GOOD) else _line_of("roots"),
           "tie g7 g6"), _line_of("roots"), "expected '->' in tie"),
    (_edit(_line_of("roots"), "roots = [g9"), _line_of("roots"), "',' or ']' in roots"),
    (_edit(_line_of("roots"), "bogus 1"), _line_of("roots"), "expected a statement"),
    (_edit(_line_of("roots"), 'roots = [g9] "x'), _line_of("roots"), "unexpected character"),
    (_edit(1, GOOD[0] + "\n" + GOOD[0]), 2, "a second 'model'"),
])
def test_bad_text_names_the_line(text, line, expected):
    with pytest.raises(LoadError) as info:
        ir.parse_text(text)
    message = str(info.value)
    assert message.startswith(f"line {line}: "), message
    assert expected in message, message


def _tensor_edit(old: str, new: str) -> tuple[str, int]:
    text = "\n".join(GOOD) + "\n"
    assert old in text
    at = text.index(old)
    return text.replace(old, new, 1), text[:at].count("\n") + 1


@pytest.mark.parametrize("old,new,expected", [
    ("0.6258066", "0.62x", "expected a number, found '0.62x'"),
    ('"g0.params" float32 [4,3] = [\n  0.6258066, ', '"g0.params" float32 [4,3] = [\n  ',
     "need 12 values, found 11"),
    ('"g4.index" int64 [4,2] = [0, 0', '"g4.index" int64 [4,2] = [0.5, 0', "expected an integer"),
    ('"g4.index" int64 [4,2] = [0, 0', '"g4.index" int64 [4,2] = [99999999999999999999, 0',
     "expected an integer in ["),
    ('"g4.index" int64 [4,2] = [0, 0', '"g4.index" int64 [4,2] 0, 0', "expected '= [values]'"),
    ("float32 [4,3]", "float33 [4,3]", "expected a dtype"),
])
def test_bad_tensor_values_name_the_line(old, new, expected):
    text, line = _tensor_edit(old, new)
    with pytest.raises(LoadError) as info:
        ir.parse_text(text)
    message = str(info.value)
    assert message.startswith(f"line {line}: ") and expected in message, message


def test_unclosed_tensor_names_its_start():
    text, line = _tensor_edit('0.5174612, 0.45483518, 0.027703675\n]', '0.5174612, 0.45483518')
    with pytest.raises(LoadError, match=r"^line \d+: tensor 'g0.params': no closing"):
        ir.parse_text(text)
    with pytest.raises(LoadError, match=r"no closing '\]' before the end of the text"):
        ir.parse_text("\n".join(GOOD) + '\ntensor "x" int64 [2] = [\n  1, 2\n')
