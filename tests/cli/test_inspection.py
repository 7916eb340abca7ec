"""Inspection that tells the truth (#20 point 3), through the `pcc` command:

- --print-after and --time-passes run the passes even when the layout cache
  holds the result (the result is still stored);
- an unknown pass name (--passes, --print-after) is one error line naming
  the known passes, and no output file is written;
- verify, dump, stat and compile take compiled .pcc files; a trained .pcc
  recompiled for another backend keeps its trained parameters;
- build, dump, stat and verify print one edge count (ir.edge_counts).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pccompiler import ir
from pccompiler.ir import artifact
from tests import factories as F
from tests.cli.test_ir_commands import pcc


def one_line_error(result, *needles: str) -> str:
    """Exit code 1, exactly one stderr line, no traceback; returns the line."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.pcir"
    ir.save(F.small_dense_model(0), path)
    return path


def test_print_after_and_time_passes_run_the_passes_with_a_warm_cache(tmp_path, model_file):
    cache = tmp_path / "cache"
    base = ["compile", model_file, "-o", tmp_path / "m.pcc", "--backend", "torch",
            "--cache-dir", cache]
    assert pcc(*base).returncode == 0                       # the cache holds the layout now
    assert len(list(cache.glob("*.pclc"))) == 1
    shown = pcc(*base, "--print-after", "layerize")
    assert shown.returncode == 0, shown.stderr
    assert "IR after layerize" in shown.stdout and "layer 0" in shown.stdout
    timed = pcc(*base, "--time-passes")
    assert timed.returncode == 0, timed.stderr
    rows = {line.split()[0] for line in timed.stdout.splitlines() if line.strip()}
    assert {"verify", "canonicalize", "layerize", "layout"} <= rows
    assert "read skipped" in timed.stdout and "stored" in timed.stdout
    assert len(list(cache.glob("*.pclc"))) == 1             # the same entry, rewritten


@pytest.mark.parametrize("flags", [["--print-after", "nosuchpass"],
                                   ["--print-after", "layout,nosuchpass"],
                                   ["--passes", "verify,nosuchpass,layerize,layout"]])
def test_an_unknown_pass_name_is_one_line_naming_the_known_passes(tmp_path, model_file, flags):
    out = tmp_path / "m.pcc"
    line = one_line_error(pcc("compile", model_file, "-o", out, "--no-cache", *flags),
                          "unknown pass 'nosuchpass'", "known passes")
    assert "layerize" in line and "tie-params" in line
    assert list(tmp_path.iterdir()) == [model_file]


def test_print_after_a_pass_the_pipeline_leaves_out_is_an_error(tmp_path, model_file):
    one_line_error(pcc("compile", model_file, "-o", tmp_path / "m.pcc", "--no-cache",
                       "--passes", "verify,layerize,layout", "--print-after", "canonicalize"),
                   "'canonicalize'", "verify, layerize, layout")
    assert not (tmp_path / "m.pcc").exists()


def test_verify_dump_stat_compile_read_pcc_files(tmp_path, model_file):
    compiled = tmp_path / "m.pcc"
    assert pcc("compile", model_file, "-o", compiled, "--backend", "torch",
               "--no-cache").returncode == 0
    ok = pcc("verify", compiled)
    assert ok.returncode == 0 and ok.stdout.startswith(f"OK: {compiled}: compiled for torch")
    for command in (["dump"], ["dump", "--layout"], ["stat"], ["stat", "--json"]):
        result = pcc(*command, compiled)
        assert result.returncode == 0 and result.stdout and not result.stderr, command
    again = tmp_path / "again.pcc"
    result = pcc("compile", compiled, "-o", again, "--backend", "reference", "--no-cache")
    assert result.returncode == 0, result.stderr
    assert artifact.read_pcc(str(again)).manifest["backend"] == "reference"


def test_verify_lists_every_violation_of_a_pcc(tmp_path):
    model = F.small_dense_model(0)
    layout = F.naive_layout(model)
    table = ir.tensor_table(model)
    for name in ("g6.weights", "g9.weights"):                # two unnormalized sums
        model.tensors[[t.name for t in model.tensors].index(name)].CopyFrom(
            ir.make_tensor(name, table[name] * 2))
    path = tmp_path / "bad.pcc"
    path.write_bytes(artifact.encode(model, layout, "torch", "cpu", "float32"))
    result = pcc("verify", path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"FAIL: {path}: 2 violation(s)" and len(lines) == 3


def test_a_trained_pcc_recompiled_for_another_backend_keeps_its_parameters(tmp_path,
                                                                           model_file):
    rng = np.random.default_rng(0)
    data = tmp_path / "train.csv"
    np.savetxt(data, rng.integers(0, 3, (64, 4)), fmt="%d", delimiter=",")
    trained = tmp_path / "trained.pcc"
    result = pcc("train", model_file, "--data", data, "--epochs", "1", "--batch-size", "16",
                 "--backend", "torch", "--quiet", "-o", trained)
    assert result.returncode == 0, result.stderr
    lls = {}
    for backend in ("torch", "reference"):
        out = tmp_path / f"{backend}.pcc"
        assert pcc("compile", trained, "--backend", backend, "-o", out,
                   "--no-cache").returncode == 0
        ev = pcc("eval", out, "--data", data)
        assert ev.returncode == 0, ev.stderr
        lls[backend] = float(re.search(r"LL (\S+) nats", ev.stdout).group(1))
    untrained = pcc("eval", model_file, "--data", data, "--backend", "torch")
    lls["untrained"] = float(re.search(r"LL (\S+) nats", untrained.stdout).group(1))
    assert abs(lls["torch"] - lls["reference"]) < 1e-3
    assert lls["torch"] > lls["untrained"] + 1e-3             # the trained parameters came along


def _totals_of_each_command(tmp_path, build_args) -> dict[str, tuple[int, int, int]]:
    """(edges, sum edges, product edges) as build, dump, stat and verify print them."""
    path = tmp_path / "b.pcir"
    built = pcc("build", *build_args, "-o", path)
    assert built.returncode == 0, built.stderr
    said = {}
    pattern = r"([\d,]+) edges \(([\d,]+) sum, ([\d,]+) product\)"
    for name, out in (("build", built.stdout), ("dump", pcc("dump", path).stdout),
                      ("verify", pcc("verify", path).stdout)):
        said[name] = tuple(int(n.replace(",", "")) for n in re.search(pattern, out).groups())
    t = json.loads(pcc("stat", path, "--json").stdout)["totals"]
    said["stat"] = (t["edges"], t["sum_edges"], t["product_edges"])
    c = ir.edge_counts(ir.load(path))
    said["ir.edge_counts"] = (c["edges"], c["sum_edges"], c["product_edges"])
    return said


@pytest.mark.parametrize("build_args", [
    ["hclt", "--dataset", "nltcs", "--latents", "4"],
    ["pd", "--shape", "4x4", "--split", "2", "--latents", "4", "--num-cats", "3"]])
def test_build_dump_stat_and_verify_print_one_edge_count(tmp_path, build_args):
    said = _totals_of_each_command(tmp_path, build_args)
    assert len(set(said.values())) == 1, said
    edges, sums, products = said["build"]
    assert edges == sums + products and products > 0
