"""Whether pyjuice can be imported here (CI: no), and the skip marker."""

from __future__ import annotations

import importlib.util

import pytest


def pyjuice_available() -> bool:
    """True when `import pyjuice` works; a broken install (pyjuice present
    but matplotlib or numba missing) counts as absent."""
    if importlib.util.find_spec("pyjuice") is None:
        return False
    try:
        import pyjuice  # noqa: F401
    except Exception:
        return False
    return True


needs_pyjuice = pytest.mark.skipif(not pyjuice_available(),
                                   reason="pyjuice is not importable (not installed in CI)")
