"""Golden tests, one per registered pass (Triton's lit tests): a small
circuit's exact text before the pass and the expected text after it are
checked in under tests/passes/golden/<pass>.txt. Reviewing a change to a
pass means reading the diff of its fixture.

    PCC_UPDATE_GOLDEN=1 pytest tests/passes/test_golden.py   # rewrite the outputs

A fixture is a header (`# pass:`, `# options:`, `# before:` passes run
first without being checked, `# circuit:` what and why), then the input
model in the exact form (ir.dump_exact), then the expected output: the
exact form of a Model, or `ir.dump_layout_text` of a Layout. Updating keeps
a fixture's (possibly hand-edited) input and recomputes its output; a
missing fixture is made from RECIPES.
"""

from __future__ import annotations

import difflib
import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

from pccompiler import ir, passes
from pccompiler.ir import pcir
from pccompiler.passes.registry import DEFAULT_PIPELINE
from tests import factories as F
from tests.passes import circuits as P

GOLDEN = pathlib.Path(__file__).parent / "golden"
INPUT = "# ----- input (ir.dump_exact) -----"
OUTPUT = "# ----- expected output -----"
UPDATE = os.environ.get("PCC_UPDATE_GOLDEN") == "1"


def _shuffled_blocks(seed: int = 0) -> pcir.Model:
    """A sparse sum of 2x2 blocks ~80% full whose parent rows are shuffled:
    detect-block-sparsity must find the permutation and pad the blocks."""
    rng = np.random.default_rng(seed)
    edges = P.expand_blocks(P.block_mask(rng, 4, 4, 0.4), 2, 0.8, rng)
    perm = rng.permutation(8)
    edges = np.stack([perm[edges[:, 0]], edges[:, 1]], 1)
    return P.two_level_model(edges[np.lexsort((edges[:, 1], edges[:, 0]))], 8, 8, seed=seed)


def _complete_blocks(seed: int = 0) -> pcir.Model:
    rng = np.random.default_rng(seed)
    return P.two_level_model(P.expand_blocks(P.block_mask(rng, 2, 2, 0.5), 2), 4, 4, seed=seed)


@dataclass
class Recipe:
    circuit: str
    build: Callable[[], pcir.Model]
    options: dict = field(default_factory=dict)
    before: tuple[str, ...] = ()


RECIPES = {
    "verify": Recipe("tests.factories.small_dense_model(0): valid, so unchanged",
                     lambda: F.small_dense_model(0)),
    "canonicalize": Recipe("tests.factories.small_sparse_model(0): int64 index and edge "
                           "tensors narrowed to int32", lambda: F.small_sparse_model(0)),
    "tie-params": Recipe("tests/passes/circuits.hmm_model(3, 2, 3) without declared ties: "
                         "detect=true finds the repeated emissions and transitions",
                         lambda: P.hmm_model(3, 2, 3, declare_ties=False), {"detect": True}),
    "partition-blocks": Recipe("two_level_model: a sparse sum made of complete 2x2 blocks "
                               "becomes block-sparse", _complete_blocks),
    # tile_dense=false: priced, these 2x2 blocks cost more than the 8x8 group
    # stored DENSE (row_tiles.block_sparse_cost), which test_row_tiles.py tests
    "detect-block-sparsity": Recipe("two_level_model: 2x2 blocks ~80% full, parent rows "
                                    "shuffled: the permutation is found, blocks padded "
                                    "(tile_dense=false: blocks not priced against DENSE)",
                                    _shuffled_blocks, {"tile_dense": False}),
    "layerize": Recipe("tests.factories.small_block_sparse_model(0)",
                       lambda: F.small_block_sparse_model(0)),
    "layout": Recipe("tests.factories.small_block_sparse_model(0)",
                     lambda: F.small_block_sparse_model(0), before=("layerize",)),
}


def test_every_pass_of_the_default_pipeline_has_a_recipe():
    assert set(RECIPES) == {p.strip() for p in DEFAULT_PIPELINE.split(",")}


def render(obj: pcir.Model | pcir.Layout) -> str:
    return ir.dump_exact(obj) if isinstance(obj, pcir.Model) else ir.dump_layout_text(obj)


def run(name: str, model: pcir.Model, options: dict, before: tuple[str, ...]):
    """The pass `name` on `model`, after the `before` passes (unchecked)."""
    obj = model
    for prior in before:
        obj, _ = passes.run_pass(prior, obj, model=model)
    result, _ = passes.run_pass(name, obj, options, model=model)
    if isinstance(result, pcir.Model):
        ir.check(result)
    return result


def read_fixture(path: pathlib.Path) -> tuple[dict, str, str]:
    """(header fields, input text, expected output text) of a fixture."""
    text = path.read_text()
    head, sep, rest = text.partition(INPUT + "\n")
    given, sep2, expected = rest.partition(OUTPUT + "\n")
    if not sep or not sep2:
        raise AssertionError(f"{path}: needs the lines {INPUT!r} and {OUTPUT!r}")
    fields = {}
    for line in head.splitlines():
        key, colon, value = line.removeprefix("# ").partition(": ")
        if colon:
            fields[key] = value
    return fields, given, expected


def write_fixture(path: pathlib.Path, name: str, recipe: Recipe, given: str, output: str) -> None:
    path.parent.mkdir(exist_ok=True)
    head = [f"# golden test of the pass `{name}` (tests/passes/test_golden.py)",
            f"# pass: {name}", f"# options: {json.dumps(recipe.options, sort_keys=True)}",
            f"# before: {','.join(recipe.before)}", f"# circuit: {recipe.circuit}",
            "# regenerate: PCC_UPDATE_GOLDEN=1 pytest tests/passes/test_golden.py"]
    path.write_text("\n".join(head) + "\n" + INPUT + "\n" + given + OUTPUT + "\n" + output)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_golden(name):
    path = GOLDEN / f"{name}.txt"
    recipe = RECIPES[name]
    if path.exists():
        fields, given, expected = read_fixture(path)
        assert fields.get("pass") == name, f"{path}: its header names pass {fields.get('pass')!r}"
        options = json.loads(fields.get("options", "{}"))
        before = tuple(p for p in fields.get("before", "").split(",") if p)
    elif UPDATE:
        given, expected = ir.dump_exact(recipe.build()), ""
        options, before = recipe.options, recipe.before
    else:
        pytest.fail(f"{path} is missing; make it with PCC_UPDATE_GOLDEN=1")
    model = ir.parse_text(given)
    assert ir.dump_exact(model) == given, f"{path}: the input is not in canonical exact form"
    output = render(run(name, model, options, before))
    if UPDATE:
        recipe = Recipe(recipe.circuit, recipe.build, options, before)
        write_fixture(path, name, recipe, given, output)
        return
    if output != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), output.splitlines(True),
                                            f"{path.name} (expected)", f"{name} (actual)"))
        pytest.fail(f"pass {name!r} changed its output; review the diff, then run "
                    f"PCC_UPDATE_GOLDEN=1 pytest tests/passes/test_golden.py\n{diff}",
                    pytrace=False)


def test_a_changed_pass_prints_a_diff(tmp_path, monkeypatch):
    """The failure message is a unified diff of the text."""
    path = GOLDEN / "canonicalize.txt"
    fields, given, expected = read_fixture(path)
    broken = tmp_path / "golden"
    broken.mkdir()
    (broken / "canonicalize.txt").write_text(
        path.read_text().replace(OUTPUT + "\n" + expected,
                                 OUTPUT + "\n" + expected.replace("int32", "int16", 1)))
    monkeypatch.setitem(globals(), "GOLDEN", broken)
    monkeypatch.setitem(globals(), "UPDATE", False)
    with pytest.raises(pytest.fail.Exception) as info:
        test_golden("canonicalize")
    assert "-tensor" in str(info.value) and "int16" in str(info.value)
