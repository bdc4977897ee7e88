"""GSM8K prompt, answer extraction, exact match, and batched greedy generation."""

import json

import pytest
import torch

from residq.eval.zeroshot import gsm8k
from residq.eval.zeroshot.generation import cut_at_stops, greedy_generate
from residq.eval.zeroshot.gsm8k import (
    cot_prompt,
    extract_flexible,
    extract_strict,
    is_exact_match,
    reference_answer,
    score_generations,
)


def test_cot_prompt_has_eight_exemplars_then_the_question():
    prompt = cot_prompt("How many legs do 2 cats have?")
    assert prompt.startswith("Q: There are 15 trees in the grove.")
    assert prompt.count("Q: ") == 9 and prompt.count("The answer is") == 8
    assert "The answer is 6.\n\nQ: If there are 3 cars" in prompt
    assert prompt.endswith("The answer is 8.\n\nQ: How many legs do 2 cats have?\nA:")


def test_reference_is_the_text_after_the_last_hashes():
    assert reference_answer("She pays 3 * 4 = <<3*4=12>>12.\n#### 1,234") == "1,234"


def test_strict_extraction_takes_the_first_the_answer_is():
    # the number group is greedy, so it keeps a period followed by a space (as in the harness);
    # exact match drops a final period afterwards
    assert extract_strict("So 5. The answer is 42. Then The answer is 7.") == "42."
    assert extract_strict("The answer is -3,5.") == "-3,5"
    assert is_exact_match(extract_strict("The answer is 42. Done"), "42")
    assert extract_strict("I think 42") == "[invalid]"


def test_flexible_extraction_takes_the_last_number():
    assert extract_flexible("First 12 then $1,000.") == "$1,000."
    assert extract_flexible("answer 7") == "7"
    assert extract_flexible("no digits") == "[invalid]"


def test_exact_match_ignores_commas_dollars_and_a_final_period():
    assert is_exact_match("$1,000.", "1000")
    assert is_exact_match("1,234", "1234")
    assert not is_exact_match("1000.5", "1000")
    assert not is_exact_match("[invalid]", "7")


def test_score_generations_reports_strict_and_flexible():
    generations = ["3 + 4 = 7. The answer is 7.", "It is 1,000 dollars", "The answer is 5."]
    answers = ["#### 7", "#### 1000", "#### 6"]
    assert score_generations(generations, answers) == {
        "exact_match": pytest.approx(1 / 3), "exact_match_flexible": pytest.approx(2 / 3), "n": 3}


def test_cut_at_stops_keeps_text_before_each_stop():
    text = " 5. The answer is 5.\n\nQ: next"
    assert cut_at_stops(text, ["Q:", "</s>"]) == " 5. The answer is 5.\n\n"
    assert cut_at_stops("abc", ["", "x"]) == "abc"


def naive_greedy(model, tokenizer, prompt, steps):
    tokens = tokenizer.encode(prompt)
    with torch.no_grad():
        for _ in range(steps):
            tokens.append(int(model(torch.tensor([tokens])).logits[0, -1].argmax()))
    return tokens[len(tokenizer.encode(prompt)):]


def test_batched_left_padded_generation_equals_one_by_one(tokenizer, tiny_llama):
    prompts = ["the quick brown fox", "Q: Which gas do plants take in?\nA:", "Sarah was"]
    outputs = greedy_generate(tiny_llama, tokenizer, prompts, stop=[], max_new_tokens=6,
                              batch_size=3, progress=False)
    for prompt, output in zip(prompts, outputs):
        tokens = naive_greedy(tiny_llama, tokenizer, prompt, 6)
        eos = tokenizer.eos_token_id
        expected = tokenizer.decode(tokens[: tokens.index(eos)] if eos in tokens else tokens)
        assert output == expected


def test_generation_is_cut_at_a_stop_string(tokenizer, tiny_llama):
    prompt = "the quick brown fox"
    full = greedy_generate(tiny_llama, tokenizer, [prompt], stop=[], max_new_tokens=6,
                           progress=False)[0]
    assert len(full) >= 3, "the tiny model should produce some text"
    stop = full[2:4]
    cut = greedy_generate(tiny_llama, tokenizer, [prompt], stop=[stop], max_new_tokens=6,
                          progress=False)[0]
    assert cut == full.split(stop)[0]


def test_evaluate_gsm8k_scores_the_seeded_rows(tmp_path, monkeypatch):
    rows = [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"}
            for i in range(4)]
    (tmp_path / "gsm8k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen = []

    def fake_generate(model, tokenizer, prompts, stop, *args):
        seen.extend(prompts)
        assert tuple(stop) == gsm8k.STOP_STRINGS
        # right for "0 + 1" only
        return [" So it is 1. The answer is 1." if p.endswith("What is 0 + 1?\nA:") else
                " The answer is 0." for p in prompts]

    monkeypatch.setattr(gsm8k, "greedy_generate", fake_generate)
    result = gsm8k.evaluate_gsm8k(None, None, tmp_path, progress=False)
    assert result == {"exact_match": 0.25, "exact_match_flexible": 0.25, "n": 4}
    assert seen[0] == cot_prompt("What is 0 + 1?")
    seen.clear()
    assert gsm8k.evaluate_gsm8k(None, None, tmp_path, limit=2, seed=0, progress=False)["n"] == 2
    assert len(seen) == 2
