"""Harness prompts rebuilt from the shipped rows, task files, and seeded subsets."""

import json

import pytest

from residq.eval.zeroshot.subset import subset_indices, take_subset
from residq.eval.zeroshot.tasks import (
    LOGLIKELIHOOD_TASKS,
    hellaswag_doc,
    hellaswag_preprocess,
    load_task_docs,
)

ROWS = {
    "arc_easy.jsonl": [{"query": "Question: Which gas do plants take in?",
                        "choices": ["oxygen", "carbon dioxide"], "gold": 1}],
    "piqa.jsonl": [{"query": "Question: To open a jar\n", "choices": ["twist", "kick"],
                    "gold": 0}],
    "openbook_qa.jsonl": [{"query": "Predators eat", "choices": ["lions", "bunnies"], "gold": 1}],
    "boolq.jsonl": [{"query": "Passage: Corn makes ethanol.\nQuestion: is ethanol from corn?",
                     "choices": ["no", "yes"], "gold": 1}],
    "copa.jsonl": [{"query": "The man turned on the faucet, therefore",
                    "choices": ["the toilet filled.", "Water flowed."], "gold": 1},
                   {"query": "My body cast a shadow, because", "choices": ["a", "b"], "gold": 0}],
    "winogrande.jsonl": [{"context_options": ["Sarah beat Maria so Sarah",
                                              "Sarah beat Maria so Maria"],
                          "continuation": "lost.", "gold": 1}],
    "lambada_openai.jsonl": [{"context": "He looked at the", "continuation": "door"}],
}


@pytest.fixture()
def data_dir(tmp_path):
    (tmp_path / "tasks").mkdir()
    for name, rows in ROWS.items():
        (tmp_path / "tasks" / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_arc_prompt(data_dir):
    (doc,) = load_task_docs("arc_easy", data_dir)
    assert doc.contexts[0] == "Question: Which gas do plants take in?\nAnswer:"
    assert doc.continuations == (" oxygen", " carbon dioxide") and doc.gold == 1


def test_piqa_prompt(data_dir):
    (doc,) = load_task_docs("piqa", data_dir)
    assert doc.contexts[0] == "Question: To open a jar\nAnswer:"
    assert doc.continuations == (" twist", " kick")


def test_openbookqa_prompt_is_the_question_stem(data_dir):
    (doc,) = load_task_docs("openbookqa", data_dir)
    assert doc.contexts[0] == "Predators eat" and doc.continuations == (" lions", " bunnies")


def test_boolq_prompt_drops_the_passage_label(data_dir):
    (doc,) = load_task_docs("boolq", data_dir)
    assert doc.contexts[0] == "Corn makes ethanol.\nQuestion: is ethanol from corn?\nAnswer:"
    assert doc.continuations == (" no", " yes") and doc.choices == ("no", "yes")


def test_copa_prompt_has_no_comma_and_lowercased_choices_with_two_spaces(data_dir):
    effect, cause = load_task_docs("copa", data_dir)
    assert effect.contexts[0] == "The man turned on the faucet therefore"
    assert effect.choices == (" the toilet filled.", " water flowed.")
    assert effect.continuations == ("  the toilet filled.", "  water flowed.")
    assert cause.contexts[0] == "My body cast a shadow because"


def test_winogrande_scores_the_continuation_after_each_option(data_dir):
    (doc,) = load_task_docs("winogrande", data_dir)
    assert doc.contexts == ("Sarah beat Maria so Sarah", "Sarah beat Maria so Maria")
    assert doc.continuations == (" lost.", " lost.") and doc.gold == 1


def test_lambada_continuation_gets_its_space(data_dir):
    (doc,) = load_task_docs("lambada_openai", data_dir)
    assert (doc.context, doc.continuation) == ("He looked at the", " door")


def test_hellaswag_preprocessing_follows_the_harness():
    # " [title]" -> ". ", "[step]" dropped, then one pass of "  " -> " " (3 spaces leave 2)
    assert hellaswag_preprocess(" Cut the onion [title] Slice it.  [step] Done ") == \
        "Cut the onion. Slice it.  Done"
    row = {"activity_label": "Baking", "ctx_a": "A man mixes flour.", "ctx_b": "then he",
           "ctx": "unused", "endings": ["bakes [header] it.", "sleeps."], "label": "0"}
    doc = hellaswag_doc(row)
    assert doc.contexts[0] == "Baking: A man mixes flour. Then he"
    assert doc.choices == ("bakes it.", "sleeps.") and doc.gold == 0
    assert hellaswag_doc({"ctx": "A man mixes flour.", "endings": ["x", "y"], "label": 1}
                         ).contexts[0] == "A man mixes flour."


def test_hellaswag_is_read_from_task_dir(tmp_path):
    row = {"activity_label": "A", "ctx_a": "b.", "ctx_b": "c", "endings": ["d", "e"], "label": 1}
    (tmp_path / "hellaswag.jsonl").write_text(json.dumps(row) + "\n")
    (doc,) = load_task_docs("hellaswag", task_dir=tmp_path)
    assert doc.contexts[0] == "A: b. C" and doc.gold == 1
    with pytest.raises(ValueError, match="pass task_dir"):
        load_task_docs("hellaswag")


def test_unknown_task_and_missing_file_errors(tmp_path):
    with pytest.raises(KeyError, match="unknown log-likelihood task 'arc'"):
        load_task_docs("arc", tmp_path)
    with pytest.raises(FileNotFoundError, match="task file piqa.jsonl not found"):
        load_task_docs("piqa", tmp_path)


def test_malformed_rows_are_reported(tmp_path):
    (tmp_path / "boolq.jsonl").write_text(json.dumps({"query": "Q", "choices": ["no", "yes"],
                                                      "gold": 0}) + "\n")
    with pytest.raises(ValueError, match="BoolQ query expected to start with 'Passage: '"):
        load_task_docs("boolq", tmp_path)


def test_every_task_has_metrics():
    assert LOGLIKELIHOOD_TASKS["winogrande"].metrics == ("acc",)
    assert LOGLIKELIHOOD_TASKS["lambada_openai"].metrics == ("acc", "ppl")
    assert LOGLIKELIHOOD_TASKS["arc_easy"].metrics == ("acc", "acc_norm", "acc_bytes")


def test_seeded_subset_is_reproducible_sorted_and_seed_dependent():
    first = subset_indices(100, 10, seed=0)
    assert first == subset_indices(100, 10, seed=0) == sorted(set(first)) and len(first) == 10
    assert first != subset_indices(100, 10, seed=1)
    assert subset_indices(5, None) == subset_indices(5, 9) == [0, 1, 2, 3, 4]
    assert take_subset("abcdef", 3, seed=0) == ["abcdef"[i] for i in subset_indices(6, 3, 0)]
    with pytest.raises(ValueError, match="limit must be a positive number of rows"):
        subset_indices(5, 0)
