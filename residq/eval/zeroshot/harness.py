"""lm-evaluation-harness adapter: the same tasks, the same rows, scored by ``lm_eval`` itself.

Offline recipe (lm_eval 0.4.x): task YAMLs written to a temporary folder with
``dataset_path: json`` and ``dataset_kwargs: {data_files: ...}`` pointing at the local files,
loaded through ``TaskManager(include_path=folder)``; the model is passed as
``HFLM(pretrained=model, tokenizer=tokenizer)``. Nothing is fetched from the Hugging Face Hub
(``json`` is a packaged ``datasets`` builder), so it runs offline.

- Shipped tasks (already preprocessed files): jinja prompts over ``query`` / ``choices`` /
  ``gold`` that rebuild the harness's own prompts (see ``tasks.py`` for the originals).
- HellaSwag and GSM8K: the harness's own ``hellaswag.yaml`` / ``gsm8k-cot.yaml`` are
  ``include``-d unchanged apart from the data source (HellaSwag then needs the original fields
  ``activity_label``, ``ctx_a``, ``ctx_b``, ``endings``, ``label``).
- MMLU: the CSVs are converted to JSONL in the ``cais/mmlu`` schema and every subject includes
  the harness's ``_default_template_yaml`` with 5 shots, grouped with ``weight_by_size``.

``limit`` picks the same seeded rows as the native engine (passed as the harness's ``samples``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from residq.eval.zeroshot.locations import mmlu_folder, read_jsonl, user_task_file
from residq.eval.zeroshot.mmlu import (
    NUM_FEWSHOT,
    aggregate_mmlu,
    mmlu_subjects,
    read_mmlu_csv,
)
from residq.eval.zeroshot.subset import subset_indices
from residq.eval.zeroshot.tasks import LOGLIKELIHOOD_TASKS, task_file

PREFIX = "residq_"
MMLU_GROUP = PREFIX + "mmlu"
SHIPPED_TEMPLATES: dict[str, tuple[str, str]] = {  # task -> (doc_to_text, doc_to_choice)
    "arc_easy": ("{{query}}\nAnswer:", "{{choices}}"),
    "arc_challenge": ("{{query}}\nAnswer:", "{{choices}}"),
    "piqa": ("{{query}}Answer:", "{{choices}}"),
    "openbookqa": ("{{query}}", "{{choices}}"),
    "boolq": ("{{query[9:]}}\nAnswer:", "{{choices}}"),  # drop "Passage: "
    "copa": (("{{query[:-11] ~ ' therefore' if query.endswith(', therefore') "
              "else query[:-9] ~ ' because'}}"),
             ("{{[' ' ~ choices[0][0]|lower ~ choices[0][1:], "
              "' ' ~ choices[1][0]|lower ~ choices[1][1:]]}}")),
}
HARNESS_METRIC_KEYS = {"acc": "acc,none", "acc_norm": "acc_norm,none",
                       "acc_bytes": "acc_bytes,none", "ppl": "perplexity,none",
                       "exact_match": "exact_match,strict-match",
                       "exact_match_flexible": "exact_match,flexible-extract"}


def import_lm_eval():
    """``(simple_evaluate, TaskManager, HFLM)`` from lm_eval, or a clear ImportError."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as error:
        raise ImportError("engine='harness' needs lm-evaluation-harness: pip install lm_eval "
                          "(0.4.x); use engine='native' otherwise") from error
    return simple_evaluate, TaskManager, HFLM


def harness_task_folder() -> Path:
    """The folder of lm_eval's bundled task YAMLs."""
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def _metric_list(metrics: Sequence[str]) -> list[dict]:
    entries = []
    for metric in metrics:
        if metric == "ppl":
            entries.append({"metric": "perplexity", "aggregation": "perplexity",
                            "higher_is_better": False})
        else:
            entries.append({"metric": metric, "aggregation": "mean", "higher_is_better": True})
    return entries


def shipped_task_config(task: str, data_file: Path) -> dict:
    """Task config for a shipped (preprocessed) file."""
    config = {"task": PREFIX + task, "dataset_path": "json", "dataset_name": None,
              "dataset_kwargs": {"data_files": {"test": str(data_file)}}, "test_split": "test",
              "metric_list": _metric_list(LOGLIKELIHOOD_TASKS[task].metrics)}
    if task == "winogrande":
        config.update(output_type="multiple_choice", doc_to_text="gold",
                      doc_to_choice="{{context_options}}", doc_to_target="{{continuation}}")
    elif task == "lambada_openai":
        config.update(output_type="loglikelihood", doc_to_text="{{context}}",
                      doc_to_target="{{' ' + continuation}}")
    else:
        text, choice = SHIPPED_TEMPLATES[task]
        config.update(output_type="multiple_choice", doc_to_text=text, doc_to_choice=choice,
                      doc_to_target="gold")
    return config


def included_task_config(task: str, data_file: Path) -> dict:
    """HellaSwag / GSM8K: the harness's own YAML with only the data source replaced."""
    included, split = {"hellaswag": ("hellaswag/hellaswag.yaml", "validation"),
                       "gsm8k": ("gsm8k/gsm8k-cot.yaml", "test")}[task]
    config = {"include": str(harness_task_folder() / included), "task": PREFIX + task,
              "dataset_path": "json", "dataset_name": None,
              "dataset_kwargs": {"data_files": {split: str(data_file)}},
              "training_split": None, "validation_split": None, "test_split": None}
    config["validation_split" if split == "validation" else "test_split"] = split
    if task == "hellaswag":
        config["metric_list"] = _metric_list(LOGLIKELIHOOD_TASKS[task].metrics)
    return config


def write_mmlu_configs(folder: Path, mmlu_dir: Path) -> dict[str, int]:
    """JSONL splits + one config per subject + the group config; returns ``{subject: n_test}``."""
    template = harness_task_folder() / "mmlu" / "default" / "_default_template_yaml"
    sizes = {}
    for subject in mmlu_subjects(mmlu_dir):
        files = {}
        for split in ("dev", "test"):
            rows = read_mmlu_csv(mmlu_dir / split / f"{subject}_{split}.csv")
            files[split] = str(folder / f"mmlu_{subject}_{split}.jsonl")
            _write_jsonl(Path(files[split]), [{"question": r.question, "subject": subject,
                                               "choices": list(r.choices), "answer": r.answer}
                                              for r in rows])
            sizes[subject] = len(rows)
        _write_yaml(folder / f"mmlu_{subject}.yaml", {
            "include": str(template), "task": f"{MMLU_GROUP}_{subject}", "dataset_path": "json",
            "dataset_name": None, "dataset_kwargs": {"data_files": files},
            "num_fewshot": NUM_FEWSHOT,
            "description": "The following are multiple choice questions (with answers) about "
                           f"{' '.join(subject.split('_'))}.\n\n"})
    _write_yaml(folder / "mmlu_group.yaml", {
        "group": MMLU_GROUP, "task": [f"{MMLU_GROUP}_{s}" for s in sizes],
        "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}]})
    return sizes


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _write_yaml(path: Path, config: dict) -> None:
    # JSON is valid YAML; it keeps every string (newlines, quotes, jinja) unambiguous.
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")


def write_task_configs(folder: Path, tasks: Sequence[str], limit: int | None, seed: int,
                       data_dir, task_dir) -> tuple[list[str], dict[str, list[int]]]:
    """Write every config; return the harness task names to run and their row indices."""
    names, samples = [], {}
    for task in tasks:
        if task == "mmlu":
            sizes = write_mmlu_configs(folder, mmlu_folder(task_dir))
            names.append(MMLU_GROUP)
            samples.update({f"{MMLU_GROUP}_{s}": subset_indices(n, limit, seed)
                            for s, n in sizes.items()})
            continue
        if task in LOGLIKELIHOOD_TASKS and not LOGLIKELIHOOD_TASKS[task].user_provided:
            data_file = task_file(task, data_dir, task_dir)
            config = shipped_task_config(task, data_file)
        else:
            data_file = user_task_file(task, task_dir)
            config = included_task_config(task, data_file)
        _write_yaml(folder / f"{task}.yaml", config)
        names.append(PREFIX + task)
        samples[PREFIX + task] = subset_indices(len(read_jsonl(data_file)), limit, seed)
    return names, samples


def _task_result(task: str, results: dict) -> dict:
    if task == "mmlu":
        subjects = {name[len(MMLU_GROUP) + 1:]: {"acc": float(values["acc,none"]),
                                                 "n": int(results["n-samples"][name]["effective"])}
                    for name, values in results["results"].items()
                    if name.startswith(MMLU_GROUP + "_")}
        summary = aggregate_mmlu(subjects)
        summary["acc"] = float(results["results"][MMLU_GROUP]["acc,none"])  # the harness's mean
        return summary
    values = results["results"][PREFIX + task]
    metrics = ("exact_match", "exact_match_flexible") if task == "gsm8k" else \
        LOGLIKELIHOOD_TASKS[task].metrics
    summary = {metric: float(values[HARNESS_METRIC_KEYS[metric]]) for metric in metrics}
    summary["n"] = int(results["n-samples"][PREFIX + task]["effective"])
    return summary


def evaluate_with_harness(model, tokenizer, tasks: Sequence[str], limit: int | None = None,
                          seed: int = 0, batch_size: int = 16, data_dir=None, task_dir=None,
                          progress: bool = True, device=None) -> dict[str, dict]:
    """Run ``tasks`` through lm-evaluation-harness; same result shape as the native engine
    (``evaluate_tasks``). The harness shows its own progress bars (``progress`` is unused)."""
    simple_evaluate, TaskManager, HFLM = import_lm_eval()
    with tempfile.TemporaryDirectory(prefix="residq_lm_eval_") as tmp:
        names, samples = write_task_configs(Path(tmp), tasks, limit, seed, data_dir, task_dir)
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                  **({"device": str(device)} if device is not None else {}))
        results = simple_evaluate(model=lm, tasks=names, samples=samples if limit else None,
                                  task_manager=TaskManager(include_path=tmp,
                                                           include_defaults=False),
                                  bootstrap_iters=0, log_samples=False)
    return {task: _task_result(task, results) for task in tasks}
