"""Pipeline strings, the pass manager, the compile options and `pcc passes`."""

import argparse
import io

import numpy as np
import pytest

from pccompiler import passes
from pccompiler.cli import compile_options
from pccompiler.cli.main import main
from pccompiler.errors import PassError
from pccompiler.ir import pcir
from tests import factories


def test_parse_format_round_trip():
    text = "partition-blocks{max_block=64},detect-block-sparsity{tol=0.25,permute=false},layout"
    items = passes.parse_pipeline(text)
    assert items == [("partition-blocks", {"max_block": 64}),
                     ("detect-block-sparsity", {"tol": 0.25, "permute": False}),
                     ("layout", {})]
    assert passes.parse_pipeline(passes.format_pipeline(items)) == items


@pytest.mark.parametrize("bad, message", [
    ("canonicalize,nope,layerize,layout", "unknown pass 'nope'"),
    ("layerize{parts=2},layout", "has no option"),
    ("canonicalize,layerize", "must end with"),
    ("layerize,canonicalize,layout", "needs a model"),
    ("canonicalize{tol},layerize,layout", "not key=value"),
])
def test_bad_pipelines_are_refused_clearly(bad, message):
    with pytest.raises(PassError, match=message):
        passes.compile_model(factories.small_dense_model(), pipeline=bad)


def test_layout_records_the_canonical_pipeline_and_defaults():
    result = passes.compile_model(factories.small_dense_model())
    assert result.layout.pipeline == passes.format_pipeline(
        passes.resolve_pipeline(passes.DEFAULT_PIPELINE, None))
    assert "layerize{partitions=4}" in result.layout.pipeline
    assert [r.name for r in result.report.records] == passes.DEFAULT_PIPELINE.split(",")


def test_passes_are_pure():
    model = factories.small_sparse_model(seed=1)
    before = model.SerializeToString()
    passes.compile_model(model, pipeline="canonicalize,partition-blocks{max_block=2},"
                         "detect-block-sparsity{tol=2},layerize,layout")
    assert model.SerializeToString() == before


def test_check_each_catches_a_broken_pass(monkeypatch):
    from pccompiler.passes import registry

    def breaks_weights(model, ctx):
        new = pcir.Model()
        new.CopyFrom(model)
        new.groups[9].sum.weights = "missing"
        return new, True
    monkeypatch.setitem(registry.PASSES, "break", registry.PassInfo(
        "break", breaks_weights, "test pass"))
    from pccompiler.errors import CheckError
    with pytest.raises(CheckError):
        passes.compile_model(factories.small_dense_model(), pipeline="break,layerize,layout",
                             check_each=True)


def test_compile_arguments_print_after_and_time(tmp_path):
    parser = argparse.ArgumentParser()
    compile_options.add_compile_arguments(parser)
    args = parser.parse_args(["--print-after", "layerize", "--time-passes",
                              "--cache-dir", str(tmp_path)])
    out = io.StringIO()
    result = compile_options.run_passes_from_args(factories.small_dense_model(), args, out=out)
    text = out.getvalue()
    assert "IR after layerize" in text and "layout" in text
    for name in passes.DEFAULT_PIPELINE.split(","):
        assert name in text
    assert not result.cache_hit
    # the cache holds the result now, but the passes asked to be seen run again (#20)
    out = io.StringIO()
    assert not compile_options.run_passes_from_args(factories.small_dense_model(), args,
                                                    out=out).cache_hit
    text = out.getvalue()
    assert "IR after layerize" in text and "read skipped" in text
    for name in passes.DEFAULT_PIPELINE.split(","):
        assert name in text
    plain = parser.parse_args(["--cache-dir", str(tmp_path)])       # and it was stored
    assert compile_options.run_passes_from_args(factories.small_dense_model(), plain,
                                                out=io.StringIO()).cache_hit
    args = parser.parse_args(["--no-cache"])
    assert not compile_options.run_passes_from_args(factories.small_dense_model(), args,
                                           out=io.StringIO()).cache_hit


def test_pcc_passes_lists_every_pass(capsys):
    assert main(["passes"]) == 0
    out = capsys.readouterr().out
    for info in passes.all_passes():
        assert info.name in out and info.description in out
    assert passes.DEFAULT_PIPELINE in out


def test_report_has_time_and_memory():
    report = passes.compile_model(factories.small_block_sparse_model()).report
    assert all(r.seconds >= 0 and r.peak_rss_mb > 0 for r in report.records)
    assert "total" in report.table()
    assert np.isclose(report.total_seconds, sum(r.seconds for r in report.records))
