"""Torch helpers shared by the torch and triton backends.

`layout_index` turns a pcir.Layout's index tensors into torch tensors once
(per device); `queries` runs the top-down queries (sampling, MPE) over a
Layout with plain torch ops given the values an Engine computed.
"""

from pccompiler.backends.common.layout_index import (
    InputPart, LayerIndex, LayoutIndex, ProductPart, SumPart, build_layout_index,
)

__all__ = ["InputPart", "LayerIndex", "LayoutIndex", "ProductPart", "SumPart",
           "build_layout_index"]

# TEMP alias for backends/base.py until the merge: base.py still imports
# `pack_parameters_into` from backends.common.packing (now packing_upload)
# and `unpack_parameters` from pccompiler.passes.packing (now
# backends.common.packing). Delete this block once base.py is updated.
import sys as _sys  # noqa: E402
from pccompiler.backends.common import packing as _packing  # noqa: E402
from pccompiler.backends.common import packing_upload as _packing_upload  # noqa: E402
_packing.pack_parameters_into = _packing_upload.pack_parameters_into
_sys.modules.setdefault("pccompiler.passes.packing", _packing)
# end TEMP alias
