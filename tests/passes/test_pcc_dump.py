"""PCC_DUMP=dir: the input Model, the IR after every pass and the final
Layout land in `dir` as numbered text files; the Model stages parse back;
an unwritable folder costs one warning line, never the compile."""

from __future__ import annotations

import pccompiler
from pccompiler import ir, passes
from pccompiler.passes.registry import DEFAULT_PIPELINE
from tests import factories as F

STAGES = ["input"] + DEFAULT_PIPELINE.split(",")
MODEL_STAGES = STAGES[:STAGES.index("layerize")]


def expected_files(first: int = 0) -> list[str]:
    names = []
    for i, stage in enumerate(STAGES, first):
        names.append(f"{i:02d}-{stage}.txt")
        if stage in MODEL_STAGES:
            names.append(f"{i:02d}-{stage}.exact.txt")
    return sorted(names)


def test_compile_writes_every_stage(tmp_path, monkeypatch):
    folder = tmp_path / "ir"
    monkeypatch.setenv("PCC_DUMP", str(folder))
    model = F.small_sparse_model(0)
    circuit = pccompiler.compile(model, backend="torch", device="cpu")
    assert sorted(p.name for p in folder.iterdir()) == expected_files()
    assert ir.parse_text((folder / "00-input.exact.txt").read_text()) == model
    after = ir.parse_text((folder / "05-detect-block-sparsity.exact.txt").read_text())
    ir.check(after)                      # model', which the layout refers to
    assert circuit.to_model().groups == after.groups
    assert (folder / "00-input.txt").read_text() == ir.dump_text(model)
    for stage in ("06-layerize", "07-layout"):
        assert (folder / f"{stage}.txt").read_text().startswith("layout ir_version")


def test_a_second_compile_numbers_on(tmp_path, monkeypatch):
    monkeypatch.setenv("PCC_DUMP", str(tmp_path))
    passes.compile_model(F.small_dense_model(0))
    passes.compile_model(F.small_dense_model(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        expected_files() + expected_files(len(STAGES)))


def test_no_files_without_the_switch(tmp_path, monkeypatch):
    monkeypatch.delenv("PCC_DUMP", raising=False)
    monkeypatch.chdir(tmp_path)
    passes.compile_model(F.small_dense_model(0))
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_warns_once_and_compiles(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PCC_DUMP", str(blocker / "ir"))
    result = passes.compile_model(F.tied_model(0))
    assert result.layout.num_slots > 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning: PCC_DUMP=" in err[0], err


def test_a_cache_hit_writes_the_input_and_the_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("PCC_CACHE_DIR", str(tmp_path / "cache"))
    passes.compile_model(F.small_dense_model(0), cache=True)
    monkeypatch.setenv("PCC_DUMP", str(tmp_path / "ir"))
    hit = passes.compile_model(F.small_dense_model(0), cache=True)
    assert hit.cache_hit
    assert sorted(p.name for p in (tmp_path / "ir").iterdir()) == [
        "00-input.exact.txt", "00-input.txt", "01-cache-hit-layout.txt"]
