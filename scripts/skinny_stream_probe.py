"""Where the skinny W4A16 kernel's time goes at one token: the real kernel against the same kernel
whose per-lane PTX (decode, scale, MMAs) is replaced by a few XORs of the loaded words, so that
only the loads, the split-K reduction and the launch remain. Same grid, same loads, same
prefetching; benchmarks/kernels.py's timing method (CUDA graph, weights rotated past L2).

    PYTHONPATH=. python scripts/skinny_stream_probe.py

Prints per shape: cuBLAS bf16 GEMV, the real kernel, the load-only kernel (us), and the
load-only kernel's rate over the packed weight bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from kernel_timing import sets_for, time_ms

from residq.kernels import w4a16, w4a16_skinny
from residq.kernels.block_formats import quantize_blocks

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (6144, 4096)]

LOAD_ONLY_PTX = """{
.reg .b32 a0, a1, b0, b1;
mov.b64 {a0, a1}, $4;
mov.b64 {b0, b1}, $5;
xor.b32 a0, a0, a1;
xor.b32 b0, b0, b1;
xor.b32 a0, a0, $6;
xor.b32 b0, b0, $7;
and.b32 a0, a0, 63;
and.b32 b0, b0, 63;
cvt.rn.f32.u32 $0, a0;
cvt.rn.f32.u32 $1, b0;
mov.f32 $2, 0f00000000;
mov.f32 $3, 0f00000000;
}"""


VARIANTS = [{}, {"CH": 16}, {"R": 2}, {"num_warps": 8}]


def main() -> None:
    real_ptx = w4a16_skinny.skinny_mma_ptx
    fmt = "nvfp4"
    print(f"{torch.cuda.get_device_name()}, M = 1, {fmt}")
    for n, k in SHAPES:
        first = {key: v.contiguous() for key, v in quantize_blocks(
            torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02, fmt).items()}
        packed_bytes = sum(v.numel() * v.element_size() for v in first.values())
        sets = sets_for(packed_bytes)
        weights = [first] + [{key: v.clone() for key, v in first.items()} for _ in range(sets - 1)]
        dense = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(sets_for(2 * n * k))]
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        ref = w4a16.reference(x, first, fmt).float()
        bf16 = time_ms(lambda i, dense=dense, x=x: lambda: x @ dense[i % len(dense)].T, len(dense))
        auto = dict(w4a16.resolve_config(x, first, fmt, None))
        print(f"N={n:5d} K={k:5d}: bf16 {bf16 * 1e3:6.1f} us; default {auto}")
        for variant in VARIANTS:
            cfg = dict(auto, **variant)
            for label, ptx in (("kernel", real_ptx), ("loads only", lambda *args: LOAD_ONLY_PTX)):
                w4a16_skinny.skinny_mma_ptx = ptx
                out = w4a16.launch(x, first, fmt, config=cfg).float()
                err = float((out - ref).norm() / ref.norm())
                ms = time_ms(lambda i, w=weights, x=x, cfg=cfg: lambda: w4a16.launch(x, w[i], fmt, config=cfg), sets)
                print(f"   {variant!s:40s} {label:10s} {ms * 1e3:6.1f} us {packed_bytes / ms / 1e6:5.0f} GB/s "
                      f"{bf16 / ms:.2f}x" + (f"  rel err {err:.1e}" if label == "kernel" else ""), flush=True)
            w4a16_skinny.skinny_mma_ptx = real_ptx


if __name__ == "__main__":
    main()
