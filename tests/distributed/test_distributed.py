"""Data-parallel EM (pccompiler/train/distributed.py) with 2 gloo ranks on the CPU.

Proves: `pcc train --nproc 2` (and the documented torchrun command) gives
the parameters of single-process training on the same data, seed and batch
order (float64 engine, bound 1e-6; measured: 0.0); a failure on one
rank ends every rank with an error naming it, a non-zero exit code, and the
output file untouched. Every subprocess runs in its own session under a
timeout and is killed as a group past it, so a hung rank cannot hang CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import ir
from pccompiler.cli.main import main as pcc
from pccompiler.data import load_debd
from pccompiler.train.distributed import FAIL_ENV, DataParallel, RankError, spawn
from pccompiler.train import train_em

TIMEOUT = 120           # seconds per subprocess; a run takes ~3-5 s
OPTS = dict(epochs=3, batch_size=97, step_size=0.3, step_size_end=0.05, pseudocount=0.1, seed=5)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    train = load_debd("nltcs", "train")[:1000].astype(np.int64)
    np.savetxt(d / "train.data", train, fmt="%d", delimiter=",")
    model = pc.lower(pc.hclt(train, num_latents=8, num_cats=2, seed=0))
    pc.compile(model, backend="torch", device="cpu", dtype="float64").save(str(d / "m.pcc"))
    return d, train


def cli_args(d, out, em: str) -> list[str]:
    args = ["train", str(d / "m.pcc"), "--data", str(d / "train.data"), "--em", em, "--quiet",
            "-o", str(out)]
    for key, value in OPTS.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    """Run `cmd` in its own session; past TIMEOUT kill the whole group (the
    spawned ranks too) and fail."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish in {TIMEOUT} s")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def pcc_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pccompiler.cli.main", *args]


def single_process(d, train, em: str):
    """The reference: one process, same file, data, seed and options."""
    circuit = pc.load(str(d / "m.pcc"))
    assert circuit.engine.dtype == torch.float64
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_em(circuit, train, em=em, **OPTS)
    finally:
        torch.set_num_threads(before)
    return circuit.to_model()


def max_difference(a: ir.pcir.Model, b: ir.pcir.Model) -> float:
    ta, tb = ir.tensor_table(a), ir.tensor_table(b)
    worst = 0.0
    for t in a.tensors:
        x = np.asarray(ta[t.name])
        if x.dtype.kind == "f":
            worst = max(worst, float(np.abs(x - np.asarray(tb[t.name])).max()))
    return worst


def test_split_covers_every_global_batch_in_order():
    rows = np.random.default_rng(0).permutation(103)
    for world in (1, 2, 3, 4, 7):
        parts = [DataParallel(r, world).split(rows) for r in range(world)]
        assert np.array_equal(np.concatenate(parts), rows)
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 1
    small = [DataParallel(r, 4).split(rows[:2]) for r in range(4)]   # ranks with no rows
    assert [len(p) for p in small] == [1, 1, 0, 0]


@pytest.mark.parametrize("em", ["mini", "full"])
def test_nproc_2_equals_single_process(files, tmp_path, em):
    d, train = files
    out = tmp_path / "out.pcc"
    res = run(pcc_cmd(*cli_args(d, out, em), "--nproc", "2"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("train LL") == OPTS["epochs"]            # rank 0 logs alone
    assert "(2 ranks)" in res.stdout and "differ" not in res.stdout   # ranks bit-identical
    reference = single_process(d, train, em)
    trained = pc.load(str(out)).to_model()
    assert max_difference(trained, pc.load(str(d / "m.pcc")).to_model()) > 1e-2   # it trained
    assert max_difference(trained, reference) <= 1e-6


def test_torchrun_command_line(files, tmp_path):
    d, train = files
    out = tmp_path / "out.pcc"
    res = run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "-m", "pccompiler.cli.main", *cli_args(d, out, "mini")])
    assert res.returncode == 0, res.stderr
    assert max_difference(pc.load(str(out)).to_model(), single_process(d, train, "mini")) <= 1e-6


@pytest.mark.parametrize("em,rank", [("mini", "1"), ("full", "0")])
def test_failure_on_one_rank_stops_all_and_writes_nothing(files, tmp_path, em, rank):
    d, _ = files
    out = tmp_path / "out.pcc"
    out.write_bytes(b"previous contents")
    res = run(pcc_cmd(*cli_args(d, out, em), "--nproc", "2"), **{FAIL_ENV: rank})
    assert res.returncode != 0
    assert f"rank {rank} failed" in res.stderr and "injected failure" in res.stderr
    assert "Traceback" not in res.stderr
    assert out.read_bytes() == b"previous contents"
    assert not [p for p in tmp_path.iterdir() if p.name != "out.pcc"]     # no temp file left


def test_bad_options_refused_before_spawning(files, tmp_path, capsys):
    d, _ = files
    out = tmp_path / "out.pcc"
    assert pcc(cli_args(d, out, "mini") + ["--nproc", "0"]) == 1
    assert "--nproc must be positive" in capsys.readouterr().err
    assert pcc(cli_args(d, out, "mini") + ["--nproc", "2", "--device", "cuda:1"]) == 1
    assert "each rank takes cuda:<rank>" in capsys.readouterr().err
    assert not out.exists()


def _hang_on_rank_1(sync, device):
    """Worker for the spawn test: rank 1 never reaches the collective."""
    if sync.rank == 1:
        time.sleep(600)
    sync.sum(1.0)


def test_spawn_deadline_stops_a_hung_rank():
    start = time.monotonic()
    with pytest.raises(RankError, match="did not finish in 3 s"):
        spawn(2, _hang_on_rank_1, ("cpu",), timeout=3)
    assert time.monotonic() - start < 60
