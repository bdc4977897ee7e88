import torch

from residq.formats import (
    FormatSpec,
    dequantize,
    e2m1_values,
    fake_quantize,
    fit_scales,
    nvfp4_global_scale,
    quantize,
)

NVFP4 = FormatSpec(kind="nvfp4")
ONE = torch.tensor(1.0)


def _hand_block() -> torch.Tensor:
    """16 values whose block amax 6.6 gives s = e4m3(6.6 / 6 = 1.1) = 1.125 with g = 1.

    Divided by 1.125 they become 5.87 (saturates to 6), and the exact E2M1 ties 0.25, -0.75,
    2.5, 1.5 (not a tie), -3.5 and 5.
    """
    block = torch.zeros(16)
    block[:7] = torch.tensor([6.6, 0.28125, -0.84375, 2.8125, 1.6875, -3.9375, 5.625])
    return block


def test_hand_built_block_scales_codes_and_values():
    x = _hand_block().reshape(1, 16)
    qt = quantize(x, NVFP4, global_scale=ONE)
    assert qt.scale.tolist() == [[1.125]]
    assert qt.global_scale.item() == 1.0
    assert qt.codes[0, :7].tolist() == [7, 0, 10, 4, 3, 14, 6]
    assert qt.codes[0, 7:].tolist() == [0] * 9
    values = dequantize(qt)[0, :7]
    assert values.tolist() == [6.75, 0.0, -1.125, 2.25, 1.6875, -4.5, 4.5]


def test_zero_block_small_block_and_large_block_with_ragged_k():
    # K = 40: blocks [0, 16), [16, 32), [32, 40) (ragged). g = 1 (static).
    x = torch.zeros(2, 40)
    x[0, 16] = 6 * 2.0**-11  # amax / 6 = 2^-11, below 2^-9: s clamps to 2^-9, q = 1.5
    x[0, 33] = -6 * 2.0**-11
    x[1, 0], x[1, 1] = 6000.0, 300.0  # amax / 6 = 1000, above 448: s clamps to 448
    qt = quantize(x, NVFP4, global_scale=ONE)
    assert qt.scale.shape == (2, 3)
    assert qt.scale.tolist() == [[1.0, 2.0**-9, 2.0**-9], [448.0, 1.0, 1.0]]
    assert qt.codes[0, 16].item() == 3 and qt.codes[0, 33].item() == 11
    assert qt.codes[1, 0].item() == 7  # 6000 / 448 = 13.4 saturates to 6
    assert qt.codes[1, 1].item() == 1  # 300 / 448 = 0.67 rounds to 0.5
    zero_positions = torch.ones(2, 40, dtype=torch.bool)
    zero_positions[0, 16] = zero_positions[0, 33] = False
    zero_positions[1, :2] = False
    assert (qt.codes[zero_positions] == 0).all()
    assert dequantize(qt)[1, :2].tolist() == [2688.0, 224.0]


def test_dynamic_global_scale_is_amax_over_6_times_448():
    x = torch.zeros(2, 32)
    x[1, 20] = -2 * 2688.0
    x[0, 3] = 1.0
    assert nvfp4_global_scale(x).item() == 2.0
    assert nvfp4_global_scale(x).shape == ()
    scale, zero, g = fit_scales(x, NVFP4)
    assert zero is None and g.item() == 2.0
    # block with amax 5376: 5376 / (6 * 2) = 448; block with amax 1: e4m3(1 / 12) = 0.0859375
    assert scale.tolist() == [[0.0859375, 1.0], [1.0, 448.0]]


def test_static_global_scale_is_used_instead_of_the_tensor_amax():
    x = torch.zeros(1, 16)
    x[0, 0] = 2688.0  # dynamic g would be 1
    qt = quantize(x, NVFP4, global_scale=torch.tensor(4.0))
    assert qt.global_scale.item() == 4.0
    assert qt.scale.tolist() == [[112.0]]  # 2688 / (6 * 4)
    dynamic = quantize(x, NVFP4)
    assert dynamic.global_scale.item() == 1.0
    assert dynamic.scale.tolist() == [[448.0]]


def test_all_zero_tensor_has_unit_scales_and_zero_codes():
    x = torch.zeros(3, 20, dtype=torch.bfloat16)
    qt = quantize(x, NVFP4)
    assert qt.global_scale.item() == 1.0
    assert (qt.scale == 1.0).all() and (qt.codes == 0).all()
    assert nvfp4_global_scale(torch.zeros(5)).item() == 1.0
    out = fake_quantize(x, NVFP4)
    assert out.dtype == torch.bfloat16 and not out.isnan().any() and (out == 0).all()


def test_block_scales_are_e4m3_values_on_random_data():
    torch.manual_seed(0)
    x = torch.randn(8, 64) * torch.logspace(-3, 3, 64)
    scale, _, _ = fit_scales(x, NVFP4)
    assert torch.equal(scale, scale.to(torch.float8_e4m3fn).float())
    assert scale.min() >= 2.0**-9 and scale.max() <= 448.0


def test_dequantized_value_applies_global_scale_last():
    """value = (q * s) * g: q * s is exact, g rounds once (what an NVFP4 GEMM does)."""
    torch.manual_seed(3)
    x = torch.randn(4, 32) * 7.3
    qt = quantize(x, NVFP4)
    s = qt.scale.repeat_interleave(16, dim=1)
    expected = (e2m1_values(qt.codes) * s) * qt.global_scale
    assert torch.equal(dequantize(qt), expected)
    assert not torch.equal(expected, e2m1_values(qt.codes) * (s * qt.global_scale))
