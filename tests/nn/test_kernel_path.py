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


def test_input_order_operands_are_prepared_once_and_follow_the_buffers():
    """The kernels take the channel order as int32, the smoothing scale and ARHQ's A in the
    input's channel order, in the activations' dtype: prepared once per layer, redone when a
    buffer is written in place."""
    from residq.nn.kernel_path import _input_order_operands

    torch.manual_seed(0)
    k, n, r = 32, 8, 4
    layer = QuantizedLayer(weight=quantize(torch.randn(n, k), NVFP4), act_spec=NVFP4)
    layer.input_perm = torch.randperm(k)
    layer.input_scale = torch.rand(k) + 0.5
    layer.lowrank_a, layer.lowrank_b = torch.randn(k, r).half(), torch.randn(n, r).half()
    module = QuantLinear.from_quantized(layer, k)
    rows = torch.randn(3, k, dtype=torch.bfloat16)
    perm32, scale, a, b = _input_order_operands(module, rows)
    assert perm32.dtype == torch.int32 and torch.equal(perm32.long(), module.input_perm)
    inverse = torch.argsort(module.input_perm)
    assert torch.equal(scale, module.input_scale[inverse].bfloat16())
    assert torch.equal(a, module.lowrank_a[inverse].bfloat16()) and torch.equal(b, module.lowrank_b.bfloat16())
    # x / scale in input order, then gathered, is the reference's gather-then-divide
    assert torch.equal((rows / scale)[:, module.input_perm], rows[:, module.input_perm] / module.input_scale.bfloat16())
    assert _input_order_operands(module, rows)[2] is a  # cached
    with torch.no_grad():
        module.lowrank_a.mul_(2)  # an in-place write (as load_state_dict does) invalidates it
    assert torch.equal(_input_order_operands(module, rows)[2], 2 * a)
    assert _input_order_operands(module, rows.half())[2].dtype == torch.float16
