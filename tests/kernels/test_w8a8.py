"""W8A8: the per-token quantizer kernel is bit-exact; the library GEMM is checked on the GPU."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # CPU: run the kernels in Triton's interpreter
pytest.importorskip("triton")

from residq.kernels import w8a8
from residq.kernels.interpreter import kernel_device

DEVICE, SKIP = kernel_device()
pytestmark = pytest.mark.skipif(DEVICE is None, reason=str(SKIP))
ON_GPU = DEVICE is not None and DEVICE.type == "cuda"


def _x(m, k, seed=0):
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(seed)) * 3
    x[1] = 0.0
    x[2, :4] = torch.tensor([1e-7, -448.2, 1000.0, 0.0011])
    return x.to(torch.bfloat16).to(DEVICE)


@pytest.mark.parametrize("kind", ["fp8", "int8"])
def test_row_quantizer_matches_reference(kind):
    x = _x(7, 300)
    codes, scale = (t.cpu() for t in w8a8.quantize_rows(x, kind))
    ref_codes, ref_scale = w8a8.quantize_rows_reference(x.cpu(), kind)  # CPU: exact division
    assert torch.equal(scale, ref_scale)
    if kind == "fp8":
        codes, ref_codes = codes.view(torch.uint8), ref_codes.view(torch.uint8)
    assert torch.equal(codes, ref_codes)


@pytest.mark.skipif(not ON_GPU, reason="torch._scaled_mm / torch._int_mm need CUDA")
@pytest.mark.parametrize("kind", ["fp8", "int8"])
@pytest.mark.parametrize("m", [3, 64])
def test_linear_matches_reference(kind, m):
    w = torch.randn(96, 256, generator=torch.Generator().manual_seed(1)).to(DEVICE) * 0.05
    w_codes, w_scale = w8a8.quantize_weight(w, kind)
    x = _x(m, 256)
    out = w8a8.launch(x, w_codes, w_scale, kind)
    ref = w8a8.reference(x, w_codes, w_scale, kind)
    assert float((out.float() - ref.float()).norm() / ref.float().norm()) < 5e-3


def test_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        w8a8.quantize_rows_reference(torch.zeros(2, 4), "fp4")
