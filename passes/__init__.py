"""pccompiler.passes: the passes that turn a pcir.Model into a pcir.Layout.

    from pccompiler import passes
    result = passes.compile_model(model)          # default pipeline
    result.model, result.layout, result.report

See registry.py for the pass table and DEFAULT_PIPELINE, manager.py for the
driver, cache.py for the layout cache. Parameter packing is the backends'
(backends/common/packing.py).
"""

from pccompiler.passes.manager import (
    CompileResult, PassContext, PassRecord, PassReport, compile_model, resolve_pipeline, run_pass)
from pccompiler.passes.registry import DEFAULT_PIPELINE, PASSES, all_passes, get_pass, register
from pccompiler.passes.pipeline import format_pipeline, parse_pipeline
from pccompiler.passes.cache import LayoutCache, cache_ingredients, cache_key
# Each pass module registers its pass on import; importing them here (after
# the registry) makes `get_pass` see every pass without a deferred import.
from pccompiler.passes import (  # noqa: F401  (registration side effect)
    verify, canonicalize, tie_params, partition_blocks, detect_block_sparsity, layerize, layout)

__all__ = [
    "CompileResult", "PassContext", "PassRecord", "PassReport", "compile_model", "run_pass",
    "resolve_pipeline", "DEFAULT_PIPELINE", "PASSES", "all_passes", "get_pass", "register",
    "format_pipeline", "parse_pipeline", "LayoutCache", "cache_ingredients", "cache_key",
]
