"""The sequential calibration driver.

Block by block (GPTQ's sequential scheme, Frantar et al. 2022, section 4): move the block to
the accelerator, and for each of its input groups in execution order (q/k/v, o, gate/up, down)
run the calibration chunks through the block while a hook accumulates that group's input
statistics, then quantize the group's linears and swap in ``QuantLinear`` modules, so later
groups see the quantized earlier ones. Finally the *quantized* block's outputs become the next
block's inputs. Only one block and its statistics are on the accelerator at a time; hidden
states wait on the CPU.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from residq.formats import fake_quantize
from residq.methods.registry import handler_for
from residq.methods.stats import InputStats
from residq.models.arch import Architecture, InputGroup, decoder_layers, get_submodule, set_submodule
from residq.models.capture import BlockInputs, capture_block_inputs, feed_inputs_of, run_block, to_device
from residq.nn.quant_linear import QuantLinear
from residq.recipe import Recipe
from residq.transforms.registry import apply_block_transforms
from residq.transforms.reorder import reordered


class NonFiniteWeightError(ValueError):
    """A layer's weight holds NaN or Inf."""


@dataclass
class LayerRecord:
    """What happened to one linear: for reports."""

    name: str
    in_features: int
    out_features: int
    seconds: float
    info: dict = field(default_factory=dict)


def _is_ignored(name: str, recipe: Recipe) -> bool:
    return any(pattern and pattern in name for pattern in recipe.ignore)


def _act_quantizer(recipe: Recipe):
    spec = recipe.activation
    if spec is None:
        return None
    return lambda x: fake_quantize(x.float(), spec)


@torch.no_grad()
def _collect_group_stats(
    block: nn.Module, group: InputGroup, prefix: str, inputs: BlockInputs, kwargs: dict,
    recipe: Recipe, needs_residual: bool, device: torch.device,
) -> InputStats:
    first = get_submodule(block, group.linears[0])
    make_quantizer = handler_for(recipe.method).make_act_quantizer
    quantizer = _act_quantizer(recipe) if needs_residual and make_quantizer is None else None
    stats = _stats_pass(block, first, f"{prefix}.{group.linears[0]}", inputs, kwargs, recipe, quantizer, device)
    if needs_residual and make_quantizer is not None:
        # The deployed quantizer depends on first-pass statistics (e.g. ARCQuant's channel
        # order and s): a second pass accumulates G and Ĥ_q under exactly that quantizer.
        deployed = make_quantizer(recipe, stats)
        if deployed is not None:
            stats = _stats_pass(block, first, stats.name, inputs, kwargs, recipe, deployed, device)
    return stats


def _stats_pass(block, first, name, inputs, kwargs, recipe, quantizer, device) -> InputStats:
    stats = InputStats(first.in_features, name=name, act_quantizer=quantizer, seed=recipe.seed)
    transform = getattr(first, "transform_input", None)  # an online input rotation (QuaRot)

    def consume(x: torch.Tensor) -> None:
        stats.update(x if transform is None else transform(x))

    feed_inputs_of(first, block, inputs.hidden, kwargs, device, consume)
    return stats


class RaggedBlockWarning(UserWarning):
    """A layer's K is not a multiple of its format's block size."""


def _warn_ragged(name: str, k: int, recipe: Recipe) -> None:
    """Ragged last blocks are supported (padded with zeros for the scale's amax, never stored),
    but they cost accuracy and have no fast kernel: say which layer has one."""
    for role, spec in (("weight", recipe.weight), ("activation", recipe.activation)):
        if spec is not None and k % spec.block_size(k):
            warnings.warn(
                f"{name}: in_features={k} is not a multiple of the {role} format's block of "
                f"{spec.block_size(k)} ({spec.describe()}); the last block is ragged (zero-padded)",
                RaggedBlockWarning, stacklevel=3)


@torch.no_grad()
def _capture_group_input(block: nn.Module, group: InputGroup, inputs: BlockInputs, kwargs: dict,
                         device: torch.device) -> torch.Tensor | None:
    """Inputs (N, K) of the group's linears on the held-out windows, or None without any."""
    if not inputs.hidden:
        return None
    seen: list[torch.Tensor] = []
    first = get_submodule(block, group.linears[0])
    feed_inputs_of(first, block, inputs.hidden, kwargs, device,
                   lambda x: seen.append(x.reshape(-1, x.shape[-1])))
    return torch.cat(seen)


def output_snr_db(reference: torch.Tensor, approximation: torch.Tensor) -> float:
    """``10 log10(‖Y‖² / ‖Y - Ŷ‖²)`` in dB (float64 sums)."""
    signal = reference.double().pow(2).sum()
    noise = (reference.double() - approximation.double()).pow(2).sum()
    return float(10 * torch.log10(signal / noise.clamp_min(1e-300)))


def _quantize_group(
    block: nn.Module, group: InputGroup, prefix: str, stats: InputStats, recipe: Recipe,
    held_out: torch.Tensor | None = None,
) -> list[LayerRecord]:
    handler = handler_for(recipe.method)
    quantize_layer = reordered(handler.quantize_layer) if "reorder" in recipe.transforms else handler.quantize_layer
    records = []
    for path in group.linears:
        name = f"{prefix}.{path}"
        linear = get_submodule(block, path)
        weight = linear.weight.detach().float()
        if not torch.isfinite(weight).all():
            raise NonFiniteWeightError(f"{name}: weight contains NaN or Inf")
        bias = None if linear.bias is None else linear.bias.detach().float()
        _warn_ragged(name, linear.in_features, recipe)
        start = time.perf_counter()
        layer = quantize_layer(name, weight, bias, stats, recipe)
        module = QuantLinear.from_quantized(layer, linear.in_features).to(weight.device)
        module.input_hadamard = bool(getattr(linear, "input_hadamard", False))
        set_submodule(block, path, module)
        info = dict(layer.info)
        if held_out is not None:
            with torch.no_grad():
                x_ref = held_out.float()
                if getattr(linear, "transform_input", None) is not None:
                    x_ref = linear.transform_input(x_ref)
                reference = torch.nn.functional.linear(x_ref, weight, bias)
                info["snr_db"] = output_snr_db(reference, module(held_out.to(weight.dtype)).float())
        records.append(LayerRecord(name, linear.in_features, linear.out_features,
                                   time.perf_counter() - start, info))
    return records


def _hidden_home(chunks: list[torch.Tensor], device: torch.device) -> torch.device:
    """Where calibration hidden states wait between blocks: on the accelerator when they take
    under a quarter of its free memory (no host round trips), else on the CPU."""
    if device.type != "cuda":
        return torch.device("cpu")
    need = sum(c.numel() * c.element_size() for c in chunks)
    free, _ = torch.cuda.mem_get_info(device)
    return device if need < free // 4 else torch.device("cpu")


@torch.no_grad()
def quantize_model_sequential(
    model: nn.Module,
    arch: Architecture,
    recipe: Recipe,
    input_ids: torch.Tensor,
    device: torch.device,
    batch_size: int = 8,
    progress: bool = True,
    holdout_ids: torch.Tensor | None = None,
) -> list[LayerRecord]:
    """Quantize every decoder block of ``model`` in place.

    Args:
        input_ids: (n, S) int64 calibration windows.
        holdout_ids: (h, S) int64 windows never used for statistics: each linear's output SNR
            (float weights on float-path inputs vs. the quantized layer) is measured on them
            and stored as ``info["snr_db"]``. They travel through the quantized blocks too.
        device: accelerator for one block at a time (or the CPU).
        batch_size: calibration chunk size; the largest divisor of n not above it is used.

    Returns:
        One ``LayerRecord`` per quantized linear, in order.
    """
    n = input_ids.shape[0]
    batch_size = max(d for d in range(1, min(batch_size, n) + 1) if n % d == 0)
    handler = handler_for(recipe.method)
    inputs = capture_block_inputs(model, arch, input_ids, batch_size, device)
    held = (capture_block_inputs(model, arch, holdout_ids, holdout_ids.shape[0], device)
            if holdout_ids is not None else BlockInputs(hidden=[], layer_kwargs=[]))
    home = _hidden_home(inputs.hidden + held.hidden, device)
    inputs.hidden = [chunk.to(home) for chunk in inputs.hidden]
    held.hidden = [chunk.to(home) for chunk in held.hidden]
    layers = decoder_layers(model, arch)
    records: list[LayerRecord] = []
    bar = tqdm(range(len(layers)), desc=f"quantize {recipe.name}", unit="block", disable=not progress)
    for index in bar:
        block = layers[index].to(device)
        prefix = f"{arch.layers_path}.{index}"
        kwargs = to_device(inputs.layer_kwargs[index], device)
        held_kwargs = to_device(held.layer_kwargs[index], device) if held.hidden else {}
        apply_block_transforms(block, arch, prefix, inputs, kwargs, recipe, device)
        for group in arch.groups:
            if all(_is_ignored(f"{prefix}.{p}", recipe) for p in group.linears):
                continue
            stats = _collect_group_stats(block, group, prefix, inputs, kwargs, recipe,
                                         handler.needs_act_residual, device)
            held_out = _capture_group_input(block, group, held, held_kwargs, device)
            kept = InputGroup(group.name,
                              tuple(p for p in group.linears if not _is_ignored(f"{prefix}.{p}", recipe)),
                              group.producer, group.producer_is_norm)
            records.extend(_quantize_group(block, kept, prefix, stats, recipe, held_out))
            del stats, held_out
        inputs.hidden = [run_block(block, chunk.to(device), kwargs).to(home) for chunk in inputs.hidden]
        held.hidden = [run_block(block, chunk.to(device), held_kwargs).to(home) for chunk in held.hidden]
        layers[index] = block.cpu()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return records
