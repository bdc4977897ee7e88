"""Command line: thin wrappers that turn flags into a Recipe and call the library."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from residq.models.loading import DEFAULT_MODEL


def _add_calibration_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", required=True, help="preset name or .yaml/.json recipe file")
    parser.add_argument("--calib", default="wikitext2", help="wikitext2 | c4 | path to .txt/.jsonl")
    parser.add_argument("--calib-samples", type=int, default=128)
    parser.add_argument("--seqlen", type=int, default=2048)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field (repeatable), e.g. --set damp=0.02")
    parser.add_argument("--batch-size", type=int, default=8, help="calibration chunk size")
    parser.add_argument("--seed", type=int, default=0, help="calibration sampling seed")


def _add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="folder with the evaluation data (or RESIDQ_DATA_DIR)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="residq", description="Post-training quantization of LLMs")
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quantize", help="quantize a model and save it")
    q.add_argument("model", help="HF directory, hub id, .gguf file, or smollm2-135m")
    _add_calibration_flags(q)
    q.add_argument("--out", required=True, help="output directory (written atomically)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    _add_common_flags(q)

    e = sub.add_parser("eval", help="perplexity (and zero-shot tasks) of a model or checkpoint")
    e.add_argument("model", help="model name/path or a residq checkpoint directory")
    e.add_argument("--ppl", default="wikitext2", help="comma list of wikitext2,ptb,c4 (empty for none)")
    e.add_argument("--seqlen", type=int, default=2048)
    e.add_argument("--max-windows", type=int, default=None)
    e.add_argument("--tasks", default="", help="comma list of zero-shot tasks")
    e.add_argument("--limit", type=int, default=None, help="rows per task (seeded random subset)")
    e.add_argument("--task-dir", default=None, help="folder with user-provided task data (MMLU, ...)")
    e.add_argument("--device", default="auto")
    e.add_argument("--json", default=None, help="write results to this JSON file")
    _add_common_flags(e)

    d = sub.add_parser("demo", help="quantize smollm2-135m with several recipes and print a table")
    d.add_argument("--model", default=DEFAULT_MODEL)
    d.add_argument("--recipes", default=None, help="comma list (default: the demo set)")
    d.add_argument("--calib-samples", type=int, default=16)
    d.add_argument("--seqlen", type=int, default=512)
    d.add_argument("--max-windows", type=int, default=16)
    d.add_argument("--device", default="auto")
    _add_common_flags(d)
    for module in _extra_command_modules():
        module.add_parser(sub)
    return parser


def _extra_command_modules() -> list:
    import importlib
    import importlib.util

    from residq.commands import COMMAND_MODULES

    names = [f"residq.commands.{name}" for name in COMMAND_MODULES]
    return [importlib.import_module(n) for n in names if importlib.util.find_spec(n) is not None]


def cmd_quantize(args: argparse.Namespace) -> int:
    from residq.checkpoint import prepare_output_dir, save
    from residq.pipeline import load_any_model, quantize_with_calibration
    from residq.recipe import load_recipe

    recipe = load_recipe(args.recipe).with_overrides(args.overrides)
    out = prepare_output_dir(args.out, args.overwrite)
    model, tokenizer, _ = load_any_model(args.model)
    result = quantize_with_calibration(
        model, tokenizer, recipe, calib=args.calib, n_samples=args.calib_samples, seqlen=args.seqlen,
        seed=args.seed, device=args.device, batch_size=args.batch_size, data_dir=args.data_dir,
        progress=not args.quiet,
    )
    save(model, tokenizer, out, recipe, overwrite=args.overwrite)
    print(f"quantized {args.model} with {recipe.name} in {result.seconds:.1f} s -> {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from residq.pipeline import evaluate_model, load_any_model

    start = time.perf_counter()
    model, tokenizer, _ = load_any_model(args.model)
    datasets = [d for d in args.ppl.split(",") if d]
    tasks = [t for t in args.tasks.split(",") if t]
    results = evaluate_model(model, tokenizer, datasets, seqlen=args.seqlen, max_windows=args.max_windows,
                             tasks=tasks, limit=args.limit, task_dir=args.task_dir, device=args.device,
                             data_dir=args.data_dir, progress=not args.quiet)
    results["model"] = args.model
    for name, value in results["ppl"].items():
        print(f"{name} perplexity (seqlen {args.seqlen}): {value:.4f}")
    for task, scores in results.get("tasks", {}).items():
        print(f"{task}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in scores.items() if not isinstance(v, dict)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from residq.demo import run_demo

    recipes = args.recipes.split(",") if args.recipes else None
    run_demo(args.model, recipes, calib_samples=args.calib_samples, seqlen=args.seqlen,
             max_windows=args.max_windows, device=args.device, data_dir=args.data_dir,
             progress=not args.quiet)
    return 0


COMMANDS = {"quantize": cmd_quantize, "eval": cmd_eval, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = dict(COMMANDS)
    for module in _extra_command_modules():
        commands[module.__name__.rsplit(".", 1)[1]] = module.run
    from residq.commands import transformers_bars

    try:
        with transformers_bars(enabled=not getattr(args, "quiet", False)):
            return commands[args.command](args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"residq {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
