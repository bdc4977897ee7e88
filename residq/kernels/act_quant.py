"""Activation quantizer: NVFP4 / MXFP4 / INT4 per block, with ARCQuant's residual channels.

Computes, for activations ``X`` ``(M, K)`` (bf16/fp16/fp32):

1. optional channel gather ``X_perm = X[:, perm]`` (ARCQuant sorts outlier channels last): on
   the GPU a pass of its own (``column_gather.py``, ~0.9 of copy bandwidth on the H100), else
   inside the quantizer's loads (``gather="fused"``);
2. ``Q1 = quantize(X_perm)`` per block (``block_formats.py``); NVFP4 uses a dynamic global
   scale ``g1 = amax(|X|) / 2688`` (or a static one given by the caller);
3. ARCQuant (arXiv 2601.07475) with ``s > 0``: ``R = X_perm[:, K-s:] - deq(Q1)[:, K-s:]``,
   ``Q2 = quantize(R)`` with its own block scales (NVFP4: and its own dynamic global scale
   ``g2``, as ``residq.nn.activation`` does); the packed operand is ``[Q1 | Q2]``, K+s columns;
4. optionally ARHQ's low-rank input ``X_perm @ A`` (``A`` ``(K, r)``) from the same read of X.

Kernels: ``global_scale.amax_pass`` (NVFP4 dynamic scale: max |X| per program, the last program
reduces them and writes g), ``_residual_amax_kernel`` (NVFP4 with s > 0: max |R|, reduced and written
as g_res the same way), ``_quantize_kernel``
(everything else, one pass; reads g from device memory, so no host synchronisation and the
whole call is CUDA-graph capturable). The quantize pass walks the tiles in reverse order, so it
starts on the rows the amax pass left in L2. The amax passes keep ticket counters in a cached
per-device workspace: calls must not run concurrently on two streams of one device.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from residq.kernels.act_quant_tiles import (
    load_block_halves,
    lowrank_accumulate,
    pack_pairs,
    quantize_block_halves,
)
from residq.kernels.block_formats import FORMAT_IDS, block_size, check_k, dequantize_blocks, quantize_blocks
from residq.kernels.column_gather import available as column_gather_available
from residq.kernels.column_gather import gather_columns
from residq.kernels.global_scale import (
    AMAX_PROGRAMS,
    amax_pass,
    amax_workspace,
    finish_global_scale,
)

# activations (M K) from which a permutation is applied by a gather pass. H100, ARCQuant's call:
# the fused loads won up to M = 128 at K = 4096 and up to M = 16 at K = 14336, the pass from
# M = 256 and M = 64 (scripts/perm_gather_probe.py; docs/results/perm-gather-probe-h100.txt)
GATHER_PASS_MIN = 1 << 20
_RESIDUAL_ROWS, _RESIDUAL_BLOCKS = 16, 8  # residual-amax tile: 16 rows x 8 blocks of 16


def reference(
    x: torch.Tensor,
    fmt: str,
    perm: torch.Tensor | None = None,
    s: int = 0,
    global_scale: torch.Tensor | None = None,
    lowrank_a: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Torch reference of ``launch``: same keys, same bits (``lowrank_xa`` up to rounding)."""
    rows = x if perm is None else x[:, perm]
    k = rows.shape[1]
    first = quantize_blocks(rows, fmt, global_scale)
    out = {"codes": first["codes"], "scale": first["scale"]}
    if fmt == "nvfp4":
        out["global_scale"] = first["global_scale"]
    if s:
        residual = rows[:, k - s :].float() - dequantize_blocks(first, fmt)[:, k - s :]
        second = quantize_blocks(residual, fmt)
        out["codes"] = torch.cat([first["codes"], second["codes"]], dim=1)
        out["scale"] = torch.cat([first["scale"], second["scale"]], dim=1)
        if fmt == "nvfp4":
            out["residual_global_scale"] = second["global_scale"]
    if lowrank_a is not None:
        out["lowrank_xa"] = (rows.float() @ lowrank_a.float()).to(x.dtype)
    return out


@triton.jit(do_not_specialize=["M", "S", "n_programs"])
def _residual_amax_kernel(x_ptr, perm_ptr, g_ptr, partial_ptr, counter_ptr, g_res_ptr, M, K, S, stride_xm,
                          n_programs, HAS_PERM: tl.constexpr, BLOCK_M: tl.constexpr, NB: tl.constexpr,
                          FAST_DIV: tl.constexpr, MAX_P: tl.constexpr, HW_FP8: tl.constexpr = False):
    """ARCQuant's NVFP4 residual scale: ``g_res = max |R| / 2688`` over the last S columns, where
    ``R = X - deq(Q1)`` (stage 1 with scale g), written to ``g_res_ptr``.

    The tiles (BLOCK_M rows x NB blocks of the residual columns) are spread over ``n_programs``
    programs as in ``global_scale.amax_pass``, whose ticket scheme writes the result.
    """
    pid = tl.program_id(0)
    g = tl.load(g_ptr)
    col_tiles = tl.cdiv(S // 16, NB)
    n_tiles = tl.cdiv(M, BLOCK_M) * col_tiles
    running = 0.0
    for tile in range(pid, n_tiles, n_programs):
        rows = (tile // col_tiles) * BLOCK_M + tl.arange(0, BLOCK_M)
        block0 = K // 16 + (tile % col_tiles) * NB
        lo, hi, _, _ = load_block_halves(x_ptr, perm_ptr, rows, block0, M, K, S, stride_xm, 16, NB, HAS_PERM)
        _, _, _, values_lo, values_hi = quantize_block_halves(lo, hi, g, 0, FAST_DIV, HW_FP8)
        worst = tl.maximum(tl.abs(lo - values_lo), tl.abs(hi - values_hi))
        running = tl.maximum(running, tl.max(tl.max(tl.max(worst, axis=2), axis=1), axis=0))
    finish_global_scale(partial_ptr, counter_ptr, g_res_ptr, pid, running, n_programs, MAX_P)


@triton.jit(do_not_specialize=["M", "S", "R", "n_chunks",
                             "chunks_per_program", "n_units"])
def _quantize_kernel(
    x_ptr, perm_ptr, codes_ptr, scale_ptr, g_ptr, g_res_ptr,
    a_ptr, xa_ptr,
    M, K, S, stride_xm, R, n_chunks, chunks_per_program, n_units,
    FMT: tl.constexpr, SB: tl.constexpr, NB: tl.constexpr, BLOCK_M: tl.constexpr,
    HAS_PERM: tl.constexpr, RESIDUAL_G: tl.constexpr,
    HAS_XA: tl.constexpr, R_PAD: tl.constexpr, F32_DOT: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, FAST_DIV: tl.constexpr, PREFETCH: tl.constexpr,
    HW_FP8: tl.constexpr = False,
):
    """Codes/scales of NB blocks x BLOCK_M rows per chunk, chunks_per_program chunks each.

    PREFETCH: the loads of chunk c + 1 are issued before chunk c is quantized, so a program keeps
    memory requests in flight while it computes (the NVFP4 encoder is long enough to need it).
    """
    last = n_units - 1
    unit = last - tl.program_id(0)  # reverse order: start where the amax pass ended
    n_units_per_row_tile = tl.cdiv(n_chunks, chunks_per_program)
    rows = (unit // n_units_per_row_tile) * BLOCK_M + tl.arange(0, BLOCK_M)
    first_chunk = (unit % n_units_per_row_tile) * chunks_per_program
    g = 1.0
    if FMT == 0:
        g = tl.load(g_ptr)  # static, or written by amax_pass
    g2 = g
    if RESIDUAL_G:
        g2 = tl.load(g_res_ptr)  # written by _residual_amax_kernel
    KS = tl.multiple_of(K + S, SB)
    xa = tl.zeros([BLOCK_M, R_PAD], dtype=tl.float32)
    last_chunk = tl.minimum(first_chunk + chunks_per_program, n_chunks)
    col_end = tl.minimum(KS, last_chunk * NB * SB)  # this program's columns end here
    blocks = first_chunk * NB + tl.arange(0, NB)
    if PREFETCH:
        lo, hi, cols_lo, cols_hi = load_block_halves(x_ptr, perm_ptr, rows, first_chunk * NB, M, K, S,
                                                     stride_xm, SB, NB, HAS_PERM, HAS_RESIDUAL, col_end)
    for chunk in range(first_chunk, last_chunk):
        if PREFETCH:
            next_lo, next_hi, next_cols_lo, next_cols_hi = load_block_halves(
                x_ptr, perm_ptr, rows, (chunk + 1) * NB, M, K, S, stride_xm, SB, NB, HAS_PERM,
                HAS_RESIDUAL, col_end)
        else:
            lo, hi, cols_lo, cols_hi = load_block_halves(x_ptr, perm_ptr, rows, chunk * NB, M, K, S,
                                                         stride_xm, SB, NB, HAS_PERM, HAS_RESIDUAL)
        codes_lo, codes_hi, stored, values_lo, values_hi = quantize_block_halves(lo, hi, g, FMT, FAST_DIV, HW_FP8)
        if HAS_RESIDUAL and (chunk + 1) * NB * SB > K:  # this chunk holds residual blocks
            codes2_lo, codes2_hi, stored2, _, _ = quantize_block_halves(lo - values_lo, hi - values_hi, g2, FMT,
                                                                   FAST_DIV, HW_FP8)
            is_residual = blocks >= K // SB
            codes_lo = tl.where(is_residual[None, :, None], codes2_lo, codes_lo)
            codes_hi = tl.where(is_residual[None, :, None], codes2_hi, codes_hi)
            stored = tl.where(is_residual[None, :], stored2, stored)
        # block b's bytes: [b*SB/2, +SB/4) from the low half, [+SB/4, +SB/2) from the high half
        byte_lo = blocks[:, None] * (SB // 2) + tl.arange(0, SB // 4)[None, :]
        row_ok = (rows < M)[:, None, None]
        KS2 = tl.multiple_of(KS // 2, SB // 2)
        code_row = codes_ptr + rows[:, None, None] * KS2
        tl.store(code_row + byte_lo[None, :, :], pack_pairs(codes_lo),
                 mask=row_ok & (byte_lo < KS2)[None, :, :])
        tl.store(code_row + (byte_lo + SB // 4)[None, :, :], pack_pairs(codes_hi),
                 mask=row_ok & (byte_lo < KS2)[None, :, :])
        tl.store(scale_ptr + rows[:, None] * (KS // SB) + blocks[None, :], stored,
                 mask=(rows < M)[:, None] & (blocks < KS // SB)[None, :])
        if HAS_XA:
            xa = lowrank_accumulate(xa, lo, cols_lo, a_ptr, K, R, R_PAD, F32_DOT)
            xa = lowrank_accumulate(xa, hi, cols_hi, a_ptr, K, R, R_PAD, F32_DOT)
        if PREFETCH:
            lo, hi, cols_lo, cols_hi = next_lo, next_hi, next_cols_lo, next_cols_hi
        blocks += NB
    if HAS_XA:
        r_offs = tl.arange(0, R_PAD)
        tl.store(xa_ptr + rows[:, None] * R + r_offs[None, :], xa.to(xa_ptr.dtype.element_ty),
                 mask=(rows < M)[:, None] & (r_offs < R)[None, :])


def default_tile(fmt: str, s: int = 0, lowrank: bool = False) -> dict:
    """``launch``'s tile for ``fmt`` (H100, M = 2048, K = 4096 / 14336; benchmarks/README.md).

    NVFP4's longer encoder gains from the prefetching loop: 4 chunks of 8 rows x 512 columns per
    program (static scale 11.2 / 31.6 us, against 12.9 / 37.3 without the loop). With ARCQuant's
    residual (``s > 0``) or the fused ``X A`` (``lowrank``) the older 16 rows x 128 columns tile
    stays faster (s = 8% of K: 30 / 77 us against 32 / 87 us). MXFP4 and INT4 are at the copy rate
    without the loop."""
    if fmt == "nvfp4":
        if s or lowrank:
            return {"block_rows": 16, "chunk_cols": 128, "num_warps": 4, "chunks_per_program": 4}
        return {"block_rows": 8, "chunk_cols": 512, "num_warps": 4, "chunks_per_program": 4}
    return {"block_rows": 8, "chunk_cols": 512, "num_warps": 4, "chunks_per_program": 1}


@functools.cache
def _has_fp8_conversions(index: int) -> bool:
    """Whether CUDA device ``index`` converts to E4M3 in hardware (sm_89+), cached: launch asks on
    every call."""
    return torch.cuda.get_device_capability(index) >= (8, 9)


def _no_rows(x: torch.Tensor, fmt: str, s: int, global_scale, lowrank_a) -> dict[str, torch.Tensor]:
    """``launch``'s result for ``(0, K)`` activations: empty codes and scales; NVFP4's dynamic
    global scales are 1.0, as for an all-zero input (no kernel runs)."""
    k, device = x.shape[1], x.device
    sb = block_size(fmt)
    out = {"codes": torch.empty((0, (k + s) // 2), dtype=torch.uint8, device=device),
           "scale": torch.empty((0, (k + s) // sb), dtype=torch.float16 if fmt == "int4" else torch.uint8,
                                device=device)}
    if fmt == "nvfp4":
        one = torch.ones((), dtype=torch.float32, device=device)
        out["global_scale"] = one if global_scale is None else global_scale.to(device, torch.float32).reshape(())
        if s > 0:
            out["residual_global_scale"] = one.clone()
    if lowrank_a is not None:
        out["lowrank_xa"] = torch.empty((0, lowrank_a.shape[1]), dtype=x.dtype, device=device)
    return out


def _check_inputs(x: torch.Tensor, fmt: str, perm, s: int, lowrank_a) -> None:
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"expected float activations (M, K), got {x.dtype} {tuple(x.shape)}")
    k = x.shape[1]
    check_k(k, fmt)
    if s < 0 or s > k or s % block_size(fmt):
        raise ValueError(f"s must be a multiple of {block_size(fmt)} in [0, K={k}], got {s}")
    if perm is not None and (perm.shape != (k,) or perm.dtype not in (torch.int32, torch.int64)):
        raise ValueError(f"perm must be int32/int64 of shape ({k},), got {perm.dtype} {tuple(perm.shape)}")
    if lowrank_a is not None and (lowrank_a.dim() != 2 or lowrank_a.shape[0] != k):
        raise ValueError(f"lowrank_a must be (K={k}, r), got {tuple(lowrank_a.shape)}")


def launch(
    x: torch.Tensor,
    fmt: str,
    perm: torch.Tensor | None = None,
    s: int = 0,
    global_scale: torch.Tensor | None = None,
    lowrank_a: torch.Tensor | None = None,
    block_rows: int | None = None,
    chunk_cols: int | None = None,
    num_warps: int | None = None,
    chunks_per_program: int | None = None,
    gather: str | None = None,
) -> dict[str, torch.Tensor]:
    """Quantize activations ``x`` ``(M, K)`` on the device; keys as ``reference``.

    Returns ``codes`` uint8 ``(M, (K+s)/2)``, ``scale`` ``(M, (K+s)/block)`` (uint8 E4M3 /
    E8M0 bytes, or float16 steps), NVFP4 ``global_scale`` float32 ``()`` (and
    ``residual_global_scale`` when ``s > 0``), and ``lowrank_xa`` ``(M, r)`` in x's dtype when
    ``lowrank_a`` is given (computed from the same read of X). ``global_scale`` given: static
    NVFP4 scale (no amax pass). ``block_rows``/``chunk_cols``/``num_warps``: one program's tile;
    ``chunks_per_program``: how many consecutive tiles of a row band one program quantizes (more
    than one turns on the prefetching loop; ``lowrank_a`` takes the whole band). Unset values
    come from ``default_tile(fmt, s, lowrank_a is not None)``. ``gather``: how ``perm`` is
    applied: ``"pass"`` writes ``X_perm`` first (``column_gather.py``), ``"fused"`` gathers
    inside the quantizer's loads; None (default) takes "pass" for ``M K >= GATHER_PASS_MIN``
    where ``column_gather``'s kernel runs (2.3-3.2x faster at M = 2048 on the H100; below that
    size its extra launches cost more than they save: ``scripts/perm_gather_probe.py``'s
    crossover) and "fused" otherwise (without the kernel the pass would be torch indexing).
    """
    _check_inputs(x, fmt, perm, s, lowrank_a)
    if gather not in (None, "pass", "fused"):
        raise ValueError(f"gather must be 'pass' or 'fused', got {gather!r}")
    if gather is None:
        big = x.shape[0] * x.shape[1] >= GATHER_PASS_MIN
        gather = "pass" if big and column_gather_available(x.device) else "fused"
    tile = default_tile(fmt, s, lowrank_a is not None)
    block_rows = block_rows or tile["block_rows"]
    chunk_cols = chunk_cols or tile["chunk_cols"]
    num_warps = num_warps or tile["num_warps"]
    chunks_per_program = chunks_per_program or tile["chunks_per_program"]
    x = x if x.stride(1) == 1 else x.contiguous()
    if x.shape[0] == 0:
        return _no_rows(x, fmt, s, global_scale, lowrank_a)
    dynamic = fmt == "nvfp4" and global_scale is None
    partial_amax = None
    if perm is not None and gather == "pass":  # NVFP4's dynamic amax comes from the same read
        x, partial_amax = gather_columns(x, perm.to(x.device), with_amax=dynamic)
        perm = None
    m, k = x.shape
    sb = block_size(fmt)
    fmt_id = FORMAT_IDS[fmt]
    device = x.device
    fast_div = device.type != "cpu"  # the interpreter keeps plain IEEE division
    hw_fp8 = device.type == "cuda" and _has_fp8_conversions(device.index if device.index is not None
                                                             else torch.cuda.current_device())
    codes = torch.empty((m, (k + s) // 2), dtype=torch.uint8, device=device)
    scale_dtype = torch.float16 if fmt == "int4" else torch.uint8
    scale = torch.empty((m, (k + s) // sb), dtype=scale_dtype, device=device)
    g = torch.empty((), dtype=torch.float32, device=device)
    if fmt == "nvfp4" and global_scale is not None:
        g = global_scale.to(device=device, dtype=torch.float32).reshape(())
    if dynamic:  # max |x| is the max of the gather's partial maxima when it took them
        amax_pass(x if partial_amax is None else partial_amax.view(1, -1), g)
    residual_g = fmt == "nvfp4" and s > 0
    g_res = torch.empty((), dtype=torch.float32, device=device) if residual_g else g  # g: unused stand-in
    perm_arg = perm.to(device) if perm is not None else codes
    if residual_g:
        tiles = triton.cdiv(m, _RESIDUAL_ROWS) * triton.cdiv(s // 16, _RESIDUAL_BLOCKS)
        n_programs = min(tiles, AMAX_PROGRAMS)
        partials, counter = amax_workspace(device, "residual")
        _residual_amax_kernel[(n_programs,)](
            x, perm_arg, g, partials, counter, g_res, m, k, s, x.stride(0), n_programs,
            HAS_PERM=perm is not None, BLOCK_M=_RESIDUAL_ROWS, NB=_RESIDUAL_BLOCKS, FAST_DIV=fast_div,
            MAX_P=AMAX_PROGRAMS, HW_FP8=hw_fp8, enable_fp_fusion=False,
        )
    nb = max(1, chunk_cols // sb)
    n_chunks = triton.cdiv((k + s) // sb, nb)
    has_xa = lowrank_a is not None
    r = lowrank_a.shape[1] if has_xa else 0
    if has_xa:  # X A sums over all of a row tile's columns: one program per row tile
        chunks_per_program = n_chunks
    chunks_per_program = max(1, min(chunks_per_program, n_chunks))
    xa = torch.empty((m, r), dtype=x.dtype, device=device) if has_xa else x  # x: unused stand-in
    a_arg = lowrank_a.to(device=device, dtype=x.dtype).contiguous() if has_xa else x
    units = triton.cdiv(m, block_rows) * triton.cdiv(n_chunks, chunks_per_program)
    _quantize_kernel[(units,)](
        x, perm_arg, codes, scale, g, g_res,
        a_arg, xa, m, k, s, x.stride(0), r, n_chunks, chunks_per_program, units,
        FMT=fmt_id, SB=sb, NB=nb, BLOCK_M=block_rows, HAS_PERM=perm is not None,
        RESIDUAL_G=residual_g, HAS_XA=has_xa,
        R_PAD=max(16, triton.next_power_of_2(max(r, 1))),
        F32_DOT=device.type == "cpu", HAS_RESIDUAL=s > 0, FAST_DIV=fast_div,
        PREFETCH=chunks_per_program > 1, HW_FP8=hw_fp8, num_warps=num_warps,
        enable_fp_fusion=False,  # no FMA contraction: x - (q * s) * g exactly as the reference
    )
    out = {"codes": codes, "scale": scale}
    if fmt == "nvfp4":
        out["global_scale"] = g
    if residual_g:
        out["residual_global_scale"] = g_res
    if has_xa:
        out["lowrank_xa"] = xa
    return out
