"""decode.py: packed NVFP4/MXFP4 operands to bf16 ``e2m1 * block_scale``, bit for bit."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # CPU: run the kernels in Triton's interpreter
pytest.importorskip("triton")

from residq.kernels import decode
from residq.kernels.block_formats import quantize_blocks
from residq.kernels.interpreter import kernel_device

DEVICE, SKIP = kernel_device()
pytestmark = pytest.mark.skipif(DEVICE is None, reason=str(SKIP))


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4"])
@pytest.mark.parametrize("rows, k", [(1, 32), (37, 512), (16, 288)])
def test_decode_is_exact(fmt, rows, k):
    """Every element equals the torch dequantization (no global scale), including ragged rows
    and K that is not a multiple of the kernel's 256-column tile."""
    gen = torch.Generator().manual_seed(rows + k)
    w = torch.randn(rows, k, generator=gen) * torch.logspace(-3, 2, k)  # scales over 5 decades
    packed = {key: v.to(DEVICE) for key, v in quantize_blocks(w, fmt).items()}
    out = decode.decode(packed, fmt)
    assert out.dtype == torch.bfloat16 and out.shape == (rows, k)
    assert torch.equal(out.cpu(), decode.reference(packed, fmt).cpu())


def test_row_align_pads_the_stride_only():
    packed = {key: v.to(DEVICE) for key, v in quantize_blocks(torch.randn(5, 80), "nvfp4").items()}
    out = decode.decode(packed, "nvfp4", row_align=64)
    assert out.shape == (5, 80) and out.stride(0) == 128
    assert torch.equal(out.cpu(), decode.reference(packed, "nvfp4").cpu())


@pytest.mark.parametrize("fmt, dtype", [("nvfp4", torch.bfloat16), ("nvfp4", torch.float16),
                                        ("mxfp4", torch.bfloat16)])
def test_global_scale_folded_in_like_the_dequantized_weight(fmt, dtype):
    """``global_scale=True``: the 16-bit weight a W4A16 GEMM multiplies, bit for bit the
    float32 dequantization rounded to ``dtype``."""
    packed = {key: v.to(DEVICE) for key, v in quantize_blocks(torch.randn(24, 256) * 30, fmt).items()}
    out = decode.decode(packed, fmt, global_scale=True, dtype=dtype)
    expected = decode.reference(packed, fmt, global_scale=True, dtype=dtype)
    assert out.dtype == dtype and torch.equal(out.cpu(), expected.cpu())
    from residq.kernels.block_formats import dequantize_blocks

    assert torch.equal(expected.cpu(), dequantize_blocks({k: v.cpu() for k, v in packed.items()}, fmt).to(dtype))


def test_global_scale_left_out():
    packed = quantize_blocks(torch.randn(4, 64) * 1000, "nvfp4")
    assert float(packed["global_scale"]) != 1.0
    local = dict(packed, global_scale=torch.ones_like(packed["global_scale"]))
    from residq.kernels.block_formats import dequantize_blocks

    assert torch.equal(decode.reference(packed, "nvfp4"), dequantize_blocks(local, "nvfp4").to(torch.bfloat16))


def test_rejects_int4_and_bad_k():
    packed = quantize_blocks(torch.randn(4, 128), "int4")
    with pytest.raises(ValueError, match="exact in bf16"):
        decode.decode(packed, "int4")
    nv = quantize_blocks(torch.randn(4, 64), "nvfp4")
    with pytest.raises(ValueError, match="fp16 output needs"):
        decode.decode(quantize_blocks(torch.randn(4, 64), "nvfp4"), "nvfp4", dtype=torch.float16)
    with pytest.raises(ValueError, match="multiple of 16"):
        decode.decode({"codes": nv["codes"][:, :4], "scale": nv["scale"]}, "nvfp4")
