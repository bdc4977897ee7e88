"""W4A4 at decode sizes (M <= 16 tokens): the activation decoded once, then the skinny W4A16 kernel.

``out (M, N) = g_w (g_x deq(Xq) deq(Wq)^T over K + g_r deq(Xq) deq(Wq)^T over ARCQuant's s
residual columns) [+ (X A) B^T]`` for NVFP4 / MXFP4. The activation's codes are decoded to bf16 by ``decode.py``
(``e2m1 * block_scale``, exact: ALGORITHMS.md 1), and ``w4a16_skinny``'s kernel multiplies them
with the packed weight, decoded in registers to exact 16-bit values, accumulating in fp32; the
NVFP4 global scales multiply the fp32 sums of each kernel program, whose columns lie all in
the main range (``g_x g_w``) or all in the residual range (``g_r g_w``): the same numbers as
the fused W4A4 kernel up to fp32 summation order. ARHQ's branch is added to the fp32 result before the one
rounding to ``out_dtype``, as in the fused kernel's epilogue (a 16-bit ``addmm`` onto the
rounded product would round twice: 2.8e-3 relative error against the reference on the H100
benchmark's rank-64 rows, over its 2e-3 check).

Why: at one token the fused W4A4 kernel (both operands decoded inside 64 x 64 tiles) ran a
Llama-3-8B q_proj in 44 us on the H100 against 11 us for cuBLAS bf16; decoding the activation
costs one tiny launch, and the skinny kernel streams the 4-bit weight (benchmarks/README.md).
"""

from __future__ import annotations

import torch

from residq.kernels import decode
from residq.kernels.block_formats import FP4_FORMATS
from residq.kernels.w4a16_skinny import launch_skinny, skinny_config

SKINNY_MAX_M = 16  # the skinny kernel's largest token count (two 8-token MMA tiles)


def unsupported(m: int, k: int, fmt: str, w_packed: dict[str, torch.Tensor]) -> str | None:
    """Why this path cannot run the problem (a phrase for an error message), or None."""
    if m > SKINNY_MAX_M:
        return f"needs M <= {SKINNY_MAX_M} tokens, got {m}"
    if fmt not in FP4_FORMATS:
        return f"needs nvfp4 or mxfp4 (exact in bf16), got {fmt}"
    if k % 128:
        return f"needs K % 128 == 0 (before ARCQuant's s columns), got K = {k}"
    codes, scale = w_packed["codes"], w_packed["scale"]
    if not (codes.is_contiguous() and codes.data_ptr() % 16 == 0 and scale.is_contiguous()
            and scale.data_ptr() % 4 == 0):
        return "needs contiguous weight codes (16-byte aligned) and scales (4-byte aligned)"
    return None


def launch(x_packed: dict[str, torch.Tensor], w_packed: dict[str, torch.Tensor], fmt: str, s: int = 0,
           lowrank_xa: torch.Tensor | None = None, lowrank_b: torch.Tensor | None = None,
           out_dtype: torch.dtype = torch.bfloat16, use_asm: bool | None = None) -> torch.Tensor:
    """W4A4 product ``(M, N)`` in ``out_dtype`` (check ``unsupported`` first).

    Args:
        x_packed: packed activations ``(M, K + s)`` from ``act_quant.launch`` (NVFP4: with
            ``global_scale`` float32 ``()``, and ``residual_global_scale`` when ``s > 0``).
        w_packed: packed weight ``(N, K + s)`` (``w4a4.augment_weight``), the same format.
        fmt: ``nvfp4`` or ``mxfp4``.
        s: ARCQuant's residual columns (the kernel's segments from K on use the residual
            global scale; a partial last segment reads zeros past K + s).
        lowrank_xa, lowrank_b: ARHQ's ``X A`` ``(M, r)`` and ``B`` ``(N, r)``, or None.
        use_asm: the skinny kernel's inline PTX (default: on the GPU; the interpreter runs
            its plain-tensor twin).
    """
    m, n = x_packed["codes"].shape[0], w_packed["codes"].shape[0]
    k_total = 2 * x_packed["codes"].shape[1]
    use_asm = (x_packed["codes"].device.type != "cpu") if use_asm is None else use_asm
    x_values = decode.decode(x_packed, fmt, use_asm=use_asm)  # (M, K + s) bf16, e2m1 * block scale
    nvfp4 = fmt == "nvfp4"
    g_x = x_packed["global_scale"] if nvfp4 else None  # times g_w on the fp32 sums
    g_r = x_packed["residual_global_scale"] if nvfp4 and s else None
    cfg = skinny_config(m, n, k_total, fmt)
    main_segments = (k_total - s) // 128
    ch = cfg["CH"]
    while main_segments % ch:  # no program may straddle column K (one global scale each)
        ch //= 2
    with_lowrank = lowrank_xa is not None
    out = torch.empty((m, n), dtype=torch.float32 if with_lowrank else out_dtype, device=x_values.device)
    launch_skinny(x_values, w_packed, fmt, out, dict(cfg, CH=ch), use_asm, extra_scale=g_x,
                  k_main=k_total - s if g_r is not None else None, extra_scale_after=g_r)
    if with_lowrank:  # in float32, then one rounding (a 16-bit addmm would round the product twice)
        out.addmm_(lowrank_xa.float(), lowrank_b.float().T)
        out = out.to(out_dtype)
    return out
