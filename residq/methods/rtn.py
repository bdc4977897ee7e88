"""Round to nearest: every weight takes the closest grid point under the format's own scales."""

from __future__ import annotations

import torch

from residq.formats import quantize
from residq.formats.spec import FormatSpec, QuantizedTensor
from residq.methods.quantized_layer import QuantizedLayer
from residq.methods.stats import InputStats
from residq.recipe import Recipe


def rtn_quantize(weight: torch.Tensor, spec: FormatSpec) -> QuantizedTensor:
    """Quantize ``weight`` (M, K) float with the format's scales (NVFP4: one global scale)."""
    return quantize(weight.float(), spec)


def quantize_layer_rtn(
    name: str, weight: torch.Tensor, bias: torch.Tensor | None, stats: InputStats, recipe: Recipe
) -> QuantizedLayer:
    """Method handler: RTN weights, the recipe's activation format."""
    return QuantizedLayer(weight=rtn_quantize(weight, recipe.weight), bias=bias,
                          act_spec=recipe.activation)


def _handler():
    from residq.methods.registry import MethodHandler

    return MethodHandler(quantize_layer_rtn)


HANDLER = _handler()
