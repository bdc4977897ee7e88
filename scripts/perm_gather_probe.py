"""How should the activation quantizer apply ARCQuant's channel permutation? Times, on the GPU,
the channel gather alone (``column_gather``'s Gluon kernel and torch indexing), the quantizer
with the gather inside its loads (``gather="fused"``) and with a gather pass first
(``gather="pass"``), for NVFP4 (dynamic and static global scale, with and without ARCQuant's
residual channels), MXFP4 and INT4, at M = 2048 and the Llama-3-8B K values; with
benchmarks/kernels.py's timing (CUDA graph, inputs rotated past L2). Every variant's codes are
first checked against the unpermuted quantizer run on ``x[:, perm]``. Last, the crossover in M
between the two for ARCQuant's call (``act_quant``'s default picks by M K).

    PYTHONPATH=. python scripts/perm_gather_probe.py
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from kernel_timing import nbytes, sets_for, time_ms

from residq.kernels import act_quant, column_gather

M = 2048
KS = (4096, 14336)
CROSSOVER_MS = (1, 16, 64, 128, 256, 512)
CASES = (("nvfp4", False, False), ("nvfp4", True, False), ("nvfp4", False, True), ("mxfp4", False, False),
         ("int4", False, False))  # (format, static global scale, ARCQuant residual of 8% of K)


def _gather(x, perm):
    return column_gather.gather_columns(x, perm)[0]


def _index(x, perm):
    return x[:, perm]


def copy_gbps(k: int) -> float:
    sets = sets_for(4 * M * k)
    xs = [torch.randn(M, k, device="cuda").bfloat16() for _ in range(sets)]
    out = torch.empty_like(xs[0])
    ms = timed(out.copy_, xs)
    return 2 * nbytes(out) / ms / 1e6


def timed(call, xs) -> float:
    """Median ms of ``call(x)`` over the rotating inputs ``xs``."""
    return time_ms(lambda i: functools.partial(call, xs[i]), len(xs))


def main() -> None:
    print(f"{torch.cuda.get_device_name()}, M = {M}")
    for k in KS:
        copy = copy_gbps(k)
        sets = sets_for(2 * M * k)
        xs = [torch.randn(M, k, device="cuda").bfloat16() for _ in range(sets)]
        perm = torch.randperm(k, device="cuda")
        perm32 = perm.int()
        assert torch.equal(column_gather.gather_columns(xs[0], perm)[0], xs[0][:, perm])
        gather = timed(functools.partial(_gather, perm=perm32), xs)
        index = timed(functools.partial(_index, perm=perm), xs)
        moved = 2 * nbytes(xs[0])
        print(f"K={k}: copy {copy:.0f} GB/s; gather pass {gather * 1e3:.1f} us ({moved / gather / 1e6 / copy:.2f} "
              f"of copy), torch x[:, perm] {index * 1e3:.1f} us", flush=True)
        for fmt, static, residual in CASES:
            s = 16 * math.ceil(0.08 * k / 16) if residual else 0
            g = torch.tensor(0.01, device="cuda") if static else None
            want = act_quant.launch(xs[0][:, perm].contiguous(), fmt, s=s, global_scale=g)
            line = f"  {fmt:5s} static={static!s:5s} s={s:4d}:"
            for mode in ("fused", "pass"):
                got = act_quant.launch(xs[0], fmt, perm=perm32, s=s, global_scale=g, gather=mode)
                if not all(torch.equal(got[key], want[key]) for key in want):
                    line += f" {mode} MISMATCH"
                    continue
                ms = timed(functools.partial(act_quant.launch, fmt=fmt, perm=perm32, s=s, global_scale=g,
                                             gather=mode), xs)
                frac = (nbytes(xs[0]) + nbytes(got)) / ms / 1e6 / copy
                line += f"  {mode} {ms * 1e3:6.1f} us ({frac:.2f} of copy)"
            plain = timed(functools.partial(act_quant.launch, fmt=fmt, s=s, global_scale=g), xs)
            print(line + f"  no perm {plain * 1e3:6.1f} us", flush=True)
    print("crossover, NVFP4 with a dynamic scale and s = 8% of K (an ARCQuant layer's call), us:")
    for k in KS:
        s = 16 * math.ceil(0.08 * k / 16)
        perm32 = torch.randperm(k, device="cuda").int()
        line = f"  K={k}:"
        for m in CROSSOVER_MS:
            xs = [torch.randn(m, k, device="cuda").bfloat16() for _ in range(sets_for(2 * m * k))]
            fused, passed = (timed(functools.partial(act_quant.launch, fmt="nvfp4", perm=perm32, s=s, gather=mode), xs)
                             for mode in ("fused", "pass"))
            line += f"  M={m} fused {fused * 1e3:.1f} pass {passed * 1e3:.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
