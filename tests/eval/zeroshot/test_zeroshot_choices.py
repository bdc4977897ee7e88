"""acc / acc_norm / acc_bytes and LAMBADA metrics of residq.eval.zeroshot.choices."""

import math

import pytest

from residq.eval.zeroshot.choices import (
    ChoiceDoc,
    CompletionDoc,
    choice_doc,
    choice_metrics,
    choice_predictions,
    score_choice_docs,
    score_completion_docs,
)
from residq.eval.zeroshot.scorer import encode_pair


def test_acc_takes_raw_loglik_and_acc_norm_divides_by_characters():
    # -2 beats -3 raw, but per character -3/6 = -0.5 beats -2/2 = -1
    assert choice_predictions([-2.0, -3.0], ["ab", "abcdef"]) == \
        {"acc": 0, "acc_norm": 1, "acc_bytes": 1}


def test_acc_bytes_divides_by_utf8_bytes():
    # "éé" is 2 characters but 4 bytes: per char -1.0 vs -1.5/2 = -0.75 (choice 1 wins),
    # per byte -2/4 = -0.5 vs -0.75 (choice 0 wins)
    assert choice_predictions([-2.0, -1.5], ["éé", "ab"]) == \
        {"acc": 1, "acc_norm": 1, "acc_bytes": 0}


def test_equal_scores_pick_the_first_choice():
    assert choice_predictions([-1.0, -1.0], ["x", "y"])["acc"] == 0


def test_choice_metrics_average_over_docs():
    docs = [choice_doc("q", ["ab", "abcdef"], gold=0), choice_doc("q", ["ab", "abcdef"], gold=1)]
    result = choice_metrics(docs, [[-2.0, -3.0], [-2.0, -3.0]], ("acc", "acc_norm"))
    assert result == {"acc": 0.5, "acc_norm": 0.5, "n": 2}


def test_choice_doc_checks_its_shape():
    with pytest.raises(ValueError, match="gold index 2 outside the 2 choices"):
        choice_doc("q", ["a", "b"], gold=2)
    with pytest.raises(ValueError, match="one context and one continuation per choice"):
        ChoiceDoc(contexts=("q",), continuations=(" a", " b"), choices=("a", "b"), gold=0)


def test_choice_doc_puts_the_delimiter_before_each_choice():
    doc = choice_doc("Question: x\nAnswer:", ["yes", "no"], gold=1)
    assert doc.continuations == (" yes", " no") and doc.choices == ("yes", "no")
    assert doc.contexts == ("Question: x\nAnswer:",) * 2


def test_the_choice_with_higher_likelihood_wins(tokenizer, tiny_llama):
    doc = choice_doc("the quick brown fox", ["jumps over", "sat on the mat", "lazy dog"], gold=0)
    (lls,) = score_choice_docs(tiny_llama, tokenizer, [doc], progress=False)
    best = max(range(3), key=lambda i: lls[i])
    hits = [choice_metrics([choice_doc(doc.contexts[0], doc.choices, gold)], [lls])["acc"]
            for gold in range(3)]
    assert hits == [1.0 if gold == best else 0.0 for gold in range(3)]


def test_uniform_model_acc_prefers_fewer_tokens_and_acc_norm_more_chars_per_token(
        tokenizer, uniform_llama):
    # Under uniform next-token probabilities a choice's loglik is -tokens * log(vocab):
    # acc picks the fewest tokens, acc_norm the most characters per token.
    choices = ["z", "the quick brown fox jumps over the lazy dog"]
    context = "Question: Which gas do plants take in?\nAnswer:"
    tokens = [len(encode_pair(tokenizer, context, " " + c).continuation) for c in choices]
    assert tokens[0] < tokens[1] and tokens[0] / len(choices[0]) > tokens[1] / len(choices[1])
    docs = [choice_doc(context, choices, gold) for gold in (0, 1)]
    lls = score_choice_docs(uniform_llama, tokenizer, docs, progress=False)
    assert lls[0] == pytest.approx([-t * math.log(len(tokenizer)) for t in tokens], rel=1e-6)
    assert choice_metrics(docs[:1], lls[:1], ("acc", "acc_norm")) == \
        {"acc": 1.0, "acc_norm": 0.0, "n": 1}
    assert choice_metrics(docs[1:], lls[1:], ("acc", "acc_norm")) == \
        {"acc": 0.0, "acc_norm": 1.0, "n": 1}


def test_winogrande_style_docs_score_the_shared_continuation(tokenizer, tiny_llama):
    options = ("Sarah was a much better surgeon than Maria so Sarah",
               "Sarah was a much better surgeon than Maria so Maria")
    doc = ChoiceDoc(contexts=options, continuations=(" always got the harder cases.",) * 2,
                    choices=options, gold=1)
    (lls,) = score_choice_docs(tiny_llama, tokenizer, [doc], progress=False)
    expected = [score_choice_docs(tiny_llama, tokenizer,
                                  [choice_doc(option, ["always got the harder cases."], 0)],
                                  progress=False)[0][0] for option in options]
    assert lls == pytest.approx(expected, abs=1e-5)


def test_lambada_ppl_is_exp_of_minus_mean_doc_loglik(tokenizer, uniform_llama):
    docs = [CompletionDoc("the quick brown fox jumps over the lazy", " dog"),
            CompletionDoc("Sarah was a much better surgeon than", " Maria")]
    tokens = [len(encode_pair(tokenizer, d.context, d.continuation).continuation) for d in docs]
    result = score_completion_docs(uniform_llama, tokenizer, docs, progress=False)
    mean_tokens = sum(tokens) / len(tokens)
    assert result["ppl"] == pytest.approx(len(tokenizer) ** mean_tokens, rel=1e-5)
    assert result["n"] == 2
    # the uniform argmax is token 0 (the special token), never the continuation
    assert result["acc"] == 0.0
