"""Every `pcc` command that writes checks its output path before any work
(issue #20, point 1): a missing folder, a directory or a read-only folder
fails at once with exit code 1, one line on stderr, no traceback and no file
left behind. Numbers and devices a command cannot use, and a reader that
closes the pipe early, end the same way (or quietly, for the pipe); new
files get the user's umask.

Run through the installed entry point (a subprocess), as a user would."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import ir
from pccompiler.cli.main import main
from pccompiler.data import load_debd

ROOT = pathlib.Path(__file__).resolve().parents[2]
PCC = ROOT / ".venv" / "bin" / "pcc"
EXE = [str(PCC)] if PCC.exists() else [sys.executable, "-m", "pccompiler.cli.main"]


def pcc(*args, cwd=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=120, **kwargs)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    err = proc.stderr
    assert proc.returncode == 1, (proc.returncode, err)
    assert "Traceback" not in err and err.count("\n") == 1 and err.endswith("\n"), err
    for needle in needles:
        assert needle in err, err
    return err


def files_under(folder: pathlib.Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    train = load_debd("nltcs", "train")[:200]
    model = pc.lower(pc.hclt(train.astype(np.int64), num_latents=2, num_cats=2, seed=0))
    ir.save(model, d / "m.pcir")
    pc.compile(model, backend="torch", device="cpu").save(str(d / "m.pcc"))
    np.savetxt(d / "train.data", train, fmt="%d", delimiter=",")
    (d / "m.txt").write_text(ir.dump_exact(model))
    return d


def command(name: str, d: pathlib.Path, out) -> list:
    """A command that would do real work (training many epochs with
    checkpoints, for train) and write `out`."""
    return {
        "build": ["build", "hclt", "--data", d / "train.data", "--latents", "2", "-o", out],
        "compile": ["compile", d / "m.pcir", "--no-cache", "-o", out],
        "train": ["train", d / "m.pcc", "--data", d / "train.data", "--epochs", "1000",
                  "--checkpoint-every", "1", "--quiet", "-o", out],
        "sample": ["sample", d / "m.pcc", "-n", "5", "-o", out],
        "dot": ["dot", d / "m.pcir", "-o", out],
        "parse": ["parse", d / "m.txt", "-o", out],
    }[name]


COMMANDS = ["build", "compile", "train", "sample", "dot", "parse"]


@pytest.mark.parametrize("name", COMMANDS)
def test_missing_folder_fails_before_any_work(inputs, tmp_path, name):
    out = tmp_path / "nofolder" / "out.x"
    proc = pcc(*command(name, inputs, out), cwd=tmp_path)
    one_line_error(proc, f"pcc {name}: error: -o {out}: cannot write: folder", "does not exist")
    assert files_under(tmp_path) == set()            # no output, no .ckpt, no .tmp


@pytest.mark.parametrize("name", COMMANDS)
def test_directory_as_output_fails_before_any_work(inputs, tmp_path, name):
    out = tmp_path / "adir"
    out.mkdir()
    proc = pcc(*command(name, inputs, out), cwd=tmp_path)
    one_line_error(proc, f"-o {out}: cannot write: it is a directory")
    assert files_under(tmp_path) == {"adir"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write in a read-only folder")
@pytest.mark.parametrize("name", COMMANDS)
def test_read_only_folder_fails_before_any_work(inputs, tmp_path, name):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        proc = pcc(*command(name, inputs, folder / "out.x"), cwd=tmp_path)
        one_line_error(proc, "permission denied")
        assert files_under(folder) == set()
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("name", COMMANDS)
def test_output_is_checked_before_the_input_is_read(tmp_path, capsys, name):
    """In process: with a missing input AND a bad output, the output is
    what the error names, so no input was read and nothing was built."""
    missing = tmp_path / "missing"
    args = [str(a) for a in command(name, missing, tmp_path / "no" / "out.x")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"-o {tmp_path / 'no' / 'out.x'}" in err, err


def test_compile_default_output_is_checked(inputs, tmp_path):
    """`pcc compile m.pcir` writes m.pcc beside it: a directory there is refused."""
    (tmp_path / "m.pcc").mkdir()
    (tmp_path / "m.pcir").write_bytes((inputs / "m.pcir").read_bytes())
    one_line_error(pcc("compile", "m.pcir", "--no-cache", cwd=tmp_path), "is a directory")


def test_train_checkpoint_path_is_checked(inputs, tmp_path):
    (tmp_path / "t.pcc.ckpt").mkdir()
    proc = pcc(*command("train", inputs, tmp_path / "t.pcc"), cwd=tmp_path)
    one_line_error(proc, "checkpoint", "t.pcc.ckpt: cannot write: it is a directory")
    assert files_under(tmp_path) == {"t.pcc.ckpt"}


# ------------------------------------------------------- numbers and devices

@pytest.mark.parametrize("args, needle", [
    (["train", "{m}", "--data", "{d}", "--batch-size", "0", "-o", "t.pcc"],
     "--batch-size must be a positive integer, not 0"),
    (["train", "{m}", "--data", "{d}", "--batch-size", "-4", "-o", "t.pcc"],
     "--batch-size must be a positive integer, not -4"),
    (["train", "{m}", "--data", "{d}", "--epochs", "0", "-o", "t.pcc"],
     "--epochs must be a positive integer, not 0"),
    (["eval", "{m}", "--data", "{d}", "--batch-size", "0"],
     "--batch-size must be a positive integer, not 0"),
    (["eval", "{m}", "--data", "{d}", "--batch-size", "-3"],       # printed LL 0 before
     "--batch-size must be a positive integer, not -3"),
    (["sample", "{m}", "-n", "-1"], "-n must be positive"),
    (["sample", "{m}", "-n", "100000000000"], "not enough memory"),
    (["eval", "{m}", "--data", "{d}", "--device", "nonsense"], "unknown device 'nonsense'"),
    (["train", "{m}", "--data", "{d}", "--nproc", "2", "--device", "nonsense", "-o", "t.pcc"],
     "unknown device 'nonsense'"),
    (["build", "hclt", "--data", "{d}", "--alpha", "nan", "-o", "b.pcir"],
     "--alpha nan must be a finite number >= 0"),
    (["build", "hclt", "--data", "{d}", "--mi-estimator", "pyjuice", "--num-bins", "-1",
      "-o", "b.pcir"], "--num-bins must be >= 2, not -1"),
    (["parse", "missing.txt", "-o", "p.pcir"], "missing.txt: cannot read: No such file"),
])
def test_user_errors_are_one_line(inputs, tmp_path, args, needle):
    args = [a.format(m=inputs / "m.pcc", d=inputs / "train.data") for a in args]
    one_line_error(pcc(*args, cwd=tmp_path), needle)
    assert files_under(tmp_path) == set()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["train", "sample"])
def test_cuda_without_cuda_is_one_line(inputs, tmp_path, name):
    """(pccompiler.compile / load refuse it too: tests/backends/test_save_and_sample.py)"""
    args = {"train": ["train", inputs / "m.pcc", "--data", inputs / "train.data", "-o", "t.pcc"],
            "sample": ["sample", inputs / "m.pcc"]}[name]
    proc = pcc(*args, "--device", "cuda", cwd=tmp_path)
    one_line_error(proc, "'cuda' requested but torch.cuda.is_available() is False")
    assert files_under(tmp_path) == set()


# ------------------------------------------------------------- broken pipe

def test_sample_into_a_closed_pipe_exits_quietly(inputs):
    """`pcc sample ... | head -1`: the reader goes away after one line."""
    proc = subprocess.Popen([*EXE, "sample", str(inputs / "m.pcc"), "-n", "20000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert first.count(b",") == 15
    assert code in (0, 141) and err == "", (code, err)


# ------------------------------------------------------------------ umask

@pytest.mark.parametrize("name, out", [("build", "b.pcir"), ("compile", "c.pcc"),
                                       ("dot", "g.dot"), ("parse", "p.pcir")])
def test_new_files_follow_the_umask(inputs, tmp_path, name, out):
    """(samples, checkpoints and trained .pcc files go through the same
    atomic_write: tests/backends/test_save_and_sample.py)"""
    def umask_027():
        os.umask(0o027)
    proc = pcc(*command(name, inputs, out), cwd=tmp_path, preexec_fn=umask_027)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / out).stat().st_mode & 0o777 == 0o640     # not mkstemp's 0600
    assert files_under(tmp_path) == {out}
