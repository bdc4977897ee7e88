"""Quantize a model with several recipes, evaluate perplexity, append one JSON row per run.

Every number in docs/RESULTS.md comes from rows this script writes (see make_results_md.py).

    python scripts/run_recipes.py --recipes fp,w4a16-nvfp4-rtn,w4a16-nvfp4-gptq \
        --seqlen 512 --calib-samples 32 --max-windows 40 --out runs/bar.jsonl

``fp`` evaluates the float model. ``NAME+key=value+key=value`` applies recipe overrides
(e.g. ``w4a4-nvfp4-arhq+rank=64``). Rows already present in --out (same label and settings)
are skipped unless --force, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from residq.api import model_size_bytes, resolve_device, weight_bits
from residq.pipeline import evaluate_model, load_any_model, quantize_with_calibration
from residq.recipe import load_recipe


def parse_label(label: str):
    name, *overrides = label.split("+")
    return name, overrides


def activation_bits(recipe, records) -> float | None:
    """Average activation bits per element: the format's bits x (K + s) / K over the layers."""
    from residq.formats import bits_per_element

    if recipe.activation is None:
        return None
    values = []
    for record in records:
        k = record.in_features
        s = record.info.get("augmented", 0)
        values.append(bits_per_element(recipe.activation, k) * (k + s) / k)
    return statistics.mean(values) if values else None


_FLOAT_MODEL: dict = {}


def fresh_float_model(name: str):
    """The float model and tokenizer; loaded (GGUF dequantized) once per process, copied per run."""
    if name not in _FLOAT_MODEL:
        _FLOAT_MODEL[name] = load_any_model(name)[:2]
    model, tokenizer = _FLOAT_MODEL[name]
    return copy.deepcopy(model), tokenizer


def run_one(label: str, args) -> dict:
    device = resolve_device(args.device)
    model, tokenizer = fresh_float_model(args.model)
    row: dict = {"label": label, "model": args.model, "seqlen": args.seqlen, "calib": args.calib,
                 "calib_samples": args.calib_samples, "max_windows": args.max_windows,
                 "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
                 "date": datetime.date.today().isoformat()}
    if label != "fp":
        name, overrides = parse_label(label)
        recipe = load_recipe(name).with_overrides(overrides)
        result = quantize_with_calibration(model, tokenizer, recipe, calib=args.calib, n_samples=args.calib_samples,
                                           seqlen=args.seqlen, seed=args.seed, device=args.device,
                                           data_dir=args.data_dir, progress=not args.quiet)
        snrs = [r.info["snr_db"] for r in result.layers if "snr_db" in r.info]
        row.update({
            "recipe": recipe.to_dict(), "quant_seconds": result.seconds, "weight_bits": weight_bits(model),
            "act_bits": activation_bits(recipe, result.layers),
            "mean_layer_snr_db": statistics.mean(snrs) if snrs else None,
            "layers": [{"name": r.name, "in_features": r.in_features, "out_features": r.out_features,
                        "seconds": r.seconds, **r.info} for r in result.layers],
        })
    row["size_bytes"] = model_size_bytes(model)["total"]
    start = time.perf_counter()
    scores = evaluate_model(model, tokenizer, args.ppl.split(","), seqlen=args.seqlen, max_windows=args.max_windows,
                            device=args.device, data_dir=args.data_dir, progress=not args.quiet)
    row["ppl"] = scores["ppl"]
    row["ppl_windows"] = scores.get("ppl_windows", {})
    row["eval_seconds"] = time.perf_counter() - start
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", required=True, help="comma list of labels (fp, NAME, NAME+k=v)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--calib", default="wikitext2")
    parser.add_argument("--calib-samples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=512)
    parser.add_argument("--max-windows", type=int, default=None)
    parser.add_argument("--ppl", default="wikitext2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", required=True, help="JSON-lines file the rows are appended to")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists() and not args.force:
        for line in out.read_text().splitlines():
            row = json.loads(line)
            done.add((row["label"], row["seqlen"], row["calib_samples"], row["max_windows"]))
    for label in [x for x in args.recipes.split(",") if x]:
        if (label, args.seqlen, args.calib_samples, args.max_windows) in done:
            print(f"skip {label}: already in {out}")
            continue
        row = run_one(label, args)
        with out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        ppl = ", ".join(f"{k} {v:.4f}" for k, v in row["ppl"].items())
        print(f"{label}: {ppl}  quant {row.get('quant_seconds', 0):.1f} s  "
              f"snr {row.get('mean_layer_snr_db') or float('nan'):.2f} dB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
