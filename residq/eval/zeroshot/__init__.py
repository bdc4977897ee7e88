"""Zero-shot (and MMLU 5-shot, GSM8K 8-shot) task evaluation, faithful to lm-evaluation-harness.

``evaluate_tasks(model, tokenizer, ["arc_easy", "piqa"], limit=500)`` scores with the native
batched scorer; ``engine="harness"`` runs the same rows through ``lm_eval`` when installed.
"""

from residq.eval.zeroshot.evaluate import TASK_NAMES, evaluate_tasks

__all__ = ["TASK_NAMES", "evaluate_tasks"]
