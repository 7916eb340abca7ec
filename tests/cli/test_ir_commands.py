"""`pcc dump | verify | stat | dot` through the installed entry point: good
files work, bad files give exactly one error line and exit code 1 (no
traceback), and nothing allocates what a hostile header claims."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pccompiler import ir
from pccompiler.ir import version
from tests import factories as F

ROOT = pathlib.Path(__file__).resolve().parents[2]
PCC = ROOT / ".venv" / "bin" / "pcc"
COMMANDS = ["dump", "verify", "stat", "dot"]


def pcc(*args, cwd=None) -> subprocess.CompletedProcess:
    exe = [str(PCC)] if PCC.exists() else [sys.executable, "-m", "pccompiler.cli.main"]
    return subprocess.run([*exe, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pcc")
    model = F.tied_model(seed=0)
    ir.save(model, d / "tied.pcir", external_threshold=40)
    ir.save(F.naive_layout(model), d / "plan.pcly")
    broken = F.small_dense_model()
    broken.groups[9].num_nodes = 10 ** 12         # a node count the data cannot back
    ir.save(broken, d / "huge-nodes.pcir")
    unnormalized = F.small_dense_model()
    w = ir.tensor_table(unnormalized)["g6.weights"] * 2
    unnormalized.tensors[[t.name for t in unnormalized.tensors].index("g6.weights")].CopyFrom(
        ir.make_tensor("g6.weights", w))
    unnormalized.groups[8].product.children[1] = 6
    ir.save(unnormalized, d / "two-problems.pcir")
    claim = F.small_dense_model()
    claim.tensors[0].dims[:] = [10 ** 6, 10 ** 6]    # 10**12 elements claimed
    with open(d / "huge-tensor.pcir", "wb") as f:
        f.write(version.MODEL_MAGIC + b"\0\0\1" + claim.SerializeToString())
    data = (d / "tied.pcir").read_bytes()
    (d / "truncated.pcir").write_bytes(data[: len(data) // 2])
    (d / "random.pcir").write_bytes(np.random.default_rng(1).bytes(5000))
    newer = F.small_dense_model()
    newer.ir_version = version.IR_VERSION + 1
    with open(d / "newer.pcir", "wb") as f:
        f.write(version.MODEL_MAGIC + b"\0\0\1" + newer.SerializeToString())
    return d


def test_help_teaches_with_an_example():
    for cmd in COMMANDS:
        out = pcc(cmd, "--help")
        assert out.returncode == 0
        assert "example" in out.stdout and f"pcc {cmd} " in out.stdout, out.stdout


def test_dump_text_json_and_truncation(files):
    out = pcc("dump", files / "tied.pcir")
    assert out.returncode == 0 and out.stderr == ""
    assert "10 groups, 37 nodes" in out.stdout and "tied -> g6" in out.stdout
    assert out.stdout == ir.dump_text(ir.load(files / "tied.pcir"))
    out = pcc("dump", files / "tied.pcir", "--json", "--max-groups", "2")
    info = json.loads(out.stdout)
    assert [g["id"] for g in info["groups"]] == [0, 9] and info["omitted_groups"] == 8
    out = pcc("dump", files / "plan.pcly", "--layout")
    assert out.returncode == 0 and out.stdout.count("\nlayer ") == 10


def test_verify_ok_and_report(files):
    out = pcc("verify", files / "tied.pcir")
    assert out.returncode == 0 and out.stdout.startswith("OK: ")
    out = pcc("verify", files / "plan.pcly", "--model", files / "tied.pcir")
    assert out.returncode == 0 and "checked against its model" in out.stdout
    out = pcc("verify", files / "two-problems.pcir")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines[0].endswith("2 violation(s)")
    assert "[decomposability] group 8" in out.stderr
    assert "[normalized-weights] group 6" in out.stderr


def test_verify_layout_against_wrong_model(files, tmp_path):
    other = F.small_dense_model()
    ir.save(other, tmp_path / "other.pcir")
    out = pcc("verify", files / "plan.pcly", "--model", tmp_path / "other.pcir")
    assert out.returncode == 1 and "[model-hash]" in out.stderr


def test_stat_and_dot(files, tmp_path):
    out = pcc("stat", files / "tied.pcir")
    assert out.returncode == 0 and "depth                     4" in out.stdout
    out = pcc("stat", files / "plan.pcly", "--json")
    stats = json.loads(out.stdout)
    assert stats["layers"] == {"input": 4, "product": 3, "sum": 3}
    out = pcc("dot", files / "tied.pcir", "-o", tmp_path / "g.dot")
    text = (tmp_path / "g.dot").read_text()
    assert out.returncode == 0 and text.startswith('digraph "tied"')
    assert text.count(" -> ") == 9 + 3          # child links + tie links
    out = pcc("dot", files / "tied.pcir", "--max-groups", "5")
    assert "summarised by level" in out.stdout and "L0_input -> L1_product" in out.stdout


BAD = {
    "truncated.pcir": "corrupt or truncated",
    "random.pcir": "not a pccompiler file",
    "newer.pcir": "newer than this pccompiler",
    "huge-tensor.pcir": "need 4000000000000 bytes",
    "huge-nodes.pcir": "tensor-shape",
    "missing.pcir": "cannot read",
}


def _check_one_error_line(cmd, name, returncode, stdout, stderr):
    assert returncode == 1
    lines = stderr.strip().splitlines()
    if cmd == "verify" and name == "huge-nodes.pcir":   # a readable file: a report
        assert lines[0].startswith("FAIL:") and "[tensor-shape] group 9" in stderr
        return
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"pcc {cmd}: error: ") and BAD[name] in lines[0], lines[0]
    assert "Traceback" not in stderr and stdout == ""


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_give_one_error_line_subprocess(files, name):
    out = pcc("dump", files / name)
    _check_one_error_line("dump", name, out.returncode, out.stdout, out.stderr)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_bad_files_give_one_error_line_every_command(files, cmd, capsys):
    from pccompiler.cli import main

    for name in sorted(BAD):
        code = main.main([cmd, str(files / name)])
        out = capsys.readouterr()
        _check_one_error_line(cmd, name, code, out.out, out.err)


def test_bad_files_under_a_memory_limit(files):
    """Run the commands in-process with the address space capped at what the
    interpreter already uses plus 1 GiB: a 10**12 claim cannot be honoured,
    so any attempt would surface as a MemoryError instead of a clean error."""
    script = textwrap.dedent(f"""
        import contextlib, io, resource, sys
        from pccompiler.cli import main
        main.build_parser()                       # import everything first
        with open("/proc/self/status") as f:
            vm = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize")][0]
        resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), vm + (1 << 30)))
        codes = []
        for name in ("huge-tensor.pcir", "huge-nodes.pcir", "truncated.pcir"):
            for cmd in ("dump", "stat", "verify", "dot"):
                err = io.StringIO()
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    codes.append(main.main([cmd, {str(files)!r} + "/" + name]))
                assert "MemoryError" not in err.getvalue(), err.getvalue()
        print(codes)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([1] * 12)


def test_real_hclt_of_nltcs(tmp_path):
    """A circuit learned from the DEBD nltcs data (pcc build), looked at with
    every command; dump and stat agree with each other and with the file."""
    out = pcc("build", "hclt", "--dataset", "nltcs", "--latents", "8", "-o", tmp_path / "n.pcir")
    assert out.returncode == 0, out.stderr
    model = ir.load(tmp_path / "n.pcir")
    assert pcc("verify", tmp_path / "n.pcir").stdout.startswith("OK: ")
    info = json.loads(pcc("dump", tmp_path / "n.pcir", "--json").stdout)
    stats = json.loads(pcc("stat", tmp_path / "n.pcir", "--json").stdout)
    assert info["totals"] == stats["totals"]
    assert info["totals"]["variables"] == 16 == len(model.variables)
    assert info["totals"]["nodes"] == sum(g.num_nodes for g in model.groups)
    dot = pcc("dot", tmp_path / "n.pcir").stdout
    assert dot.count("[shape=") == len(model.groups)
