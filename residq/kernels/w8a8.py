"""W8A8: FP8 E4M3 or INT8, activations per token x weights per output channel.

The GEMM is the library's (Hopper's FP8 / INT8 tensor cores through cuBLAS(Lt)):
``torch._scaled_mm`` with row-wise scales for FP8, ``torch._int_mm`` plus a scaling epilogue
for INT8. This file adds the per-token activation quantizer (one Triton pass per row block:
amax, then codes) and the offline per-channel weight quantizer.

Scales (as ``residq.formats``): FP8 ``amax / 448`` (all-zero row: 1), codes
``e4m3(x / scale)`` (nearest even, |.| <= 448); INT8 ``amax / 127`` (zero row: 1), codes
``clamp(round_half_even(x / scale), -128, 127)``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from residq.kernels.triton_codes import e4m3_round, rint

KINDS = ("fp8", "int8")
_QMAX = {"fp8": 448.0, "int8": 127.0}
_FLOAT32_TINY = tl.constexpr(1.1754943508222875e-38)


def quantize_rows_reference(x: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row quantization of ``x`` ``(rows, K)``: (codes ``(rows, K)``, float32 scale ``(rows, 1)``).

    Codes are ``float8_e4m3fn`` (fp8) or int8.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    xf = x.float()
    amax = xf.abs().amax(dim=1, keepdim=True)
    scale = torch.where(amax > 0, (amax / _QMAX[kind]).clamp(min=torch.finfo(torch.float32).tiny),
                        torch.ones_like(amax))
    if kind == "fp8":
        codes = (xf / scale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    else:
        codes = torch.round(xf / scale).clamp(-128, 127).to(torch.int8)
    return codes, scale


def reference(x: torch.Tensor, w_codes: torch.Tensor, w_scale: torch.Tensor, kind: str) -> torch.Tensor:
    """float32 emulation of ``launch``: quantize x per token, dequantize both, multiply."""
    x_codes, x_scale = quantize_rows_reference(x, kind)
    x_deq = x_codes.float() * x_scale
    w_deq = w_codes.float() * w_scale.reshape(-1, 1).float()
    return (x_deq @ w_deq.T).to(x.dtype)


@triton.jit(do_not_specialize=["M"])
def _quantize_rows_kernel(x_ptr, codes_ptr, scale_ptr, M, K, stride_xm,
                          INT8: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = (rows < M)[:, None]
    running = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + rows[:, None] * stride_xm + cols[None, :],
                    mask=row_ok & (cols < K)[None, :], other=0.0)
        running = tl.maximum(running, tl.abs(x.to(tl.float32)))
    amax = tl.max(running, axis=1)
    qmax: tl.constexpr = 127.0 if INT8 else 448.0
    scale = tl.where(amax > 0, tl.maximum(tl.math.div_rn(amax, qmax), _FLOAT32_TINY), 1.0)
    tl.store(scale_ptr + rows, scale, mask=rows < M)
    for k0 in range(0, K, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        mask = row_ok & (cols < K)[None, :]
        x = tl.load(x_ptr + rows[:, None] * stride_xm + cols[None, :], mask=mask, other=0.0)
        v = tl.math.div_rn(x.to(tl.float32), scale[:, None])
        if INT8:
            code = tl.minimum(tl.maximum(rint(v), -128.0), 127.0).to(tl.int8)
        else:
            bits, _ = e4m3_round(tl.minimum(tl.abs(v), 448.0))
            code = (bits | tl.where(v < 0, 0x80, 0)).to(tl.uint8)
        tl.store(codes_ptr + rows[:, None] * K + cols[None, :], code, mask=mask)


def quantize_rows(x: torch.Tensor, kind: str, block_rows: int = 4,
                  block_cols: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Device version of ``quantize_rows_reference`` (bit-identical)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    x = x if x.stride(1) == 1 else x.contiguous()
    m, k = x.shape
    code_dtype = torch.int8 if kind == "int8" else torch.uint8
    codes = torch.empty((m, k), dtype=code_dtype, device=x.device)
    scale = torch.empty((m, 1), dtype=torch.float32, device=x.device)
    _quantize_rows_kernel[(triton.cdiv(m, block_rows),)](
        x, codes, scale, m, k, x.stride(0), INT8=kind == "int8",
        BLOCK_M=block_rows, BLOCK_K=block_cols, enable_fp_fusion=False,
    )
    if kind == "fp8":
        codes = codes.view(torch.float8_e4m3fn)
    return codes, scale


def quantize_weight(w: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Offline per-output-channel weight quantization: (codes ``(N, K)``, float32 ``(N,)``)."""
    codes, scale = quantize_rows_reference(w, kind)
    return codes.contiguous(), scale.reshape(-1)


def scaled_mm(x_codes: torch.Tensor, x_scale: torch.Tensor, w_codes: torch.Tensor,
              w_scale: torch.Tensor, kind: str, out_dtype: torch.dtype = torch.bfloat16,
              fast_accum: bool = False) -> torch.Tensor:
    """The library GEMM on quantized operands: ``(x_codes * x_scale) @ (w_codes * w_scale)^T``."""
    if kind == "fp8":
        out = torch._scaled_mm(x_codes, w_codes.t(), scale_a=x_scale.float(),
                               scale_b=w_scale.float().reshape(1, -1), out_dtype=out_dtype,
                               use_fast_accum=fast_accum)
        return out[0] if isinstance(out, tuple) else out
    m = x_codes.shape[0]
    padded = x_codes
    if m <= 16:  # torch._int_mm needs more than 16 rows
        padded = torch.nn.functional.pad(x_codes, (0, 0, 0, 32 - m))
    acc = torch._int_mm(padded, w_codes.t())[:m]
    return (acc.float() * x_scale * w_scale.reshape(1, -1).float()).to(out_dtype)


def launch(x: torch.Tensor, w_codes: torch.Tensor, w_scale: torch.Tensor, kind: str,
           fast_accum: bool = False) -> torch.Tensor:
    """W8A8 linear ``(M, N)`` in x's dtype: per-token quantization of x, then the library GEMM."""
    x_codes, x_scale = quantize_rows(x, kind)
    return scaled_mm(x_codes, x_scale, w_codes, w_scale, kind, x.dtype, fast_accum)
