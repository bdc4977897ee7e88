"""``residq inspect MODEL --recipe NAME --out DIR``: quantize in memory and write the per-layer
report (``DIR/layer_report.json`` and ``DIR/layer_snr.png``): output SNR on held-out
calibration windows, the rank chosen, the energy kept and the branch's parameter/FLOP overhead."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``inspect`` on the ``residq`` command line."""
    p = subparsers.add_parser("inspect", help="quantize in memory and write a per-layer SNR/rank report")
    p.add_argument("model", help="HF directory, hub id, .gguf file, or smollm2-135m")
    p.add_argument("--recipe", required=True, help="preset name or .yaml/.json recipe file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field (repeatable), e.g. --set rank=64")
    p.add_argument("--calib", default="wikitext2", help="wikitext2 | c4 | path to .txt/.jsonl")
    p.add_argument("--calib-samples", type=int, default=128)
    p.add_argument("--holdout-samples", type=int, default=2, help="held-out windows for the SNR")
    p.add_argument("--seqlen", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0, help="calibration sampling seed")
    p.add_argument("--batch-size", type=int, default=8, help="calibration chunk size")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--data-dir", default=None, help="folder with the calibration data (or RESIDQ_DATA_DIR)")
    p.add_argument("--out", required=True, help="output directory for layer_report.json and layer_snr.png")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    """Quantize, write the report, print the summary line; 0 on success."""
    from residq.eval.layer_report import REPORT_JSON, REPORT_PNG, write_layer_report
    from residq.pipeline import load_any_model, quantize_with_calibration
    from residq.recipe import load_recipe

    if args.calib_samples < 1:
        raise ValueError(f"--calib-samples must be >= 1, got {args.calib_samples}")
    if args.holdout_samples < 1:
        raise ValueError(f"--holdout-samples must be >= 1 (the SNR needs held-out windows), got {args.holdout_samples}")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write {out}: parent directory {out.parent} does not exist")
    recipe = load_recipe(args.recipe).with_overrides(args.overrides)
    model, tokenizer, _ = load_any_model(args.model)
    result = quantize_with_calibration(
        model, tokenizer, recipe, calib=args.calib, n_samples=args.calib_samples, seqlen=args.seqlen,
        seed=args.seed, device=args.device, batch_size=args.batch_size, data_dir=args.data_dir,
        progress=not args.quiet, holdout_samples=args.holdout_samples,
    )
    report = write_layer_report(result.layers, result.recipe, out)
    s = report["summary"]
    mean = f"{s['mean_snr_db']:.2f} dB" if s["mean_snr_db"] is not None else "n/a"
    print(f"{recipe.name}: {s['layers']} layers, mean SNR {mean}, mean rank {s['mean_rank']:.1f}, "
          f"branch +{s['params_pct']:.2f}% params / FLOPs -> {out / REPORT_JSON}, {out / REPORT_PNG}")
    return 0
