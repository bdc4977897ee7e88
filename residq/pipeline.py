"""End-to-end steps the CLI, the demo and the scripts share: load, calibrate+quantize, evaluate."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from residq.api import QuantizationResult, quantize, resolve_device
from residq.models.loading import ModelSource, load_float_model, resolve_model
from residq.recipe import Recipe


def load_any_model(name_or_path: str, device: str | torch.device = "cpu") -> tuple[nn.Module, object, ModelSource]:
    """A float model (HF dir, hub id, GGUF, built-in name) or a residq checkpoint."""
    source = resolve_model(name_or_path)
    if source.kind == "residq":
        from residq.checkpoint import load

        model, tokenizer = load(source.location, device=device)
        return model, tokenizer, source
    return load_float_model(name_or_path, device=device)


def quantize_with_calibration(
    model: nn.Module, tokenizer, recipe: Recipe, calib: str = "wikitext2", n_samples: int = 128,
    seqlen: int = 2048, seed: int = 0, device: str = "auto", batch_size: int = 8,
    data_dir: str | Path | None = None, progress: bool = True, holdout_samples: int = 2,
) -> QuantizationResult:
    """Sample calibration windows (plus ``holdout_samples`` windows drawn with another seed,
    used only to measure each layer's output SNR), then ``residq.quantize``."""
    from residq.data.calibration import calibration_windows

    windows = calibration_windows(tokenizer, calib, n_samples=n_samples, seqlen=seqlen, seed=seed,
                                  data_dir=data_dir)
    holdout = None
    if holdout_samples > 0:
        holdout = calibration_windows(tokenizer, calib, n_samples=holdout_samples, seqlen=seqlen,
                                      seed=seed + 1_000_003, data_dir=data_dir)
    return quantize(model, recipe, windows, device=device, batch_size=batch_size, progress=progress,
                    holdout=holdout)


def evaluate_model(
    model: nn.Module, tokenizer, datasets: list[str], seqlen: int = 2048, max_windows: int | None = None,
    tasks: list[str] | None = None, limit: int | None = None, task_dir: str | None = None,
    device: str = "auto", data_dir: str | Path | None = None, progress: bool = True,
) -> dict:
    """Perplexities (and zero-shot task scores) as ``{"ppl": {...}, "tasks": {...}}``."""
    from residq.eval.perplexity import perplexity

    target = resolve_device(device)
    model.to(target)
    results: dict = {"ppl": {}, "seqlen": seqlen, "max_windows": max_windows}
    for dataset in datasets:
        result = perplexity(model, tokenizer, dataset, seqlen=seqlen, max_windows=max_windows,
                            device=target, data_dir=data_dir, progress=progress)
        results["ppl"][dataset] = result.ppl
        results.setdefault("ppl_windows", {})[dataset] = result.n_windows
    if tasks:
        from residq.eval.zeroshot import evaluate_tasks

        results["tasks"] = evaluate_tasks(model, tokenizer, tasks, limit=limit, data_dir=data_dir,
                                          task_dir=task_dir, progress=progress, device=target)
    return results
