"""The API QuantLinear calls: import without Triton, format names, leading dimensions."""

import os
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # CPU: run the kernels in Triton's interpreter

from residq import kernels
from residq.kernels.block_formats import quantize_blocks


def test_import_without_triton():
    code = ("import sys; sys.modules['triton'] = None; import residq.kernels as k; "
            "from residq.kernels import dispatch; print(k.available())")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    expected = "True" if torch.cuda.is_available() else "False"
    assert done.stdout.strip() in (expected, "False")


def test_unknown_format_is_rejected():
    with pytest.raises(ValueError, match="unsupported kernel format"):
        kernels.w4a16_linear(torch.zeros(2, 128), {}, "fp8", 8, 128)


def _device():
    pytest.importorskip("triton")
    from residq.kernels.interpreter import kernel_device

    device, reason = kernel_device()
    if device is None:
        pytest.skip(reason)
    return device


def test_w4a16_linear_keeps_leading_dims():
    device = _device()
    w = torch.randn(48, 256, generator=torch.Generator().manual_seed(0)) * 0.05
    packed = {key: v.to(device) for key, v in quantize_blocks(w, "int4").items()}
    x = torch.randn(2, 3, 256, generator=torch.Generator().manual_seed(1)).to(torch.float16).to(device)
    out = kernels.w4a16_linear(x, packed, "int4-g128-sym", 48, 256)
    from residq.kernels import w4a16

    assert out.shape == (2, 3, 48)
    assert torch.equal(out.reshape(6, 48), w4a16.launch(x.reshape(6, 256), packed, "int4"))


def test_w4a4_linear_composes_quantizer_and_gemm():
    device = _device()
    from residq.kernels import act_quant, w4a4

    gen = torch.Generator().manual_seed(2)
    k, n, s, r = 256, 40, 32, 16
    w = torch.randn(n, k, generator=gen) * 0.05
    perm = torch.randperm(k, generator=gen).to(device)
    a = (torch.randn(k, r, generator=gen) * 0.1).to(torch.float16).to(device)
    b = (torch.randn(n, r, generator=gen) * 0.1).to(torch.float16).to(device)
    x = torch.randn(3, 5, k, generator=gen).to(torch.float16).to(device)
    packed = {key: v.to(device) for key, v in quantize_blocks(w, "nvfp4").items()}
    wq = w4a4.augment_weight(packed, "nvfp4", s)
    out = kernels.w4a4_linear(x, wq, "nvfp4", perm=perm, s=s, lowrank=(a, b))
    xq = act_quant.reference(x.reshape(15, k), "nvfp4", perm=perm, s=s, lowrank_a=a)
    ref = w4a4.reference(xq, wq, "nvfp4", s=s, lowrank_xa=xq["lowrank_xa"], lowrank_b=b,
                         out_dtype=torch.float32)
    assert out.shape == (3, 5, n) and out.dtype == torch.float16
    assert float((out.reshape(15, n).float() - ref).norm() / ref.norm()) < 2e-3
