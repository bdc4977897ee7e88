"""``residq bench MODEL_OR_DIR``: prefill and decode tokens/s and peak GPU memory of quantized
models against their bf16 original, plus one decoder layer of Llama-3-8B shape (random weights), on CUDA also replayed from a CUDA graph
(no per-launch host time: what a serving engine's decode loop sees).

- A float model (HF directory, hub id, GGUF, ``smollm2-135m``) is quantized in memory with each
  of ``--recipes``, calibrated on random token ids: speed does not depend on the calibration
  text, and no data set is needed. For accuracy, quantize with ``residq quantize`` and bench the
  saved directory.
- A residq checkpoint directory is benched as saved; its bf16 baseline is the same
  architecture (its config) with random bf16 weights, which has the same speed.

On CUDA, models run in bf16 and ``QuantLinear`` takes the Triton kernels where it can (the
``kernel layers`` column counts them). Without CUDA everything runs in float32 on the torch
reference path: the figures are then CPU figures, not kernel speed, and the command says so.
Measurement details: ``residq.eval.speed``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from residq.eval.report import write_atomic

DEFAULT_RECIPES = "w4a16-nvfp4-rtn,w4a4-nvfp4-rtn"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``bench`` on the ``residq`` command line."""
    p = subparsers.add_parser("bench", help="prefill/decode tokens/s and peak memory vs the bf16 model")
    p.add_argument("model", help="HF directory, hub id, .gguf file, smollm2-135m, or a residq checkpoint")
    p.add_argument("--recipes", default=DEFAULT_RECIPES,
                   help="float model only: comma list of recipes (NAME or NAME+key=value) to quantize with "
                        "(random-token calibration)")
    p.add_argument("--prefill", type=int, default=2048, help="tokens per prefill forward")
    p.add_argument("--decode", type=int, default=64, help="decode steps (0 skips decoding)")
    p.add_argument("--batch", type=int, default=1, help="sequences per forward")
    p.add_argument("--calib-samples", type=int, default=4, help="random calibration windows per recipe")
    p.add_argument("--calib-seqlen", type=int, default=256)
    p.add_argument("--layer-tokens", type=int, default=2048,
                   help="tokens of the Llama-3-8B-shaped decoder-layer timing (0 skips it)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _random_calibration(vocab: int, samples: int, seqlen: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1234)
    return torch.randint(0, vocab, (samples, seqlen), generator=gen)


def _kernel_layers(model) -> int:
    from residq.nn.kernel_path import _eligible
    from residq.nn.quant_linear import QuantLinear

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    return sum(1 for m in model.modules() if isinstance(m, QuantLinear)
               and _eligible(m, torch.zeros(1, m.in_features, device=device, dtype=dtype)) is not None)


def _quantized(model, recipe_name: str, args, device: torch.device):
    from residq.api import quantize
    from residq.eval.compare_run import parse_recipe_label

    recipe = parse_recipe_label(recipe_name, [])
    calibration = _random_calibration(model.config.vocab_size, args.calib_samples, args.calib_seqlen)
    quantize(model, recipe, calibration, device=device, progress=not args.quiet)
    return model


def _model_row(label: str, model, args, device: torch.device, dtype: torch.dtype) -> dict:
    from residq.api import model_size_bytes
    from residq.eval.speed import measure_model

    model = model.to(device=device, dtype=dtype)
    speed = measure_model(model, device, prefill_tokens=args.prefill, decode_tokens=args.decode,
                          batch=args.batch, repeats=args.repeats)
    row = {"model": label, "size_bytes": model_size_bytes(model)["total"], "kernel_layers": _kernel_layers(model)}
    row.update(speed.as_dict())
    print(f"  {label}: prefill {row['prefill_tokens_per_s']:.0f} tok/s", flush=True)
    return row


def _layer_row(label: str, recipe_name: str | None, args, device: torch.device, dtype: torch.dtype) -> dict:
    from residq.eval.speed import layer_ms, one_layer_llama

    model = one_layer_llama()
    if recipe_name is not None:
        model = _quantized(model, recipe_name, args, device)
    model = model.to(device=device, dtype=dtype)
    row = {"layer": label, "tokens": args.layer_tokens,
           "prefill_ms": layer_ms(model, device, args.layer_tokens, args.repeats),
           "decode_ms": layer_ms(model, device, 1, args.repeats), "kernel_layers": _kernel_layers(model),
           "prefill_graph_ms": None, "decode_graph_ms": None}
    if device.type == "cuda":  # the same calls replayed from a CUDA graph: no per-launch host time
        row["prefill_graph_ms"] = layer_ms(model, device, args.layer_tokens, args.repeats, cuda_graph=True)
        row["decode_graph_ms"] = layer_ms(model, device, 1, args.repeats, cuda_graph=True)
    return row


def run(args: argparse.Namespace) -> int:
    """Measure, print the tables, write ``--json``; 0 on success."""
    from residq.api import resolve_device
    from residq.models.loading import resolve_model

    for name in ("prefill", "batch", "repeats", "calib_samples", "calib_seqlen"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise FileNotFoundError(f"cannot write {args.json}: its folder does not exist")
    device = resolve_device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type != "cuda":
        print("residq bench: no CUDA device, so float32 on the torch reference path (CPU figures, not kernel speed)")
    source = resolve_model(args.model)
    models, recipes = [], []
    if source.kind == "residq":
        from transformers import AutoModelForCausalLM

        from residq.checkpoint import load

        quantized, _ = load(source.location)
        recipe = getattr(quantized, "residq_recipe", None)
        recipes = [recipe.name] if recipe is not None else []
        baseline = AutoModelForCausalLM.from_config(quantized.config, dtype=dtype)
        models.append(_model_row("bf16 (same config, random weights)", baseline, args, device, dtype))
        del baseline
        models.append(_model_row(f"checkpoint ({recipes[0] if recipes else 'recipe unknown'})", quantized,
                                 args, device, dtype))
        del quantized
    else:
        from residq.models.loading import load_float_model

        recipes = [r for r in args.recipes.split(",") if r]
        model, _, _ = load_float_model(args.model)
        models.append(_model_row("bf16" if device.type == "cuda" else "float32", model, args, device, dtype))
        del model
        for name in recipes:
            model, _, _ = load_float_model(args.model)
            models.append(_model_row(name, _quantized(model, name, args, device), args, device, dtype))
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    layers = []
    if args.layer_tokens > 0:
        for name in [None, *recipes]:
            layers.append(_layer_row(name or "bf16", name, args, device, dtype))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    result = {"model": args.model, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "dtype": str(dtype).replace("torch.", ""), "prefill_tokens": args.prefill, "decode_tokens": args.decode,
              "batch": args.batch, "models": models, "llama3_8b_layer": layers}
    print(format_tables(result))
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=1))
    return 0


def format_tables(result: dict) -> str:
    """The two tables ``run`` prints: the models against the first row, and the layer timings."""
    lines = [(f"{result['model']} on {result['device']} ({result['dtype']}, batch {result['batch']}, "
             f"prefill {result['prefill_tokens']} tokens, decode {result['decode_tokens']} steps)"),
             (f"{'model':<40}{'MB':>9}{'kernel layers':>15}{'prefill tok/s':>15}{'x':>7}"
             f"{'decode tok/s':>14}{'x':>7}{'peak GB':>9}")]
    base = result["models"][0]
    for row in result["models"]:
        decode = row["decode_tokens_per_s"]
        base_decode = base["decode_tokens_per_s"]
        peak = row["peak_memory_bytes"]
        lines.append(
            f"{row['model'][:39]:<40}{row['size_bytes'] / 2**20:>9.1f}{row['kernel_layers']:>15}"
            f"{row['prefill_tokens_per_s']:>15.0f}{row['prefill_tokens_per_s'] / base['prefill_tokens_per_s']:>7.2f}"
            + (f"{decode:>14.1f}{decode / base_decode:>7.2f}" if decode and base_decode else f"{'-':>14}{'-':>7}")
            + (f"{peak / 2**30:>9.2f}" if peak is not None else f"{'-':>9}"))
    if result["llama3_8b_layer"]:
        first = result["llama3_8b_layer"][0]
        columns = [("prefill_ms", "prefill ms"), ("decode_ms", "1-token ms")]
        if first.get("decode_graph_ms") is not None:
            columns += [("prefill_graph_ms", "graph prefill"), ("decode_graph_ms", "graph 1-token")]
        lines += ["", "one decoder layer of Llama-3-8B shape (random weights; x = bf16 time / this time"
                  + ("; graph = replayed from a CUDA graph" if len(columns) > 2 else "") + ")",
                  f"{'layer':<40}{'kernel layers':>15}" + "".join(f"{title:>15}{'x':>7}" for _, title in columns)]
        for row in result["llama3_8b_layer"]:
            lines.append(f"{row['layer'][:39]:<40}{row['kernel_layers']:>15}"
                         + "".join(f"{row[key]:>15.3f}{first[key] / row[key]:>7.2f}" for key, _ in columns))
    return "\n".join(lines)
