"""A global rank budget across layers (ALGORITHMS.md section 4, step 4).

``Recipe.rank_budget`` is a fraction of the model's quantized linear parameters the low-rank
branches may add. A rank-r branch on an (M, K) layer adds ``r (M + K)`` parameters and, per
token, ``2 r (M + K)`` FLOPs against the layer's ``2 M K``: the parameter budget and the FLOP
budget are the same fraction, so one number serves both.

The plan comes from one pass over the FLOAT model (before any layer is quantized): per block
and input group, the input statistics under the deployed activation quantizer, then per
linear the singular values ``σ_i`` of ``W G'^{1/2}`` (ARHQ; ``W diag(λ)`` for SVDQuant, whose
branch approximates the smoothed weight). Component i of a layer is worth ``σ_i²`` divided by
the layer's output energy (``tr(W H Wᵀ) / N`` for ARHQ, ``‖W diag(λ)‖²`` for SVDQuant), so
layers are compared on relative error. Components are taken greedily in chunks of 16 (the
kernel-friendly rank step), most valuable first, while the budget lasts; a layer's chunk is
only taken after its previous one. Block transforms (smoothing) are not applied in this pass,
so the plan of a smoothed ARHQ recipe is an approximation.

Cost: like ARHQ itself, one extra float forward over the calibration set, one K x K
eigendecomposition per group and one SVD per linear.
"""

from __future__ import annotations

import heapq

import torch
from torch import nn

from residq.formats import fake_quantize
from residq.methods.lowrank import RANK_MULTIPLE, arhq_factors
from residq.methods.stats import InputStats
from residq.methods.svdquant import smoothing_scales
from residq.models.arch import Architecture, InputGroup, decoder_layers, get_submodule
from residq.models.capture import capture_block_inputs, feed_inputs_of, run_block, to_device
from residq.recipe import Recipe

PLANNED_METHODS = ("arhq", "svdquant")


@torch.no_grad()
def _group_stats(block: nn.Module, group: InputGroup, hidden: list[torch.Tensor], kwargs: dict,
                 recipe: Recipe, device: torch.device) -> InputStats:
    first = get_submodule(block, group.linears[0])
    spec = recipe.activation
    quantizer = (lambda x: fake_quantize(x.float(), spec)) if spec is not None else None
    stats = InputStats(first.in_features, act_quantizer=quantizer, sample_rows=0)
    feed_inputs_of(first, block, hidden, kwargs, device, stats.update)
    return stats


def component_values(weight: torch.Tensor, stats: InputStats, recipe: Recipe) -> torch.Tensor:
    """``σ_i²`` / output energy (min(M, K),) float64 of one linear, for the greedy plan."""
    W = weight.detach().to(torch.float64)
    if recipe.method == "arhq":
        _, _, sigma = arhq_factors(W, stats.residual_covariance, 0, recipe.eig_floor)
        energy = torch.einsum("mk,kj,mj->", W, stats.hessian / stats.n, W)
    else:
        W = W * smoothing_scales(stats.absmax, weight, recipe.smooth_alpha or 0.5).to(W)
        sigma = torch.linalg.svdvals(W)
        energy = W.pow(2).sum()
    return sigma.pow(2) / energy.clamp_min(1e-300)


def greedy_ranks(values: dict[str, torch.Tensor], shapes: dict[str, tuple[int, int]],
                 budget_params: float, step: int = RANK_MULTIPLE) -> dict[str, int]:
    """Ranks per layer maximizing the summed value under ``Σ r (M + K) ≤ budget_params``.

    Args:
        values: per layer, component values (descending).
        shapes: per layer, (M, K).
        budget_params: parameters the branches may hold.
        step: rank granularity (the last chunk of a layer may be shorter).
    """
    ranks = {name: 0 for name in values}
    heap: list[tuple[float, str]] = []

    def push(name: str) -> None:
        start = ranks[name]
        chunk = values[name][start:start + step]
        if chunk.numel():
            heapq.heappush(heap, (-float(chunk.sum()), name))

    for name in values:
        push(name)
    left = budget_params
    while heap:
        _, name = heapq.heappop(heap)
        m, k = shapes[name]
        width = min(step, values[name].numel() - ranks[name])
        if width * (m + k) > left:
            continue  # this layer's next chunk no longer fits; cheaper layers may still
        left -= width * (m + k)
        ranks[name] += width
        push(name)
    return ranks


@torch.no_grad()
def plan_ranks(
    model: nn.Module, arch: Architecture, recipe: Recipe, input_ids: torch.Tensor,
    device: torch.device, batch_size: int = 8,
) -> tuple[tuple[str, int], ...]:
    """``((layer name, rank), ...)`` for every quantized linear under ``recipe.rank_budget``.

    Args:
        model: the float model (not modified).
        input_ids: (n, S) int64 calibration windows.
    """
    if recipe.method not in PLANNED_METHODS:
        raise ValueError(f"rank_budget needs a low-rank method {PLANNED_METHODS}, got {recipe.method!r}")
    if recipe.rank_budget is None:
        raise ValueError("plan_ranks: the recipe has no rank_budget")
    n = input_ids.shape[0]
    batch_size = max(d for d in range(1, min(batch_size, n) + 1) if n % d == 0)
    inputs = capture_block_inputs(model, arch, input_ids, batch_size, device)
    values: dict[str, torch.Tensor] = {}
    shapes: dict[str, tuple[int, int]] = {}
    for index, layer in enumerate(decoder_layers(model, arch)):
        original_device = next(layer.parameters()).device
        block = layer.to(device)
        prefix = f"{arch.layers_path}.{index}"
        kwargs = to_device(inputs.layer_kwargs[index], device)
        for group in arch.groups:
            paths = [p for p in group.linears if not any(x and x in f"{prefix}.{p}" for x in recipe.ignore)]
            if not paths:
                continue
            stats = _group_stats(block, group, inputs.hidden, kwargs, recipe, device)
            for path in paths:
                weight = get_submodule(block, path).weight.float()
                values[f"{prefix}.{path}"] = component_values(weight, stats, recipe).cpu()
                shapes[f"{prefix}.{path}"] = tuple(weight.shape)
            del stats
        inputs.hidden = [run_block(block, chunk.to(device), kwargs).cpu() for chunk in inputs.hidden]
        block.to(original_device)
    total = sum(m * k for m, k in shapes.values())
    ranks = greedy_ranks(values, shapes, recipe.rank_budget * total)
    return tuple(ranks.items())
