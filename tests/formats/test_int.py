import pytest
import torch

from residq.formats import FormatSpec, decode, dequantize, encode, fit_scales, quantize


def _int(bits=4, symmetric=True, granularity="group", group_size=128) -> FormatSpec:
    return FormatSpec("int", bits, symmetric, granularity, group_size)


def test_symmetric_per_tensor_rounds_half_to_even():
    x = torch.tensor([[0.5, 1.5, 2.5, -7.0], [3.5, -0.5, 6.9, 0.0]])
    qt = quantize(x, _int(granularity="tensor"))  # amax 7 -> scale 7 / 7 = 1
    assert qt.scale.shape == (1,) and qt.scale.item() == 1.0
    assert qt.zero is None and qt.codes.dtype == torch.int8
    assert qt.codes.tolist() == [[0, 2, 2, -7], [4, 0, 7, 0]]


def test_symmetric_per_channel():
    x = torch.tensor([[14.0, 3.0, -5.0, 1.0], [3.5, -1.25, 0.25, 0.75]])
    qt = quantize(x, _int(granularity="channel"))  # scales 14 / 7 = 2 and 3.5 / 7 = 0.5
    assert qt.scale.tolist() == [[2.0], [0.5]]
    # row 0: 7, 1.5, -2.5, 0.5 ; row 1: 7, -2.5, 0.5, 1.5  (ties to even)
    assert qt.codes.tolist() == [[7, 2, -2, 0], [7, -2, 0, 2]]
    assert dequantize(qt).tolist() == [[14.0, 4.0, -4.0, 0.0], [3.5, -1.0, 0.0, 1.0]]


def test_symmetric_groups_with_ragged_last_group():
    # K = 20, group 8: groups [0, 8), [8, 16), [16, 20)
    x = torch.zeros(1, 20)
    x[0, 0], x[0, 1] = 7.0, -2.6  # scale 1
    x[0, 8], x[0, 9] = -14.0, 5.0  # scale 2
    x[0, 16], x[0, 19] = 3.5, -0.75  # ragged group: scale 0.5
    qt = quantize(x, _int(group_size=8))
    assert qt.scale.tolist() == [[1.0, 2.0, 0.5]]
    expected = torch.zeros(1, 20, dtype=torch.int8)
    expected[0, 0], expected[0, 1] = 7, -3
    expected[0, 8], expected[0, 9] = -7, 2
    expected[0, 16], expected[0, 19] = 7, -2
    assert torch.equal(qt.codes, expected)


def test_scales_are_rounded_to_float16():
    x = torch.tensor([[1.0, 0.5]])
    scale, zero, g = fit_scales(x, _int(granularity="channel"))
    assert zero is None and g is None
    assert scale.item() == 0.142822265625  # float16(1 / 7)
    assert scale.item() != pytest.approx(1 / 7, rel=1e-6)


def test_asymmetric_per_channel_widens_range_to_zero():
    x = torch.tensor(
        [
            [-3.0, 12.0, 0.5, 1.5],  # lo -3, hi 12: scale 1, zero 3
            [-30.0, -10.0, -15.0, 0.0],  # lo -30, hi 0: scale 2, zero 15
            [2.0, 4.0, 7.5, 15.0],  # lo 0, hi 15: scale 1, zero 0
            [0.0, 0.0, 0.0, 0.0],  # zero row: scale 1, zero 0
        ]
    )
    qt = quantize(x, _int(symmetric=False, granularity="channel"))
    assert qt.codes.dtype == torch.uint8
    assert qt.scale.flatten().tolist() == [1.0, 2.0, 1.0, 1.0]
    assert qt.zero.flatten().tolist() == [3.0, 15.0, 0.0, 0.0]
    assert qt.codes.tolist() == [[0, 15, 3, 5], [0, 10, 7, 15], [2, 4, 8, 15], [0, 0, 0, 0]]
    assert dequantize(qt)[1].tolist() == [-30.0, -10.0, -16.0, 0.0]


def test_asymmetric_groups_ragged_and_int8_full_range():
    x = torch.zeros(1, 20)
    x[0, 0], x[0, 7] = -255.0, 255.0  # int8 asym: scale 510 / 255 = 2, zero 128
    x[0, 16], x[0, 19] = 0.0, 255.0  # ragged group: scale 1, zero 0
    qt = quantize(x, _int(bits=8, symmetric=False, group_size=8))
    assert qt.scale.tolist() == [[2.0, 1.0, 1.0]]
    assert qt.zero.tolist() == [[128.0, 0.0, 0.0]]
    assert qt.codes[0, [0, 7, 1, 16, 19]].tolist() == [0, 255, 128, 0, 255]


def test_most_negative_code_reachable_only_beyond_the_fitted_range():
    spec = _int(granularity="channel")
    codes = encode(torch.tensor([[-9.0, 8.0, -7.6]]), torch.tensor([[1.0]]), None, None, spec)
    assert codes.tolist() == [[-8, 7, -8]]
    assert decode(codes, torch.tensor([[1.0]]), None, None, spec).tolist() == [[-8.0, 7.0, -8.0]]
    fitted = quantize(torch.tensor([[-7.0, 7.0, 6.0]]), spec)
    assert fitted.codes.min().item() == -7


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_zero_input_is_nan_free_with_unit_scales(bits):
    for symmetric in (True, False):
        qt = quantize(torch.zeros(3, 20), _int(bits, symmetric, group_size=8))
        assert (qt.scale == 1).all() and not dequantize(qt).isnan().any()
        assert (dequantize(qt) == 0).all()
