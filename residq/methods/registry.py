"""The method handlers the calibration driver calls, one per ``Recipe.method``.

A handler is ``(name, weight (M, K) float32, bias (M,) | None, stats: InputStats,
recipe: Recipe) -> QuantizedLayer``. Each method module exports ``HANDLER: MethodHandler``;
modules are imported on first use, so adding a method means adding one line here.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodHandler:
    """How the driver treats one method.

    Attributes:
        quantize_layer: the handler function.
        needs_act_residual: accumulate ARHQ's activation-residual statistics (G, Ĥ_q) under
            the deployed activation quantizer.
        make_act_quantizer: optional ``(recipe, stats_so_far) -> callable`` giving the exact
            deployed activation quantizer for those statistics (default: the recipe's format).
    """

    quantize_layer: Callable
    needs_act_residual: bool = False
    make_act_quantizer: Callable | None = None


METHOD_MODULES: dict[str, str] = {
    "rtn": "residq.methods.rtn",
    "gptq": "residq.methods.gptq",
    "awq": "residq.methods.awq",
    "svdquant": "residq.methods.svdquant",
    "arhq": "residq.methods.arhq",
    "arcquant": "residq.methods.arcquant",
    "atom": "residq.methods.atom",
}


def handler_for(method: str) -> MethodHandler:
    """The ``HANDLER`` of ``method``'s module."""
    if method not in METHOD_MODULES:
        raise ValueError(f"method {method!r} has no handler; available: {sorted(METHOD_MODULES)}")
    module_name = METHOD_MODULES[method]
    if importlib.util.find_spec(module_name) is None:
        raise ValueError(f"method {method!r} is not available in this build ({module_name} is missing)")
    return importlib.import_module(module_name).HANDLER
