"""Multiple-choice and completion documents, their scoring and their metrics (harness rules).

A ``ChoiceDoc`` holds the requests exactly as lm-evaluation-harness builds them for an
``output_type: multiple_choice`` task: ``(context, target_delimiter + choice)`` per choice, or for
a "multiple input" task (WinoGrande) ``(option-filled context, target_delimiter + shared
continuation)`` per option. Metrics follow the harness's ``process_results``:

- ``acc``: ``argmax_i loglik_i == gold``;
- ``acc_norm``: ``argmax_i loglik_i / len(choice_i)`` with the length in *characters* of the
  harness's choice string (``len(str)``, no delimiter); this is what lm_eval 0.4.x computes;
- ``acc_bytes``: the same with the length in UTF-8 bytes (the harness's ``acc_bytes``).
  On ASCII text both normalizations agree.

A ``CompletionDoc`` (LAMBADA) is one ``(context, continuation)`` request; ``acc`` is greedy exact
match of every continuation token and ``ppl = exp(-mean_doc loglik_doc)`` (the harness's
``perplexity`` aggregation: a mean over documents of the summed continuation log-likelihood).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from residq.eval.zeroshot.scorer import encode_pair, resolve_max_length, score_requests


@dataclass(frozen=True)
class ChoiceDoc:
    """One multiple-choice question as harness requests.

    Attributes:
        contexts: one context per choice (equal for ordinary tasks).
        continuations: one scored continuation per choice (delimiter included).
        choices: the harness's ``doc_to_choice`` strings; their lengths normalize acc_norm.
        gold: index of the correct choice.
    """

    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    choices: tuple[str, ...]
    gold: int

    def __post_init__(self):
        n = len(self.choices)
        if len(self.contexts) != n or len(self.continuations) != n:
            raise ValueError(f"expected one context and one continuation per choice ({n}), "
                             f"got {len(self.contexts)} contexts and "
                             f"{len(self.continuations)} continuations")
        if not 0 <= self.gold < n:
            raise ValueError(f"gold index {self.gold} outside the {n} choices")


@dataclass(frozen=True)
class CompletionDoc:
    """One ``(context, continuation)`` request scored for greedy match and likelihood."""

    context: str
    continuation: str


def choice_doc(context: str, choices: Sequence[str], gold: int, delimiter: str = " ") -> ChoiceDoc:
    """An ordinary multiple-choice doc: one context, continuation ``delimiter + choice``."""
    choices = tuple(choices)
    return ChoiceDoc(contexts=(context,) * len(choices),
                     continuations=tuple(delimiter + choice for choice in choices),
                     choices=choices, gold=int(gold))


def choice_predictions(logliks: Sequence[float], choices: Sequence[str]) -> dict[str, int]:
    """Predicted index under each rule: ``acc`` (raw), ``acc_norm`` (per character),
    ``acc_bytes`` (per UTF-8 byte). ``np.argmax`` keeps the first of equal scores."""
    lls = np.asarray(logliks, dtype=np.float64)
    chars = np.array([float(len(choice)) for choice in choices])
    n_bytes = np.array([float(len(choice.encode("utf-8"))) for choice in choices])
    return {"acc": int(np.argmax(lls)), "acc_norm": int(np.argmax(lls / chars)),
            "acc_bytes": int(np.argmax(lls / n_bytes))}


def score_choice_docs(model, tokenizer, docs: Sequence[ChoiceDoc], batch_size: int = 16,
                      device=None, progress: bool = True,
                      description: str = "choices") -> list[list[float]]:
    """Log-likelihood of every choice of every doc: ``result[d][i]`` (natural log)."""
    max_length = resolve_max_length(model, tokenizer)
    requests = [encode_pair(tokenizer, context, continuation)
                for doc in docs for context, continuation in zip(doc.contexts, doc.continuations)]
    scores = score_requests(model, requests, batch_size=batch_size, max_length=max_length,
                            device=device, progress=progress, description=description)
    logliks, position = [], 0
    for doc in docs:
        logliks.append([loglik for loglik, _ in scores[position: position + len(doc.choices)]])
        position += len(doc.choices)
    return logliks


def choice_metrics(docs: Sequence[ChoiceDoc], logliks: Sequence[Sequence[float]],
                   metrics: Sequence[str] = ("acc", "acc_norm")) -> dict[str, float]:
    """Mean of each requested rule's correctness over docs, plus ``n``."""
    if not docs:
        raise ValueError("no documents to score")
    hits = {name: 0 for name in metrics}
    for doc, lls in zip(docs, logliks, strict=True):
        predicted = choice_predictions(lls, doc.choices)
        for name in metrics:
            hits[name] += int(predicted[name] == doc.gold)
    result: dict[str, float] = {name: hits[name] / len(docs) for name in metrics}
    result["n"] = len(docs)
    return result


def score_completion_docs(model, tokenizer, docs: Sequence[CompletionDoc], batch_size: int = 16,
                          device=None, progress: bool = True,
                          description: str = "completion") -> dict[str, float]:
    """``{"acc": greedy exact-match rate, "ppl": exp(-mean loglik), "n": docs}``."""
    if not docs:
        raise ValueError("no documents to score")
    requests = [encode_pair(tokenizer, doc.context, doc.continuation) for doc in docs]
    scores = score_requests(model, requests, batch_size=batch_size,
                            max_length=resolve_max_length(model, tokenizer), device=device,
                            progress=progress, description=description)
    mean_loglik = sum(loglik for loglik, _ in scores) / len(scores)
    return {"acc": sum(greedy for _, greedy in scores) / len(scores),
            "ppl": math.exp(-mean_loglik), "n": len(docs)}
