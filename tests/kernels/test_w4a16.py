"""W4A16 kernel vs dequantize-then-matmul (GPU, or Triton's interpreter on CPU)."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # CPU: run the kernels in Triton's interpreter
pytest.importorskip("triton")

from residq.kernels import w4a16
from residq.kernels.block_formats import quantize_blocks
from residq.kernels.interpreter import kernel_device

DEVICE, SKIP = kernel_device()
pytestmark = pytest.mark.skipif(DEVICE is None, reason=str(SKIP))
MANTISSA_BITS = {torch.bfloat16: 7, torch.float16: 10}


def assert_within_one_ulp(out, ref):
    """Both are roundings of (nearly) the same fp32 sum: at most one unit in the last place."""
    ref32, out32 = ref.float().cpu(), out.float().cpu()
    assert torch.isfinite(out32).all()
    ulp = torch.ldexp(torch.ones_like(ref32), torch.frexp(ref32)[1] - 1 - MANTISSA_BITS[ref.dtype])
    assert bool(((out32 - ref32).abs() <= ulp + 1e-6).all()), float((out32 - ref32).abs().max())


def _problem(fmt, m, n, k, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=gen) * 0.05
    packed = {key: v.to(DEVICE) for key, v in quantize_blocks(w, fmt).items()}
    x = (torch.randn(m, k, generator=gen)).to(dtype).to(DEVICE)
    return x, packed


CASES = [
    # (M, N, K, config): ragged M and N, K not a multiple of BLOCK_K, split-K
    (1, 40, 384, {"BLOCK_N": 64, "BLOCK_M": 16, "BLOCK_K": 256, "SPLIT_K": 1}),
    (5, 72, 512, {"BLOCK_N": 64, "BLOCK_M": 16, "BLOCK_K": 128, "SPLIT_K": 3}),
    (33, 24, 256, {"BLOCK_N": 64, "BLOCK_M": 32, "BLOCK_K": 128, "SPLIT_K": 2}),
]


@pytest.mark.parametrize("fmt, dtype", [("nvfp4", torch.bfloat16), ("nvfp4", torch.float16),
                                        ("mxfp4", torch.bfloat16), ("int4", torch.bfloat16),
                                        ("int4", torch.float16)])
@pytest.mark.parametrize("m, n, k, cfg", CASES)
def test_matches_reference(fmt, dtype, m, n, k, cfg):
    if fmt == "int4":
        cfg = dict(cfg, BLOCK_K=128)
    x, packed = _problem(fmt, m, n, k, dtype)
    out = w4a16.launch(x, packed, fmt, config=dict(cfg, num_warps=4, num_stages=2))
    assert out.shape == (m, n) and out.dtype == dtype
    assert_within_one_ulp(out, w4a16.reference(x, packed, fmt))


@pytest.mark.skipif(DEVICE is None or DEVICE.type != "cuda", reason="inline PTX runs on the GPU only")
@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4", "int4"])
def test_ptx_decode_equals_plain_decode(fmt):
    x, packed = _problem(fmt, 16, 128, 1024, torch.bfloat16, seed=3)
    fast = w4a16.launch(x, packed, fmt, use_asm=True)
    plain = w4a16.launch(x, packed, fmt, use_asm=False)
    assert torch.equal(fast, plain)


def test_rejects_bad_inputs():
    x, packed = _problem("mxfp4", 2, 32, 128, torch.float16)
    with pytest.raises(ValueError, match="needs bf16 activations"):
        w4a16.launch(x, packed, "mxfp4")
    x, packed = _problem("nvfp4", 2, 32, 128, torch.bfloat16)
    with pytest.raises(ValueError, match="needs codes"):
        w4a16.check_packed(packed, "nvfp4", 32, 256)
    with pytest.raises(ValueError, match="BLOCK_K=128"):
        x4, p4 = _problem("int4", 2, 32, 256, torch.bfloat16)
        w4a16.launch(x4, p4, "int4", config={"BLOCK_K": 256})
