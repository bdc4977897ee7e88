"""Shared fixtures: a tiny byte-level BPE tokenizer and tiny random Llama models."""

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CORPUS = [
    "Question: Which gas do plants take in? Answer: carbon dioxide",
    "the quick brown fox jumps over the lazy dog and the cat sat on the mat",
    "Sarah was a much better surgeon than Maria so Sarah always got the harder cases.",
    "The man turned on the faucet therefore water flowed from the spout.",
    "Passage: Ethanol fuel is made from corn. Question: is ethanol made from corn? no yes",
]
SPECIAL = "<|endoftext|>"


@pytest.fixture(scope="session")
def tokenizer():
    """Byte-level BPE (GPT-2 style: spaces kept, no BOS added by ``encode``); BOS = EOS = PAD =
    ``<|endoftext|>`` (id 0)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=[SPECIAL],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CORPUS * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=SPECIAL, eos_token=SPECIAL,
                                   pad_token=SPECIAL)


def make_llama(vocab_size: int, seed: int = 0, max_positions: int = 1024) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab_size,
                         max_position_embeddings=max_positions, bos_token_id=0, eos_token_id=0,
                         pad_token_id=0)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_llama(tokenizer):
    """Random tiny Llama (hidden 32, 2 layers) over the tokenizer's vocabulary."""
    return make_llama(len(tokenizer))


@pytest.fixture(scope="session")
def uniform_llama(tokenizer):
    """Tiny Llama whose final norm is zero: every logit is 0, so every token has probability
    1 / vocab and a continuation of k tokens has log-likelihood exactly -k log(vocab)."""
    model = make_llama(len(tokenizer), seed=1)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    return model
