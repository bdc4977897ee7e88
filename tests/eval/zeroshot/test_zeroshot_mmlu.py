"""MMLU 5-shot prompts, CSV reading and the harness's size-weighted averaging."""

import csv

import pytest

from residq.eval.zeroshot.mmlu import (
    SUBJECT_CATEGORIES,
    aggregate_mmlu,
    evaluate_mmlu,
    fewshot_prompt,
    read_mmlu_csv,
    subject_docs,
)
from residq.eval.zeroshot.scorer import encode_pair


def write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


def dev_rows(subject):
    return [[f" {subject} dev {i}? ", "w", "x", "y", "z", "ABCDA"[i]] for i in range(5)]


@pytest.fixture()
def mmlu_dir(tmp_path):
    """Two subjects: abstract_algebra (stem) 3 test questions with answers A, A, B;
    virology (other) 1 question with answer A."""
    root = tmp_path / "mmlu"
    for subject, answers in (("abstract_algebra", "AAB"), ("virology", "A")):
        write_csv(root / "dev" / f"{subject}_dev.csv", dev_rows(subject))
        write_csv(root / "test" / f"{subject}_test.csv",
                  [[f"What is {i}, really?", "1", "2", "3", "4", a] for i, a in enumerate(answers)])
    return tmp_path


def test_fewshot_prompt_matches_the_harness_template(mmlu_dir):
    folder = mmlu_dir / "mmlu"
    shots = read_mmlu_csv(folder / "dev" / "abstract_algebra_dev.csv")
    question = read_mmlu_csv(folder / "test" / "abstract_algebra_test.csv")[2]
    prompt = fewshot_prompt("abstract_algebra", shots, question)
    expected_shot = "abstract_algebra dev 1?\nA. w\nB. x\nC. y\nD. z\nAnswer: B\n\n"
    assert prompt.startswith("The following are multiple choice questions (with answers) about "
                             "abstract algebra.\n\nabstract_algebra dev 0?\nA. w\n")
    assert expected_shot in prompt
    assert prompt.endswith("Answer: A\n\nWhat is 2, really?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:")
    assert prompt.count("Answer:") == 6


def test_subject_docs_continuations_are_spaced_letters(mmlu_dir):
    docs = subject_docs(mmlu_dir / "mmlu", "abstract_algebra")
    assert [d.gold for d in docs] == [0, 0, 1]
    assert docs[0].continuations == (" A", " B", " C", " D")


def test_average_is_weighted_by_subject_size():
    result = aggregate_mmlu({"abstract_algebra": {"acc": 2 / 3, "n": 3},
                             "virology": {"acc": 1.0, "n": 1}})
    assert result["acc"] == pytest.approx(0.75)  # pooled 3/4, not the subject mean 5/6
    assert result["n"] == 4
    assert result["categories"] == {"other": {"acc": 1.0, "n": 1},
                                    "stem": {"acc": pytest.approx(2 / 3), "n": 3}}


def test_evaluate_mmlu_end_to_end_on_a_uniform_model(mmlu_dir, tokenizer, uniform_llama):
    # Equal token counts for " A" .. " D" make every loglik equal; argmax keeps "A".
    counts = {len(encode_pair(tokenizer, "Answer:", f" {letter}").continuation)
              for letter in "ABCD"}
    assert len(counts) == 1
    result = evaluate_mmlu(uniform_llama, tokenizer, mmlu_dir, progress=False)
    assert result["subjects"]["abstract_algebra"] == {"acc": pytest.approx(2 / 3), "n": 3}
    assert result["subjects"]["virology"] == {"acc": 1.0, "n": 1}
    assert result["acc"] == pytest.approx(0.75) and result["n"] == 4


def test_limit_applies_per_subject(mmlu_dir, tokenizer, uniform_llama):
    result = evaluate_mmlu(uniform_llama, tokenizer, mmlu_dir, limit=2, progress=False)
    assert {s: r["n"] for s, r in result["subjects"].items()} == {"abstract_algebra": 2,
                                                                  "virology": 1}


def test_bad_csv_rows_and_missing_dev_questions_are_reported(tmp_path):
    write_csv(tmp_path / "bad.csv", [["q", "a", "b", "c", "d", "E"]])
    with pytest.raises(ValueError, match="bad.csv:1: expected question,A,B,C,D,answer-letter"):
        read_mmlu_csv(tmp_path / "bad.csv")
    write_csv(tmp_path / "dev" / "virology_dev.csv", dev_rows("virology")[:2])
    write_csv(tmp_path / "test" / "virology_test.csv", [["q", "a", "b", "c", "d", "A"]])
    with pytest.raises(ValueError, match="expected 5 dev questions"):
        subject_docs(tmp_path, "virology")


def test_the_category_table_covers_the_57_subjects():
    assert len(SUBJECT_CATEGORIES) == 57
    assert set(SUBJECT_CATEGORIES.values()) == {"stem", "humanities", "social_sciences", "other"}
