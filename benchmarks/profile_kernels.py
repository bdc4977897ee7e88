"""Run a few of residq's kernels once each inside a profiler range, for Nsight Compute.

    ncu --clock-control none --profile-from-start off --csv --page details \
        --section SpeedOfLight --section WarpStateStats --section Occupancy --section LaunchStats \
        python benchmarks/profile_kernels.py --cases w4a16 act w4a4 > ncu.csv

Every case first runs once outside the range (Triton compiles there), then once inside it, and
prints its name to stderr, so the CSV's kernels come in the order of the cases below. The inputs
are the Llama-3-8B shapes that ``kernels.py`` times.
"""

from __future__ import annotations

import argparse
import sys

import torch

from residq.kernels import act_quant, w4a4, w4a16
from residq.kernels.block_formats import quantize_blocks


def w4a16_cases(gen):
    for m, n, k, cfg in ((1, 4096, 4096, None), (1, 14336, 4096, None), (16, 4096, 4096, None),
                         (16, 4096, 4096, {"kernel": "skinny"}),
                         (16, 14336, 4096, None), (16, 14336, 4096, {"kernel": "skinny"})):
        w = torch.randn(n, k, device="cuda", generator=gen) * 0.02
        packed = {key: v.contiguous() for key, v in quantize_blocks(w.bfloat16(), "nvfp4").items()}
        x = torch.randn(m, k, device="cuda", generator=gen).bfloat16()
        yield f"w4a16 nvfp4 M={m} N={n} K={k} {cfg}", lambda x=x, p=packed, c=cfg: w4a16.launch(x, p, "nvfp4", c)


def act_cases(gen):
    x = torch.randn(2048, 4096, device="cuda", generator=gen).bfloat16()
    g = torch.tensor(0.01, device="cuda")
    yield "act nvfp4 dynamic", lambda: act_quant.launch(x, "nvfp4")
    yield "act nvfp4 static", lambda: act_quant.launch(x, "nvfp4", global_scale=g)
    yield "act mxfp4", lambda: act_quant.launch(x, "mxfp4")


def w4a4_cases(gen):
    x = torch.randn(2048, 4096, device="cuda", generator=gen).bfloat16()
    w = (torch.randn(4096, 4096, device="cuda", generator=gen) * 0.02).bfloat16()
    xq = act_quant.launch(x, "nvfp4")
    wq = {key: v.contiguous() for key, v in quantize_blocks(w, "nvfp4").items()}
    yield "w4a4 nvfp4 M=2048 4096x4096 decoded", lambda: w4a4.launch(xq, wq, "nvfp4")
    yield "bf16 cublas M=2048 4096x4096", lambda: torch.matmul(x, w.T)


CASES = {"w4a16": w4a16_cases, "act": act_cases, "w4a4": w4a4_cases}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    for family in args.cases:
        for name, call in CASES[family](gen):
            call()
            torch.cuda.synchronize()
            print(f"profiling: {name}", file=sys.stderr, flush=True)
            torch.cuda.cudart().cudaProfilerStart()
            call()
            torch.cuda.synchronize()
            torch.cuda.cudart().cudaProfilerStop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
