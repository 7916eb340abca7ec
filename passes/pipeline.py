"""Pipeline strings: `name{key=value,key=value},name,...` (MLIR style).

The string is what every Layout and cache key stores, so `format_pipeline`
writes a canonical form (options sorted, defaults filled in) that parses
back to the same list.
"""

from __future__ import annotations

import re
from typing import Any

from pccompiler.errors import PassError

_ITEM = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*(?:\{([^{}]*)\})?\s*(?:,|$)")


def _value(text: str) -> Any:
    """'32' -> 32, '0.5' -> 0.5, 'true'/'false' -> bool, else the string."""
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_pipeline(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse a pipeline string into [(pass name, options)]."""
    items: list[tuple[str, dict[str, Any]]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise PassError(f"cannot parse pipeline {text!r} at column {pos}: expected "
                            "'name' or 'name{key=value,...}' separated by commas")
        options: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in (m.group(2) or "").split(","))):
            if "=" not in part:
                raise PassError(f"pipeline option {part!r} of pass {m.group(1)!r} "
                                "is not key=value")
            key, val = (s.strip() for s in part.split("=", 1))
            options[key] = _value(val)
        items.append((m.group(1), options))
        pos = m.end()
    return items


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def format_pipeline(items: list[tuple[str, dict[str, Any]]]) -> str:
    """The canonical string of a parsed pipeline (options sorted)."""
    out = []
    for name, options in items:
        if options:
            out.append(name + "{" + ",".join(f"{k}={_fmt(v)}"
                                             for k, v in sorted(options.items())) + "}")
        else:
            out.append(name)
    return ",".join(out)
