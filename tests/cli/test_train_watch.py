"""Training a user can watch (#20 point 5), through `pcc` as a subprocess:
--history CSV (atomic per epoch, continued by --resume), --plot (and the
one-line message when matplotlib is missing), the tqdm progress bar (ETA
and running LL on a terminal, no carriage returns elsewhere), --em full's
step size 1.0 and a default in every option's help."""

from __future__ import annotations

import argparse
import csv
import fcntl
import importlib.util
import os
import pty
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest

from pccompiler.train.history import COLUMNS, read_history
from tests.cli.test_data_formats import NLTCS_TEST, PCC, fails, leftovers, ok, pcc

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed")
EXE = [str(PCC)] if PCC.exists() else [sys.executable, "-m", "pccompiler.cli.main"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("watch")
    rows = np.loadtxt(NLTCS_TEST, delimiter=",", dtype=np.int64)
    np.savetxt(d / "train.csv", rows[:1200], fmt="%d", delimiter=",")
    np.savetxt(d / "valid.csv", rows[1200:1600], fmt="%d", delimiter=",")
    np.savetxt(d / "test.csv", rows[1600:2000], fmt="%d", delimiter=",")
    ok("build", "hclt", "--data", d / "train.csv", "--latents", "2", "-o", d / "m.pcir")
    ok("compile", d / "m.pcir", "--backend", "torch", "--no-cache", "-o", d / "m.pcc")
    return d


def _train_args(d, *extra):
    return ["train", d / "m.pcc", "--data", d / "train.csv", "--valid", d / "valid.csv",
            "--test", d / "test.csv", "--batch-size", "256", "--quiet", *extra]


def _columns(rows, *keys):
    return [[r[k] for k in keys] for r in rows]


def test_history_and_plot(work, tmp_path):
    out = ok(*_train_args(work, "--epochs", "3", "--history", tmp_path / "h.csv",
                          "--plot", tmp_path / "h.png", "-o", tmp_path / "t.pcc"))
    with open(tmp_path / "h.csv", newline="") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == COLUMNS and len(table) == 4
    rows = read_history(tmp_path / "h.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(r[k] is not None for r in rows for k in COLUMNS)
    assert all(r["step_size"] == 0.1 for r in rows)            # --em mini's default
    printed = [float(line.split("train LL ")[1].split()[0]) for line in out.splitlines()
               if line.startswith("epoch")]
    assert [round(r["train_ll"], 4) for r in rows] == printed
    test_ll = float(out.split("test LL ")[1].split()[0])
    assert round(rows[-1]["test_ll"], 4) == test_ll              # same evaluation
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # no test set: empty test_ll cells; full EM: step size 1.0 by default
    ok("train", work / "m.pcc", "--data", work / "train.csv", "--em", "full", "--epochs", "2",
       "--quiet", "--history", tmp_path / "f.csv", "-o", tmp_path / "f.pcc")
    full = read_history(tmp_path / "f.csv")
    assert _columns(full, "valid_ll", "test_ll", "step_size") == [[None, None, 1.0]] * 2


def test_history_survives_a_crash_and_resume_continues_it(work, tmp_path):
    """Killed during epoch 3 (after its history row, before its checkpoint
    every 2 epochs), then resumed: the history equals an uninterrupted run's."""
    args = [str(a) for a in _train_args(work, "--epochs", "4", "--step-size-end", "0.02",
                                        "--checkpoint-every", "2", "--resume")]
    ok(*args, "--history", tmp_path / "straight.csv", "-o", tmp_path / "s.pcc")
    crash = (
        "import os, sys\n"
        "from pccompiler.train import history\n"
        "add = history.History.add\n"
        "def add_then_die(self, epoch, *rest):\n"
        "    add(self, epoch, *rest)\n"
        "    if epoch == 3:\n"
        "        os._exit(9)\n"
        "history.History.add = add_then_die\n"
        "from pccompiler.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    hist, out = tmp_path / "h.csv", tmp_path / "r.pcc"
    done = subprocess.run([sys.executable, "-c", crash, *args, "--history", str(hist), "-o",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 9, done.stderr
    assert [r["epoch"] for r in read_history(hist)] == [1, 2, 3]
    assert not out.exists() and os.path.exists(str(out) + ".ckpt")
    ok(*args, "--history", hist, "-o", out)
    keys = ("epoch", "train_ll", "valid_ll", "test_ll", "step_size")
    resumed, straight = read_history(hist), read_history(tmp_path / "straight.csv")
    assert _columns(resumed, *keys) == _columns(straight, *keys)
    assert out.read_bytes() == (tmp_path / "s.pcc").read_bytes()


def test_missing_matplotlib_fails_before_training(work, tmp_path):
    script = ("import sys\nsys.modules['matplotlib'] = None\n"
              "from pccompiler.cli.main import main\nsys.exit(main(sys.argv[1:]))\n")
    before = {p.name for p in tmp_path.iterdir()}
    args = [str(a) for a in _train_args(work, "--epochs", "1", "--history", tmp_path / "h.csv",
                                        "--plot", tmp_path / "h.png", "-o", tmp_path / "t.pcc")]
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1 and done.stdout == ""             # no epoch ran
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "pip install 'pccompiler[plot]'" in done.stderr
    assert not leftovers(tmp_path, before)


@pytest.mark.parametrize("flag, target, match", [
    ("--history", "nofolder/h.csv", "does not exist"),
    ("--plot", ".", "is a directory"),
])
def test_bad_history_or_plot_path_fails_before_training(work, tmp_path, flag, target, match):
    before = {p.name for p in tmp_path.iterdir()}
    fails(*_train_args(work, flag, tmp_path / target, "-o", tmp_path / "t.pcc"),
          match=f"{flag} ")
    fails(*_train_args(work, flag, tmp_path / target, "-o", tmp_path / "t.pcc"), match=match)
    assert not leftovers(tmp_path, before)


def test_progress_bar_on_a_terminal_and_silent_elsewhere(work, tmp_path):
    args = [str(a) for a in ["train", work / "m.pcc", "--data", work / "train.csv",
                             "--batch-size", "8", "--epochs", "1"]]
    # stderr a pipe: no bar, no carriage return
    done = subprocess.run([*EXE, *args, "-o", str(tmp_path / "a.pcc")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "\r" not in done.stderr and done.stderr == ""
    # stderr a terminal: tqdm frames with the epoch, ETA and the running LL
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # 100 columns
    proc = subprocess.Popen([*EXE, *args, "-o", str(tmp_path / "b.pcc")],
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:                 # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert "\r" in text and "epoch 1/1" in text and "LL -" in text
    assert "<" in text and "batch/s" in text                  # elapsed<remaining, rate


@pytest.mark.parametrize("command", ["train", "eval", "prune", "grow"])
def test_every_option_says_its_default(command):
    """Each option of `pcc train|eval --help` names its default, unless it is
    a flag, the help itself, or required (alone or as one of a group)."""
    from pccompiler.cli.main import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    required = {a for g in parser._mutually_exclusive_groups if g.required
                for a in g._group_actions}
    text = ok(command, "--help")
    blocks, current = {}, None
    for line in text.splitlines():
        stripped = line.strip()
        if line.startswith("  -"):
            current = stripped.split()[0].rstrip(",")
            blocks[current] = stripped
        elif current and line.startswith(" " * 6) and stripped:
            blocks[current] += " " + stripped
        else:
            current = None
    checked = 0
    for action in parser._actions:
        if not action.option_strings:
            continue
        exempt = action.required or action in required or isinstance(
            action, (argparse._StoreTrueAction, argparse._HelpAction))
        block = blocks[action.option_strings[0]]
        if not exempt:
            assert "default" in block, block
            checked += 1
        if isinstance(action, argparse._StoreTrueAction):
            assert action.help                                  # flags say what they do
    assert checked >= (10 if command == "train" else 4)
