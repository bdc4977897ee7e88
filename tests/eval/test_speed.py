"""residq.eval.speed on CPU: the timing helpers, a tiny model's prefill/decode, the layer timing."""

from __future__ import annotations

import time

import pytest
import torch
from residq_testing import tiny_model

from residq.eval import speed

CPU = torch.device("cpu")


def test_median_seconds_runs_warmup_then_repeats():
    calls = []
    seconds = speed.median_seconds(lambda: calls.append(1), CPU, warmup=2, repeats=3)
    assert len(calls) == 5 and seconds >= 0.0
    with pytest.raises(ValueError, match="repeats"):
        speed.median_seconds(lambda: None, CPU, repeats=0)


def test_measure_model_reports_prefill_and_decode():
    model = tiny_model("llama", layers=1)
    result = speed.measure_model(model, CPU, prefill_tokens=16, decode_tokens=3, batch=2, prompt_tokens=4, repeats=2)
    assert result.prefill_tokens_per_s > 0 and result.prefill_ms > 0
    assert result.decode_tokens_per_s > 0 and result.decode_ms_per_step > 0
    assert result.peak_memory_bytes is None  # CPU: no CUDA allocator to ask
    # tokens/s is the work done over the time measured
    assert result.prefill_tokens_per_s == pytest.approx(2 * 16 / (result.prefill_ms / 1000.0))
    without = speed.measure_model(model, CPU, prefill_tokens=8, decode_tokens=0, repeats=1)
    assert without.decode_tokens_per_s is None
    with pytest.raises(ValueError, match=">= 1"):
        speed.measure_model(model, CPU, prefill_tokens=0)


def test_one_layer_llama_shape_and_layer_timing():
    model = speed.one_layer_llama({"hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
                                   "num_key_value_heads": 2}, vocab=32)
    assert len(model.model.layers) == 1
    assert model.model.layers[0].mlp.down_proj.weight.shape == (64, 96)
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (32, 64)  # 2 KV heads of 16
    assert speed.layer_ms(model, CPU, tokens=8, repeats=2) > 0
    with pytest.raises(ValueError, match="cuda_graph timing needs a CUDA device"):
        speed.layer_ms(model, CPU, tokens=8, repeats=2, cuda_graph=True)
    assert speed.LLAMA3_8B_LAYER == {"hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
                                     "num_key_value_heads": 8}


def test_host_per_call_us_runs_every_call_and_reports_per_call_time():
    calls = []
    us = speed.host_per_call_us(lambda: calls.append(time.sleep(0.001)), calls=4, runs=3)
    assert len(calls) == 4 * (3 + 1)  # one warm-up run, then the timed ones
    assert 900 < us < 50_000  # each call sleeps 1 ms
