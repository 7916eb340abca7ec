"""`pcc compile | train | eval | sample` end to end, and bad data refused
before any training step with the output file untouched."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir
from pccompiler.cli.main import main as pcc
from pccompiler.data import load_debd
from pccompiler.train import check_data
from pccompiler.errors import DataError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    train = load_debd("nltcs", "train")[:2000]
    test = load_debd("nltcs", "test")[:500]
    model = pc.lower(pc.hclt(train.astype(np.int64), num_latents=4, num_cats=2, seed=0))
    ir.save(model, str(d / "m.pcir"))
    np.savetxt(d / "train.data", train, fmt="%d", delimiter=",")
    with gzip.open(d / "test.data.gz", "wt") as fh:
        np.savetxt(fh, test, fmt="%d", delimiter=",")
    return d


def test_compile_train_eval_sample(files, capsys):
    d = files
    assert pcc(["compile", str(d / "m.pcir"), "--no-cache", "--time-passes",
                "-o", str(d / "m.pcc")]) == 0
    assert "total" in capsys.readouterr().out             # the --time-passes table
    assert pcc(["train", str(d / "m.pcc"), "--data", str(d / "train.data"), "--valid",
                str(d / "test.data.gz"), "--test", str(d / "test.data.gz"), "--epochs", "2",
                "--batch-size", "256", "--step-size", "0.2", "-o", str(d / "t.pcc")]) == 0
    out = capsys.readouterr()
    assert "epoch   2  train LL" in out.out and "test LL" in out.out
    assert out.err == ""        # the progress bar draws only on a terminal (test_train_watch)
    test_ll = float(out.out.split("test LL ")[1].split()[0])
    assert pcc(["eval", str(d / "t.pcc"), "--data", str(d / "test.data.gz")]) == 0
    line = capsys.readouterr().out
    assert f"LL {test_ll:.4f} nats" in line
    bpd = float(line.split("nats")[1].split()[0])
    assert bpd == pytest.approx(-test_ll / (16 * np.log(2)), abs=1e-3)
    assert pcc(["sample", str(d / "t.pcc"), "-n", "7", "-o", str(d / "s.csv")]) == 0
    samples = np.loadtxt(d / "s.csv", delimiter=",")
    assert samples.shape == (7, 16) and set(np.unique(samples)) <= {0, 1}


@pytest.mark.parametrize("content, message", [
    ("0,1,0\n", "3 columns"),
    ("0," * 15 + "2\n", "line 2, column 16: value 2 is not a category"),
    ("0," * 15 + "x\n", "line 2, column 16"),
    ("", "no rows"),
])
def test_bad_data_is_refused_and_output_untouched(files, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.data"
    bad.write_text("0," * 15 + "1\n" + content if content else "")
    out = tmp_path / "out.pcc"
    out.write_bytes(b"keep me")
    code = pcc(["train", str(files / "m.pcir"), "--data", str(bad), "--epochs", "1",
                "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err, err
    assert out.read_bytes() == b"keep me"


def test_check_data_names_row_and_column():
    model = pc.lower(pc.hclt(np.eye(3, dtype=np.int64), num_latents=2, num_cats=2, seed=0))
    good = np.zeros((4, 3), dtype=np.int64)
    assert check_data(good, model).dtype == np.int64
    bad = good.astype(float)
    bad[2, 1] = np.nan
    with pytest.raises(DataError, match="row 2, column 1: value nan is not finite"):
        check_data(bad, model)
    bad[2, 1] = 0.5
    with pytest.raises(DataError, match="row 2, column 1"):
        check_data(bad, model)
    with pytest.raises(DataError, match="not numeric"):
        check_data(np.array([["a", "b", "c"]]), model)
