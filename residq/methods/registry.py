"""The method handlers the calibration driver calls, one per ``Recipe.method``.

A handler is ``(name, weight (M, K) float32, bias (M,) | None, stats: InputStats,
recipe: Recipe) -> QuantizedLayer``. ``needs_act_residual`` says whether the driver must
accumulate ARHQ's activation-residual statistics (G and Ĥ_q) under the recipe's activation
quantizer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from residq.methods.gptq import quantize_layer_gptq
from residq.methods.rtn import quantize_layer_rtn


@dataclass(frozen=True)
class MethodHandler:
    quantize_layer: Callable
    needs_act_residual: bool = False


HANDLERS: dict[str, MethodHandler] = {
    "rtn": MethodHandler(quantize_layer_rtn),
    "gptq": MethodHandler(quantize_layer_gptq),
}


def register_method(name: str, handler: MethodHandler) -> None:
    HANDLERS[name] = handler


def handler_for(method: str) -> MethodHandler:
    if method not in HANDLERS:
        raise ValueError(f"method {method!r} has no handler; available: {sorted(HANDLERS)}")
    return HANDLERS[method]
