"""Tokenization split and batched log-likelihood of residq.eval.zeroshot.scorer."""

import math

import pytest
import torch
import torch.nn.functional as F

from residq.eval.zeroshot.scorer import (
    TokenizedRequest,
    encode_pair,
    resolve_max_length,
    score_requests,
)

PAIRS = [
    ("Question: Which gas do plants take in?\nAnswer:", " carbon dioxide"),
    ("Question: Which gas do plants take in?\nAnswer:", " water"),
    ("the quick brown fox", " jumps over the lazy dog"),
    ("Passage: Ethanol fuel is made from corn.\nAnswer:", " no"),
    ("Passage: Ethanol fuel is made from corn.\nAnswer:", " yes"),
    ("Sarah was a much better surgeon than Maria so Maria", " always got the harder cases."),
    ("", " the cat sat on the mat"),
]


def reference_score(model, request: TokenizedRequest, max_length: int = 10**6):
    """One request alone, no padding: (sum log p(continuation), all tokens greedy)."""
    tokens = (request.context + request.continuation)[-(max_length + 1):]
    with torch.no_grad():
        logits = model(torch.tensor([tokens[:-1]])).logits[0]
    log_probs = F.log_softmax(logits[-len(request.continuation):], dim=-1)
    target = torch.tensor(request.continuation)
    loglik = log_probs.gather(-1, target[:, None]).sum().item()
    return loglik, bool((log_probs.argmax(-1) == target).all())


def test_continuation_is_the_tail_of_the_whole_encoding(tokenizer):
    context, continuation = PAIRS[2]
    request = encode_pair(tokenizer, context, continuation)
    assert list(request.context) == tokenizer.encode(context)
    assert list(request.context + request.continuation) == tokenizer.encode(context + continuation)


def test_trailing_context_whitespace_moves_to_the_continuation(tokenizer):
    assert encode_pair(tokenizer, "the quick brown ", "fox") == \
        encode_pair(tokenizer, "the quick brown", " fox")


def test_empty_context_is_the_bos_token(tokenizer):
    request = encode_pair(tokenizer, "", " the cat")
    assert request.context == (tokenizer.bos_token_id,)
    assert list(request.continuation) == tokenizer.encode(" the cat", add_special_tokens=False)


def test_empty_continuation_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="encodes to no tokens"):
        encode_pair(tokenizer, "the fox", "")


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batched_scores_equal_unpadded_one_by_one(tokenizer, tiny_llama, batch_size):
    requests = [encode_pair(tokenizer, c, x) for c, x in PAIRS]
    scores = score_requests(tiny_llama, requests, batch_size=batch_size, progress=False)
    for request, (loglik, greedy) in zip(requests, scores):
        expected_loglik, expected_greedy = reference_score(tiny_llama, request)
        assert loglik == pytest.approx(expected_loglik, abs=1e-4)
        assert greedy == expected_greedy
        assert loglik < 0


def test_uniform_model_gives_minus_tokens_times_log_vocab(tokenizer, uniform_llama):
    requests = [encode_pair(tokenizer, c, x) for c, x in PAIRS]
    scores = score_requests(uniform_llama, requests, batch_size=4, progress=False)
    log_vocab = math.log(len(tokenizer))
    for request, (loglik, _) in zip(requests, scores):
        assert loglik == pytest.approx(-len(request.continuation) * log_vocab, rel=1e-6)


def test_inputs_are_left_truncated_to_max_length(tokenizer, tiny_llama):
    request = encode_pair(tokenizer, *PAIRS[5])
    max_length = len(request.continuation) + 3
    assert len(request.context) + len(request.continuation) > max_length + 1
    (loglik, greedy), = score_requests(tiny_llama, [request], max_length=max_length,
                                       progress=False)
    expected = reference_score(tiny_llama, request, max_length=max_length)
    assert loglik == pytest.approx(expected[0], abs=1e-4) and greedy == expected[1]
    assert loglik != pytest.approx(reference_score(tiny_llama, request)[0], abs=1e-4)


def test_greedy_flag_is_true_exactly_for_the_argmax_continuation(tokenizer, tiny_llama):
    context = tuple(tokenizer.encode("the quick brown fox"))
    tokens = list(context)
    with torch.no_grad():
        for _ in range(3):
            tokens.append(int(tiny_llama(torch.tensor([tokens])).logits[0, -1].argmax()))
    greedy_request = TokenizedRequest(context, tuple(tokens[len(context):]))
    other_last = (tokens[-1] + 1) % len(tokenizer)
    other_request = TokenizedRequest(context, tuple(tokens[len(context):-1]) + (other_last,))
    scores = score_requests(tiny_llama, [greedy_request, other_request], progress=False)
    assert [greedy for _, greedy in scores] == [True, False]
    assert scores[0][0] > scores[1][0]


def test_continuation_longer_than_max_length_is_rejected(tokenizer, tiny_llama):
    request = encode_pair(tokenizer, *PAIRS[5])
    with pytest.raises(ValueError, match="exceeds the model's max length"):
        score_requests(tiny_llama, [request], max_length=len(request.continuation) - 1)


def test_max_length_comes_from_the_model_config(tokenizer, tiny_llama):
    assert resolve_max_length(tiny_llama, tokenizer) == tiny_llama.config.max_position_embeddings


def test_batch_size_must_be_positive(tokenizer, tiny_llama):
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        score_requests(tiny_llama, [encode_pair(tokenizer, *PAIRS[0])], batch_size=0)
