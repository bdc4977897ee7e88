"""The native engine against lm-evaluation-harness on the same rows (needs ``lm_eval``)."""

import csv
import json

import pytest

pytest.importorskip("lm_eval")

from residq.eval.zeroshot import evaluate_tasks

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "the",
         "cat", "sat", "on", "the", "mat"]


def sentence(i, n=6):
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    tasks = root / "tasks"
    tasks.mkdir()
    rows = {
        "arc_easy.jsonl": [{"query": f"Question: {sentence(i)}?", "gold": i % 3,
                            "choices": [sentence(i + 1, 2), sentence(i + 2, 4),
                                        "é " + sentence(i, 1)]}
                           for i in range(8)],
        "piqa.jsonl": [{"query": f"Question: {sentence(i)}\n", "gold": i % 2,
                        "choices": [sentence(i + 3, 3), sentence(i + 5, 5)]} for i in range(6)],
        "boolq.jsonl": [{"query": f"Passage: {sentence(i, 12)}.\nQuestion: {sentence(i + 1)}?",
                         "choices": ["no", "yes"], "gold": i % 2} for i in range(6)],
        "copa.jsonl": [{"query": f"{sentence(i)}, {('because', 'therefore')[i % 2]}",
                        "choices": [sentence(i + 1) + ".", sentence(i + 2) + "."], "gold": i % 2}
                       for i in range(4)],
        "winogrande.jsonl": [{"context_options": [sentence(i) + " Sarah", sentence(i) + " Maria"],
                              "continuation": sentence(i + 4, 3) + ".", "gold": i % 2}
                             for i in range(6)],
        "lambada_openai.jsonl": [{"context": sentence(i, 10), "continuation": WORDS[i]}
                                 for i in range(6)],
    }
    for name, items in rows.items():
        (tasks / name).write_text("".join(json.dumps(r) + "\n" for r in items))
    user = root / "user"
    (user / "mmlu" / "dev").mkdir(parents=True)
    (user / "mmlu" / "test").mkdir()
    for subject, n_test in (("anatomy", 3), ("sociology", 2)):
        for split, n in (("dev", 5), ("test", n_test)):
            with open(user / "mmlu" / split / f"{subject}_{split}.csv", "w", newline="") as f:
                csv.writer(f).writerows([[sentence(i) + "?",
                                          *[sentence(i + k, 2) for k in range(4)],
                                          "ABCD"[i % 4]] for i in range(n)])
    (user / "hellaswag.jsonl").write_text("".join(json.dumps(
        {"activity_label": "Cooking", "ctx_a": sentence(i) + ".", "ctx_b": sentence(i + 2, 3),
         "ctx": "", "endings": [sentence(i + k, 4) + " [title] x" for k in range(4)],
         "label": i % 4}) + "\n" for i in range(5)))
    (user / "gsm8k.jsonl").write_text("".join(json.dumps(
        {"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"}) + "\n"
        for i in range(2)))
    return root, user


def test_native_equals_harness_on_the_same_seeded_rows(folders, tokenizer, tiny_llama):
    data_dir, task_dir = folders
    tasks = ["arc_easy", "piqa", "boolq", "copa", "winogrande", "lambada_openai", "hellaswag",
             "mmlu"]
    kwargs = {"limit": 4, "seed": 3, "batch_size": 4, "data_dir": data_dir,
              "task_dir": task_dir}
    native = evaluate_tasks(tiny_llama, tokenizer, tasks, progress=False, **kwargs)
    harness = evaluate_tasks(tiny_llama, tokenizer, tasks, engine="harness", **kwargs)
    for key in ("subjects", "categories"):  # per subject / category of MMLU
        for name, result in native["mmlu"].pop(key).items():
            assert harness["mmlu"][key].pop(name) == pytest.approx(result), name
        assert harness["mmlu"].pop(key) == {}
    for task in tasks:
        ppl = native[task].pop("ppl", None)
        assert harness[task].pop("ppl", None) == pytest.approx(ppl, rel=1e-5)
        assert harness[task] == pytest.approx(native[task]), task


def test_gsm8k_runs_through_both_engines(folders, tokenizer, tiny_llama):
    _, task_dir = folders
    native = evaluate_tasks(tiny_llama, tokenizer, ["gsm8k"], task_dir=task_dir, progress=False)
    harness = evaluate_tasks(tiny_llama, tokenizer, ["gsm8k"], task_dir=task_dir,
                             engine="harness")
    assert native == harness and native["gsm8k"]["n"] == 2
