"""ARHQ: activation-residual Hessian quantization (arXiv 2605.00140; ALGORITHMS.md section 4).

Per linear layer, with the calibration statistics of its input under the deployed activation
quantizer (``G = EᵀE / N``, ``Ĥ_q = Q_x(X)ᵀ Q_x(X)``):

1. rank r: ``Recipe.rank`` (int), adaptive from the tail energy ``tau``, or the global
   budget planner's choice (``Recipe.rank_plan``, filled when ``rank_budget`` is set);
2. optional ridge ``G' = G + γ I`` with ``γ = ρ · ε_w · tr(Ĥ_q / N) / K`` (``Recipe.ridge``);
3. the closed form ``L = B Aᵀ`` (``lowrank.arhq_factors``), stored in ``lowrank_dtype``;
4. the residual ``W - L`` (with L as stored, so the rounding of the factors is compensated)
   quantized by GPTQ on ``Ĥ_q`` (``residual="gptq"``) or by RTN;
5. optionally (``Recipe.refit``), the branch refitted to the whole layer error with ``W_q``
   fixed (``lowrank.refit_factors``): residq's extension, measured in docs/RESULTS.md.

Inference: ``Y = Q_x(X) Q_w(W - L)ᵀ + (X A) Bᵀ``. With r = 0 this is exactly RTN, or GPTQ on
``Ĥ_q`` (GPTQ run on the quantized inputs the deployed layer sees).
"""

from __future__ import annotations

import time

import torch

from residq.formats import dequantize
from residq.formats.spec import QuantizedTensor
from residq.methods.gptq import gptq_quantize
from residq.methods.lowrank import (
    adaptive_rank,
    arhq_factors,
    branch_overhead,
    energy_kept,
    refit_factors,
    ridge_gamma,
    weight_error_ratio,
)
from residq.methods.quantized_layer import QuantizedLayer
from residq.methods.rtn import rtn_quantize
from residq.methods.stats import InputStats
from residq.recipe import Recipe

_FLOAT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def int8_columns(factor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes of ``factor`` (n, r) with one float32 scale per column (r,).

    ``scale = amax(|column|) / 127`` (1 for an all-zero column); value = code x scale.
    """
    amax = factor.abs().amax(dim=0)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax)).to(torch.float32)
    codes = torch.round(factor / scale.to(factor.dtype)).clamp(-127, 127).to(torch.int8)
    return codes, scale


def store_factors(A: torch.Tensor, B: torch.Tensor, lowrank_dtype: str) -> dict[str, torch.Tensor]:
    """The branch as stored: ``lowrank_a`` (K, r), ``lowrank_b`` (M, r) in ``lowrank_dtype``, plus
    ``lowrank_a_scale`` / ``lowrank_b_scale`` (r,) float32 for int8, and ``L`` (M, K) float32
    as the stored factors compute it.

    The singular values are split evenly (``A √Σ``, ``B / √Σ`` style balancing) so neither
    factor's range dominates the 16-bit or int8 rounding.
    """
    norm_a = A.norm(dim=0)
    norm_b = B.norm(dim=0)
    balance = torch.where(norm_a > 0, (norm_b / norm_a.clamp_min(1e-300)).sqrt(), torch.ones_like(norm_a))
    A = A * balance
    B = B / balance
    if lowrank_dtype == "int8":
        a_codes, a_scale = int8_columns(A)
        b_codes, b_scale = int8_columns(B)
        a_value = a_codes.to(torch.float64) * a_scale.to(torch.float64)
        b_value = b_codes.to(torch.float64) * b_scale.to(torch.float64)
        stored = {"lowrank_a": a_codes, "lowrank_b": b_codes,
                  "lowrank_a_scale": a_scale, "lowrank_b_scale": b_scale}
    elif lowrank_dtype in _FLOAT_DTYPES:
        dtype = _FLOAT_DTYPES[lowrank_dtype]
        stored = {"lowrank_a": A.to(dtype), "lowrank_b": B.to(dtype)}
        a_value, b_value = stored["lowrank_a"].to(torch.float64), stored["lowrank_b"].to(torch.float64)
    else:
        raise ValueError(f"lowrank_dtype must be float16, bfloat16 or int8, got {lowrank_dtype!r}")
    stored["L"] = (b_value @ a_value.T).to(torch.float32)
    return stored


def quantize_residual(R: torch.Tensor, hessian: torch.Tensor | None, recipe: Recipe) -> QuantizedTensor:
    """``Q_w(R)`` for a residual weight ``R`` (M, K): GPTQ on ``hessian`` (K, K) or RTN."""
    if recipe.residual == "rtn" or hessian is None:
        return rtn_quantize(R, recipe.weight)
    return gptq_quantize(R, hessian, recipe.weight, damp=recipe.damp, block_size=recipe.block_size,
                         act_order=recipe.act_order, static_groups=recipe.static_groups)


def layer_rank(name: str, sigma: torch.Tensor, recipe: Recipe) -> int:
    """The rank this layer gets: the budget plan's, adaptive (tail energy ≤ tau), or fixed."""
    if recipe.rank_plan:
        plan = dict(recipe.rank_plan)
        if name not in plan:
            raise ValueError(f"{name}: no rank in the budget plan (it holds {len(plan)} layers)")
        return min(plan[name], sigma.numel())
    if recipe.rank == "adaptive":
        return adaptive_rank(sigma, recipe.tau)
    return min(int(recipe.rank), sigma.numel())


def arhq_ridge(W: torch.Tensor, stats: InputStats, recipe: Recipe) -> float:
    """``γ`` for this layer (0 when ``recipe.ridge`` is 0)."""
    if recipe.ridge == 0:
        return 0.0
    eps_w = weight_error_ratio(W, dequantize(rtn_quantize(W, recipe.weight)))
    return ridge_gamma(recipe.ridge, eps_w, stats.quantized_gram / stats.n)


def quantize_layer_arhq(
    name: str, weight: torch.Tensor, bias: torch.Tensor | None, stats: InputStats, recipe: Recipe
) -> QuantizedLayer:
    """Method handler: ARHQ branch + residual by GPTQ on ``Ĥ_q`` (or RTN).

    Args:
        weight: (M, K) float32; bias (M,) or None; stats with ``act_quantizer`` set.

    Returns:
        QuantizedLayer with ``lowrank_a`` (K, r), ``lowrank_b`` (M, r) (None when r = 0) and
        ``info`` = rank, energy_kept, params_pct, flops_pct, ridge_gamma, lowrank_seconds.
    """
    if recipe.activation is None:
        raise ValueError(f"{name}: ARHQ needs an activation format (it models activation error); "
                         "the recipe is weight-only")
    M, K = weight.shape
    start = time.perf_counter()
    gamma = arhq_ridge(weight, stats, recipe)
    A, B, sigma = arhq_factors(weight, stats.residual_covariance, K, recipe.eig_floor, gamma)
    rank = layer_rank(name, sigma, recipe)
    info = {"rank": rank, "energy_kept": energy_kept(sigma, rank), "ridge_gamma": gamma,
            **branch_overhead(M, K, rank)}
    residual = weight
    stored: dict[str, torch.Tensor] = {}
    if rank > 0:
        stored = store_factors(A[:, :rank], B[:, :rank], recipe.lowrank_dtype)
        residual = weight - stored.pop("L").to(weight.device)
    info["lowrank_seconds"] = time.perf_counter() - start
    qweight = quantize_residual(residual, stats.quantized_gram, recipe)
    if recipe.refit and rank > 0:
        stored = refit_branch(weight, qweight, stats, rank, recipe)
    layer = QuantizedLayer(weight=qweight, bias=bias, act_spec=recipe.activation,
                           lowrank_a=stored.get("lowrank_a"), lowrank_b=stored.get("lowrank_b"), info=info)
    attach_factor_scales(layer, stored)
    return layer


def require_cross(stats: InputStats) -> torch.Tensor:
    """``Xᵀ Q_x(X)`` (K, K), collected only when statistics ran under an activation quantizer."""
    if stats.cross_gram is None:
        raise ValueError(f"{stats.name}: refit needs Xᵀ Q_x(X), collected only under an activation "
                         "quantizer")
    return stats.cross_gram


def refit_branch(weight: torch.Tensor, qweight: QuantizedTensor, stats: InputStats, rank: int,
                 recipe: Recipe) -> dict[str, torch.Tensor]:
    """The stored factors (``store_factors`` keys, without ``L``) of the branch refitted to the
    whole layer error with the quantized residual ``qweight`` (M, K) fixed."""
    w_q = dequantize(qweight)[:, : weight.shape[1]]
    A, B, _ = refit_factors(weight, w_q, stats.hessian, require_cross(stats), rank, recipe.eig_floor)
    stored = store_factors(A, B, recipe.lowrank_dtype)
    stored.pop("L")
    return stored


def attach_factor_scales(layer: QuantizedLayer, stored: dict[str, torch.Tensor]) -> None:
    """Int8 factors' per-column scales travel as extra attributes that ``QuantLinear`` picks up."""
    for key in ("lowrank_a_scale", "lowrank_b_scale"):
        if key in stored:
            setattr(layer, key, stored[key])


def _handler():
    from residq.methods.registry import MethodHandler

    return MethodHandler(quantize_layer_arhq, needs_act_residual=True)


HANDLER = _handler()
