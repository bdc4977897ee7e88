"""Channel gather ``X[:, perm]`` on the GPU: the activation quantizer's optional first step
(ARCQuant orders the input channels by calibration ``max|X|``, arXiv 2601.07475).

Why a pass of its own: ``perm`` sends neighbouring output columns to unrelated input columns, so
a quantizer that reads ``x[row, perm[col]]`` straight from global memory touches a different
128-byte line with nearly every lane of a load; on the H100 that held the quantizer at 0.13-0.21
of copy bandwidth (``benchmarks/kernels.py``, session 14). Here a program reads whole rows with
16-byte loads, permutes them through shared memory and writes ``X_perm`` with 16-byte stores, so
both ends of the pass stream.

The kernel is Gluon (explicit layouts): a row spans all the program's warps, so ``gl.gather`` is
lowered through shared memory, and with several rows per program one 8-byte shared load fetches
a column of 4 rows. Plain Triton's ``tl.gather`` picked a warp-local layout and shuffles for the
same code (60 KB of register spills for 4096 columns, compiled offline for sm_90). Where Gluon
cannot run (CPU, GPUs before Hopper, Triton without Gluon) ``gather_columns`` indexes with
torch. The gather moves values and never rounds: the result equals ``x[:, perm]`` bit for bit.
"""

from __future__ import annotations

import functools

import torch
import triton

try:
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
except ImportError:  # triton < 3.5
    gluon = None

ELEMENTS_PER_PROGRAM = 16384  # rows x padded columns per program: 32 values per thread at 16 warps


def reference(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """``x[:, perm]`` ``(M, K)`` by torch."""
    return x[:, perm.to(device=x.device, dtype=torch.int64)]


@functools.cache
def _gpu_ok(index: int) -> bool:
    return torch.cuda.get_device_capability(index) >= (9, 0)


def available(device: torch.device) -> bool:
    """True when the Gluon kernel runs on ``device``: CUDA sm_90+ (where it was built and tested;
    older GPUs keep the quantizer's fused loads) and Triton with Gluon."""
    if gluon is None or device.type != "cuda":
        return False
    return _gpu_ok(device.index if device.index is not None else torch.cuda.current_device())


def tile(k: int) -> dict[str, int]:
    """One program's tile for rows of K columns: whole rows (``KP`` = K rounded up to a power of
    two), ``BLOCK_M`` rows for about ``ELEMENTS_PER_PROGRAM`` values, ``num_warps`` 4-16, and the
    blocked layout: 8 consecutive columns per thread, lanes and warps along the row first (so a
    long row spans warps and the gather goes through shared memory), the rest along rows; the
    layout never covers more than the tile (no replicated elements)."""
    kp = triton.next_power_of_2(k)
    block_m = max(1, ELEMENTS_PER_PROGRAM // kp)
    warps = max(4, min(16, block_m * kp // 1024))
    per_thread = min(8, kp)
    lanes_c = min(32, kp // per_thread)
    warps_c = min(warps, kp // (per_thread * lanes_c))
    return {"BLOCK_M": block_m, "KP": kp, "num_warps": warps, "SPT": per_thread, "TPW_C": lanes_c,
            "WPC_C": warps_c}


if gluon is not None:

    @gluon.jit
    def _gather_kernel(x_ptr, perm_ptr, out_ptr, amax_ptr, M, K, stride_xm, stride_om,
                       BLOCK_M: gl.constexpr, KP: gl.constexpr, SPT: gl.constexpr, TPW_C: gl.constexpr,
                       WPC_C: gl.constexpr, AMAX: gl.constexpr, num_warps: gl.constexpr):
        """Rows ``[pid BLOCK_M, +BLOCK_M)``: ``out[r, c] = x[r, perm[c]]`` for ``c < K`` (the
        padding columns up to KP are neither read nor written); layout parameters from ``tile``.
        ``AMAX``: also ``amax[pid] = max |x|`` over the program's rows (float32)."""
        layout: gl.constexpr = gl.BlockedLayout([1, SPT], [32 // TPW_C, TPW_C], [num_warps // WPC_C, WPC_C], [1, 0])
        rows = gl.program_id(0) * BLOCK_M + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, layout))
        cols = gl.arange(0, KP, layout=gl.SliceLayout(0, layout))
        in_k = cols < K
        mask = (rows < M)[:, None] & in_k[None, :]
        x = gl.load(x_ptr + rows[:, None].to(gl.int64) * stride_xm + cols[None, :], mask=mask, other=0.0)
        source = gl.load(perm_ptr + cols, mask=in_k, other=0)
        index = source[None, :] + gl.zeros([BLOCK_M, KP], gl.int32, layout)
        gathered = gl.gather(x, index, axis=1)
        if AMAX:
            gl.store(amax_ptr + gl.program_id(0), gl.max(gl.max(gl.abs(x.to(gl.float32)), axis=1), axis=0))
        gl.store(out_ptr + rows[:, None].to(gl.int64) * stride_om + cols[None, :], gathered, mask=mask)


def gather_columns(x: torch.Tensor, perm: torch.Tensor,
                   with_amax: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(x_perm, partial_amax)``: ``x[:, perm]`` as a new contiguous ``(M, K)`` tensor of x's
    dtype and, with ``with_amax`` (else None), float32 maxima of ``|x|`` whose maximum is
    ``max |x|`` (one per program, taken from the same read of x; NVFP4's dynamic global scale
    needs it, and ``global_scale.amax_pass`` over these few values gives the same scale as over x).

    Args:
        x: ``(M, K)`` activations (16- or 32-bit floats), unit column stride.
        perm: ``(K,)`` int32/int64 source column of every output column; the kernel does not
            range-check the values (``act_quant._check_inputs`` checks the shape). The kernel
            reads int32: an int64 ``perm`` costs a conversion per call, so callers on a hot
            path keep an int32 copy (``residq.nn.kernel_path`` does).
    """
    if x.dim() != 2 or x.stride(1) != 1:
        raise ValueError(f"gather_columns needs an (M, K) tensor with unit column stride, got {tuple(x.shape)} "
                         f"with strides {x.stride()}")
    m, k = x.shape
    if perm.shape != (k,):
        raise ValueError(f"perm must have shape ({k},), got {tuple(perm.shape)}")
    if not available(x.device) or m == 0:
        out = reference(x, perm).contiguous()
        return out, x.abs().amax(dim=1).float() if with_amax else None
    out = torch.empty((m, k), dtype=x.dtype, device=x.device)
    cfg = tile(k)
    programs = triton.cdiv(m, cfg["BLOCK_M"])
    amax = torch.empty(programs, dtype=torch.float32, device=x.device) if with_amax else None
    index = perm.to(device=x.device, dtype=torch.int32)  # no copy when it is already that
    _gather_kernel[(programs,)](x, index, out, out if amax is None else amax, m, k, x.stride(0), out.stride(0),
                                AMAX=with_amax, **cfg)
    return out, amax
