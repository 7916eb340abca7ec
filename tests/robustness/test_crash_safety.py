"""SIGKILL `pcc compile` and `pcc train` at many points: the output file and
the layout cache are never corrupt (the old output stays byte-identical or
the new one is complete; every cache entry decodes), and a rerun succeeds.

Kill points are of two kinds: exact steps of the atomic writes (before and
after each fsync / rename, through tests/robustness/kill_hooks.py, which
wraps os.fsync / os.replace without changing pccompiler), and random delays
spread over the whole run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pccompiler import ir
from pccompiler.ir.artifact import read_pcc
from pccompiler.passes.cache import decode_entry
from tests import factories as F

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
KILLED: list[str] = []          # every kill point run, for the summary line


def _start(args: list[str], cwd: Path, kill_at: str = "", cache: Path | None = None):
    env = dict(ENV, PCC_KILL_AT=kill_at)
    if cache is not None:
        env["PCC_CACHE_DIR"] = str(cache)
    return subprocess.Popen([sys.executable, "-m", "tests.robustness.kill_hooks", *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _kill_at_hook(args, cwd, spec, cache=None) -> bool:
    """Run until the hook pauses at `spec`, then SIGKILL. True if it paused."""
    proc = _start(args, cwd, spec, cache)
    paused = False
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if line.startswith("KILLPOINT"):
            paused = True
            break
        if time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    KILLED.append(spec)
    return paused


def _kill_after(args, cwd, delay: float, cache=None) -> int:
    proc = _start(args, cwd, "", cache)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    KILLED.append(f"delay {delay:.2f}s")
    return proc.returncode


def _check_output(path: Path, old: bytes, new: bytes) -> str:
    """'old' or 'new': the file is byte-identical to one of them."""
    data = path.read_bytes()
    if data == old:
        return "old"
    assert data == new, f"{path} is neither the old file nor the complete new one"
    read_pcc(str(path))
    return "new"


def _check_cache(cache: Path, model) -> int:
    entries = list(cache.glob("*.pclc")) if cache.exists() else []
    for entry in entries:
        decode_entry(entry.read_bytes(), model)         # raises if corrupt
    for other in cache.iterdir() if cache.exists() else []:
        assert other.suffix == ".pclc" or other.name.startswith("."), other
    return len(entries)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("crash")
    model = F.small_dense_model(seed=11)
    ir.save(model, d / "m.pcir")
    ir.save(F.small_dense_model(seed=12), d / "other.pcir")
    rng = np.random.default_rng(0)
    np.savetxt(d / "train.data", rng.integers(0, 3, (3000, 4)), fmt="%d", delimiter=",")
    return d, model


def _run_ok(args, cwd, cache=None) -> float:
    start = time.monotonic()
    proc = _start(args, cwd, "", cache)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return time.monotonic() - start


def test_sigkill_during_compile_never_corrupts_output_or_cache(work):
    d, model = work
    out, cache = d / "c.pcc", d / "cache"
    args = ["compile", str(d / "m.pcir"), "--backend", "torch", "-o", str(out)]
    _run_ok(["compile", str(d / "other.pcir"), "--backend", "torch", "--no-cache", "-o",
             str(d / "old.pcc")], d)
    _run_ok(args, d, d / "ref-cache")
    new = out.read_bytes()
    old = (d / "old.pcc").read_bytes()
    # the write steps: cache entry (fsync 1, replace 1, folder fsync 2), then the .pcc
    # (fsync 3, replace 2, folder fsync 4)
    specs = ["fsync:1", "replace:1", "replace:1:after", "fsync:2", "replace:2", "replace:2:after"]
    seen = {"old": 0, "new": 0}
    for spec in specs:
        if cache.exists():
            for f in cache.iterdir():
                f.unlink()                          # every kill starts from an empty cache
        out.write_bytes(old)
        assert _kill_at_hook(args, d, spec, cache), spec
        seen[_check_output(out, old, new)] += 1
        _check_cache(cache, model)
    assert seen["old"] == 5 and seen["new"] == 1        # only after the last rename is it new
    duration = _run_ok(args, d, cache)                  # a rerun over the debris works
    assert out.read_bytes() == new and _check_cache(cache, model) == 1
    for frac in (0.2, 0.5, 0.7, 0.85, 0.95):
        out.write_bytes(old)
        _kill_after(args, d, duration * frac, cache)
        seen[_check_output(out, old, new)] += 1
        _check_cache(cache, model)
    print(f"\ncompile: {len(specs) + 5} kill points, outcomes {seen}")


def test_sigkill_during_train_never_corrupts_output(work):
    d, _ = work
    src, out = d / "src.pcc", d / "t.pcc"
    _run_ok(["compile", str(d / "m.pcir"), "--backend", "torch", "--no-cache", "-o", str(src)], d)
    args = ["train", str(src), "--data", str(d / "train.data"), "--epochs", "3", "--quiet",
            "--batch-size", "256", "-o", str(out)]
    duration = _run_ok(args, d)
    new = out.read_bytes()
    old = src.read_bytes()
    src_sha = old
    seen = {"old": 0, "new": 0}
    for spec in ("fsync:1", "replace:1", "replace:1:after"):
        out.write_bytes(old)
        assert _kill_at_hook(args, d, spec), spec
        seen[_check_output(out, old, new)] += 1
    for frac in (0.15, 0.4, 0.6, 0.8, 0.9, 0.97):
        out.write_bytes(old)
        _kill_after(args, d, duration * frac)
        seen[_check_output(out, old, new)] += 1
    assert src.read_bytes() == src_sha                  # the input is never touched
    assert seen["new"] >= 1 and seen["old"] >= 2
    print(f"\ntrain: 9 kill points, outcomes {seen}; kills so far: {len(KILLED)}")


# ---------------------------------------------------------------- ir.save with external data
class Killed(BaseException):
    """Stands for SIGKILL: not an OSError, so no handler of ir.save runs."""


def _save_interrupted(monkeypatch, model, path, before: str, exc=Killed) -> None:
    """ir.save(model, path, external=True), stopped just before the rename
    onto `before`: "backup" (m.pcir.data~), "data" (m.pcir.data), "model"."""
    from pccompiler.ir import fileio
    real = os.replace
    suffix = {"backup": ".data~", "data": ".data", "model": ".pcir"}[before]

    def replace(src, dst):
        if str(dst).endswith(suffix):
            raise exc() if exc is Killed else OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace)
    try:
        ir.save(model, path, external=True)
    except (Killed, Exception):
        pass
    monkeypatch.setattr(fileio.os, "replace", real)


@pytest.mark.parametrize("before", ["backup", "data", "model"])
def test_external_data_save_interrupted_at_each_rename(tmp_path, monkeypatch, before):
    """The renames of a save over an existing external-data model: backup of
    the old data, data file, model file. Interrupted before any of them (as
    by SIGKILL: no handler runs), the old model still loads, also after a
    second interrupted save over the debris; a complete save then cleans up."""
    path = tmp_path / "m.pcir"
    old, new, third = (F.small_dense_model(seed=s) for s in (1, 2, 3))
    ir.save(old, path, external=True)
    _save_interrupted(monkeypatch, new, path, before)
    assert ir.load(path, check=True) == old
    KILLED.append(f"ir.save before the {before} rename")
    _save_interrupted(monkeypatch, third, path, "model")
    assert ir.load(path, check=True) == old
    ir.save(third, path, external=True)
    assert ir.load(path, check=True) == third
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".tmp"))
    assert left == ["m.pcir", "m.pcir.data"]        # (a kill may leave hidden temp files)
    assert all(p.name.startswith(".") for p in tmp_path.iterdir() if p.name.endswith(".tmp"))


def test_external_data_save_failing_model_rename_rolls_back(tmp_path, monkeypatch):
    path = tmp_path / "m.pcir"
    old = F.small_dense_model(seed=1)
    ir.save(old, path, external=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _save_interrupted(monkeypatch, F.small_dense_model(seed=2), path, "model", exc=OSError)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert ir.load(path) == old


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_resume_after_sigkill_gives_the_uninterrupted_result(work):
    """`pcc train --checkpoint-every 1 --resume`: killed at random moments and
    inside the checkpoint write, then resumed, it ends with the same output
    file as one uninterrupted run; the checkpoint is never corrupt."""
    d, _ = work
    src, out = d / "src2.pcc", d / "r.pcc"
    _run_ok(["compile", str(d / "m.pcir"), "--backend", "torch", "--no-cache", "-o", str(src)], d)
    base = ["train", str(src), "--data", str(d / "train.data"), "--epochs", "4", "--quiet",
            "--batch-size", "256", "--step-size", "0.3", "--step-size-end", "0.05",
            "--seed", "3"]
    duration = _run_ok(base + ["-o", str(d / "straight.pcc")], d)
    reference = (d / "straight.pcc").read_bytes()
    args = base + ["--checkpoint-every", "1", "--resume", "-o", str(out)]
    ckpt = Path(str(out) + ".ckpt")
    kills = 0
    for attempt, spec in enumerate(["fsync:2", "replace:2", "replace:3:after", None, None]):
        if spec is not None:
            _kill_at_hook(args, d, spec)       # (a resumed run may finish before the point)
        else:
            _kill_after(args, d, duration * (0.5 + 0.2 * attempt))
        kills += 1
        if ckpt.exists():
            read_pcc(str(ckpt))                        # complete, checksums verified
        assert not out.exists() or out.read_bytes() == reference
    _run_ok(args, d)                                   # resume to the end
    assert out.read_bytes() == reference
    assert not ckpt.exists()                           # removed once the output is saved
    print(f"\ncheckpoint/resume: {kills} kill points, resumed output identical")


def test_resume_refuses_a_checkpoint_of_other_options(work, capsys):
    """A checkpoint resumes only the run it was made by: other data or
    options are refused with one error, and nothing is written."""
    import torch
    from pccompiler.cli.main import main as pcc
    d, _ = work
    torch.set_num_threads(1)
    src, out = d / "src3.pcc", d / "o3.pcc"
    assert pcc(["compile", str(d / "m.pcir"), "--backend", "torch", "--no-cache",
                "-o", str(src)]) == 0
    base = ["train", str(src), "--data", str(d / "train.data"), "--quiet", "--batch-size", "512",
            "--checkpoint-every", "1", "-o", str(out)]
    ckpt = Path(str(out) + ".ckpt")
    # a finished run leaves no checkpoint behind
    assert pcc(base + ["--epochs", "2"]) == 0 and out.exists() and not ckpt.exists()
    # make one: a 3-epoch run whose checkpoint after epoch 2 we keep
    from pccompiler import driver
    from pccompiler.train import checkpoint
    circuit = driver.load(str(out))
    args = type("A", (), dict(epochs=3, batch_size=512, em="mini", step_size=0.1,
                              step_size_end=None, pseudocount=0.1, seed=0))()
    train = np.loadtxt(d / "train.data", delimiter=",", dtype=np.int64)
    prints = checkpoint.fingerprint(args, train)
    checkpoint.write_checkpoint(str(ckpt), circuit, {"epoch": 2, "rng_state":
                                                     np.random.default_rng(0).bit_generator.state},
                                prints)
    before = out.read_bytes()
    capsys.readouterr()
    assert pcc(base + ["--epochs", "3", "--seed", "5", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint was made with other seed" in err and err.count("\n") == 1, err
    assert out.read_bytes() == before and ckpt.exists()
    assert pcc(base + ["--epochs", "3", "--resume"]) == 0            # the matching run resumes
    assert "resuming from" in capsys.readouterr().out and not ckpt.exists()
    assert pcc(base + ["--epochs", "3", "--checkpoint-every", "-1"]) == 1
