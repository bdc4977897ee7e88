"""``residq compare MODEL --recipes a,b,c --out DIR``: quantize with each recipe, evaluate each
and the float model, write ``DIR/report.md``, ``DIR/report.json`` and PNG plots."""

from __future__ import annotations

import argparse
import time

from residq.commands import transformers_bars
from residq.models.loading import DEFAULT_MODEL


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``compare`` on the ``residq`` command line."""
    p = subparsers.add_parser("compare", help="compare recipes on one model: report table and plots")
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                   help=f"HF directory, hub id, .gguf file, or {DEFAULT_MODEL} (default)")
    p.add_argument("--recipes", required=True, help="comma list of presets, recipe files or NAME+key=value")
    p.add_argument("--calib", default="wikitext2", help="wikitext2 | c4 | ptb | path to .txt/.jsonl")
    p.add_argument("--calib-samples", type=int, default=128)
    p.add_argument("--seqlen", type=int, default=2048, help="calibration and perplexity window length")
    p.add_argument("--seed", type=int, default=0, help="calibration sampling seed")
    p.add_argument("--batch-size", type=int, default=8, help="calibration chunk size")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of every recipe (repeatable)")
    p.add_argument("--ppl", default="wikitext2", help="comma list of wikitext2,ptb,c4 (empty for none)")
    p.add_argument("--max-windows", type=int, default=None, help="evaluate the first N perplexity windows")
    p.add_argument("--tasks", default="", help="comma list of zero-shot tasks (e.g. arc_easy,piqa)")
    p.add_argument("--limit", type=int, default=None, help="rows per task (seeded random subset)")
    p.add_argument("--task-dir", default=None, help="folder with user-provided task data (MMLU, ...)")
    p.add_argument("--plot-layer", default=None,
                   help="linear whose input channels are plotted (default: the middle block's down_proj)")
    p.add_argument("--holdout-samples", type=int, default=2,
                   help="held-out windows for per-layer SNR and the activation plot")
    p.add_argument("--out", required=True, help="output directory for report.md, report.json and PNGs")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--data-dir", default=None, help="folder with the evaluation data (or RESIDQ_DATA_DIR)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    return p


def _settings(args: argparse.Namespace):
    from residq.eval.compare_run import CompareSettings

    if args.calib_samples < 1:
        raise ValueError(f"--calib-samples must be >= 1, got {args.calib_samples}")
    if args.holdout_samples < 0:
        raise ValueError(f"--holdout-samples must be >= 0, got {args.holdout_samples}")
    return CompareSettings(
        model=args.model, recipes=_comma_list(args.recipes), out=args.out, calib=args.calib,
        calib_samples=args.calib_samples, seqlen=args.seqlen, seed=args.seed, batch_size=args.batch_size,
        overrides=list(args.overrides), ppl=_comma_list(args.ppl), max_windows=args.max_windows,
        tasks=_comma_list(args.tasks), limit=args.limit, task_dir=args.task_dir, data_dir=args.data_dir,
        device=args.device, plot_layer=args.plot_layer, holdout_samples=args.holdout_samples,
        progress=not args.quiet,
    )


def run(args: argparse.Namespace) -> int:
    """Run the comparison; print the table and a summary line with the wall time."""
    from residq.eval.compare_run import run_comparison
    from residq.eval.plots import write_plots
    from residq.eval.report import markdown_table, report_document, write_report

    start = time.perf_counter()
    settings = _settings(args)
    with transformers_bars(enabled=not args.quiet):
        comparison = run_comparison(settings)
    document = report_document(comparison.settings, comparison.rows, comparison.layer_snr, comparison.activations,
                               comparison.seconds)
    write_report(args.out, document)  # the numbers are safe on disk before any plotting
    plots = write_plots(args.out, document)
    md_path, _ = write_report(args.out, document, [str(p) for p in plots])
    print(markdown_table(comparison.rows))
    print(f"residq compare: {len(comparison.rows) - 1} recipes + FP on {args.model} in "
          f"{time.perf_counter() - start:.1f} s -> {md_path} ({len(plots)} plots)")
    return 0
