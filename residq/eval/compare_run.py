"""``residq compare``'s engine: quantize one model with several recipes and measure each.

For the float model and then each recipe, in that order (the FP row first):

1. load a fresh copy of the model (``residq.pipeline.load_any_model``; every recipe starts
   from the same float weights, nothing leaks between recipes);
2. quantize it (``residq.quantize``) while measuring time and peak memory;
3. measure the checkpoint size by saving it (``residq.checkpoint.save``) into a temporary
   directory and adding up the bytes of every file written (weights, config, tokenizer,
   metadata): the number is what lands on disk, not an estimate from buffers;
4. record the per-channel input magnitude of one chosen linear (see ``activation_profile``);
5. evaluate perplexities and zero-shot tasks (``residq.pipeline.evaluate_model``).

The calibration windows and the held-out windows (used for each layer's output SNR and for the
activation profile) are sampled once and reused by every recipe, so recipes differ only in
what they do. The *statistics* computed from those windows are not shared: after block 0 a
block's inputs are the outputs of the already-quantized blocks before it, which depend on the
recipe, so each recipe collects its own.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
(bytes allocated by torch tensors). On the CPU, the growth of the process's peak resident set
size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) over the resident size when quantization
starts. The peak is a process-lifetime high-water mark; on Linux it is first reset through
``/proc/self/clear_refs`` so that each recipe gets its own peak. Where that reset is not
possible the number is a lower bound (0 when quantization stayed below an earlier peak).
"""

from __future__ import annotations

import dataclasses
import gc
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from typing_extensions import Self

from residq.api import quantize, resolve_device, weight_bits
from residq.models.arch import architecture_of, decoder_layers, get_submodule
from residq.nn.quant_linear import QuantLinear
from residq.pipeline import evaluate_model, load_any_model
from residq.recipe import Recipe, load_recipe

FP_LABEL = "FP"


@dataclass
class CompareSettings:
    """Everything ``run_comparison`` needs; mirrors ``residq compare``'s flags one to one."""

    model: str
    recipes: list[str]
    out: str = "runs/compare"
    calib: str = "wikitext2"
    calib_samples: int = 128
    seqlen: int = 2048
    seed: int = 0
    batch_size: int = 8
    overrides: list[str] = field(default_factory=list)
    ppl: list[str] = field(default_factory=lambda: ["wikitext2"])
    max_windows: int | None = None
    tasks: list[str] = field(default_factory=list)
    limit: int | None = None
    task_dir: str | None = None
    data_dir: str | None = None
    device: str = "auto"
    plot_layer: str | None = None
    holdout_samples: int = 2
    progress: bool = True


@dataclass
class Comparison:
    """What ``run_comparison`` measured: one row per model (FP first) plus plot data.

    Attributes:
        settings: the settings it ran with.
        rows: one dict per model (keys documented in ``residq.eval.report``).
        layer_snr: per recipe label, ``[{"name": layer, "snr_db": float}, ...]`` in model order.
        activations: per label, ``{"layer", "before", "after"}``: per-channel max |x| (K floats)
            of the chosen layer's input, and of what its quantizer receives.
        seconds: wall time of the whole comparison.
    """

    settings: CompareSettings
    rows: list[dict] = field(default_factory=list)
    layer_snr: dict[str, list[dict]] = field(default_factory=dict)
    activations: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0


def parse_recipe_label(label: str, overrides: list[str]) -> Recipe:
    """``NAME`` or ``NAME+key=value+...`` (as scripts/run_recipes.py), then ``--set`` overrides."""
    name, *own = label.split("+")
    if not name:
        raise ValueError(f"empty recipe name in --recipes entry {label!r}")
    return load_recipe(name).with_overrides(list(own) + list(overrides))


def default_plot_layer(model: nn.Module) -> str:
    """``<layers>.<middle>.<mlp output linear>``, e.g. ``model.layers.15.mlp.down_proj``."""
    arch = architecture_of(model)
    middle = len(decoder_layers(model, arch)) // 2
    mlp_out = next(g for g in arch.groups if g.name == "mlp_out")
    return f"{arch.layers_path}.{middle}.{mlp_out.linears[0]}"


def check_plot_layer(model: nn.Module, name: str) -> None:
    """``ValueError`` unless ``name`` is a linear layer of ``model``."""
    try:
        module = get_submodule(model, name)
    except AttributeError as err:
        raise ValueError(f"--plot-layer {name!r}: {err}") from err
    if not isinstance(module, (nn.Linear, QuantLinear)):
        # a bad flag value: ValueError, which the CLI reports as a usage error
        raise ValueError(f"--plot-layer {name!r} is a {type(module).__name__}, expected a linear layer")  # noqa: TRY004


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # "5" resets the peak RSS (Linux >= 4.0, man 5 proc)
        return True
    except OSError:
        return False


class PeakMemory:
    """Context manager: ``.bytes`` is the peak memory of the enclosed work (module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bytes = 0
        self._start = 0

    def __enter__(self) -> Self:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            gc.collect()
            self._start = _current_rss_bytes() if _reset_peak_rss() else _peak_rss_bytes()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self.bytes = max(0, _peak_rss_bytes() - self._start)


def checkpoint_bytes(model: nn.Module, tokenizer, recipe: Recipe | None) -> dict[str, int]:
    """Save ``model`` into a temporary directory; ``{"total": all files, "weights": safetensors}``."""
    from residq.checkpoint import WEIGHTS, save

    with tempfile.TemporaryDirectory(prefix="residq-size-") as tmp:
        out = save(model, tokenizer, Path(tmp) / "checkpoint", recipe)
        sizes = {p.name: p.stat().st_size for p in out.rglob("*") if p.is_file()}
    return {"total": sum(sizes.values()), "weights": sizes.get(WEIGHTS, 0)}


@torch.no_grad()
def activation_profile(model: nn.Module, layer: str, windows: torch.Tensor, device: torch.device) -> dict:
    """Per-channel max |x| of ``layer``'s input over ``windows``, before and after its transforms.

    Args:
        model: a float or quantized causal LM (already on ``device``).
        layer: dotted name of a linear layer.
        windows: (n, S) int64 token windows.

    Returns:
        ``{"layer", "before", "after"}`` with two lists of K floats. ``after`` is what a
        ``QuantLinear`` hands its activation quantizer: the input permuted by ``input_perm``
        and divided by ``input_scale`` (the steps of ``QuantLinear.forward``); for a float
        linear, or one without those buffers, it equals ``before``.
    """
    module = get_submodule(model, layer)
    before = torch.zeros(module.in_features, dtype=torch.float64)
    after = torch.zeros(module.in_features, dtype=torch.float64)

    def record(_module, args):
        rows = args[0].reshape(-1, module.in_features).float()
        before.copy_(torch.maximum(before, rows.abs().amax(0).double().cpu()))
        perm = getattr(module, "input_perm", None)
        scale = getattr(module, "input_scale", None)
        if perm is not None:
            rows = rows[:, perm]
        if scale is not None:
            rows = rows / scale.float()
        after.copy_(torch.maximum(after, rows.abs().amax(0).double().cpu()))

    handle = module.register_forward_pre_hook(record)
    try:
        for row in windows:
            model(input_ids=row[None].to(device), use_cache=False)
    finally:
        handle.remove()
    return {"layer": layer, "before": before.tolist(), "after": after.tolist()}


def activation_bits(recipe: Recipe | None, model: nn.Module, float_bits: int) -> float:
    """Average stored bits per activation element over the quantized linears (block scales and
    ARCQuant's augmented channels included); ``float_bits`` when activations stay float."""
    from residq.formats import bits_per_element

    if recipe is None or recipe.activation is None:
        return float(float_bits)
    values = [bits_per_element(m.act_spec, m.in_features) * (m.in_features + m.augmented) / m.in_features
              for m in model.modules() if isinstance(m, QuantLinear) and m.act_spec is not None]
    return sum(values) / len(values) if values else float(float_bits)


def _shared_windows(tokenizer, settings: CompareSettings) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Calibration (n, S) and held-out (h, S) windows, drawn once for every recipe (same seeds
    as ``residq.pipeline.quantize_with_calibration``)."""
    from residq.data.calibration import calibration_windows

    calibration = calibration_windows(tokenizer, settings.calib, n_samples=settings.calib_samples,
                                      seqlen=settings.seqlen, seed=settings.seed, data_dir=settings.data_dir)
    holdout = None
    if settings.holdout_samples > 0:
        holdout = calibration_windows(tokenizer, settings.calib, n_samples=settings.holdout_samples,
                                      seqlen=settings.seqlen, seed=settings.seed + 1_000_003,
                                      data_dir=settings.data_dir)
    return calibration, holdout


def _describe_formats(recipe: Recipe | None, model: nn.Module) -> dict:
    dtype = next(model.parameters()).dtype
    float_name = str(dtype).replace("torch.", "")
    float_bits = torch.finfo(dtype).bits
    if recipe is None:
        return {"weight_format": float_name, "weight_bits": float(float_bits),
                "activation_format": float_name, "activation_bits": float(float_bits)}
    return {
        "weight_format": recipe.weight.describe(), "weight_bits": weight_bits(model),
        "activation_format": recipe.activation.describe() if recipe.activation else f"{float_name} (unquantized)",
        "activation_bits": activation_bits(recipe, model, float_bits),
    }


def _measure_one(label: str, recipe: Recipe | None, loaded: tuple[nn.Module, object], settings: CompareSettings,
                 comparison: Comparison, windows: tuple[torch.Tensor, torch.Tensor | None], plot_layer: str) -> dict:
    """Quantize (unless FP), size, profile and evaluate one freshly loaded model; return its row."""
    device = resolve_device(settings.device)
    model, tokenizer = loaded
    row: dict = {"recipe": label, "description": recipe.description if recipe else "float model, unquantized"}
    quant_seconds = peak = None
    if recipe is not None:
        calibration, holdout = windows
        with PeakMemory(device) as memory:
            result = quantize(model, recipe, calibration, device=device, batch_size=settings.batch_size,
                              progress=settings.progress, holdout=holdout)
        quant_seconds, peak = result.seconds, memory.bytes
        comparison.layer_snr[label] = [{"name": r.name, "snr_db": r.info["snr_db"]}
                                       for r in result.layers if "snr_db" in r.info]
    row.update(_describe_formats(recipe, model))
    sizes = checkpoint_bytes(model, tokenizer, recipe)
    row.update({"checkpoint_bytes": sizes["total"], "weights_bytes": sizes["weights"],
                "peak_memory_bytes": peak, "peak_memory_device": device.type})
    model.to(device)
    if windows[1] is not None:
        comparison.activations[label] = activation_profile(model, plot_layer, windows[1], device)
    start = time.perf_counter()
    scores = evaluate_model(model, tokenizer, settings.ppl, seqlen=settings.seqlen, max_windows=settings.max_windows,
                            tasks=settings.tasks or None, limit=settings.limit, task_dir=settings.task_dir,
                            device=settings.device, data_dir=settings.data_dir, progress=settings.progress)
    row.update({"ppl": scores["ppl"], "tasks": scores.get("tasks", {}), "quant_seconds": quant_seconds,
                "eval_seconds": time.perf_counter() - start})
    return row


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _log(settings: CompareSettings, text: str) -> None:
    if settings.progress:
        print(text, file=sys.stderr, flush=True)


def run_comparison(settings: CompareSettings) -> Comparison:
    """Measure the float model and every recipe of ``settings`` (module docstring); the result's
    ``settings`` has ``plot_layer`` resolved."""
    if not settings.recipes:
        raise ValueError("--recipes needs at least one recipe name")
    duplicates = sorted({label for label in settings.recipes if settings.recipes.count(label) > 1})
    if duplicates:
        raise ValueError(f"--recipes lists {duplicates} more than once; each recipe is a row of the report")
    recipes = {label: parse_recipe_label(label, settings.overrides) for label in settings.recipes}
    start = time.perf_counter()
    float_model, tokenizer, _ = load_any_model(settings.model)
    plot_layer = settings.plot_layer or default_plot_layer(float_model)
    check_plot_layer(float_model, plot_layer)
    settings = dataclasses.replace(settings, plot_layer=plot_layer)
    comparison = Comparison(settings)
    windows = _shared_windows(tokenizer, settings)
    labels: list[tuple[str, Recipe | None]] = [(FP_LABEL, None), *recipes.items()]
    for index, (label, recipe) in enumerate(labels, 1):
        _log(settings, f"[{index}/{len(labels)}] {label}")
        loaded = (float_model, tokenizer) if recipe is None else load_any_model(settings.model)[:2]
        float_model = None  # the FP row owns it now; it is freed after its row
        row = _measure_one(label, recipe, loaded, settings, comparison, windows, plot_layer)
        del loaded
        _free_memory()
        comparison.rows.append(row)
        ppl = ", ".join(f"{name} ppl {value:.3f}" for name, value in row["ppl"].items())
        _log(settings, f"[{index}/{len(labels)}] {label}: {ppl or 'no perplexity'}")
    comparison.seconds = time.perf_counter() - start
    return comparison
