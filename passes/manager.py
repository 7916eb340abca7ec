"""The pass manager: runs a pipeline of registered passes over a Model.

`compile_model` is the entry point the backends and `pcc compile` call. It
parses the pipeline string, consults the layout cache, runs each pass with a
`PassContext`, times it and measures its peak memory, optionally checks the
IR after every pass and prints the IR after named passes.

PCC_DUMP=dir writes the input Model, the IR after every pass and the final
Layout into `dir` as numbered text files (NN-<stage>.txt, and
NN-<stage>.exact.txt for a Model, which `pcc parse` reads back); see
passes/stage_dump.py. A folder that cannot be written gives one warning
line, never an error.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pccompiler import ir
from pccompiler.errors import PassError
from pccompiler.ir import heap, pcir
from pccompiler.ir.nodes import is_node_model
from pccompiler.passes.node_layout import LAYOUT_ARRAYS, NODE_PIPELINE
from pccompiler.passes.pipeline import format_pipeline, parse_pipeline
from pccompiler.passes.registry import DEFAULT_PIPELINE, get_pass
from pccompiler.passes.helpers.rewrites import ParamRewrites
from pccompiler.passes.stage_dump import StageDump

DEFAULT_BLOCK_LIMIT = 32


@dataclass
class PassRecord:
    """What one pass did: time, memory, whether it changed the IR, notes."""
    name: str
    options: dict
    seconds: float = 0.0
    peak_rss_mb: float = 0.0        # process high-water mark after the pass
    peak_delta_mb: float = 0.0      # growth of the high-water mark during it
    changed: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class PassReport:
    records: list[PassRecord] = field(default_factory=list)
    cache_notes: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.records)

    def table(self) -> str:
        """The `--time-passes` table."""
        lines = [f"{'pass':<24}{'seconds':>9}{'peak MB':>10}{'+MB':>8}  changed  notes"]
        for r in self.records:
            lines.append(f"{r.name:<24}{r.seconds:9.3f}{r.peak_rss_mb:10.0f}"
                         f"{r.peak_delta_mb:8.0f}  {'yes' if r.changed else 'no ':<7}  "
                         + "; ".join(r.notes))
        lines.append(f"{'total':<24}{self.total_seconds:9.3f}")
        lines.extend(f"cache: {n}" for n in self.cache_notes)
        return "\n".join(lines)


@dataclass
class PassContext:
    """State shared by the passes of one compile.

    `model` is always the newest model' (layout passes read it); `analysis`
    carries results a later pass uses ("max_block": partition-blocks' option,
    read wherever the block limit is; "block_sizes": layerize's, read by layout);
    `rewrites` the parameter gathers the cache replays.
    """
    model: pcir.Model
    options: dict[str, Any] = field(default_factory=dict)     # of the running pass
    block_limit: int = DEFAULT_BLOCK_LIMIT
    backend: str = ""
    pipeline: str = DEFAULT_PIPELINE
    backward: bool = True      # node layouts: build the backward partitions (node_backward.py)
    # node layouts: keep the index tensors' decoded arrays for the caller
    # (CompileResult.layout_arrays; costs their bytes until it drops them)
    keep_layout_arrays: bool = False
    report: PassReport = field(default_factory=PassReport)
    rewrites: ParamRewrites = field(default_factory=ParamRewrites)
    analysis: dict[str, Any] = field(default_factory=dict)
    record: PassRecord | None = None

    def opt(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    def note(self, text: str) -> None:
        if self.record is not None:
            self.record.notes.append(text)


@dataclass
class CompileResult:
    model: pcir.Model
    layout: pcir.Layout
    report: PassReport
    cache_hit: bool = False
    # name -> the decoded array of a Layout tensor, as the pass that wrote it
    # made it (node layouts), for an engine of this process to adopt
    # (ir.TensorTable.adopt) instead of decoding the tensor again; None
    # after a cache hit or when a later pass replaced that pass's Layout.
    layout_arrays: dict | None = None
    # the passes kept the Model they were given (no rewrite): the caller's
    # arrays of its parameters still hold them (pccompiler.compile of a
    # group packs those, ir/external_arrays.py)
    input_kept: bool = False


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def pass_options(name: str, *overrides: dict) -> dict:
    """The pass's defaults updated with each of `overrides` in turn; an
    option the pass does not take is a PassError."""
    info = get_pass(name)
    merged = dict(info.defaults)
    for opts in overrides:
        merged.update(opts)
    bad = set(merged) - {k for k, _ in info.defaults}
    if bad:
        raise PassError(f"pass {name!r} has no option {sorted(bad)}; it takes "
                        f"{[k for k, _ in info.defaults] or 'no options'}")
    return merged


def resolve_pipeline(pipeline: str | None, options: dict | None) -> list[tuple[str, dict]]:
    """Parse `pipeline`, fill every pass's defaults, merge `options[pass]`."""
    items = parse_pipeline(pipeline or DEFAULT_PIPELINE)
    extra = options or {}
    unknown = set(extra) - {name for name, _ in items}
    if unknown:
        raise PassError(f"options given for passes not in the pipeline: {sorted(unknown)}")
    out = [(name, pass_options(name, opts, extra.get(name, {}))) for name, opts in items]
    kinds = "model"
    for name, _ in out:
        info = get_pass(name)
        if info.consumes != kinds:
            raise PassError(f"pass {name!r} needs a {info.consumes} but the pipeline gives "
                            f"it a {kinds}; put it before 'layerize' / after it accordingly")
        kinds = info.produces
    if kinds != "layout" or out[-1][0] != "layout":
        raise PassError("a pipeline must end with 'layerize,layout' to produce a Layout")
    return out


def _check(obj, ctx: PassContext, name: str) -> None:
    if isinstance(obj, pcir.Model):
        ir.check(obj)
    elif name == "layout":
        ir.check_layout(obj, ctx.model, deep=True)


def dump(obj: pcir.Model | pcir.Layout) -> str:
    """The text dump (`pcc dump`) of a pass's output, for --print-after."""
    return ir.dump_text(obj) if isinstance(obj, pcir.Model) else ir.dump_layout_text(obj)


def run_pipeline(model: pcir.Model, items: list[tuple[str, dict]], ctx: PassContext,
                 check_each: bool = False, print_after: set[str] | None = None,
                 printer: Callable[[str], None] = print,
                 stage_dump: StageDump | None = None):
    """Run the passes; returns the last pass's result (the Layout).
    `stage_dump` (PCC_DUMP) gets the IR after every pass."""
    obj: Any = model
    for name, opts in items:
        info = get_pass(name)
        record = PassRecord(name, dict(opts))
        ctx.report.records.append(record)
        ctx.options, ctx.record = opts, record
        before = _maxrss_mb()
        start = time.perf_counter()
        new, changed = info.fn(obj, ctx)
        record.seconds = time.perf_counter() - start
        record.peak_rss_mb = _maxrss_mb()
        record.peak_delta_mb = record.peak_rss_mb - before
        record.changed = bool(changed)
        if isinstance(new, pcir.Model):
            ctx.model = new
        obj = new
        if check_each:
            _check(obj, ctx, name)
        if stage_dump is not None:
            stage_dump.write(name, obj)
        if print_after and (name in print_after or "all" in print_after):
            printer(f"// ----- IR after {name} -----\n{dump(obj)}")
    ctx.record = None
    return obj


def run_pass(name: str, obj: pcir.Model | pcir.Layout, options: dict | None = None, *,
             model: pcir.Model | None = None, block_limit: int = DEFAULT_BLOCK_LIMIT,
             backend: str = "") -> tuple[pcir.Model | pcir.Layout, bool]:
    """Run one registered pass alone, as the manager would: its defaults
    merged with `options`, a fresh PassContext. Returns (result, changed).
    A pass that consumes a Layout (`layout`) needs the Model it was made
    from as `model`. For golden tests and debugging one pass in isolation.
    """
    merged = pass_options(name, options or {})
    if model is None:
        if not isinstance(obj, pcir.Model):
            raise PassError(f"pass {name!r} runs on a Layout: give the Model as model=")
        model = obj
    items = [(name, merged)]
    ctx = PassContext(model=model, block_limit=int(block_limit), backend=backend,
                      pipeline=format_pipeline(items))
    result = run_pipeline(obj, items, ctx)
    return result, ctx.report.records[-1].changed


def check_print_after(names: set[str], items: list[tuple[str, dict]]) -> None:
    """Every name asked for with print_after is "all" or a pass of the
    pipeline: an unknown name is a PassError naming the known passes, a
    known pass the pipeline leaves out one naming the pipeline (else
    --print-after would print nothing and say nothing)."""
    in_pipeline = [name for name, _ in items]
    for name in sorted(names - {"all"}):
        get_pass(name)                          # PassError: unknown pass, with the known ones
        if name not in in_pipeline:
            raise PassError(f"cannot print after pass {name!r}: the pipeline does not run it "
                            f"(it runs: {', '.join(in_pipeline)})")


def node_pipeline(pipeline: str | None) -> str:
    """The pipeline for a node-form Model: NODE_PIPELINE for the default;
    a named one may only hold the passes that handle the node form."""
    if pipeline is None or pipeline == DEFAULT_PIPELINE:
        return NODE_PIPELINE
    allowed = {p.strip() for p in NODE_PIPELINE.split(",")}
    names = [name for name, _ in parse_pipeline(pipeline)]
    bad = [name for name in names if name not in allowed]
    if bad:
        raise PassError(f"passes {bad} work on groups; a node-form Model (NodeCircuit) runs "
                        f"{NODE_PIPELINE!r}")
    return pipeline


def compile_model(model: pcir.Model, pipeline: str | None = None, options: dict | None = None,
                  cache=None, print_after=None, *, block_limit: int = DEFAULT_BLOCK_LIMIT,
                  backend: str = "", check_each: bool = False, verify: bool = True,
                  rerun: bool = False, backward: bool = True, release_heap: bool = True,
                  layout_arrays: bool = False, arrays: dict | None = None,
                  printer: Callable[[str], None] = print) -> CompileResult:
    """Compile `model` into a Layout.

    pipeline: a pipeline string (default DEFAULT_PIPELINE); options: extra
    options per pass, {"partition-blocks": {"max_block": 16}}; cache: None
    (no cache), True (the default folder), a folder path or a LayoutCache;
    print_after: pass names (or "all") whose output is printed.
    The passes run even when the cache holds the result whenever their work
    is asked to be seen: print_after, check_each, or rerun=True (what
    `--time-passes` sets); the result is still stored in the cache, and the
    report's cache notes say the read was skipped.
    verify=False skips the `verify` pass (ir.check of the input, seconds on
    a 100M-edge model) for a caller that validated the Model already; the
    cache key is unchanged because verify never changes the IR.
    backward=False (node-form Models; a group Layout always has them)
    leaves the sum layers' backward partitions out, for a backend that
    does not read them (the torch engine runs its backward over the
    forward partitions): the Layout says so in its metadata, and
    passes.node_backward.add_backward builds them on demand, with the bytes
    of an eager Layout.
    release_heap=False leaves the free pages of a large node compile's
    retained heap (ir/heap.py) in the process for a backend that builds
    its plans from the Layout next (the triton engine, whose plan build
    returns them); heap.release() returns them otherwise.
    layout_arrays=True (node-form Models) returns the Layout's index tensors
    as the layout pass made them, decoded (CompileResult.layout_arrays), for
    an engine of this process to read instead of decoding the tensors.
    arrays: name -> numpy of the Model's tensors that hold no bytes
    (`external {location: "memory"}`, `lower(external=True)`). A cache hit
    whose entry keeps the input Model reads none of them; every other path
    (a miss, a hit that rebuilds the Model, a pass that depends on values,
    a stage dump) first makes the Model self-contained (`inline_arrays`).
    """
    from pccompiler.passes.cache import as_cache
    if is_node_model(model):
        pipeline = node_pipeline(pipeline)
    items = resolve_pipeline(pipeline, options)
    text = format_pipeline(items)
    deferred = not backward and is_node_model(model)
    ctx = PassContext(model=model, block_limit=int(block_limit), backend=backend, pipeline=text,
                      backward=not deferred, keep_layout_arrays=layout_arrays)
    if isinstance(print_after, str):
        print_after = {p.strip() for p in print_after.split(",") if p.strip()}
    print_after = set(print_after or ())
    check_print_after(print_after, items)
    inspect = bool(print_after) or check_each or rerun
    layout_cache = as_cache(cache)
    stage_dump = StageDump.from_env()
    values = _Values(model, arrays)
    if stage_dump is not None or layout_cache is None or inspect or \
            any(get_pass(name).param_dependent(opts) for name, opts in items):
        model = values.inline()
    if stage_dump is not None:
        stage_dump.write("input", model)
    key = None
    if layout_cache is not None:
        key = layout_cache.key(model, items, block_limit=block_limit,
                               backend=backend + (" (backward deferred)" if deferred else ""))
        if inspect:
            ctx.report.cache_notes.append("read skipped: every pass runs so that its work "
                                          "can be seen; the result is stored")
            hit = None
        else:
            hit = layout_cache.load(key, model, values.inline)
        ctx.report.cache_notes.extend(layout_cache.take_notes())
        if hit is not None:
            model2, layout = hit
            if stage_dump is not None:
                stage_dump.write("cache-hit-layout", layout)
            return CompileResult(model2, layout, ctx.report, cache_hit=True,
                                 input_kept=model2 is values.given or model2 is values.inlined)
    model = ctx.model = values.inline()
    run_items = items if verify else [it for it in items if it[0] != "verify"]
    large = is_node_model(model) and heap.worth_it(8 * model.nodes.num_nodes)
    with heap.retained_heap(large, release=release_heap):   # 10^7-entry arrays: ir/heap.py
        layout = run_pipeline(model, run_items, ctx, check_each=check_each,
                              print_after=print_after, printer=printer,
                              stage_dump=stage_dump)
    if layout_cache is not None:
        layout_cache.store(key, ctx.model, layout, ctx.rewrites, source=model)
        ctx.report.cache_notes.extend(layout_cache.take_notes())
    made = ctx.analysis.get(LAYOUT_ARRAYS)      # (Layout, arrays) of the node layout pass
    return CompileResult(ctx.model, layout, ctx.report, cache_hit=False,
                         layout_arrays=made[1] if made is not None and made[0] is layout else None,
                         input_kept=ctx.model is model)


class _Values:
    """The Model `compile_model` was given and, made on first need, its
    self-contained copy (`inline_arrays`: the bytes of its in-memory
    external tensors written in); the given Model itself when it has none."""

    def __init__(self, given: pcir.Model, arrays: dict | None):
        self.given, self.arrays = given, arrays
        self.inlined: pcir.Model | None = None

    def inline(self) -> pcir.Model:
        if self.inlined is None:
            from pccompiler.ir.external_arrays import inline_arrays
            self.inlined = inline_arrays(self.given, self.arrays)
        return self.inlined
