"""`pcc prune`, `pcc grow` and `pcc train --prune-grow` end to end: the
output .pcc is valid, compiled for the input's backend, and matches the
library functions; bad options fail in one line before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir
from pccompiler.backends import reference
from pccompiler.cli.main import main as pcc
from pccompiler.data import load_debd
from pccompiler.ir.artifact import read_pcc
from pccompiler.train.prune_grow import grow, prune, sum_edge_count


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("prune_grow")
    train = load_debd("nltcs", "train")[:1500]
    np.savetxt(d / "train.data", train, fmt="%d", delimiter=",")
    model = pc.lower(pc.hclt(train.astype(np.int64), num_latents=4, num_cats=2, seed=0))
    ir.save(model, str(d / "m.pcir"))
    assert pcc(["compile", str(d / "m.pcir"), "--backend", "torch", "--no-cache",
                "-o", str(d / "m.pcc")]) == 0
    assert pcc(["train", str(d / "m.pcc"), "--data", str(d / "train.data"), "--epochs", "1",
                "--quiet", "-o", str(d / "t.pcc")]) == 0
    return d, train.astype(np.int64)


def test_prune_then_grow_match_the_library(files, capsys):
    d, train = files
    capsys.readouterr()
    assert pcc(["prune", str(d / "t.pcc"), "--data", str(d / "train.data"), "--keep", "0.5",
                "-o", str(d / "p.pcc")]) == 0
    assert "sum edges; saved" in capsys.readouterr().out
    assert pcc(["grow", str(d / "p.pcc"), "--factor", "2", "--noise", "0", "-o",
                str(d / "g.pcc")]) == 0
    trained = pc.load(str(d / "t.pcc"))
    expected_pruned = prune(trained, train, 0.5)
    pruned, grown = read_pcc(str(d / "p.pcc")), read_pcc(str(d / "g.pcc"))
    assert pruned.manifest["backend"] == grown.manifest["backend"] == "torch"
    assert sum_edge_count(pruned.model) == sum_edge_count(expected_pruned)
    ir.check(grown.model)
    x = train[:300]
    np.testing.assert_allclose(reference.log_prob(grown.model, x),
                               reference.log_prob(expected_pruned, x), rtol=0, atol=1e-5)
    assert sum_edge_count(grown.model) == sum_edge_count(grow(expected_pruned, 2))


def test_train_prune_grow_writes_its_schedule(files, capsys):
    d, _ = files
    capsys.readouterr()
    assert pcc(["train", str(d / "m.pcc"), "--data", str(d / "train.data"), "--epochs", "1",
                "--prune-grow", "2", "--keep", "0.5", "--factor", "2", "--noise", "0.05",
                "--quiet", "--rounds-log", str(d / "r.json"), "-o", str(d / "pg.pcc")]) == 0
    out = capsys.readouterr().out
    assert out.count("round ") == 2 and "saved" in out
    log = json.loads((d / "r.json").read_text())
    assert log["schedule"]["rounds"] == 2 and log["schedule"]["keep"] == 0.5
    assert [r["round"] for r in log["rounds"]] == [1, 2]
    assert log["rounds"][1]["edges_before"] == log["rounds"][0]["edges_trained"]
    assert log["rounds"][-1]["edges_trained"] == sum_edge_count(read_pcc(str(d / "pg.pcc")).model)


@pytest.mark.parametrize("argv, message", [
    (["prune", "{t}", "--data", "{data}", "--keep", "0", "-o", "{d}/x.pcc"], "--keep 0.0 must"),
    (["prune", "{t}", "--data", "{data}", "-o", "{d}/no/x.pcc"], "does not exist"),
    (["grow", "{t}", "--factor", "0", "-o", "{d}/x.pcc"], "--factor must be"),
    (["grow", "{t}", "--noise", "-1", "-o", "{d}/x.pcc"], "--noise -1.0 must"),
    (["train", "{t}", "--data", "{data}", "--prune-grow", "1", "--history", "{d}/h.csv",
      "-o", "{d}/x.pcc"], "--history is not available with --prune-grow"),
])
def test_bad_options_fail_in_one_line(files, capsys, argv, message):
    d, _ = files
    argv = [a.format(t=d / "t.pcc", data=d / "train.data", d=d) for a in argv]
    capsys.readouterr()
    assert pcc(argv) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (d / "x.pcc").exists()
