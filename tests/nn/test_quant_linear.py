import torch

from residq.formats import dequantize, fake_quantize, quantize
from residq.formats.spec import FormatSpec
from residq.methods.quantized_layer import QuantizedLayer
from residq.nn.quant_linear import QuantLinear

NVFP4 = FormatSpec(kind="nvfp4")


def make_layer(act=None, rank=0, bias=True, perm=False):
    torch.manual_seed(0)
    w = torch.randn(24, 64)
    layer = QuantizedLayer(weight=quantize(w, NVFP4), bias=torch.randn(24) if bias else None, act_spec=act)
    if rank:
        layer.lowrank_a, layer.lowrank_b = torch.randn(64, rank), torch.randn(24, rank)
    if perm:
        layer.input_perm = torch.randperm(64)
    return layer


def test_forward_is_dequantized_weight_times_quantized_activation():
    layer = make_layer(act=NVFP4, rank=4, perm=True)
    module = QuantLinear.from_quantized(layer, 64)
    x = torch.randn(3, 5, 64)
    rows = x.reshape(-1, 64)[:, layer.input_perm]
    expected = fake_quantize(rows, NVFP4) @ dequantize(layer.weight).T
    expected = expected + (rows @ layer.lowrank_a) @ layer.lowrank_b.T + layer.bias
    assert torch.allclose(module(x).reshape(-1, 24), expected, atol=1e-5, rtol=1e-5)


def test_state_dict_round_trip_through_layer_config_is_bitwise():
    module = QuantLinear.from_quantized(make_layer(act=NVFP4, rank=2), 64)
    rebuilt = QuantLinear.from_config(module.layer_config())
    rebuilt.load_state_dict(module.state_dict())
    x = torch.randn(7, 64)
    assert torch.equal(module(x), rebuilt(x))


def test_storage_is_packed_four_bit():
    module = QuantLinear.from_quantized(make_layer(bias=False), 64)
    # 24 x 64 codes at 4 bits + one E4M3 byte per 16 + the fp32 global scale
    assert module.storage_bytes() == 24 * 64 // 2 + 24 * 64 // 16 + 4


def test_bf16_w4a4_reference_rounds_only_the_output():
    """In bf16 the W4A4 product runs on the exact float32 operands (global scales included) and
    only the output is rounded, as the kernels do; bf16 operands would each be rounded first."""
    module = QuantLinear.from_quantized(make_layer(act=NVFP4, bias=False), 64)
    x = torch.randn(9, 64).bfloat16()
    expected = (fake_quantize(x.float(), NVFP4) @ dequantize(module.quantized_weight()).T).bfloat16()
    assert torch.equal(module.to(torch.bfloat16)(x), expected)


def test_float64_reference_product_matches_the_float64_sum_of_the_same_operands():
    module = QuantLinear.from_quantized(make_layer(act=NVFP4, bias=False), 64)
    x = torch.randn(9, 64) * 3
    operand = fake_quantize(x, NVFP4).double()
    exact = (operand @ dequantize(module.quantized_weight()).double().T).float()
    module.reference_product_dtype = torch.float64
    try:
        out64 = module(x)
    finally:
        del module.reference_product_dtype
    assert module.reference_product_dtype == torch.float32  # the class default is back
    assert out64.dtype == torch.float32
    assert torch.equal(out64, exact)
    assert torch.allclose(module(x), exact, rtol=1e-5, atol=1e-5)
