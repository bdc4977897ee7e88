"""The one call: ``quantize(model, recipe, calibration) -> QuantizationResult``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from residq.models.arch import architecture_of
from residq.models.sequential import LayerRecord, quantize_model_sequential
from residq.nn.quant_linear import QuantLinear
from residq.recipe import Recipe
from residq.transforms.registry import apply_model_transforms


@dataclass
class QuantizationResult:
    """The quantized model (modified in place) and what it took."""

    model: nn.Module
    recipe: Recipe
    layers: list[LayerRecord] = field(default_factory=list)
    seconds: float = 0.0


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None -> CUDA when available, else CPU; anything else as given."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    return device


def quantize(
    model: nn.Module,
    recipe: Recipe,
    calibration: torch.Tensor,
    device: str | torch.device | None = "auto",
    batch_size: int = 8,
    progress: bool = True,
    holdout: torch.Tensor | None = None,
) -> QuantizationResult:
    """Quantize a HF causal LM in place with ``recipe``.

    Args:
        model: a float model of a family in ``residq.models.arch.ARCHITECTURES`` (on CPU).
        recipe: what to do.
        calibration: (n, S) int64 token windows (``residq.data.calibration_windows``).
        device: where each block is processed: ``auto``, ``cpu`` or ``cuda``.
        batch_size: calibration chunk size.
        progress: show a progress bar per block.
        holdout: (h, S) windows kept out of the statistics, for per-layer output SNR.
    """
    if calibration.ndim != 2 or calibration.shape[0] == 0:
        raise ValueError(f"calibration must be (n_samples, seqlen) tokens, got {tuple(calibration.shape)}")
    arch = architecture_of(model)
    start = time.perf_counter()
    apply_model_transforms(model, arch, recipe)
    if recipe.rank_budget is not None and not recipe.rank_plan:
        from dataclasses import replace

        from residq.models.planning import plan_ranks

        plan = plan_ranks(model, arch, recipe, calibration, resolve_device(device), batch_size)
        recipe = replace(recipe, rank_plan=plan)
    records = quantize_model_sequential(model, arch, recipe, calibration, resolve_device(device),
                                        batch_size=batch_size, progress=progress, holdout_ids=holdout)
    model.residq_recipe = recipe
    return QuantizationResult(model, recipe, records, time.perf_counter() - start)


def model_size_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes held by quantized linears, by other parameters, and in total (tied counted once)."""
    seen: set[int] = set()
    quantized = other = 0
    for module in model.modules():
        if isinstance(module, QuantLinear):
            quantized += module.storage_bytes()
            seen.update(id(b) for b in module.buffers())
    for param in model.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            other += param.numel() * param.element_size()
    return {"quantized_linear": quantized, "other": other, "total": quantized + other}


def weight_bits(model: nn.Module) -> float:
    """Average stored bits per weight over the quantized linears (scales and branches included)."""
    bits = params = 0
    for module in model.modules():
        if isinstance(module, QuantLinear):
            bits += 8 * module.storage_bytes()
            params += module.in_features * module.out_features
    return bits / params if params else 16.0
