"""Atom (Zhao et al. 2023, "Atom: Low-bit Quantization for Efficient and Accurate LLM Serving").

Reorder the input channels by calibration ``max|X|`` ascending; the last ``n =
recipe.atom_outliers`` (128 by default) are outlier channels kept in INT8 for both weights
(per output channel over those ``n`` columns, symmetric) and activations (per token,
``residq.nn.activation.OUTLIER_SPEC``); the first ``K - n`` use the recipe's formats (INT4
group 128). RTN on both parts.

Storage: the mixed weight is held in one INT8 group-``c`` container (``c = gcd(group, K - n,
n)``) whose INT4 part only uses codes in ``[-8, 7]`` and repeats each group-128 scale over its
``128 / c`` sub-groups, so dequantization is exact; ``info["weight_bits"]`` reports the bits a
dense mixed layout needs (4 + 16/128 per INT4 weight, 8 + 16/n per INT8 weight).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from residq.formats import quantize
from residq.formats.spec import FormatSpec, QuantizedTensor
from residq.methods.quantized_layer import QuantizedLayer
from residq.methods.stats import InputStats
from residq.recipe import Recipe
from residq.transforms.reorder import reorder_permutation


@dataclass
class AtomLayer(QuantizedLayer):
    """A ``QuantizedLayer`` whose last ``act_outliers`` activation channels are INT8 per token."""

    act_outliers: int = 0


def _expand_scales(scale: torch.Tensor, width: int, group: int, sub: int) -> torch.Tensor:
    """Scales of ``width`` columns in groups of ``group`` -> one per sub-group of ``sub``."""
    sub_groups = math.ceil(width / sub)
    index = torch.arange(sub_groups, device=scale.device) * sub // group
    return scale[..., index]


def mixed_precision_weight(weight_p: torch.Tensor, normal_spec: FormatSpec, outliers: int) -> QuantizedTensor:
    """``[Q_normal(W_p[:, :K-n]) ‖ INT8(W_p[:, K-n:])]`` in one INT8 group container.

    Args:
        weight_p: (M, K) float32 reordered weight (outliers last).
        normal_spec: symmetric ``int`` group format of the first ``K - n`` columns.
        outliers: ``n``, 0 <= n <= K.
    """
    if normal_spec.kind != "int" or normal_spec.granularity != "group" or not normal_spec.symmetric:
        raise ValueError(f"Atom expects a symmetric int group weight format, got {normal_spec.describe()}")
    k = weight_p.shape[1]
    n = min(outliers, k)
    head_width = k - n
    group = normal_spec.group_size
    sub = math.gcd(group, head_width, n) if n else group
    container = FormatSpec(kind="int", bits=8, granularity="group", group_size=sub)
    outlier_spec = FormatSpec(kind="int", bits=8, granularity="group", group_size=max(n, 1))
    codes, scales = [], []
    for part, spec, grp in ((weight_p[:, :head_width], normal_spec, group), (weight_p[:, head_width:], outlier_spec, n)):
        if part.shape[1] == 0:
            continue
        qt = quantize(part, spec)
        codes.append(qt.codes.to(torch.int8))
        scales.append(_expand_scales(qt.scale, part.shape[1], max(grp, 1), sub))
    return QuantizedTensor(codes=torch.cat(codes, 1), scale=torch.cat(scales, 1), spec=container)


def quantize_layer_atom(
    name: str, weight: torch.Tensor, bias: torch.Tensor | None, stats: InputStats, recipe: Recipe
) -> AtomLayer:
    """Method handler: reorder, INT8 outlier channels, INT4 g128 for the rest (weights and
    activations). Returns an ``AtomLayer`` with ``input_perm`` and ``act_outliers``."""
    if recipe.activation is None:
        raise ValueError(f"{name}: Atom quantizes activations; the recipe has no activation format")
    k = weight.shape[1]
    n = min(recipe.atom_outliers, k)
    perm = reorder_permutation(stats.absmax)
    weight_p = weight[:, perm.to(weight.device)]
    qweight = mixed_precision_weight(weight_p, recipe.weight, n)
    group = recipe.weight.group_size
    bits = ((k - n) * (recipe.weight.bits + 16 / group) + n * (8 + 16 / max(n, 1))) / k
    return AtomLayer(weight=qweight, bias=bias, act_spec=recipe.activation, input_perm=perm.to(weight.device),
                     act_outliers=n, info={"act_outliers": n, "weight_bits": bits})


def _handler():
    from residq.methods.registry import MethodHandler

    return MethodHandler(quantize_layer_atom)


HANDLER = _handler()
