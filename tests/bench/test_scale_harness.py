"""The scale sweep's harness without a GPU: the child's pccompiler path on a
tiny circuit (interpreter), the CPU compile-only sweep end to end, a size
killed at its time-out, OOM skipping, the table and the plot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():       # before triton is imported (kernels decide at import)
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pccompiler as pc  # noqa: E402

import scale  # noqa: E402
import scale_child  # noqa: E402

SCALE = Path(scale.__file__)
# log(0) = -inf is expected in the kernels; the interpreter (numpy) warns about it
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")


def test_child_times_our_training_step_on_a_tiny_circuit():
    pytest.importorskip("triton")
    data = np.random.default_rng(0).integers(0, 3, size=(64, 5))
    model = pc.lower(pc.hclt(data, num_latents=4, num_cats=3))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batches = torch.randint(0, 3, (2, 8, 5), dtype=torch.uint8, device=device)
    args = Namespace(device=device, precision="ieee", warmup=1, steps=2)
    row = scale_child.run_lib("pcc", model, None, batches, args, {"edges": 1})
    assert row["status"] == "ok", row.get("traceback")
    assert row["step_s"] > 0 and row["compile_s"] > 0
    assert row["epoch_s"] == pytest.approx(row["step_s"] * scale_child.EPOCH_BATCHES)
    bad = scale_child.run_lib("pcc", model, None, batches[:, :, :3], args, {"edges": 1})
    assert bad["status"] == "error" and "DataError" in bad["error"]


def _sweep(tmp_path: Path, *extra: str) -> dict:
    env = dict(os.environ, OUT="")
    proc = subprocess.run([sys.executable, str(SCALE), "--libs", "compile", "--sizes", "hclt:4",
                           "--out-dir", str(tmp_path), *extra], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (js,) = tmp_path.glob("scale-*.json")
    return json.loads(js.read_text())


def test_compile_only_sweep_writes_table_and_json(tmp_path):
    data = _sweep(tmp_path)
    (row,) = data["rows"]
    assert row["status"] == "ok" and row["lib"] == "compile"
    assert row["edges"] > 0 and row["passes_s"] > 0 and row["plan_s"] > 0
    assert row["peak_rss_gb"] > 0
    md = next(tmp_path.glob("scale-*.md")).read_text()
    assert "| hclt | 4 |" in md and "compile | ok" in md


def test_a_size_past_its_time_out_is_killed_and_recorded(tmp_path):
    data = _sweep(tmp_path, "--timeout", "0.5", "--min-start", "0")
    (row,) = data["rows"]
    assert row["status"] == "killed" and "timeout" in row["error"]


def test_a_library_that_ran_out_of_memory_is_not_tried_larger():
    oom = {("pd", "pyjuice"): 1000}
    run, skipped = scale.split_by_oom({"structure": "pd", "latents": 8, "edges": 2000},
                                      ["pcc", "pyjuice"], oom)
    assert run == ["pcc"] and skipped[0]["status"] == "skipped"
    assert "OOM at 0.0M" in skipped[0]["error"]
    run, _ = scale.split_by_oom({"structure": "pd", "latents": 4, "edges": 500},
                                ["pcc", "pyjuice"], oom)
    assert run == ["pcc", "pyjuice"]
    run, _ = scale.split_by_oom({"structure": "hclt", "latents": 8, "edges": 2000},
                                ["pcc", "pyjuice"], oom)
    assert run == ["pcc", "pyjuice"]


def _rows():
    base = {"structure": "hclt", "latents": 512, "edges": 146_176_000, "build_s": 6.0}
    return [dict(base, lib="pcc", status="ok", compile_s=1.4, first_step_s=6.1, step_s=0.02,
                 epoch_s=2.34, peak_gb=5.0, peak_rss_gb=3.0),
            dict(base, lib="pyjuice", status="ok", compile_s=5.6, first_step_s=2.7, step_s=0.04,
                 epoch_s=4.68, peak_gb=5.2, peak_rss_gb=3.0),
            dict(base, latents=2048, edges=2_330_583_040, lib="pyjuice", status="oom",
                 error="OutOfMemoryError: CUDA out of memory")]


def _env():
    return {"gpu": "test GPU", "command": "python bench/scale.py", "torch": "t", "triton": "t",
            "pyjuice": "p", "pccompiler": "c", "date": "d", "steps": 8, "warmup": 2,
            "batch": 512, "libs": ["pcc", "pyjuice"]}


def test_table_ratio_and_oom_line():
    md = scale.markdown(_env(), _rows())
    line = next(ln for ln in md.splitlines() if "| pcc | ok" in ln)
    assert line.rstrip().endswith("| 0.50 |")          # 2.34 / 4.68
    assert "hclt pyjuice: largest ok 146.2M edges; OOM at 2330.6M edges" in md


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    js = tmp_path / "scale.json"
    js.write_text(json.dumps({"env": _env(), "rows": _rows()}))
    png = scale.plot(js, None)
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
