"""Time NVFP4's dynamic-scale amax pass (``global_scale.amax_pass``) alone, over tile shapes, warps and
program counts, at M = 2048 and K = 4096 / 14336 (bf16), with benchmarks/kernels.py's method
(CUDA graph, inputs rotated past L2). Prints one line per configuration: us, GB/s of X read,
and the fraction of the copy bandwidth measured in the same process. Checks g against torch.

    PYTHONPATH=. python scripts/amax_pass_sweep.py
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from kernel_timing import sets_for, time_ms

from residq.kernels import global_scale

TILES = [(8, 1024), (16, 512), (4, 2048), (16, 1024), (32, 512)]
WARPS = [4, 8]
PROGRAMS = [264, 528, 1024]


def copy_gbps() -> float:
    src = torch.empty(2**29, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = time_ms(lambda i: lambda: dst.copy_(src), 1)
    return 2 * src.numel() / ms / 1e6


def main() -> None:
    copy = copy_gbps()
    print(f"copy bandwidth {copy:.0f} GB/s ({torch.cuda.get_device_name()})")
    for k in (4096, 14336):
        m = 2048
        sets = sets_for(2 * m * k)
        xs = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(sets)]
        expected = xs[0].float().abs().max() / 2688.0
        g = torch.empty((), dtype=torch.float32, device="cuda")
        for (rows, cols), warps, programs in itertools.product(TILES, WARPS, PROGRAMS):
            global_scale.amax_pass(xs[0], g, rows, cols, warps, programs)
            if not torch.equal(g, expected):
                print(f"K={k} {rows}x{cols} w{warps} p{programs}: WRONG g {g.item()} != {expected.item()}")
                continue
            ms = time_ms(lambda i, xs=xs, g=g, r=rows, c=cols, w=warps, p=programs: lambda: global_scale.amax_pass(
                xs[i], g, r, c, w, p), sets)
            gbps = 2 * m * k / ms / 1e6
            print(f"K={k:5d} tile {rows:2d}x{cols:4d} warps {warps} programs {programs:4d}: "
                  f"{ms * 1e3:6.1f} us {gbps:6.0f} GB/s {gbps / copy:.2f} of copy", flush=True)


if __name__ == "__main__":
    main()
