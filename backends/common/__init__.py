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

