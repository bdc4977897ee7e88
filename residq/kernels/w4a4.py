"""W4A4 emulated GEMM: packed 4-bit activations times packed 4-bit weights, for Hopper.

``out (M, N) = deq(Xq) (M, K') @ deq(Wq) (N, K')^T [+ (X A) B^T]`` where both operands come
packed as in ``block_formats.py`` (activations from ``act_quant.launch``) and ``K' = K + s``
(ARCQuant: the last ``s`` columns of ``Xq`` are the quantized residual ``Q2``, those of ``Wq``
repeat the weight's outlier columns; arXiv 2601.07475).

Hopper has no FP4 tensor cores, so both tiles are decoded in registers to 16-bit values that
are exact (ALGORITHMS.md 1: ``e2m1 * e4m3`` is exact in fp16 and bf16; MXFP4 ``e2m1 * 2^e`` in
bf16; INT4 codes as int8 ``16 q`` for the int8 tensor cores, each 128-wide group's int32
product scaled by ``step_x * step_w / 256``) and multiplied with fp32 accumulation. NVFP4's
global scales are applied at the end: ``g_x g_w`` for the main K range and, with ARCQuant's own
residual scale ``g_r``, the accumulator is rescaled by ``g_x / g_r`` between the two ranges.
ARHQ's low-rank branch (arXiv 2605.00140) is one more MMA in the epilogue: ``(X A) B^T``
with ``X A`` from the activation kernel. A faithful emulation of Blackwell's NVFP4 GEMM up to
fp32 summation order.

At decode sizes (M <= 16, NVFP4/MXFP4, K % 128 == 0) the default is ``w4a4_skinny.py``: the
activation decoded once to bf16, then the skinny W4A16 kernel. Otherwise two paths share the
kernel and its epilogue. "fused" decodes both packed tiles in registers at
every K step (each activation tile N/BLOCK_N times, each weight tile M/BLOCK_M times). "decoded"
(NVFP4/MXFP4, the default from M = ``DECODED_MIN_M``) first decodes each operand once to bf16
with ``decode.py`` (``e2m1 * block_scale``, exact) and then runs the same K loops as a pipelined
bf16 tensor-core GEMM; the global scales stay in the epilogue, so both paths compute the same
numbers up to fp32 summation order. On Hopper that GEMM is ``w4a4_tma.py``'s persistent kernel
with TMA loads (bit-identical to this file's cp.async kernel, which remains the fallback).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from residq.kernels import decode, w4a4_skinny, w4a4_tma, w4a4_wdec
from residq.kernels.block_formats import FORMAT_IDS, FP4_FORMATS, block_size, dequantize_blocks
from residq.kernels.triton_mma import mma
from residq.kernels.triton_tiles import load_decoded_tile, to_dot_order, to_dot_order_t
from residq.kernels.w4a4_epilogue import add_lowrank, after_k_ranges, before_residual_range, grouped_tile


def reference(x_packed: dict[str, torch.Tensor], w_packed: dict[str, torch.Tensor], fmt: str,
              s: int = 0, lowrank_xa: torch.Tensor | None = None,
              lowrank_b: torch.Tensor | None = None,
              out_dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """float32 emulation: dequantize both operands (the residual columns with their own global
    scale), one product over K + s, plus the low-rank term; returned in ``out_dtype``."""
    x_main = dict(x_packed)
    x_vals = dequantize_blocks(x_main, fmt)
    if s and fmt == "nvfp4":
        g_ratio = x_packed["residual_global_scale"].float() / x_packed["global_scale"].float()
        x_vals[:, -s:] = x_vals[:, -s:] * g_ratio
    out = x_vals @ dequantize_blocks(w_packed, fmt).T
    if lowrank_xa is not None:
        out = out + lowrank_xa.float() @ lowrank_b.float().T
    return out.to(out_dtype)


@triton.jit
def _accumulate_decoded(acc, x_ptr, w_ptr, offs_m, offs_n, M, N, k_begin, k_end, row_stride,
                        BLOCK_K: tl.constexpr, F32_DOT: tl.constexpr, NUM_STAGES: tl.constexpr):
    """acc ``[BM, BN]`` += ``X[:, k] @ W[:, k]^T`` over ``[k_begin, k_end)`` from bf16 operands
    already decoded (``decode.py``); plain loads that Triton pipelines into shared memory."""
    rows_m = offs_m % M  # wrapped rows: the loads need no row mask (the store masks them)
    rows_n = offs_n % N
    for k0 in tl.range(k_begin, k_end, BLOCK_K, num_stages=NUM_STAGES):
        cols = k0 + tl.arange(0, BLOCK_K)
        in_range = cols < k_end
        x = tl.load(x_ptr + rows_m[:, None] * row_stride + cols[None, :], mask=in_range[None, :], other=0.0)
        w = tl.load(w_ptr + rows_n[None, :] * row_stride + cols[:, None], mask=in_range[:, None], other=0.0)
        acc = mma(x, w, acc, F32_DOT)
    return acc


@triton.jit
def _accumulate(acc, xc_ptr, xs_ptr, wc_ptr, ws_ptr, offs_m, offs_n, M, N, k_begin, k_end,
                k_total, FMT: tl.constexpr, BLOCK_K: tl.constexpr, USE_ASM: tl.constexpr,
                F32_DOT: tl.constexpr, DECODED: tl.constexpr, row_stride, STAGES: tl.constexpr):
    """acc ``[BM, BN]`` += product of the tiles over columns ``[k_begin, k_end)``: decoded in
    registers from the packed operands, or (``DECODED``) loaded from bf16 operands."""
    if DECODED:
        acc = _accumulate_decoded(acc, xc_ptr, wc_ptr, offs_m, offs_n, M, N, k_begin, k_end, row_stride,
                                  BLOCK_K, F32_DOT, STAGES)
    else:
        acc = _accumulate_packed(acc, xc_ptr, xs_ptr, wc_ptr, ws_ptr, offs_m, offs_n, M, N, k_begin,
                                 k_end, k_total, FMT, BLOCK_K, USE_ASM, F32_DOT)
    return acc


@triton.jit
def _accumulate_packed(acc, xc_ptr, xs_ptr, wc_ptr, ws_ptr, offs_m, offs_n, M, N, k_begin, k_end,
                       k_total, FMT: tl.constexpr, BLOCK_K: tl.constexpr, USE_ASM: tl.constexpr,
                       F32_DOT: tl.constexpr):
    """acc ``[BM, BN]`` += product of the tiles decoded in registers over ``[k_begin, k_end)``."""
    BF16: tl.constexpr = FMT == 1  # NVFP4 decodes to fp16 (cheapest), MXFP4 needs bf16 range
    HALF: tl.constexpr = BLOCK_K // 2
    BM: tl.constexpr = acc.shape[0]
    BN: tl.constexpr = acc.shape[1]
    for k0 in range(k_begin, k_end, BLOCK_K):
        x_lo, x_hi, x_step = load_decoded_tile(xc_ptr, xs_ptr, offs_m, M, k0, k_end, k_total,
                                               FMT, BLOCK_K, BF16, USE_ASM, FMT == 2)
        w_lo, w_hi, w_step = load_decoded_tile(wc_ptr, ws_ptr, offs_n, N, k0, k_end, k_total,
                                               FMT, BLOCK_K, BF16, USE_ASM, FMT == 2)
        # both operands in the same K order, chosen so the register operand loads contiguously
        x_lo = to_dot_order(x_lo, BM, HALF)
        x_hi = to_dot_order(x_hi, BM, HALF)
        w_lo = to_dot_order_t(w_lo, BN, HALF)
        w_hi = to_dot_order_t(w_hi, BN, HALF)
        if FMT == 2:
            part = tl.zeros([BM, BN], dtype=tl.float32 if F32_DOT else tl.int32)
            part = mma(x_hi, w_hi, mma(x_lo, w_lo, part, F32_DOT), F32_DOT)
            acc += part.to(tl.float32) * (x_step * (tl.trans(w_step) * (1.0 / 256.0)))
        else:
            acc = mma(x_hi, w_hi, mma(x_lo, w_lo, acc, F32_DOT), F32_DOT)
    return acc


@triton.jit(do_not_specialize=["M", "S", "R"])
def _w4a4_kernel(
    xc_ptr, xs_ptr, gx_ptr, gr_ptr, wc_ptr, ws_ptr, gw_ptr, xa_ptr, b_ptr, out_ptr,
    M, N, K, S, R, stride_om, row_stride,
    FMT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, HAS_LOWRANK: tl.constexpr, R_PAD: tl.constexpr,
    USE_ASM: tl.constexpr, F32_DOT: tl.constexpr, DECODED: tl.constexpr, STAGES: tl.constexpr,
):
    pid_m, pid_n = grouped_tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    # S is a multiple of 16; written so, Triton sees that the K + s masks are 16-aligned and
    # pipelines the residual loop with cp.async (with plain K + S it loads synchronously)
    k_total = K + (S // 16) * 16
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    acc = _accumulate(acc, xc_ptr, xs_ptr, wc_ptr, ws_ptr, offs_m, offs_n, M, N, 0, K, k_total,
                      FMT, BLOCK_K, USE_ASM, F32_DOT, DECODED, row_stride, STAGES)
    acc, g_last = before_residual_range(acc, gx_ptr, gr_ptr, S, FMT)
    acc = _accumulate(acc, xc_ptr, xs_ptr, wc_ptr, ws_ptr, offs_m, offs_n, M, N, K,
                      k_total, k_total, FMT, BLOCK_K, USE_ASM, F32_DOT, DECODED, row_stride, STAGES)
    acc = after_k_ranges(acc, g_last, gw_ptr, FMT)
    if HAS_LOWRANK:
        acc = add_lowrank(acc, xa_ptr, b_ptr, offs_m, offs_n, M, N, R, R_PAD, F32_DOT)
    mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
    tl.store(out_ptr + offs_m[:, None] * stride_om + offs_n[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=mask)


DECODED_MIN_M = 256  # from here on the "decoded" path is the default for NVFP4 and MXFP4
PATHS = ("fused", "decoded", "skinny")


def default_config(m: int, n: int, fmt: str) -> dict:
    """Tile configuration (tuned on H100; see benchmarks/README.md) and ``path``.

    ``path="skinny"`` (NVFP4/MXFP4, M <= 16): ``w4a4_skinny.py``, where it applies;
    ``path="fused"`` decodes both packed operands in registers inside the GEMM (small M, INT4);
    ``path="decoded"`` (NVFP4/MXFP4 with M >= ``DECODED_MIN_M``) decodes each operand once with
    ``decode.py`` and runs a pipelined bf16 GEMM with the same epilogue: on Hopper the persistent
    TMA kernel of ``w4a4_tma.py`` (``"tma": False`` selects the cp.async kernel).
    ``"weight_in_gemm": True`` (opt-in, Hopper with Gluon) decodes the weight inside a
    warp-specialized GEMM instead (``w4a4_wdec.py``, its own ``DEFAULT_TILES`` unless tiles are
    given): same bits, no transient bf16 copy of the weight, but slower than the default on an
    H100 (benchmarks/README.md).
    Large-M fused: 128 x 128 tiles, K step 64, 8 warps capped at 128 registers so two programs
    share an SM; INT4 needs a K step of 128 (one scale group per step).
    """
    if m <= 64:  # up to 16 tokens NVFP4/MXFP4 take the skinny path where it applies
        path = "skinny" if m <= w4a4_skinny.SKINNY_MAX_M and fmt in FP4_FORMATS else "fused"
        return {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 128, "GROUP_M": 8, "num_warps": 4, "num_stages": 4,
                "path": path}
    if fmt == "int4":
        return {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8, "num_warps": 8, "num_stages": 3,
                "path": "fused"}
    if m >= DECODED_MIN_M:  # on sm_90 the TMA kernel (w4a4_tma.py), else the cp.async one
        return {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 8, "num_stages": 4,
                "path": "decoded", "tma": True}
    return {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 8, "num_stages": 4,
            "maxnreg": 128, "path": "fused"}


def _check(x_packed, w_packed, fmt: str, s: int) -> tuple[int, int, int]:
    m, kb = x_packed["codes"].shape
    n, wkb = w_packed["codes"].shape
    k_total = 2 * kb
    if wkb != kb:
        raise ValueError(f"activation has K+s={k_total} columns but the weight has {2 * wkb}")
    if s < 0 or s % block_size(fmt) or s > k_total // 2:
        raise ValueError(f"s must be a multiple of {block_size(fmt)} and at most K, got {s}")
    if fmt == "nvfp4" and s and "residual_global_scale" not in x_packed:
        raise KeyError("nvfp4 with s > 0 needs the activation's 'residual_global_scale'")
    return m, n, k_total - s


def launch(x_packed: dict[str, torch.Tensor], w_packed: dict[str, torch.Tensor], fmt: str,
           s: int = 0, lowrank_xa: torch.Tensor | None = None,
           lowrank_b: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16,
           config: dict | None = None, use_asm: bool | None = None) -> torch.Tensor:
    """W4A4 product ``(M, N)`` in ``out_dtype``; ``lowrank_xa`` ``(M, r)`` and ``lowrank_b``
    ``(N, r)`` (16-bit) add ARHQ's ``(X A) B^T``. ``config`` overrides ``default_config``
    (tiles, and ``path``: "fused", "decoded" or "skinny"; the default "skinny" falls back to
    "fused" where it does not apply, a requested one raises)."""
    m, n, k = _check(x_packed, w_packed, fmt, s)
    device = x_packed["codes"].device
    tiles = w4a4_wdec.DEFAULT_TILES if (config or {}).get("weight_in_gemm") else {}
    cfg = {**default_config(m, n, fmt), **tiles, **(config or {})}
    if fmt == "int4" and cfg["BLOCK_K"] != 128:
        raise ValueError(f"int4 needs BLOCK_K=128 (one scale group per tile), got {cfg['BLOCK_K']}")
    path = cfg.get("path", "fused")
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    if path == "decoded" and fmt not in FP4_FORMATS:
        raise ValueError(f"the {path} path needs NVFP4 or MXFP4 (INT4 q * step is not exact in bf16)")
    has_lowrank = lowrank_xa is not None
    r = lowrank_xa.shape[1] if has_lowrank else 0
    if has_lowrank and (lowrank_b is None or lowrank_b.shape != (n, r)):
        raise ValueError(f"lowrank_b must be (N={n}, r={r}), got "
                         f"{None if lowrank_b is None else tuple(lowrank_b.shape)}")
    if has_lowrank:
        lowrank_b = lowrank_b.to(lowrank_xa.dtype).contiguous()
        lowrank_xa = lowrank_xa.contiguous()
    if path == "skinny":
        reason = w4a4_skinny.unsupported(m, k, fmt, w_packed)
        if reason is None:
            return w4a4_skinny.launch(x_packed, w_packed, fmt, s, lowrank_xa, lowrank_b, out_dtype, use_asm)
        if (config or {}).get("path") == "skinny":
            raise ValueError(f"the skinny W4A4 path {reason}")
        path = "fused"  # the default for small M, where the skinny path does not apply
    out = torch.empty((m, n), dtype=out_dtype, device=device)
    dummy = x_packed["codes"]
    on_cpu = device.type == "cpu"
    r_pad = max(16, triton.next_power_of_2(max(r, 1)))
    use_asm = (not on_cpu) if use_asm is None else use_asm
    grid = (triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(n, cfg["BLOCK_N"]),)
    g_x = x_packed.get("global_scale", dummy)
    x_operand, w_operand, row_stride = x_packed["codes"], w_packed["codes"], 0
    if path == "decoded":  # each operand decoded once to bf16; the kernel then only loads
        # rows padded to 128 bytes (ARCQuant's K + s is often not a multiple of 64)
        x_operand = decode.decode(x_packed, fmt, row_align=64)
        scales = (g_x, x_packed.get("residual_global_scale", g_x), w_packed.get("global_scale", dummy))
        if (cfg.get("weight_in_gemm") and w4a4_wdec.available(device)  # no bf16 copy of the weight
                and w_packed["codes"].data_ptr() % 16 == 0):
            return w4a4_wdec.launch(x_operand, w_packed, k, s, FORMAT_IDS[fmt], scales,
                                    lowrank_xa if has_lowrank else None, lowrank_b, out, cfg, r_pad)
        w_operand = decode.decode(w_packed, fmt, row_align=64)
        row_stride = x_operand.stride(0)
        # Hopper: TMA loads, persistent. Its main K range loads whole BLOCK_K tiles, which with
        # ARCQuant's residual columns right after K must not straddle K.
        if cfg.get("tma", True) and w4a4_tma.available(device) and (not s or k % cfg["BLOCK_K"] == 0):
            return w4a4_tma.launch(x_operand, w_operand, k, s, FORMAT_IDS[fmt], scales,
                                   lowrank_xa if has_lowrank else None, lowrank_b, out, cfg, r_pad)
    _w4a4_kernel[grid](  # g_r falls back to g_x: its load is compiled even when s == 0
        x_operand, x_packed["scale"], g_x, x_packed.get("residual_global_scale", g_x),
        w_operand, w_packed["scale"],
        w_packed.get("global_scale", dummy), lowrank_xa if has_lowrank else dummy,
        lowrank_b if has_lowrank else dummy, out,
        m, n, k, s, r, out.stride(0), row_stride,
        FMT=FORMAT_IDS[fmt], BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
        BLOCK_K=cfg["BLOCK_K"], GROUP_M=cfg["GROUP_M"], HAS_LOWRANK=has_lowrank,
        R_PAD=r_pad, USE_ASM=use_asm, F32_DOT=on_cpu, DECODED=path == "decoded",
        STAGES=cfg["num_stages"],
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"], maxnreg=cfg.get("maxnreg"),
    )
    return out


def augment_weight(w_packed: dict[str, torch.Tensor], fmt: str, s: int) -> dict[str, torch.Tensor]:
    """ARCQuant's ``W' = [Q(W) | Q(W)[:, K-s:]]``: the outlier columns' codes and scales repeated.

    ``w_packed``: a packed ``(N, K)`` weight; returns the packed ``(N, K + s)`` weight.
    """
    if s % block_size(fmt):
        raise ValueError(f"s must be a multiple of {block_size(fmt)}, got {s}")
    if s == 0:
        return dict(w_packed)
    out = dict(w_packed)
    out["codes"] = torch.cat([w_packed["codes"], w_packed["codes"][:, -s // 2:]], dim=1).contiguous()
    blocks = s // block_size(fmt)
    out["scale"] = torch.cat([w_packed["scale"], w_packed["scale"][:, -blocks:]], dim=1).contiguous()
    return out
