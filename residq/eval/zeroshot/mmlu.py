"""MMLU 5-shot (Hendrycks et al. 2021) from the original CSV layout, as lm-evaluation-harness's
``mmlu`` (default) task group scores it.

Layout: ``dev/<subject>_dev.csv`` and ``test/<subject>_test.csv``, rows
``question,A,B,C,D,answer-letter`` without a header.

Prompt per subject (``mmlu/default/_default_template_yaml``, ``first_n`` few-shot sampler)::

    The following are multiple choice questions (with answers) about <subject words>.\\n\\n
    <dev question 1>\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer: <letter>\\n\\n   (x 5, dev order)
    <test question>\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer:

each question ``.strip()``-ed, choices as written; the continuations are ``" A"`` .. ``" D"``.
Accuracy per subject; the category groups and the overall ``mmlu`` score are averages weighted
by the number of questions (the harness's ``weight_by_size: True``), i.e. the pooled accuracy.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from residq.eval.zeroshot.choices import ChoiceDoc, choice_doc, choice_metrics, score_choice_docs
from residq.eval.zeroshot.locations import mmlu_folder
from residq.eval.zeroshot.subset import take_subset

LETTERS = ("A", "B", "C", "D")
NUM_FEWSHOT = 5
UNCATEGORIZED = "uncategorized"

_STEM = ("abstract_algebra anatomy astronomy college_biology college_chemistry "
         "college_computer_science college_mathematics college_physics computer_security "
         "conceptual_physics electrical_engineering elementary_mathematics high_school_biology "
         "high_school_chemistry high_school_computer_science high_school_mathematics "
         "high_school_physics high_school_statistics machine_learning")
_HUMANITIES = ("formal_logic high_school_european_history high_school_us_history "
               "high_school_world_history international_law jurisprudence logical_fallacies "
               "moral_disputes moral_scenarios philosophy prehistory professional_law "
               "world_religions")
_SOCIAL_SCIENCES = ("econometrics high_school_geography high_school_government_and_politics "
                    "high_school_macroeconomics high_school_microeconomics "
                    "high_school_psychology human_sexuality professional_psychology "
                    "public_relations security_studies sociology us_foreign_policy")
_OTHER = ("business_ethics clinical_knowledge college_medicine global_facts human_aging "
          "management marketing medical_genetics miscellaneous nutrition "
          "professional_accounting professional_medicine virology")
# The harness's subject -> category table (mmlu/_generate_configs.py), 57 subjects.
SUBJECT_CATEGORIES: dict[str, str] = {
    subject: category
    for category, names in (("stem", _STEM), ("humanities", _HUMANITIES),
                            ("social_sciences", _SOCIAL_SCIENCES), ("other", _OTHER))
    for subject in names.split()
}


@dataclass(frozen=True)
class MMLUQuestion:
    """One CSV row: the question, its four choices, and the answer index (0..3)."""

    question: str
    choices: tuple[str, str, str, str]
    answer: int


def read_mmlu_csv(path: Path) -> list[MMLUQuestion]:
    """Rows of an MMLU CSV (no header; six fields; answer letter A-D)."""
    questions = []
    with open(path, encoding="utf-8", newline="") as handle:
        for line_number, fields in enumerate(csv.reader(handle), start=1):
            if len(fields) != 6 or fields[5].strip() not in LETTERS:
                raise ValueError(f"{path}:{line_number}: expected question,A,B,C,D,answer-letter "
                                 f"(A-D), got {len(fields)} fields ending {fields[-1:]!r}")
            questions.append(MMLUQuestion(fields[0], tuple(fields[1:5]),
                                          LETTERS.index(fields[5].strip())))
    return questions


def mmlu_subjects(folder: Path) -> list[str]:
    """Subjects with a test file, sorted."""
    test_files = (folder / "test").glob("*_test.csv")
    subjects = sorted(path.name[: -len("_test.csv")] for path in test_files)
    if not subjects:
        raise FileNotFoundError(f"no <subject>_test.csv files in {folder / 'test'}")
    return subjects


def question_text(question: MMLUQuestion) -> str:
    """``question\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer:``."""
    lines = [question.question.strip()]
    lines += [f"{letter}. {choice}" for letter, choice in zip(LETTERS, question.choices)]
    return "\n".join(lines) + "\nAnswer:"


def fewshot_prompt(subject: str, shots: list[MMLUQuestion], question: MMLUQuestion) -> str:
    """The full 5-shot context for ``question`` (module docstring)."""
    description = ("The following are multiple choice questions (with answers) about "
                   f"{' '.join(subject.split('_'))}.\n\n")
    examples = "".join(f"{question_text(shot)} {LETTERS[shot.answer]}\n\n" for shot in shots)
    return description + examples + question_text(question)


def subject_docs(folder: Path, subject: str, limit: int | None = None,
                 seed: int = 0) -> list[ChoiceDoc]:
    """The (seeded-subset) test questions of one subject as 5-shot choice docs."""
    shots = read_mmlu_csv(folder / "dev" / f"{subject}_dev.csv")[:NUM_FEWSHOT]
    if len(shots) < NUM_FEWSHOT:
        raise ValueError(f"{subject}: expected {NUM_FEWSHOT} dev questions for the few-shot "
                         f"prompt, got {len(shots)}")
    tests = take_subset(read_mmlu_csv(folder / "test" / f"{subject}_test.csv"), limit, seed)
    return [choice_doc(fewshot_prompt(subject, shots, q), LETTERS, q.answer) for q in tests]


def aggregate_mmlu(subjects: dict[str, dict[str, float]]) -> dict:
    """Overall and per-category accuracy weighted by size, from ``{subject: {"acc", "n"}}``."""
    totals: dict[str, list[float]] = {}
    for subject, result in subjects.items():
        category = SUBJECT_CATEGORIES.get(subject, UNCATEGORIZED)
        hits_and_count = totals.setdefault(category, [0.0, 0])
        hits_and_count[0] += result["acc"] * result["n"]
        hits_and_count[1] += result["n"]
    n = sum(count for _, count in totals.values())
    return {
        "acc": sum(hits for hits, _ in totals.values()) / n,
        "n": n,
        "categories": {name: {"acc": hits / count, "n": count}
                       for name, (hits, count) in sorted(totals.items())},
        "subjects": dict(sorted(subjects.items())),
    }


def evaluate_mmlu(model, tokenizer, task_dir, limit: int | None = None, seed: int = 0,
                  batch_size: int = 16, device=None, progress: bool = True) -> dict:
    """MMLU 5-shot: ``{"acc", "n", "categories": {..}, "subjects": {s: {"acc", "n"}}}``.
    ``limit`` applies per subject (as the harness's limit applies per subject task)."""
    folder = mmlu_folder(task_dir)
    docs_by_subject = {s: subject_docs(folder, s, limit, seed) for s in mmlu_subjects(folder)}
    all_docs = [doc for docs in docs_by_subject.values() for doc in docs]
    logliks = score_choice_docs(model, tokenizer, all_docs, batch_size, device, progress, "mmlu")
    subjects, position = {}, 0
    for subject, docs in docs_by_subject.items():
        result = choice_metrics(docs, logliks[position: position + len(docs)], ("acc",))
        subjects[subject] = {"acc": result["acc"], "n": result["n"]}
        position += len(docs)
    return aggregate_mmlu(subjects)
