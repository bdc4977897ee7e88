"""NVFP4's dynamic global scale ``g = amax(|X|) / 2688`` on the GPU, written to device memory
in one launch (no host synchronisation, CUDA-graph capturable): the activation quantizer's first
pass (``act_quant.py``), whose residual pass ends with the same ticket reduction.

Programs write partial maxima to a cached per-device workspace; the last program to arrive (an
atomic ticket, which it resets) reduces them and writes g. Calls must not run concurrently on
two streams of one device.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

AMAX_PROGRAMS = 1024  # programs (and partials) of the global-amax pass
AMAX_TILE = {"rows": 8, "cols": 1024, "num_warps": 4}  # the global-amax pass's tile (amax_pass)
_NVFP4_DIVISOR = tl.constexpr(6.0 * 448.0)
_FLOAT32_TINY = tl.constexpr(1.1754943508222875e-38)
_amax_workspaces: dict[tuple[torch.device, str], tuple[torch.Tensor, torch.Tensor]] = {}


@triton.jit
def finish_global_scale(partial_ptr, counter_ptr, g_ptr, pid, running, n_programs, MAX_P: tl.constexpr):
    """Store this program's maximum ``running`` in ``partial[pid]``; the last of ``n_programs``
    programs to arrive (an atomic ticket, which it resets) reduces the partials and writes the
    NVFP4 global scale ``g = amax / 2688`` (1.0 when amax is 0) to ``g_ptr``."""
    tl.store(partial_ptr + pid, running)
    tl.debug_barrier()
    arrived = tl.atomic_add(counter_ptr, 1, sem="acq_rel", scope="gpu")
    if arrived == n_programs - 1:
        offs = tl.arange(0, MAX_P)
        partials = tl.load(partial_ptr + offs, mask=offs < n_programs, other=0.0, cache_modifier=".cg")
        amax = tl.max(partials, axis=0)
        g = tl.maximum(tl.math.div_rn(amax, _NVFP4_DIVISOR), _FLOAT32_TINY)
        tl.store(g_ptr, tl.where(amax > 0, g, 1.0))
        tl.atomic_xchg(counter_ptr, 0, sem="relaxed", scope="gpu")


@triton.jit(do_not_specialize=["M", "n_programs"])
def _amax_kernel(x_ptr, partial_ptr, counter_ptr, g_ptr, M, K, stride_xm, n_programs,
                 BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, MAX_P: tl.constexpr):
    """NVFP4 dynamic global scale: ``g = amax(|x|) / 2688`` written to ``g_ptr``.

    Program p takes the row-major tiles p, p + P, ... and writes its max to ``partial[p]``;
    the last program to finish (an atomic ticket, reset by that program) reduces the partials.
    """
    pid = tl.program_id(0)
    col_tiles = tl.cdiv(K, BLOCK_K)
    n_tiles = tl.cdiv(M, BLOCK_M) * col_tiles
    running = 0.0  # reduced to a scalar per tile: few live registers, more programs per SM
    for tile in range(pid, n_tiles, n_programs):
        rows = (tile // col_tiles) * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = (tile % col_tiles) * BLOCK_K + tl.arange(0, BLOCK_K)
        mask = (rows < M)[:, None] & (cols < K)[None, :]
        x = tl.load(x_ptr + rows[:, None] * stride_xm + cols[None, :], mask=mask, other=0.0)
        running = tl.maximum(running, tl.max(tl.max(tl.abs(x.to(tl.float32)), axis=1), axis=0))
    finish_global_scale(partial_ptr, counter_ptr, g_ptr, pid, running, n_programs, MAX_P)


def amax_workspace(device: torch.device, purpose: str = "amax") -> tuple[torch.Tensor, torch.Tensor]:
    """Cached partial maxima and the zeroed ticket counter (reset by the kernel), one pair per
    device and purpose (the global and the residual amax pass)."""
    held = _amax_workspaces.get((device, purpose))
    if held is None:
        held = (torch.empty(AMAX_PROGRAMS, dtype=torch.float32, device=device),
                torch.zeros(1, dtype=torch.int32, device=device))
        _amax_workspaces[(device, purpose)] = held
    return held


def amax_pass(x: torch.Tensor, g: torch.Tensor, rows: int = AMAX_TILE["rows"], cols: int = AMAX_TILE["cols"],
              num_warps: int = AMAX_TILE["num_warps"], programs: int = AMAX_PROGRAMS) -> torch.Tensor:
    """NVFP4's dynamic global scale of ``x`` ``(M, K)`` (unit stride along K) written into the
    float32 scalar ``g``: ``amax(|x|) / 2688`` (1.0 when x is all zeros), one launch, no host
    synchronisation. ``rows`` x ``cols`` tiles spread over at most ``programs`` (<= 1024)
    programs; the defaults are ``AMAX_TILE`` (``scripts/amax_pass_sweep.py`` times others)."""
    if not 1 <= programs <= AMAX_PROGRAMS:
        raise ValueError(f"programs must be in [1, {AMAX_PROGRAMS}], got {programs}")
    m, k = x.shape
    tiles = triton.cdiv(m, rows) * triton.cdiv(k, cols)
    n_programs = min(tiles, programs)
    partials, counter = amax_workspace(x.device)
    _amax_kernel[(n_programs,)](x, partials, counter, g, m, k, x.stride(0), n_programs,
                                BLOCK_M=rows, BLOCK_K=cols, MAX_P=AMAX_PROGRAMS, num_warps=num_warps,
                                enable_fp_fusion=False)
    return g
