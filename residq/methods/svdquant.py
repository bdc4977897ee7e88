"""SVDQuant (Li et al. 2024, "SVDQuant: Absorbing Outliers by Low-Rank Components for 4-Bit
Diffusion Models", arXiv 2411.05007, section 4).

Per linear layer: smooth (``X̂ = X diag(λ)⁻¹``, ``Ŵ = W diag(λ)``, SmoothQuant's
``λ_j = max|X_j|^α / max|W_j|^(1-α)``), take the rank-r SVD ``L`` of the smoothed weight in
16 bit, and quantize the residual ``Ŵ - L``:

    Y = Q_x(X̂) Q_w(Ŵ - L)ᵀ + X̂ Lᵀ

The smoothing scale stays online in ``QuantizedLayer.input_scale`` (one per layer; in a
deployment it fuses into the activation-quantize kernel). When the recipe already runs the
``smooth`` transform (folded into the producing op), the handler does not smooth again.
The residual is quantized by GPTQ on the smoothed inputs' ``XᵀX`` (``residual="gptq"``) or RTN.
"""

from __future__ import annotations

import time

import torch

from residq.formats import dequantize, fake_quantize
from residq.methods.arhq import attach_factor_scales, layer_rank, quantize_residual, store_factors
from residq.methods.lowrank import branch_overhead, energy_kept, svd_factors
from residq.methods.quantized_layer import QuantizedLayer
from residq.methods.rtn import rtn_quantize
from residq.methods.stats import InputStats
from residq.recipe import Recipe

ALPHA_GRID = (0.0, 0.25, 0.4, 0.5, 0.6, 0.75)
_MIN_RANGE = 1e-5


def smoothing_scales(act_absmax: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothQuant's per-input-channel scales (Xiao et al. 2022, eq. 4).

    Args:
        act_absmax: (K,) max |X_j| over calibration tokens.
        weight: (M, K) or a stack of the weights sharing the input, concatenated along M.
        alpha: migration strength in [0, 1].

    Returns:
        λ (K,) float32, ``max|X_j|^α / max|W_j|^(1-α)``, both ranges floored at 1e-5.
    """
    x_range = act_absmax.to(torch.float64).clamp_min(_MIN_RANGE)
    w_range = weight.detach().abs().amax(dim=0).to(torch.float64).clamp_min(_MIN_RANGE)
    return (x_range.pow(alpha) / w_range.pow(1 - alpha)).clamp_min(_MIN_RANGE).to(torch.float32)


def _branch_and_residual(W_s: torch.Tensor, name: str, recipe: Recipe):
    """SVD branch of the smoothed weight: (stored factors, residual (M, K), rank, sigma)."""
    A, B, sigma = svd_factors(W_s, min(W_s.shape))
    rank = layer_rank(name, sigma, recipe)
    if rank == 0:
        return {}, W_s, rank, sigma
    stored = store_factors(A[:, :rank], B[:, :rank], recipe.lowrank_dtype)
    return stored, W_s - stored.pop("L").to(W_s.device), rank, sigma


def search_alpha(weight: torch.Tensor, stats: InputStats, recipe: Recipe, name: str) -> float:
    """α of ``ALPHA_GRID`` with the smallest output error on the stats' row sample, using the
    SVD branch + RTN residual and the recipe's activation quantizer (cheap proxy of the layer)."""
    sample = stats.sample.to(weight.device)
    reference = sample @ weight.T
    best, best_err = ALPHA_GRID[0], float("inf")
    for alpha in ALPHA_GRID:
        lam = smoothing_scales(stats.absmax, weight, alpha).to(weight.device)
        _, residual, _, _ = _branch_and_residual(weight * lam, name, recipe)
        x_s = sample / lam
        x_q = fake_quantize(x_s, recipe.activation) if recipe.activation is not None else x_s
        out = x_q @ dequantize(rtn_quantize(residual, recipe.weight)).T + x_s @ (weight * lam - residual).T
        err = float((reference - out).pow(2).sum())
        if err < best_err:
            best, best_err = alpha, err
    return best


def quantize_layer_svdquant(
    name: str, weight: torch.Tensor, bias: torch.Tensor | None, stats: InputStats, recipe: Recipe
) -> QuantizedLayer:
    """Method handler: smoothing + rank-r SVD branch + quantized residual.

    Returns a QuantizedLayer with ``input_scale`` λ (K,) (None when the ``smooth`` transform
    already ran), ``lowrank_a`` (K, r), ``lowrank_b`` (M, r), and ``info`` = rank,
    energy_kept (of the smoothed weight's σ²), params_pct, flops_pct, smooth_alpha.
    """
    M, K = weight.shape
    start = time.perf_counter()
    lam = None
    alpha = None
    if "smooth" not in recipe.transforms:
        alpha = recipe.smooth_alpha if recipe.smooth_alpha is not None else search_alpha(weight, stats, recipe, name)
        lam = smoothing_scales(stats.absmax, weight, alpha).to(weight.device)
    W_s = weight if lam is None else weight * lam
    stored, residual, rank, sigma = _branch_and_residual(W_s, name, recipe)
    info = {"rank": rank, "energy_kept": energy_kept(sigma, rank), "smooth_alpha": alpha,
            **branch_overhead(M, K, rank), "lowrank_seconds": time.perf_counter() - start}
    hessian = stats.hessian
    if lam is not None:
        inv = (1.0 / lam).to(torch.float64).to(hessian.device)
        hessian = hessian * inv.unsqueeze(0) * inv.unsqueeze(1)
    qweight = quantize_residual(residual, hessian, recipe)
    layer = QuantizedLayer(weight=qweight, bias=bias, act_spec=recipe.activation, input_scale=lam,
                           lowrank_a=stored.get("lowrank_a"), lowrank_b=stored.get("lowrank_b"), info=info)
    attach_factor_scales(layer, stored)
    return layer


def _handler():
    from residq.methods.registry import MethodHandler

    return MethodHandler(quantize_layer_svdquant)


HANDLER = _handler()
