"""AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM Compression").

Per layer, per input channel scale ``s = mean|X|^α`` (normalized so that ``max(s) min(s) = 1``),
``α`` searched over ``recipe.awq_grid`` evenly spaced points of ``[0, 1]`` (one point: 0.5) by the output error
``‖X Wᵀ - (X diag(s)⁻¹) Q(W diag(s))ᵀ‖²`` on the calibration sample. The weight stored is
``Q(W diag(s))``; ``X diag(s)⁻¹`` is applied online through ``QuantizedLayer.input_scale`` (one
division per input element; a deployment folds it into the producer, which needs one ``s``
per input group, whereas here each linear keeps its own best ``s``). Weight-only.
"""

from __future__ import annotations

import torch

from residq.formats import dequantize
from residq.methods.quantized_layer import QuantizedLayer
from residq.methods.rtn import rtn_quantize
from residq.methods.stats import InputStats
from residq.recipe import Recipe


def awq_scales(absmean: torch.Tensor, alpha: float) -> torch.Tensor:
    """``mean|X|^α`` normalized to ``max · min = 1`` (float32 (K,)); zero channels get 1."""
    base = absmean.double().clamp_min(1e-8).pow(alpha)
    base = base / (base.max() * base.min()).sqrt()
    return base.float()


def awq_search(weight: torch.Tensor, sample: torch.Tensor, absmean: torch.Tensor, spec, grid: int):
    """Best ``(alpha, scales (K,), output_error)`` over ``grid`` values of α in [0, 1].

    Args:
        weight: (M, K) float32; sample: (N, K) float32 calibration rows; absmean: (K,).
    """
    if grid < 1:
        raise ValueError(f"AWQ: awq_grid must be >= 1, got {grid}")
    x = sample.to(weight.device).float()
    reference = x @ weight.T
    best = None
    alphas = [i / (grid - 1) for i in range(grid)] if grid > 1 else [0.5]
    for alpha in alphas:
        s = awq_scales(absmean, alpha).to(weight.device)
        w_q = dequantize(rtn_quantize(weight * s, spec))
        err = float((reference - (x / s) @ w_q.T).pow(2).sum())
        if best is None or err < best[2]:
            best = (alpha, s, err)
    return best


def quantize_layer_awq(
    name: str, weight: torch.Tensor, bias: torch.Tensor | None, stats: InputStats, recipe: Recipe
) -> QuantizedLayer:
    """Method handler: AWQ scales, RTN on ``W diag(s)``, ``input_scale = s``."""
    if stats.sample is None:
        raise ValueError(f"{name}: AWQ needs a calibration sample of the layer input")
    alpha, s, _error = awq_search(weight, stats.sample, stats.absmean, recipe.weight, recipe.awq_grid)
    qweight = rtn_quantize(weight * s, recipe.weight)
    return QuantizedLayer(weight=qweight, bias=bias, act_spec=recipe.activation, input_scale=s,
                          info={"awq_alpha": alpha})


def _handler():
    from residq.methods.registry import MethodHandler

    return MethodHandler(quantize_layer_awq)


HANDLER = _handler()
