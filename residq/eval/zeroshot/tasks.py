"""Prompts of the log-likelihood tasks, rebuilt exactly as lm-evaluation-harness 0.4.x writes them.

The shipped files (``shared/data/tasks``) are already preprocessed into ``query`` / ``choices`` /
``gold`` (or ``context_options`` / ``continuation`` for WinoGrande, ``context`` /
``continuation`` for LAMBADA). Each builder below turns one row back into the harness's request
strings; the harness YAML it follows is quoted in its docstring. Every multiple-choice task uses
the default ``target_delimiter`` ``" "`` between context and choice.

HellaSwag reads the user's JSONL and applies the harness's ``hellaswag/utils.py`` preprocessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from residq.eval.zeroshot.choices import ChoiceDoc, CompletionDoc, choice_doc
from residq.eval.zeroshot.locations import read_jsonl, shipped_task_file, user_task_file

COPA_CONNECTORS = ("because", "therefore")


def arc_doc(row: dict) -> ChoiceDoc:
    """ARC (easy, challenge): ``"Question: {{question}}\\nAnswer:"``, choices ``choices.text``.
    The shipped ``query`` is ``"Question: " + question``."""
    return choice_doc(row["query"] + "\nAnswer:", row["choices"], row["gold"])


def piqa_doc(row: dict) -> ChoiceDoc:
    """PIQA: ``"Question: {{goal}}\\nAnswer:"``, choices ``[sol1, sol2]``.
    The shipped ``query`` is ``"Question: " + goal + "\\n"``."""
    if not row["query"].endswith("\n"):
        raise ValueError(f"PIQA query expected to end with a newline, got {row['query'][-20:]!r}")
    return choice_doc(row["query"] + "Answer:", row["choices"], row["gold"])


def openbookqa_doc(row: dict) -> ChoiceDoc:
    """OpenBookQA: ``doc_to_text: question_stem``, choices ``choices.text``.
    The shipped ``query`` is the question stem."""
    return choice_doc(row["query"], row["choices"], row["gold"])


def boolq_doc(row: dict) -> ChoiceDoc:
    """BoolQ (SuperGLUE): ``"{{passage}}\\nQuestion: {{question}}?\\nAnswer:"``, choices
    ``["no", "yes"]``. The shipped ``query`` is ``"Passage: " + passage + "\\nQuestion: " +
    question + "?"``."""
    prefix = "Passage: "
    if not row["query"].startswith(prefix):
        raise ValueError(f"BoolQ query expected to start with {prefix!r}, "
                         f"got {row['query'][:20]!r}")
    return choice_doc(row["query"][len(prefix):] + "\nAnswer:", row["choices"], row["gold"])


def copa_doc(row: dict) -> ChoiceDoc:
    """COPA (SuperGLUE, ``super_glue/copa/utils.py``): context ``premise[:-1] + " " + connector``
    (the final period dropped), choices ``" " + choice[0].lower() + choice[1:]``. With the
    default delimiter the scored continuation starts with two spaces, as in the harness.
    The shipped ``query`` is ``premise[:-1] + ", " + connector``."""
    query = row["query"]
    for connector in COPA_CONNECTORS:
        if query.endswith(", " + connector):
            context = query[: -len(", " + connector)] + " " + connector
            break
    else:
        raise ValueError(f"COPA query expected to end with ', because' or ', therefore', got "
                         f"{query[-30:]!r}")
    choices = [" " + choice[0].lower() + choice[1:] for choice in row["choices"]]
    return choice_doc(context, choices, row["gold"])


def winogrande_doc(row: dict) -> ChoiceDoc:
    """WinoGrande (``winogrande/preprocess_winogrande.py``), partial scoring: one context per
    option (``sentence[:blank] + option``), each scoring the shared continuation
    ``" " + sentence[blank + 1:].strip()``. The harness's "choices" are the contexts."""
    options = tuple(row["context_options"])
    continuation = " " + row["continuation"]
    return ChoiceDoc(contexts=options, continuations=(continuation,) * len(options),
                     choices=options, gold=int(row["gold"]))


def lambada_doc(row: dict) -> CompletionDoc:
    """LAMBADA (OpenAI): context ``text.split(' ')[:-1]|join(' ')``, target
    ``' ' + text.split(' ')[-1]``. The shipped row holds these without the space."""
    return CompletionDoc(context=row["context"], continuation=" " + row["continuation"])


def hellaswag_preprocess(text: str) -> str:
    """The harness's HellaSwag cleanup: strip, ``" [title]"`` -> ``". "``, drop ``[...]``
    (WikiHow artifacts), collapse one level of double spaces."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag_doc(row: dict) -> ChoiceDoc:
    """HellaSwag (``hellaswag/utils.py``): query ``preprocess(activity_label + ": " + ctx_a + " "
    + ctx_b.capitalize())``, choices ``preprocess(ending)``, gold ``int(label)``. Rows without
    ``ctx_a``/``ctx_b`` use ``ctx``; rows without ``activity_label`` drop the ``"label: "``
    prefix (both differ from the harness, which needs the full original fields)."""
    if "ctx_a" in row and "ctx_b" in row:
        context = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    else:
        context = row["ctx"]
    if "activity_label" in row:
        context = row["activity_label"] + ": " + context
    choices = [hellaswag_preprocess(ending) for ending in row["endings"]]
    return choice_doc(hellaswag_preprocess(context), choices, int(row["label"]))


@dataclass(frozen=True)
class TaskSpec:
    """A log-likelihood task: its file, the row -> doc builder, and the metrics it reports."""

    file_name: str
    build: Callable[[dict], ChoiceDoc | CompletionDoc]
    metrics: tuple[str, ...]
    user_provided: bool = False


CHOICE_METRICS = ("acc", "acc_norm", "acc_bytes")
LOGLIKELIHOOD_TASKS: dict[str, TaskSpec] = {
    "arc_easy": TaskSpec("arc_easy.jsonl", arc_doc, CHOICE_METRICS),
    "arc_challenge": TaskSpec("arc_challenge.jsonl", arc_doc, CHOICE_METRICS),
    "piqa": TaskSpec("piqa.jsonl", piqa_doc, CHOICE_METRICS),
    "openbookqa": TaskSpec("openbook_qa.jsonl", openbookqa_doc, CHOICE_METRICS),
    "boolq": TaskSpec("boolq.jsonl", boolq_doc, CHOICE_METRICS),
    "copa": TaskSpec("copa.jsonl", copa_doc, CHOICE_METRICS),
    # the continuation is shared by both options, so length normalization means nothing here
    "winogrande": TaskSpec("winogrande.jsonl", winogrande_doc, ("acc",)),
    "lambada_openai": TaskSpec("lambada_openai.jsonl", lambada_doc, ("acc", "ppl")),
    "hellaswag": TaskSpec("hellaswag", hellaswag_doc, CHOICE_METRICS, user_provided=True),
}


def task_file(task: str, data_dir: str | Path | None = None,
              task_dir: str | Path | None = None) -> Path:
    """The data file of a log-likelihood task (shipped, or in ``task_dir`` for HellaSwag)."""
    spec = LOGLIKELIHOOD_TASKS[task]
    if spec.user_provided:
        return user_task_file(task, task_dir)
    return shipped_task_file(spec.file_name, data_dir)


def load_task_docs(task: str, data_dir: str | Path | None = None,
                   task_dir: str | Path | None = None) -> list[ChoiceDoc] | list[CompletionDoc]:
    """Every doc of a log-likelihood task, in file order.

    Raises:
        KeyError: unknown task (the message lists the known ones).
    """
    if task not in LOGLIKELIHOOD_TASKS:
        raise KeyError(f"unknown log-likelihood task {task!r}; known: "
                       + ", ".join(sorted(LOGLIKELIHOOD_TASKS)))
    build = LOGLIKELIHOOD_TASKS[task].build
    return [build(row) for row in read_jsonl(task_file(task, data_dir, task_dir))]
