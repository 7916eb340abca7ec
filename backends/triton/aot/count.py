"""Count Triton compilations (cache misses) in a block of code.

Triton calls `knobs.compilation.listener` at the end of every
`triton.compile`, with `cache_hit` True when the kernel came from its file
cache and False when the compiler stages ran. The counter keeps the misses
(kernel name and cache hash), which is what "zero compilations" means.
"""

from __future__ import annotations


class CompileCounter:
    """with CompileCounter() as c: ...; c.compiled -> [(name, hash)], c.hits -> int."""

    def __init__(self) -> None:
        self.compiled: list[tuple[str, str]] = []
        self.hits = 0
        self._previous = None

    def _listen(self, *, src, metadata, metadata_group, times, cache_hit, **_) -> None:
        if cache_hit:
            self.hits += 1
        else:
            self.compiled.append((str(metadata.get("name", "?")), str(metadata.get("hash", "?"))))
        if self._previous is not None:
            self._previous(src=src, metadata=metadata, metadata_group=metadata_group,
                           times=times, cache_hit=cache_hit)

    def __enter__(self) -> "CompileCounter":
        from triton import knobs
        self._previous = knobs.compilation.listener
        knobs.compilation.listener = self._listen
        return self

    def __exit__(self, *exc) -> None:
        from triton import knobs
        knobs.compilation.listener = self._previous
