import pytest
import torch

from residq.formats import quantize
from residq.formats.spec import FormatSpec
from residq.methods.quantized_layer import QuantizedLayer
from residq.nn.kernel_path import kernel_format, kernel_forward
from residq.nn.quant_linear import QuantLinear

NVFP4 = FormatSpec(kind="nvfp4")


def test_kernel_formats():
    assert kernel_format(NVFP4) == "nvfp4"
    assert kernel_format(FormatSpec(kind="int", bits=4, group_size=128)) == "int4"
    assert kernel_format(FormatSpec(kind="int", bits=4, group_size=64)) is None
    assert kernel_format(FormatSpec(kind="fp8", granularity="channel")) is None


def test_cpu_and_float32_take_the_reference_path():
    module = QuantLinear.from_quantized(QuantizedLayer(weight=quantize(torch.randn(8, 32), NVFP4)), 32)
    assert kernel_forward(module, torch.randn(4, 32)) is None
    assert kernel_forward(module, torch.randn(4, 32, dtype=torch.bfloat16)) is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("case", ["w4a16", "w4a4", "w4a4-arc-lowrank"])
def test_kernels_match_the_reference_path(case):
    pytest.importorskip("triton")
    torch.manual_seed(0)
    k, n, s, r = 256, 192, 32, 16
    layer = QuantizedLayer(weight=quantize(torch.randn(n, k + (s if "arc" in case else 0)), NVFP4),
                           act_spec=None if case == "w4a16" else NVFP4, bias=torch.randn(n))
    if "arc" in case:
        layer.augmented = s
        layer.input_perm = torch.randperm(k)
        layer.lowrank_a, layer.lowrank_b = 0.1 * torch.randn(k, r), 0.1 * torch.randn(n, r)
    module = QuantLinear.from_quantized(layer, k).cuda()
    x = torch.randn(37, k, device="cuda", dtype=torch.bfloat16)
    fused = module(x).float()
    module.use_kernels = False
    reference = module(x).float()
    rel = (fused - reference).norm() / reference.norm()
    assert rel < 1e-2
