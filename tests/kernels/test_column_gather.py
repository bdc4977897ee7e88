"""The channel gather X[:, perm] ahead of the activation quantizer (Gluon kernel on the GPU,
torch indexing where Gluon cannot run)."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from residq.kernels import column_gather
from residq.kernels.interpreter import kernel_device

DEVICE, SKIP = kernel_device()
pytestmark = pytest.mark.skipif(DEVICE is None, reason=str(SKIP))


@pytest.mark.parametrize("m, k", [(1, 16), (7, 96), (33, 256), (5, 4096), (3, 14336), (2, 5000)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_equals_indexing(m, k, dtype):
    """Bit for bit ``x[:, perm]``: ragged row blocks, K not a power of two, int32 and int64
    indices, values whose bits would show any rounding."""
    gen = torch.Generator().manual_seed(k)
    x = torch.randn(m, k, generator=gen).to(dtype).to(DEVICE)
    perm = torch.randperm(k, generator=gen).to(DEVICE)
    for index in (perm, perm.int()):
        out, amax = column_gather.gather_columns(x, index)
        assert amax is None and out.dtype == dtype and out.is_contiguous()
        assert torch.equal(out, x[:, perm])


@pytest.mark.parametrize("m, k", [(9, 256), (5, 4096), (3, 14336)])
def test_partial_amax_from_the_same_read(m, k):
    """``with_amax``: the per-program maxima of |x| reduce to max |x| exactly."""
    x = (torch.randn(m, k, generator=torch.Generator().manual_seed(m)) * 3).bfloat16().to(DEVICE)
    x[m // 2, k // 3] = -40.0  # the largest magnitude, negative
    perm = torch.randperm(k).to(DEVICE)
    out, partial = column_gather.gather_columns(x, perm, with_amax=True)
    assert torch.equal(out, x[:, perm])
    assert partial.dtype == torch.float32 and float(partial.max()) == 40.0


def test_strided_rows_and_empty_input():
    x = torch.randn(6, 64, dtype=torch.bfloat16).to(DEVICE)
    perm = torch.randperm(32).to(DEVICE)
    assert torch.equal(column_gather.gather_columns(x[::2, :32], perm)[0], x[::2, :32][:, perm])
    assert column_gather.gather_columns(x[:0, :32], perm)[0].shape == (0, 32)


def test_rejects_bad_inputs():
    x = torch.randn(4, 32, dtype=torch.bfloat16).to(DEVICE)
    with pytest.raises(ValueError, match="unit column stride"):
        column_gather.gather_columns(x.t(), torch.arange(4, device=DEVICE))
    with pytest.raises(ValueError, match=r"perm must have shape \(32,\)"):
        column_gather.gather_columns(x, torch.arange(31, device=DEVICE))


@pytest.mark.skipif(DEVICE is None or DEVICE.type != "cuda", reason="the Gluon kernel runs on the GPU only")
def test_gpu_uses_the_kernel():
    assert column_gather.available(DEVICE)


def test_tile_covers_whole_rows():
    for k in (16, 96, 576, 4096, 5000, 14336, 28672):
        cfg = column_gather.tile(k)
        kp, block_m, warps = cfg["KP"], cfg["BLOCK_M"], cfg["num_warps"]
        assert kp >= k and kp & (kp - 1) == 0 and block_m >= 1 and 4 <= warps <= 16
        assert block_m * kp >= min(column_gather.ELEMENTS_PER_PROGRAM, kp)
        # the blocked layout tiles [rows, KP] without replication
        assert cfg["SPT"] * cfg["TPW_C"] * cfg["WPC_C"] <= kp and warps % cfg["WPC_C"] == 0
        assert (32 // cfg["TPW_C"]) * (warps // cfg["WPC_C"]) <= block_m
