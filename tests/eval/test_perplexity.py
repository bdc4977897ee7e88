"""Tests for residq.eval.perplexity against an independent computation with the model's loss."""

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from residq.eval import perplexity as perplexity_module
from residq.eval.perplexity import (
    evaluation_windows,
    model_needs_bos,
    next_token_nll_sum,
    perplexity,
)

BOS = 256
SEQLEN = 32


class ByteTokenizer:
    """Tokenizer stand-in: one token per UTF-8 byte, BOS = 256."""

    bos_token_id = BOS
    add_bos_token = False

    def __call__(self, text, add_special_tokens=True, **kwargs):
        return {"input_ids": list(text.encode("utf-8"))}


@pytest.fixture(scope="module")
def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=257, max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def text():
    generator = torch.Generator().manual_seed(1)
    codes = torch.randint(ord("a"), ord("z") + 1, (7 * SEQLEN + 5,), generator=generator)
    return bytes(codes.tolist()).decode()


def _reference_ppl(model, windows):
    """exp of the mean over windows of HF's own loss (mean NLL of seqlen-1 shifted tokens)."""
    with torch.no_grad():
        losses = [model(input_ids=w[None], labels=w[None]).loss.item() for w in windows]
    return math.exp(sum(losses) / len(losses))


def test_ppl_is_exp_of_mean_nll_over_full_windows(tiny_llama, text):
    result = perplexity(tiny_llama, ByteTokenizer(), seqlen=SEQLEN, progress=False, text=text)
    stream = torch.tensor(list(text.encode()))
    windows = stream[: 7 * SEQLEN].reshape(7, SEQLEN)  # the partial last window is dropped
    assert (result.n_windows, result.n_tokens, result.seqlen) == (7, 7 * (SEQLEN - 1), SEQLEN)
    assert result.ppl == pytest.approx(_reference_ppl(tiny_llama, windows), rel=1e-5)
    assert result.ppl == pytest.approx(math.exp(result.nll), rel=1e-12)


def test_max_windows_takes_the_first_windows_and_batches_agree(tiny_llama, text):
    result = perplexity(tiny_llama, ByteTokenizer(), seqlen=SEQLEN, max_windows=3,
                        batch_size=2, progress=False, text=text)
    first = torch.tensor(list(text.encode()))[: 3 * SEQLEN].reshape(3, SEQLEN)
    assert result.n_windows == 3
    assert result.ppl == pytest.approx(_reference_ppl(tiny_llama, first), rel=1e-5)


def test_explicit_bos_prepends_to_each_window(tiny_llama, text):
    result = perplexity(tiny_llama, ByteTokenizer(), seqlen=SEQLEN, add_bos=True,
                        progress=False, text=text)
    span = SEQLEN - 1
    n_windows = len(text) // span
    body = torch.tensor(list(text.encode()))[: n_windows * span].reshape(n_windows, span)
    windows = torch.cat([torch.full((n_windows, 1), BOS), body], dim=1)
    assert (result.n_windows, result.n_tokens) == (n_windows, n_windows * span)
    assert result.ppl == pytest.approx(_reference_ppl(tiny_llama, windows), rel=1e-5)


def test_gemma_models_get_bos_automatically(tiny_llama, text, monkeypatch):
    assert model_needs_bos(SimpleNamespace(config=SimpleNamespace(model_type="gemma3_text")))
    assert not model_needs_bos(tiny_llama)
    monkeypatch.setattr(tiny_llama.config, "model_type", "gemma2")
    auto = perplexity(tiny_llama, ByteTokenizer(), seqlen=SEQLEN, progress=False, text=text)
    forced = perplexity(tiny_llama, ByteTokenizer(), seqlen=SEQLEN, add_bos=True,
                        progress=False, text=text)
    assert auto.n_windows == len(text) // (SEQLEN - 1)
    assert auto.ppl == forced.ppl


def test_chunked_log_softmax_matches_cross_entropy(monkeypatch):
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 9, 11, generator=generator, dtype=torch.float64).to(torch.bfloat16)
    ids = torch.randint(0, 11, (2, 9), generator=generator)
    monkeypatch.setattr(perplexity_module, "LOGPROB_CHUNK_ELEMENTS", 2 * 11 * 3)  # 3 positions
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, 11), ids[:, 1:].reshape(-1), reduction="sum"
    )
    assert next_token_nll_sum(logits, ids) == pytest.approx(expected.item(), rel=1e-6)


def test_evaluation_windows_shapes_and_errors():
    stream = torch.arange(10)
    assert torch.equal(evaluation_windows(stream, 4), torch.arange(8).reshape(2, 4))
    with_bos = evaluation_windows(stream, 4, bos_token_id=99, max_windows=2)
    assert torch.equal(with_bos, torch.tensor([[99, 0, 1, 2], [99, 3, 4, 5]]))
    with pytest.raises(ValueError, match="10 tokens, fewer than one window of 11"):
        evaluation_windows(stream, 11)
    with pytest.raises(ValueError, match="max_windows"):
        evaluation_windows(stream, 4, max_windows=0)


def test_training_mode_is_restored(tiny_llama, text):
    tiny_llama.train()
    perplexity(tiny_llama, ByteTokenizer(), seqlen=SEQLEN, max_windows=1, progress=False,
               text=text)
    assert tiny_llama.training
    tiny_llama.eval()


def test_missing_dataset_file_names_the_path(tiny_llama, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        perplexity(tiny_llama, ByteTokenizer(), dataset="ptb", data_dir=tmp_path, progress=False)
    assert str(tmp_path / "ptb.test.txt") in str(info.value)
