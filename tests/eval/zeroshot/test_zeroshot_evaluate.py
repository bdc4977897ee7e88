"""evaluate_tasks end to end on small task files and a tiny random Llama."""

import importlib.util
import json

import pytest

from residq.eval.zeroshot import TASK_NAMES, evaluate_tasks
from residq.eval.zeroshot.choices import choice_metrics, score_choice_docs
from residq.eval.zeroshot.subset import take_subset
from residq.eval.zeroshot.tasks import load_task_docs

ARC_ROWS = [{"query": f"Question: Which gas do plants take in, {i}?",
             "choices": ["oxygen", "carbon dioxide", "the cat", "dog"], "gold": i % 4}
            for i in range(6)]
SHIPPED = {
    "arc_easy.jsonl": ARC_ROWS,
    "arc_challenge.jsonl": ARC_ROWS[:2],
    "piqa.jsonl": [{"query": "Question: To open a jar\n", "choices": ["twist it", "kick it"],
                    "gold": 0}],
    "openbook_qa.jsonl": [{"query": "Predators eat", "choices": ["lions", "bunnies"], "gold": 1}],
    "boolq.jsonl": [{"query": "Passage: Corn makes ethanol.\nQuestion: is ethanol from corn?",
                     "choices": ["no", "yes"], "gold": 1}],
    "copa.jsonl": [{"query": "The man turned on the faucet, therefore",
                    "choices": ["the toilet filled.", "water flowed."], "gold": 1}],
    "winogrande.jsonl": [{"context_options": ["Sarah beat Maria so Sarah",
                                              "Sarah beat Maria so Maria"],
                          "continuation": "lost the game.", "gold": 1}],
    "lambada_openai.jsonl": [{"context": "the quick brown fox jumps over the lazy",
                              "continuation": "dog"}],
}
SHIPPED_TASKS = ["arc_easy", "arc_challenge", "piqa", "openbookqa", "boolq", "copa",
                 "winogrande", "lambada_openai"]


@pytest.fixture()
def data_dir(tmp_path):
    (tmp_path / "tasks").mkdir()
    for name, rows in SHIPPED.items():
        (tmp_path / "tasks" / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_every_shipped_task_returns_its_metrics(data_dir, tokenizer, tiny_llama):
    results = evaluate_tasks(tiny_llama, tokenizer, SHIPPED_TASKS, data_dir=data_dir,
                             batch_size=4, progress=False)
    assert list(results) == SHIPPED_TASKS
    assert set(results["arc_easy"]) == {"acc", "acc_norm", "acc_bytes", "n"}
    assert results["arc_easy"]["n"] == 6 and results["arc_challenge"]["n"] == 2
    assert set(results["winogrande"]) == {"acc", "n"}
    assert set(results["lambada_openai"]) == {"acc", "ppl", "n"}
    assert results["lambada_openai"]["ppl"] > 1.0
    for task in SHIPPED_TASKS:
        assert all(0.0 <= results[task][m] <= 1.0 for m in ("acc", "acc_norm")
                   if m in results[task])
    json.dumps({"tasks": results})  # the JSON report


def test_limit_scores_the_seeded_subset(data_dir, tokenizer, tiny_llama):
    result = evaluate_tasks(tiny_llama, tokenizer, ["arc_easy"], limit=3, seed=5,
                            data_dir=data_dir, progress=False)["arc_easy"]
    docs = take_subset(load_task_docs("arc_easy", data_dir), 3, seed=5)
    expected = choice_metrics(docs, score_choice_docs(tiny_llama, tokenizer, docs,
                                                      progress=False),
                              ("acc", "acc_norm", "acc_bytes"))
    assert result == expected and result["n"] == 3


def test_batch_size_does_not_change_results(data_dir, tokenizer, tiny_llama):
    one = evaluate_tasks(tiny_llama, tokenizer, ["arc_easy", "winogrande"], data_dir=data_dir,
                         batch_size=1, progress=False)
    many = evaluate_tasks(tiny_llama, tokenizer, ["arc_easy", "winogrande"], data_dir=data_dir,
                          batch_size=16, progress=False)
    assert one == many


def test_bad_arguments_are_reported(data_dir, tokenizer, tiny_llama):
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['arc'\]"):
        evaluate_tasks(tiny_llama, tokenizer, ["arc"], data_dir=data_dir)
    with pytest.raises(TypeError, match="list of names"):
        evaluate_tasks(tiny_llama, tokenizer, "arc_easy", data_dir=data_dir)
    with pytest.raises(ValueError, match="engine must be one of"):
        evaluate_tasks(tiny_llama, tokenizer, ["arc_easy"], engine="vllm", data_dir=data_dir)
    with pytest.raises(ValueError, match="pass task_dir"):
        evaluate_tasks(tiny_llama, tokenizer, ["mmlu"], data_dir=data_dir)


def test_task_names_are_the_harness_names():
    assert TASK_NAMES == ("arc_easy", "arc_challenge", "piqa", "openbookqa", "boolq", "copa",
                          "winogrande", "lambada_openai", "hellaswag", "mmlu", "gsm8k")


@pytest.mark.skipif(importlib.util.find_spec("lm_eval") is not None, reason="lm_eval installed")
def test_harness_engine_without_lm_eval_says_how_to_install(data_dir, tokenizer, tiny_llama):
    with pytest.raises(ImportError, match="pip install lm_eval"):
        evaluate_tasks(tiny_llama, tokenizer, ["arc_easy"], engine="harness", data_dir=data_dir)
