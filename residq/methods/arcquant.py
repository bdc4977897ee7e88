"""ARCQuant: augmented residual channels (arXiv 2601.07475; ALGORITHMS.md section 3).

Per layer: reorder the input channels by calibration ``max|X|`` ascending (outliers last), pick
the number ``s`` of augmented channels, and quantize

* activations online in two stages, ``X' = [Q1(X_p) ‖ Q2(R)]`` with ``R`` the residual of the
  last ``s`` channels (``residq.nn.activation.quantize_activation``);
* weights ``W' = [Q(W_p) ‖ Q(W_p)[:, K-s:]]``: the augmented columns duplicate the outlier
  columns' codes and scales, so one GEMM over ``K + s`` gives
  ``Y = Q1 Q(W_p)ᵀ + Q2 Q(W_p,top)ᵀ``.

Beyond the paper: ``recipe.arc_weight = "gptq"`` runs GPTQ on the reordered weight under the
Hessian of the *deployed* two-stage activations (the augmented columns then duplicate GPTQ's
codes), ``recipe.arc_select = "error"`` picks ``s`` by measured output error, and
``recipe.rank > 0`` adds ARHQ's low-rank branch computed on the residual covariance of the
deployed quantizer (``make_arc_act_quantizer``), so ARCQuant + ARHQ is one recipe.
"""

from __future__ import annotations

import math

import torch

from residq.formats import dequantize, fake_quantize
from residq.formats.spec import FormatSpec, QuantizedTensor
from residq.methods.gptq import gptq_quantize
from residq.methods.quantized_layer import QuantizedLayer
from residq.methods.rtn import rtn_quantize
from residq.methods.stats import InputStats
from residq.recipe import Recipe
from residq.transforms.reorder import invert_permutation, permute_stats, reorder_permutation

THRESHOLD = 2.0**-3
ERROR_SEARCH_MAX_FRACTION = 0.25  # "error" selection: candidates s = 0, a, 2a, ... up to K/4
ERROR_SEARCH_KEEP = 0.9  # smallest s reaching 90% of the best error reduction


def outlier_fraction(x: torch.Tensor, threshold: float = THRESHOLD) -> float:
    """Fraction of entries with ``|x| > threshold · (that token's max |x|)``.

    Args:
        x: (N, K) float calibration activations (any channel order).
    """
    xa = x.detach().float().abs()
    token_max = xa.amax(dim=-1, keepdim=True)
    return float((xa > threshold * token_max).float().mean())


def format_block(spec: FormatSpec, k: int) -> int:
    """Elements per scale block along K (the whole row for per-token/per-channel scales)."""
    return 1 if spec.is_per_tensor else spec.block_size(k)


def channel_alignment(align: int, weight_spec: FormatSpec, act_spec: FormatSpec, k: int) -> int:
    """The multiple ``s`` must be: ``align`` rounded up to whole weight and activation blocks."""
    if align < 16:
        raise ValueError(f"ARCQuant: alignment must be >= 16, got {align}")
    a = align
    for spec in (weight_spec, act_spec):
        block = format_block(spec, k)
        if block < k:
            a = math.lcm(a, block)
    return a


def rule_channel_count(fraction: float, k: int, align: int) -> int:
    """The paper's ``s = ceil(K · frac / a) · a`` capped at ``K``."""
    return min(k, math.ceil(k * fraction / align) * align)


def augment_weight(qweight: QuantizedTensor, s: int) -> QuantizedTensor:
    """``[Q(W) ‖ Q(W)[:, K-s:]]``: codes (M, K+s), the duplicated columns' scales repeated.

    ``K`` and ``s`` must be whole numbers of scale blocks so the duplicated columns form whole
    blocks of their own (``channel_alignment`` guarantees it for ``s``).
    """
    if s == 0:
        return qweight
    k = qweight.codes.shape[-1]
    spec = qweight.spec
    block = format_block(spec, k)
    if block >= k or qweight.scale.shape[-1] == 1:
        raise ValueError(f"ARCQuant needs block-scaled weights (got {spec.describe()} with one scale per row)")
    if k % block or s % block:
        raise ValueError(f"ARCQuant: K={k} and s={s} must be multiples of the weight block {block}")
    tail_blocks = s // block
    codes = torch.cat([qweight.codes, qweight.codes[..., k - s:]], dim=-1)
    scale = torch.cat([qweight.scale, qweight.scale[..., -tail_blocks:]], dim=-1)
    zero = None if qweight.zero is None else torch.cat([qweight.zero, qweight.zero[..., -tail_blocks:]], dim=-1)
    return QuantizedTensor(codes=codes, scale=scale, spec=spec, zero=zero,
                           global_scale=qweight.global_scale, extra=dict(qweight.extra))


def arc_effective_activation(xp: torch.Tensor, spec: FormatSpec, s: int) -> torch.Tensor:
    """What the augmented GEMM multiplies ``Q(W_p)`` by: ``Q1(X_p)`` plus ``Q2(R)`` on the tail.

    Args:
        xp: (N, K) float activations, already reordered.

    Returns:
        float32 (N, K): ``[Q1 ‖ Q2] W'ᵀ == effective @ Q(W_p)ᵀ``.
    """
    xf = xp.float()
    q1 = fake_quantize(xf, spec)
    if s == 0:
        return q1
    k = xf.shape[-1]
    q2 = fake_quantize(xf[:, k - s:] - q1[:, k - s:], spec)
    return torch.cat([q1[:, : k - s], q1[:, k - s:] + q2], dim=-1)


def make_arc_act_quantizer(recipe: Recipe, stats: InputStats):
    """The deployed ARCQuant activation quantizer in the *original* channel order.

    Args:
        stats: statistics of a first calibration pass (``absmax`` and ``sample`` are used).

    Returns:
        ``x (N, K) -> (N, K) float32``: the effective quantized activation, so that ARHQ's
        ``G`` and ``Ĥ_q`` (and GPTQ's Hessian) describe the quantizer that is deployed.
    """
    perm = reorder_permutation(stats.absmax)
    s = choose_channel_count(None, stats, recipe, perm)
    inverse = invert_permutation(perm)

    def quantize(x: torch.Tensor) -> torch.Tensor:
        eff = arc_effective_activation(x[:, perm.to(x.device)], recipe.activation, s)
        return eff[:, inverse.to(x.device)]

    return quantize


def choose_channel_count(weight_p: torch.Tensor | None, stats: InputStats, recipe: Recipe,
                         perm: torch.Tensor) -> int:
    """``s`` by ``arc_fraction``, the 2⁻³ rule, or (``arc_select="error"``, needs the weight)
    measured output error; always a multiple of ``channel_alignment``."""
    k = stats.k
    align = channel_alignment(recipe.arc_align, recipe.weight, recipe.activation, k)
    if recipe.arc_fraction is not None:
        return rule_channel_count(recipe.arc_fraction, k, align)
    if stats.sample is None:
        raise ValueError(f"{stats.name}: ARCQuant needs a calibration sample to choose s")
    if recipe.arc_select == "error" and weight_p is not None:
        return select_by_output_error(weight_p, stats.sample[:, perm], recipe, align)
    return rule_channel_count(outlier_fraction(stats.sample), k, align)


def select_by_output_error(weight_p: torch.Tensor, sample_p: torch.Tensor, recipe: Recipe, align: int) -> int:
    """Smallest aligned ``s`` whose output error reduction reaches 90% of the best one.

    Candidates ``s = 0, a, 2a, ...`` up to ``K / 4``; the error of each is
    ``‖X_p W_pᵀ - eff(X_p) Q(W_p)ᵀ‖²`` on the calibration sample (RTN weights).
    """
    k = weight_p.shape[1]
    w_deq = dequantize(rtn_quantize(weight_p, recipe.weight)).to(weight_p.device)
    x = sample_p.to(weight_p.device).float()
    reference = x @ weight_p.T
    top = max(align, int(k * ERROR_SEARCH_MAX_FRACTION) // align * align)
    candidates = list(range(0, min(top, k) + 1, align))
    errors = [float((reference - arc_effective_activation(x, recipe.activation, s) @ w_deq.T).pow(2).sum())
              for s in candidates]
    gain = errors[0] - min(errors)
    for s, err in zip(candidates, errors):
        if errors[0] - err >= ERROR_SEARCH_KEEP * gain:
            return s
    return candidates[-1]


def needs_deployed_stats(recipe: Recipe) -> bool:
    """GPTQ weights or an ARHQ branch need statistics under the deployed quantizer."""
    return recipe.arc_weight == "gptq" or recipe.rank != 0


def _lowrank_branch(weight_p: torch.Tensor, pstats: InputStats, recipe: Recipe):
    """ARHQ factors on the reordered weight and the deployed residual covariance."""
    from residq.methods.lowrank import arhq_factors, ridge_gamma, weight_error_ratio

    if not isinstance(recipe.rank, int):
        raise TypeError(f"ARCQuant + ARHQ takes a fixed integer rank, got {recipe.rank!r}")
    if pstats.residual_gram is None:
        raise ValueError(f"{pstats.name}: ARCQuant with rank > 0 needs statistics collected under the "
                         "deployed quantizer (InputStats(act_quantizer=make_arc_act_quantizer(...))); "
                         "got plain statistics")
    G = pstats.residual_covariance
    gamma = 0.0
    if recipe.ridge > 0:
        eps_w = weight_error_ratio(weight_p, dequantize(rtn_quantize(weight_p, recipe.weight)))
        gamma = ridge_gamma(recipe.ridge, eps_w, pstats.quantized_gram / pstats.n)
    A, B, sigma = arhq_factors(weight_p, G, recipe.rank, ridge_gamma=gamma)
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(recipe.lowrank_dtype, torch.float32)
    return A.to(dtype), B.to(dtype), sigma


def quantize_layer_arcquant(
    name: str, weight: torch.Tensor, bias: torch.Tensor | None, stats: InputStats, recipe: Recipe
) -> QuantizedLayer:
    """Method handler: reorder, choose ``s``, quantize ``W_p`` (RTN or GPTQ), augment.

    Args: those of every handler (weight (M, K) float32). Returns a layer whose weight has
    ``K + s`` columns, ``input_perm`` the order, ``augmented = s``; ``info`` reports ``s``.
    """
    if recipe.activation is None:
        raise ValueError(f"{name}: ARCQuant quantizes activations; the recipe has no activation format")
    deployed = needs_deployed_stats(recipe)
    if deployed and recipe.arc_select == "error" and recipe.arc_fraction is None:
        raise ValueError("ARCQuant: arc_select='error' picks s per layer and cannot be combined with "
                         "GPTQ weights or a low-rank branch (their statistics need one s per input); "
                         "use arc_select='rule' or a fixed arc_fraction")
    perm = reorder_permutation(stats.absmax)
    pstats = permute_stats(stats, perm)
    weight_p = weight[:, perm.to(weight.device)]
    s = choose_channel_count(weight_p, stats, recipe, perm)
    info: dict = {"augmented": s, "outlier_fraction": outlier_fraction(stats.sample)}
    target, lowrank_a, lowrank_b = weight_p, None, None
    if recipe.rank != 0:
        lowrank_a, lowrank_b, sigma = _lowrank_branch(weight_p, pstats, recipe)
        target = weight_p - (lowrank_b.double() @ lowrank_a.double().T).to(weight_p.dtype)
        info["rank"] = lowrank_a.shape[1]
        info["energy_kept"] = float(sigma[: lowrank_a.shape[1]].pow(2).sum() / sigma.pow(2).sum().clamp_min(1e-300))
    if recipe.arc_weight == "gptq":
        hessian = pstats.quantized_gram if pstats.quantized_gram is not None else pstats.hessian
        qweight = gptq_quantize(target, hessian, recipe.weight, damp=recipe.damp, block_size=recipe.block_size,
                                act_order=recipe.act_order, static_groups=recipe.static_groups)
    else:
        qweight = rtn_quantize(target, recipe.weight)
    if recipe.refit and lowrank_a is not None:
        from residq.methods.lowrank import refit_factors

        A, B, _ = refit_factors(weight_p, dequantize(qweight), pstats.hessian, pstats.cross_gram,
                                lowrank_a.shape[1], recipe.eig_floor)
        lowrank_a, lowrank_b = A.to(lowrank_a.dtype), B.to(lowrank_b.dtype)
    return QuantizedLayer(weight=augment_weight(qweight, s), bias=bias, act_spec=recipe.activation,
                          input_perm=perm.to(weight.device), augmented=s,
                          lowrank_a=lowrank_a, lowrank_b=lowrank_b, info=info)


def _make_act_quantizer(recipe: Recipe, stats: InputStats):
    return make_arc_act_quantizer(recipe, stats) if needs_deployed_stats(recipe) else None


def _handler():
    from residq.methods.registry import MethodHandler

    return MethodHandler(quantize_layer_arcquant, needs_act_residual=True, make_act_quantizer=_make_act_quantizer)


HANDLER = _handler()
