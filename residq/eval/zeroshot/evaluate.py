"""One entry point for zero-shot (and MMLU 5-shot / GSM8K 8-shot) task evaluation.

``evaluate_tasks`` runs each task with the native scorer (always available) or through
lm-evaluation-harness (``engine="harness"``, needs ``lm_eval``), and returns the same shape::

    {"arc_easy": {"acc": .., "acc_norm": .., "acc_bytes": .., "n": ..},
     "winogrande": {"acc": .., "n": ..},
     "lambada_openai": {"acc": .., "ppl": .., "n": ..},
     "mmlu": {"acc": .., "n": .., "categories": {..}, "subjects": {..}},
     "gsm8k": {"exact_match": .., "exact_match_flexible": .., "n": ..}}

(``{"tasks": evaluate_tasks(...)}`` is the JSON report.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from residq.eval.zeroshot.choices import choice_metrics, score_choice_docs, score_completion_docs
from residq.eval.zeroshot.gsm8k import evaluate_gsm8k
from residq.eval.zeroshot.harness import evaluate_with_harness
from residq.eval.zeroshot.mmlu import evaluate_mmlu
from residq.eval.zeroshot.subset import take_subset
from residq.eval.zeroshot.tasks import LOGLIKELIHOOD_TASKS, load_task_docs

FEWSHOT_TASKS = ("mmlu", "gsm8k")
TASK_NAMES = tuple(LOGLIKELIHOOD_TASKS) + FEWSHOT_TASKS
ENGINES = ("native", "harness")


def check_task_names(tasks: Sequence[str]) -> None:
    """Raise ``ValueError`` naming any unknown task (and listing the known ones)."""
    if isinstance(tasks, str):
        raise TypeError(f"tasks must be a list of names, got the string {tasks!r}")
    unknown = [task for task in tasks if task not in TASK_NAMES]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known: {', '.join(TASK_NAMES)}")


def evaluate_loglikelihood_task(model, tokenizer, task: str, limit: int | None = None,
                                seed: int = 0, batch_size: int = 16,
                                data_dir: str | Path | None = None,
                                task_dir: str | Path | None = None, device=None,
                                progress: bool = True) -> dict[str, float]:
    """One multiple-choice or LAMBADA-style task with the native scorer."""
    docs = take_subset(load_task_docs(task, data_dir, task_dir), limit, seed)
    metrics = LOGLIKELIHOOD_TASKS[task].metrics
    if "ppl" in metrics:
        return score_completion_docs(model, tokenizer, docs, batch_size, device, progress, task)
    logliks = score_choice_docs(model, tokenizer, docs, batch_size, device, progress, task)
    return choice_metrics(docs, logliks, metrics)


def evaluate_native(model, tokenizer, task: str, limit: int | None = None, seed: int = 0,
                    batch_size: int = 16, data_dir: str | Path | None = None,
                    task_dir: str | Path | None = None, device=None,
                    progress: bool = True) -> dict:
    """One task of ``TASK_NAMES`` with the native engine."""
    if task == "mmlu":
        return evaluate_mmlu(model, tokenizer, task_dir, limit, seed, batch_size, device, progress)
    if task == "gsm8k":
        return evaluate_gsm8k(model, tokenizer, task_dir, limit, seed, batch_size, device, progress)
    return evaluate_loglikelihood_task(model, tokenizer, task, limit, seed, batch_size, data_dir,
                                       task_dir, device, progress)


def evaluate_tasks(model, tokenizer, tasks: list[str], limit: int | None = None, seed: int = 0,
                   batch_size: int = 16, data_dir: str | Path | None = None,
                   task_dir: str | Path | None = None, engine: str = "native",
                   progress: bool = True, device=None) -> dict[str, dict]:
    """Evaluate ``model`` on ``tasks`` and return ``{task: metrics}`` (module docstring).

    Args:
        model: causal LM (``model(input_ids).logits``; ``generate`` for GSM8K), in eval mode.
        tokenizer: its Hugging Face tokenizer.
        tasks: names from ``TASK_NAMES``.
        limit: evaluate a random subset of this many rows per task (per subject for MMLU),
            drawn with ``seed``; None: every row.
        seed: seed of the subset (default 0, so ``limit`` runs are reproducible).
        batch_size: sequences per forward pass.
        data_dir: data folder holding ``tasks/`` (``residq.data.locate.resolve_data_dir``).
        task_dir: folder with the user-provided MMLU / HellaSwag / GSM8K data.
        engine: ``"native"`` or ``"harness"`` (lm-evaluation-harness on the same rows).
        progress: show progress bars.
        device: where inputs go (default: the model's device).
    """
    check_task_names(tasks)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "harness":
        return evaluate_with_harness(model, tokenizer, tasks, limit, seed, batch_size, data_dir,
                                     task_dir, progress, device)
    return {task: evaluate_native(model, tokenizer, task, limit, seed, batch_size, data_dir,
                                  task_dir, device, progress) for task in tasks}
