import torch

from residq.formats import FormatSpec, decode, dequantize, encode, quantize

FP8_TOKEN = FormatSpec(kind="fp8", granularity="token")
FP8_TENSOR = FormatSpec(kind="fp8", granularity="tensor")


def test_per_token_scale_codes_and_values():
    x = torch.tensor([[448.0, 300.0, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [-896.0, 1.0, 2.0, 3.0]])
    qt = quantize(x, FP8_TOKEN)
    assert qt.scale.tolist() == [[1.0], [1.0], [2.0]]  # amax / 448; zero row -> 1
    # E4M3 bits: 448 = 0x7E, 300 -> 288 = 0x79, -1 = 0xB8, -448 = 0xFE, 0.5 = 0x30
    assert qt.codes.dtype == torch.uint8
    assert qt.codes[0].tolist() == [0x7E, 0x79, 0xB8, 0x00]
    assert qt.codes[1].tolist() == [0, 0, 0, 0]
    assert qt.codes[2, :2].tolist() == [0xFE, 0x30]
    assert dequantize(qt)[0].tolist() == [448.0, 288.0, -1.0, 0.0]


def test_saturates_at_448_instead_of_nan():
    spec = FP8_TOKEN
    scale = torch.tensor([[1.0]])
    codes = encode(torch.tensor([[1000.0, -1e6, 464.0, float("inf")]]), scale, None, None, spec)
    assert codes.tolist() == [[0x7E, 0xFE, 0x7E, 0x7E]]
    assert decode(codes, scale, None, None, spec).tolist() == [[448.0, -448.0, 448.0, 448.0]]


def test_per_tensor_has_one_scale():
    x = torch.tensor([[1.0, -2.0], [8.96, 0.0]])
    qt = quantize(x, FP8_TENSOR)
    assert qt.scale.shape == (1,)
    assert qt.scale.item() == (torch.tensor(8.96) / 448).item()
    assert qt.codes[1, 0].item() == 0x7E
    assert not dequantize(quantize(torch.zeros(2, 3), FP8_TENSOR)).isnan().any()
