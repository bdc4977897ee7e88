"""W4A16 GEMM/GEMV: packed NVFP4 / MXFP4 / INT4-g128 weights times bf16/fp16 activations.

``out (M, N) = x (M, K) @ W (N, K)^T`` with W packed as in ``block_formats.py``. Two kernels
(``resolve_config`` picks one):

* the skinny kernel (decode, M <= 8 by default, K % 128 == 0; ``w4a16_skinny.py``): inline-PTX
  decode straight into MMA fragments, split-K through a self-resetting workspace.
* ``_w4a16_kernel`` (tiled, everything else), written "swap-AB": a program computes the
  transposed tile ``W_tile @ x_tile^T`` (``[BLOCK_N, BLOCK_M]``), so the decoded weights are the
  MMA's first operand and stay in registers while the activations stream through shared memory.
  Small M uses BLOCK_M = 16 and split-K: each of SPLIT_K programs of a tile writes an fp32
  partial, and the last one to finish (an atomic counter per tile, reset by that program) sums
  them and writes the output, all in one launch. Large M uses bigger tiles and no split.
* "decoded" (NVFP4/MXFP4 with M >= ``DECODED_MIN_M``, prefill): the weight is decoded once to
  x's dtype (``decode.py``, global scale folded in, the same values as the reference path's
  dequantized weight) and cuBLAS multiplies. At M = 2048 the tiled kernel ran 2.4x slower than
  bf16 on one Llama-3-8B layer (``residq bench``), while one decode pass costs ~15 us per
  4096 x 4096 weight on the H100. The 16-bit weight is transient.

Exactness: weights decode to exact 16-bit values (NVFP4/MXFP4 times their block scale; INT4
``q`` with the step applied to each 128-wide fp32 partial product), the tensor cores
accumulate in fp32, and NVFP4's global scale multiplies the fp32 result. The output differs
from ``reference`` only by fp32 summation order and the final rounding to x's dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from residq.kernels import decode
from residq.kernels.block_formats import FORMAT_IDS, FP4_FORMATS, block_size, check_k, dequantize_blocks
from residq.kernels.triton_mma import mma
from residq.kernels.triton_tiles import load_decoded_tile, to_dot_order
from residq.kernels.w4a16_skinny import (
    SKINNY_MAX_M,
    SKINNY_T2_MAX_WEIGHTS,
    SM_COUNT_GUESS,
    launch_skinny,
    skinny_config,
    skinny_supported,
)

_workspaces: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
DECODED_MIN_M = 256  # tokens from which NVFP4/MXFP4 decode the weight once and call cuBLAS


def reference(x: torch.Tensor, packed: dict[str, torch.Tensor], fmt: str) -> torch.Tensor:
    """``x @ dequantize(W)^T`` in float32, returned in x's dtype; x ``(M, K)``."""
    weight = dequantize_blocks(packed, fmt).to(x.device)
    return (x.float() @ weight.T).to(x.dtype)


@triton.jit
def _load_activation_pair(x_ptr, offs_m, M, k0, K, stride_xm, BLOCK_K: tl.constexpr):
    """x^T for K positions ``[k0, k0 + BLOCK_K)``: the even and the odd ones, ``[BLOCK_K/2, BM]``
    each, rows in ``to_dot_order``'s order (so they meet the matching weight values).

    Loaded contiguously (16-byte accesses), then permuted in registers: natural position
    ``2p + parity`` with ``p = q*(BLOCK_K/8) + s*4 + h*2 + i`` goes to row ``s*16 + h*8 + q*2 + i``.
    """
    S: tl.constexpr = BLOCK_K // 32
    kk = k0 + tl.arange(0, BLOCK_K)
    x = tl.load(x_ptr + offs_m[:, None] * stride_xm + kk[None, :],
                mask=(offs_m < M)[:, None] & (kk < K)[None, :], other=0.0)
    x6 = tl.reshape(x, [x.shape[0], 4, S, 2, 2, 2])
    even, odd = tl.split(tl.permute(x6, (2, 3, 1, 4, 0, 5)))
    return (tl.reshape(even, [BLOCK_K // 2, x.shape[0]]),
            tl.reshape(odd, [BLOCK_K // 2, x.shape[0]]))


@triton.jit
def _finish_tile(acc, out_ptr, partial_ptr, counter_ptr, offs_n, offs_m, M, N, stride_om,
                 pid_k, tile_id, split_k, HAS_SPLIT: tl.constexpr):
    """Store ``acc^T`` (``[BN, BM]`` fp32), summing split-K partials in the last program."""
    out_tile = tl.trans(acc)
    mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
    out_offs = offs_m[:, None] * stride_om + offs_n[None, :]
    if not HAS_SPLIT:
        tl.store(out_ptr + out_offs, out_tile.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        part_offs = offs_m[:, None] * N + offs_n[None, :]
        tl.store(partial_ptr + pid_k * M * N + part_offs, out_tile, mask=mask)
        tl.debug_barrier()
        arrived = tl.atomic_add(counter_ptr + tile_id, 1, sem="acq_rel", scope="gpu")
        if arrived == split_k - 1:
            total = tl.zeros_like(out_tile)
            for split in range(split_k):
                total += tl.load(partial_ptr + split * M * N + part_offs, mask=mask, other=0.0,
                                 cache_modifier=".cg")
            tl.store(out_ptr + out_offs, total.to(out_ptr.dtype.element_ty), mask=mask)
            tl.atomic_xchg(counter_ptr + tile_id, 0, sem="relaxed", scope="gpu")


@triton.jit(do_not_specialize=["M", "split_k"])
def _w4a16_kernel(
    x_ptr, codes_ptr, scale_ptr, g_ptr, out_ptr, partial_ptr, counter_ptr,
    M, N, K, stride_xm, stride_om, split_k,
    FMT: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
    HAS_SPLIT: tl.constexpr, BF16: tl.constexpr, USE_ASM: tl.constexpr, F32_DOT: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    pid_k = tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    k_tiles = tl.cdiv(K, BLOCK_K)
    tiles_per_split = tl.cdiv(k_tiles, split_k)
    first = pid_k * tiles_per_split
    last = tl.minimum(first + tiles_per_split, k_tiles)
    acc = tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32)
    for tile in range(first, last):
        k0 = tile * BLOCK_K
        lo, hi, step = load_decoded_tile(codes_ptr, scale_ptr, offs_n, N, k0, K, K,
                                         FMT, BLOCK_K, BF16, USE_ASM)
        x_even, x_odd = _load_activation_pair(x_ptr, offs_m, M, k0, K, stride_xm, BLOCK_K)
        prod = mma(to_dot_order(lo, BLOCK_N, BLOCK_K // 2), x_even,
                   tl.zeros_like(acc) if FMT == 2 else acc, F32_DOT)
        prod = mma(to_dot_order(hi, BLOCK_N, BLOCK_K // 2), x_odd, prod, F32_DOT)
        if FMT == 2:
            acc += prod * step  # step [BLOCK_N, 1]: one 128-wide group per tile
        else:
            acc = prod
    if FMT == 0:
        acc = acc * tl.load(g_ptr)
    _finish_tile(acc, out_ptr, partial_ptr, counter_ptr, offs_n, offs_m, M, N, stride_om,
                 pid_k, pid_m * tl.cdiv(N, BLOCK_N) + pid_n, split_k, HAS_SPLIT)


def default_config(m: int, n: int, k: int, fmt: str) -> dict:
    """Tile configuration for an (M, N, K) problem (tuned on H100; see benchmarks/README.md).

    Small M: 64 weight rows x 128 K per program, 4 warps, ~96 registers, so that about five
    programs (20 warps) share an SM and hide the decode's latency; split-K supplies programs.
    """
    if m <= 16:
        return {"BLOCK_N": 64, "BLOCK_M": 16, "BLOCK_K": 128, "num_warps": 4, "num_stages": 3}
    if m <= 64:
        return {"BLOCK_N": 64, "BLOCK_M": 64, "BLOCK_K": 128, "num_warps": 4, "num_stages": 3}
    return {"BLOCK_N": 128, "BLOCK_M": 128, "BLOCK_K": 128, "num_warps": 8, "num_stages": 3}


def split_k_for(m: int, n: int, k: int, cfg: dict, sm_count: int = SM_COUNT_GUESS,
                programs_per_sm: int = 4) -> int:
    """Smallest power-of-two split giving ``programs_per_sm`` programs per SM, keeping at least
    two K tiles per split."""
    tiles = triton.cdiv(n, cfg["BLOCK_N"]) * triton.cdiv(m, cfg["BLOCK_M"])
    k_tiles = triton.cdiv(k, cfg["BLOCK_K"])
    split = 1
    while tiles * split < programs_per_sm * sm_count and split * 2 <= k_tiles // 2:
        split *= 2
    return split


def resolve_config(x: torch.Tensor, packed: dict[str, torch.Tensor], fmt: str,
                   config: dict | None = None) -> dict:
    """The configuration ``launch`` runs: ``{"kernel": "skinny", ...}`` (``skinny_config``
    keys), ``{"kernel": "decoded"}`` or ``{"kernel": "tiled", ...}`` (``default_config`` keys and
    ``SPLIT_K``).

    Default: skinny for M <= SKINNY_MAX_M, and for M <= 16 when N K <= SKINNY_T2_MAX_WEIGHTS (on
    H100 it beat the tiled kernel at M = 1 everywhere and at M = 16 on 4096 x 4096, and lost to it
    at M = 16 on the larger Llama-3-8B shapes; see benchmarks/README.md), decoded for NVFP4/MXFP4
    from M = DECODED_MIN_M, tiled otherwise (and whenever tile keys are given);
    ``config["kernel"]`` forces one.
    """
    m, k = x.shape
    n = packed["codes"].shape[0]
    config = dict(config or {})
    kind = config.pop("kernel", None)
    supported = skinny_supported(x, packed, fmt)
    if kind == "skinny" and not supported:
        raise ValueError("the skinny kernel needs M <= 16, K % 128 == 0 and 16-byte aligned rows")
    skinny_default = m <= SKINNY_MAX_M or n * k <= SKINNY_T2_MAX_WEIGHTS
    if kind == "skinny" or (kind is None and not config and skinny_default and supported):
        return dict(skinny_config(m, n, k, fmt), **config)
    if kind == "decoded" or (kind is None and not config and m >= DECODED_MIN_M and fmt in FP4_FORMATS):
        if fmt not in FP4_FORMATS:
            raise ValueError(f"the decoded W4A16 path needs nvfp4 or mxfp4, got {fmt}")
        return {"kernel": "decoded"}
    return dict(default_config(m, n, k, fmt), kernel="tiled", **config)


def _workspace(device: torch.device, partial_elems: int, counters: int):
    """Cached fp32 partials and zeroed int32 tile counters (counters reset themselves)."""
    held = _workspaces.get(device)
    if held is None or held[0].numel() < partial_elems or held[1].numel() < counters:
        held = (torch.empty(max(partial_elems, 1), dtype=torch.float32, device=device),
                torch.zeros(max(counters, 1024), dtype=torch.int32, device=device))
        _workspaces[device] = held
    return held


def check_packed(packed: dict[str, torch.Tensor], fmt: str, n: int, k: int) -> None:
    """Raise unless ``packed`` holds a ``fmt`` tensor of shape (n, k)."""
    check_k(k, fmt)
    codes, scale = packed.get("codes"), packed.get("scale")
    if codes is None or scale is None:
        raise KeyError(f"packed {fmt} weight needs 'codes' and 'scale', got {sorted(packed)}")
    want_scale = (n, k // block_size(fmt))
    if tuple(codes.shape) != (n, k // 2) or tuple(scale.shape) != want_scale:
        raise ValueError(f"packed {fmt} (N={n}, K={k}) needs codes {(n, k // 2)} and scale "
                         f"{want_scale}, got {tuple(codes.shape)} and {tuple(scale.shape)}")
    if fmt == "nvfp4" and "global_scale" not in packed:
        raise KeyError("packed nvfp4 weight needs 'global_scale'")


def launch(x: torch.Tensor, packed: dict[str, torch.Tensor], fmt: str,
           config: dict | None = None, use_asm: bool | None = None) -> torch.Tensor:
    """``x (M, K) @ W^T`` -> ``(M, N)`` in x's dtype (bf16 or fp16; MXFP4 needs bf16).

    ``config`` overrides ``resolve_config``'s choice: ``{"kernel": "skinny", ...}`` (keys
    ``num_warps``, ``R``, ``CH``) or ``{"kernel": "tiled", ...}`` (``default_config`` keys and
    ``SPLIT_K``). Both kernels split K through a cached per-device workspace that resets itself:
    launches that split K must not run concurrently on two streams of one device.
    """
    m, k = x.shape
    n = packed["codes"].shape[0]
    check_packed(packed, fmt, n, k)
    if x.dtype not in (torch.bfloat16, torch.float16) or (fmt == "mxfp4" and x.dtype != torch.bfloat16):
        raise ValueError(f"w4a16 {fmt} needs {'bf16' if fmt == 'mxfp4' else 'bf16/fp16'} "
                         f"activations, got {x.dtype}")
    x = x if x.stride(1) == 1 else x.contiguous()
    on_cpu = x.device.type == "cpu"
    use_asm = (not on_cpu) if use_asm is None else use_asm
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    cfg = resolve_config(x, packed, fmt, config)
    if cfg["kernel"] == "skinny":
        return launch_skinny(x, packed, fmt, out, cfg, use_asm)
    if cfg["kernel"] == "decoded":
        weight = decode.decode(packed, fmt, use_asm=use_asm, global_scale=True, dtype=x.dtype)
        return torch.matmul(x, weight.T, out=out)
    split = cfg.get("SPLIT_K") or split_k_for(m, n, k, cfg)
    if fmt == "int4" and cfg["BLOCK_K"] != 128:
        raise ValueError(f"int4 needs BLOCK_K=128 (one scale group per tile), got {cfg['BLOCK_K']}")
    grid = (triton.cdiv(n, cfg["BLOCK_N"]), triton.cdiv(m, cfg["BLOCK_M"]), split)
    partials, counters = _workspace(x.device, split * m * n if split > 1 else 0, grid[0] * grid[1])
    g = packed.get("global_scale", partials)
    _w4a16_kernel[grid](
        x, packed["codes"], packed["scale"], g, out, partials, counters,
        m, n, k, x.stride(0), out.stride(0), split,
        FMT=FORMAT_IDS[fmt], BLOCK_N=cfg["BLOCK_N"], BLOCK_M=cfg["BLOCK_M"],
        BLOCK_K=cfg["BLOCK_K"], HAS_SPLIT=split > 1, BF16=x.dtype == torch.bfloat16,
        USE_ASM=use_asm, F32_DOT=on_cpu,
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"], maxnreg=cfg.get("maxnreg"),
    )
    return out
