"""How benchmarks/kernels.py times a kernel (docs/GPU.md's method).

A CUDA graph replays ``REPS`` calls and is replayed ``TRIALS`` times; the time is the median
replay divided by ``REPS``. The calls rotate over enough copies of the inputs (``ROTATION_BYTES``,
more than three times the H100's 50 MB L2) that weights come from HBM, as in real decoding.
"""

from __future__ import annotations

import math
import statistics

import torch

ROTATION_BYTES = 160 * 2**20  # > 3x the H100's 50 MB L2
REPS, TRIALS = 20, 15


def single_call() -> None:
    """One call per case, no rotation: for the compile-only warm-up processes."""
    global REPS, TRIALS, ROTATION_BYTES
    REPS, TRIALS, ROTATION_BYTES = 1, 1, 1


def method() -> str:
    """The method line the JSON records."""
    return f"CUDA graph of {REPS} calls, median of {TRIALS} replays, inputs rotated over >= {ROTATION_BYTES >> 20} MiB"


def time_ms(make_call, n_sets: int) -> float:
    """Median ms per call of ``make_call(i)()`` over rotating input sets, via a CUDA graph."""
    calls = [make_call(i) for i in range(n_sets)]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for call in calls:
            call()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for rep in range(REPS):
            calls[rep % n_sets]()
    graph.replay()
    times = []
    for _ in range(TRIALS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / REPS)
    del graph
    return statistics.median(times)


def sets_for(bytes_per_call: int) -> int:
    return max(1, min(16, math.ceil(ROTATION_BYTES / max(bytes_per_call, 1))))


def nbytes(*tensors) -> int:
    total = 0
    for t in tensors:
        if isinstance(t, dict):
            total += nbytes(*t.values())
        elif isinstance(t, torch.Tensor):
            total += t.numel() * t.element_size()
    return total


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.float(), ref.float()
    if not torch.isfinite(out).all():
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp(min=1e-30))
