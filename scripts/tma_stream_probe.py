"""How fast can a persistent grid stream a packed FP4 weight through TMA on this GPU? A loads-only
Gluon kernel: PROGRAMS persistent programs walk (row block, K chunk) work items, each a ring of
STAGES bulk copies of [ROWS, 64] bytes (one 128-column segment), read back from shared memory the
way the skinny W4A16 kernel's lanes would and folded into one XOR per program. No decode, no MMA,
no reduction: the ceiling a TMA-fed GEMV could reach, with benchmarks/kernels.py's timing (CUDA
graph, weights rotated past L2).

    PYTHONPATH=. python scripts/tma_stream_probe.py
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, tma
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from kernel_timing import sets_for, time_ms

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (6144, 4096)]


@gluon.jit
def _issue(codes_desc, smem, bars, j, pid, row_blocks, ITEM_SEGS: gl.constexpr, ROWS: gl.constexpr,
           STAGES: gl.constexpr, PROGRAMS: gl.constexpr):
    """TMA of this program's j-th segment (item pid + (j // ITEM_SEGS) PROGRAMS) into slot j % STAGES."""
    item = pid + (j // ITEM_SEGS) * PROGRAMS
    seg = (item // row_blocks) * ITEM_SEGS + j % ITEM_SEGS
    slot = j % STAGES
    mbarrier.expect(bars.index(slot), codes_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(codes_desc, [(item % row_blocks) * ROWS, seg * 64], bars.index(slot),
                                    smem.index(slot))


@gluon.jit
def _stream_kernel(codes_desc, out_ptr, N, K, ITEM_SEGS: gl.constexpr, ROWS: gl.constexpr,
                   STAGES: gl.constexpr, PROGRAMS: gl.constexpr, num_warps: gl.constexpr):
    """Program p streams items p, p + PROGRAMS, ...; item i = (row block i % row_blocks, K chunk
    i // row_blocks) of ROWS rows x ITEM_SEGS segments, through a STAGES-deep TMA ring."""
    pid = gl.program_id(0)
    row_blocks = gl.cdiv(N, ROWS)
    chunks = gl.cdiv(K // 128, ITEM_SEGS)
    items = row_blocks * chunks
    mine = gl.cdiv(items - pid, PROGRAMS)
    total = mine * ITEM_SEGS  # segments this program streams
    smem = gl.allocate_shared_memory(gl.uint8, [STAGES, ROWS, 64], codes_desc.layout)
    bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(bars.index(i), count=1)
    fence_async_shared()
    for first in gl.static_range(STAGES):
        if first < total:
            _issue(codes_desc, smem, bars, first, pid, row_blocks, ITEM_SEGS, ROWS, STAGES, PROGRAMS)
    plain: gl.constexpr = gl.SwizzledSharedLayout(vec=1, per_phase=1, max_phase=1, order=[1, 0])
    tile: gl.constexpr = gl.BlockedLayout([1, 2], [8, 4], [num_warps, 1], [1, 0])
    acc = gl.zeros([ROWS, 8], gl.int64, tile)
    for i in range(total):
        slot = i % STAGES
        mbarrier.wait(bars.index(slot), (i // STAGES) & 1)
        acc ^= smem.index(slot)._reinterpret(gl.int64, [ROWS, 8], plain).load(tile)
        gl.thread_barrier()  # every warp has read the slot before it is refilled
        if i + STAGES < total:
            _issue(codes_desc, smem, bars, i + STAGES, pid, row_blocks, ITEM_SEGS, ROWS, STAGES, PROGRAMS)
    folded = gl.reduce_or(gl.reduce_or(acc, axis=1), axis=0)
    gl.store(out_ptr + pid, folded)


def main() -> None:
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    layout = gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=8, rank=2)
    print(f"{torch.cuda.get_device_name()}: loads-only TMA stream of packed FP4 codes")
    for n, k in SHAPES:
        sets = sets_for(n * k // 2)
        codes = [torch.randint(0, 255, (n, k // 2), dtype=torch.uint8, device="cuda") for _ in range(sets)]
        out = torch.empty(4 * sms, dtype=torch.int64, device="cuda")
        best = None
        for rows, item_segs, stages, per_sm, warps in itertools.product(
                (64, 128), (k // 128, 8), (4, 8), (1, 2), (4,)):
            programs = per_sm * sms
            descs = [TensorDescriptor(c, [n, k // 2], [k // 2, 1], [rows, 64], layout) for c in codes]
            ms = time_ms(lambda i, d=descs, r=rows, s=item_segs, st=stages, p=programs, o=out, n=n, k=k: lambda: _stream_kernel[(p,)](
                d[i], o, n, k, ITEM_SEGS=s, ROWS=r, STAGES=st, PROGRAMS=p, num_warps=4), sets)
            gbps = n * k / 2 / ms / 1e6
            print(f"N={n:5d} K={k:5d} rows {rows:3d} segs/item {item_segs:3d} stages {stages} programs/SM {per_sm}: "
                  f"{ms * 1e3:6.1f} us {gbps:5.0f} GB/s", flush=True)
            if best is None or ms < best[0]:
                best = (ms, rows, item_segs, stages, per_sm)
        print(f"  best: {best[0] * 1e3:.1f} us ({n * k / 2 / best[0] / 1e6:.0f} GB/s) with {best[1:]}")


if __name__ == "__main__":
    main()
