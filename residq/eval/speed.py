"""Speed of a causal LM: prefill and decode tokens/s, peak GPU memory, one decoder layer.

Used by ``residq bench``. Timings are medians over repeats after warm-up; on CUDA a forward is
bracketed by CUDA events (``torch.cuda.Event``), a decode run (many small launches, host work
included as a user sees it) by ``time.perf_counter`` after a synchronize; on the CPU by
``time.perf_counter``.

- prefill: one forward over ``(batch, tokens)`` random token ids (logits of every position);
- decode: ``new_tokens`` steps of one token each with the KV cache, after a prompt that is not
  timed (greedy: the next id is the argmax);
- peak memory: ``torch.cuda.max_memory_allocated`` over the prefill (weights included);
- layer: a ``LlamaForCausalLM`` with one decoder layer of a given shape (Llama-3-8B by default:
  hidden 4096, MLP 14336, 32 query / 8 KV heads) and random weights; the decoder layer alone is
  timed on the inputs the model gives it (captured once with a forward pre-hook).
"""

from __future__ import annotations

import inspect
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

LLAMA3_8B_LAYER = {"hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
                   "num_key_value_heads": 8}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, warmup: int = 2, repeats: int = 5) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls after ``warmup`` calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
        else:
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def host_per_call_us(fn: Callable[[], object], calls: int, runs: int = 5) -> float:
    """Microseconds per call of ``fn`` as a host loop sees it: the wall time of ``calls``
    back-to-back calls, synchronized once at the end, median of ``runs`` runs after one warm-up
    run (with CUDA present). Eager calls include their Python and launch time, unlike
    ``median_seconds``'s CUDA events around one call."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    times = []
    for _ in range(runs + 1):
        sync()
        begin = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        times.append((time.perf_counter() - begin) / calls * 1e6)
    return statistics.median(times[1:])


@dataclass
class ModelSpeed:
    """Measured figures of one model (``None`` where not measured, e.g. memory on the CPU)."""

    prefill_tokens_per_s: float
    prefill_ms: float
    decode_tokens_per_s: float | None
    decode_ms_per_step: float | None
    peak_memory_bytes: int | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _random_ids(model: nn.Module, batch: int, tokens: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, tokens), generator=gen).to(device)


@torch.no_grad()
def measure_model(model: nn.Module, device: torch.device, prefill_tokens: int = 2048, decode_tokens: int = 64,
                  batch: int = 1, prompt_tokens: int = 128, repeats: int = 5) -> ModelSpeed:
    """Prefill and decode speed of ``model`` (already on ``device``, in its serving dtype)."""
    if prefill_tokens < 1 or batch < 1:
        raise ValueError(f"prefill_tokens and batch must be >= 1, got {prefill_tokens}, {batch}")
    model.eval()
    ids = _random_ids(model, batch, prefill_tokens, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    prefill = median_seconds(lambda: model(input_ids=ids, use_cache=False), device, repeats=repeats)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    decode = None
    if decode_tokens > 0:
        prompt = _random_ids(model, batch, prompt_tokens, device, seed=1)
        decode = _decode_seconds(model, prompt, decode_tokens, device, repeats=max(1, repeats // 2))
    return ModelSpeed(
        prefill_tokens_per_s=batch * prefill_tokens / prefill,
        prefill_ms=prefill * 1000.0,
        decode_tokens_per_s=batch * decode_tokens / decode if decode else None,
        decode_ms_per_step=decode * 1000.0 / decode_tokens if decode else None,
        peak_memory_bytes=peak,
    )


def _cache_of(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _decode_seconds(model: nn.Module, prompt: torch.Tensor, steps: int, device: torch.device,
                    repeats: int) -> float:
    """Median seconds of ``steps`` greedy one-token forwards with the KV cache; each repeat
    first runs the prompt (not timed) to fill a fresh cache. One extra run warms up."""
    # transformers >= 5.2x names the KV cache ``cache`` (argument and output), older ones
    # ``past_key_values``
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    times = []
    for repeat in range(repeats + 1):
        out = model(input_ids=prompt, use_cache=True)
        cache, token = _cache_of(out), out.logits[:, -1:].argmax(-1)
        _sync(device)
        begin = time.perf_counter()
        for _ in range(steps):
            out = model(input_ids=token, use_cache=True, **{key: cache})
            cache, token = _cache_of(out), out.logits[:, -1:].argmax(-1)
        _sync(device)
        if repeat:
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def one_layer_llama(shape: dict | None = None, vocab: int = 512, seed: int = 0) -> nn.Module:
    """float32 ``LlamaForCausalLM`` with one decoder layer of ``shape`` (default Llama-3-8B)
    and random weights (std 0.02, like a fresh initialization), vocabulary ``vocab``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = dict(LLAMA3_8B_LAYER, **(shape or {}))
    config = LlamaConfig(num_hidden_layers=1, vocab_size=vocab, max_position_embeddings=8192,
                         head_dim=shape["hidden_size"] // shape["num_attention_heads"], **shape)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.config.use_cache = False
    return model.float().eval()


def cuda_graphed(fn: Callable[[], object]) -> Callable[[], None]:
    """``fn`` (a call on fixed CUDA tensors) captured into a CUDA graph; returns its replay.

    ``fn`` first runs three times on a side stream (the warm-up CUDA graphs need: kernels
    compiled, workspaces allocated outside the capture). The replay runs the same kernels on
    the same input buffers with no host work per kernel: what a serving engine's decode loop
    sees, against eager PyTorch where every launch pays Python and driver time.
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


@torch.no_grad()
def layer_ms(model: nn.Module, device: torch.device, tokens: int, repeats: int = 5,
             cuda_graph: bool = False) -> float:
    """Median ms of ``model.model.layers[0]`` on the inputs of a ``(1, tokens)`` forward;
    ``cuda_graph`` (CUDA only): time a CUDA-graph replay of the call instead of eager calls."""
    layer = model.model.layers[0]
    captured = {}

    def grab(module, args, kwargs):
        captured.setdefault("call", (args, kwargs))

    hook = layer.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        model(input_ids=_random_ids(model, 1, tokens, device), use_cache=False)
    finally:
        hook.remove()
    args, kwargs = captured["call"]
    call = lambda: layer(*args, **kwargs)
    if cuda_graph:
        if device.type != "cuda":
            raise ValueError(f"cuda_graph timing needs a CUDA device, got {device}")
        call = cuda_graphed(call)
    return 1000.0 * median_seconds(call, device, repeats=repeats)
