import pytest
import torch

from residq.formats import (
    FormatSpec,
    QuantizedTensor,
    bits_per_element,
    dequantize,
    pack,
    quantize,
    unpack,
)


def _bits(t: torch.Tensor) -> torch.Tensor:
    """Bit patterns of a float32 tensor, so that equality is bitwise (-0.0 != 0.0)."""
    return t.contiguous().view(torch.int32)


@pytest.mark.parametrize("shape", [(1,), (3, 7), (2, 3, 33), (4, 40)])
def test_round_trip_is_bitwise_exact(any_spec, shape):
    torch.manual_seed(0)
    x = torch.randn(shape) * torch.logspace(-2, 2, shape[-1])
    qt = quantize(x, any_spec)
    back = unpack(pack(qt), any_spec, tuple(shape))
    assert back.codes.dtype == qt.codes.dtype
    assert torch.equal(back.codes, qt.codes)
    assert torch.equal(_bits(dequantize(back)), _bits(dequantize(qt)))


def test_nvfp4_layout_low_nibble_first_and_scale_bytes():
    spec = FormatSpec(kind="nvfp4")
    qt = QuantizedTensor(
        codes=torch.tensor([[1, 2, 3]], dtype=torch.uint8),
        scale=torch.tensor([[1.0]]),
        spec=spec,
        global_scale=torch.tensor(0.5),
    )
    packed = pack(qt)
    assert packed["codes"].tolist() == [[0x21, 0x03]]
    assert packed["scale"].dtype == torch.uint8 and packed["scale"].tolist() == [[0x38]]
    assert packed["global_scale"].dtype == torch.float32 and packed["global_scale"].shape == ()
    assert set(packed) == {"codes", "scale", "global_scale"}


def test_mxfp4_scale_is_biased_e8m0_exponent():
    x = torch.zeros(1, 64)
    x[0, 0], x[0, 32] = 0.1, 1e-40  # exponents -5 and -127 (clamped)
    packed = pack(quantize(x, FormatSpec(kind="mxfp4")))
    assert packed["scale"].tolist() == [[122, 0]]
    assert packed["codes"].shape == (1, 32)


def test_int4_and_int2_layouts():
    int4 = FormatSpec("int", 4, True, "channel")
    qt4 = QuantizedTensor(torch.tensor([[-8, 7, 0]], dtype=torch.int8), torch.tensor([[1.0]]), int4)
    packed4 = pack(qt4)
    assert packed4["codes"].tolist() == [[0xF0, 0x08]]  # stored +8: 0, 15, 8
    assert packed4["scale"].dtype == torch.float16
    int2 = FormatSpec("int", 2, True, "channel")
    codes2 = torch.tensor([[-2, -1, 0, 1, -1]], dtype=torch.int8)  # stored +2: 0, 1, 2, 3, 1
    packed2 = pack(QuantizedTensor(codes2, torch.tensor([[1.0]]), int2))
    assert packed2["codes"].tolist() == [[0 | 1 << 2 | 2 << 4 | 3 << 6, 1]]


def test_int3_and_int8_storage_and_zero_points():
    x = torch.tensor([[-3.0, 4.0, 0.0]])
    packed3 = pack(quantize(x, FormatSpec("int", 3, False, "channel")))
    assert packed3["codes"].dtype == torch.uint8 and packed3["codes"].shape == (1, 3)
    assert packed3["zero"].dtype == torch.uint8 and packed3["zero"].tolist() == [[3]]
    packed8 = pack(quantize(x, FormatSpec("int", 8, True, "channel")))
    assert packed8["codes"].dtype == torch.int8 and packed8["codes"].tolist() == [[-95, 127, 0]]


def test_pack_refuses_scales_that_would_be_stored_lossily():
    spec = FormatSpec("int", 4, True, "channel")
    qt = QuantizedTensor(torch.zeros(1, 4, dtype=torch.int8), torch.tensor([[1 / 7]]), spec)
    with pytest.raises(ValueError, match="float16-exact"):
        pack(qt)


def test_unpack_reports_missing_keys_and_wrong_shapes():
    spec = FormatSpec(kind="nvfp4")
    packed = pack(quantize(torch.randn(2, 16), spec))
    with pytest.raises(KeyError, match="global_scale"):
        unpack({k: v for k, v in packed.items() if k != "global_scale"}, spec, (2, 16))
    with pytest.raises(ValueError, match="last dim 8"):
        unpack(packed, spec, (2, 17))


@pytest.mark.parametrize(
    "spec, k, expected",
    [
        (FormatSpec(kind="nvfp4"), 4096, 4.5),
        (FormatSpec(kind="mxfp4"), 4096, 4.25),
        (FormatSpec("int", 4, True, "group", 128), 4096, 4.125),
        (FormatSpec("int", 4, False, "group", 128), 4096, 4.1875),
        (FormatSpec("int", 8, True, "channel"), 1024, 8 + 16 / 1024),
        (FormatSpec("int", 4, True, "tensor"), 1024, 4.0),
        (FormatSpec("fp8", granularity="token"), 512, 8 + 32 / 512),
        (FormatSpec(kind="nvfp4"), 20, 4 + 16 / 20),  # ragged: 2 scales for 20 elements
    ],
)
def test_bits_per_element(spec, k, expected):
    assert bits_per_element(spec, k) == expected
