import pytest
import torch

from residq.formats import FormatSpec, dequantize, quantize

MX_CEIL = FormatSpec(kind="mxfp4")
MX_FLOOR = FormatSpec(kind="mxfp4", mx_exponent="floor_ocp")


def _hand_tensor() -> torch.Tensor:
    """(2, 96): three 32-blocks per row with amaxes [[7, 0.1, 0], [12, 6, 4.5]]."""
    x = torch.zeros(2, 96)
    x[0, 0], x[0, 1] = 7.0, 1.0
    x[0, 32], x[0, 33] = 0.1, -0.05
    x[1, 0] = 12.0
    x[1, 32] = -6.0
    x[1, 95] = 4.5
    return x


def test_ceil_rule_exponents_and_codes():
    # ceil(log2(amax / 6)): 7 -> 1, 0.1 -> -5, 0 -> 0 | 12 -> 1, 6 -> 0, 4.5 -> 0
    qt = quantize(_hand_tensor(), MX_CEIL)
    assert qt.scale.tolist() == [[2.0, 2.0**-5, 1.0], [2.0, 1.0, 1.0]]
    assert qt.codes[0, :2].tolist() == [6, 1]  # 7 / 2 = 3.5 ties to 4; 1 / 2 = 0.5
    assert qt.codes[0, 32:34].tolist() == [5, 11]  # 3.2 -> 3; -1.6 -> -1.5
    assert qt.codes[1, 0].item() == 7  # 12 / 2 = 6
    assert qt.codes[1, 32].item() == 15  # -6
    assert qt.codes[1, 95].item() == 6  # 4.5 -> 4 (nearest)
    assert dequantize(qt)[0, :2].tolist() == [8.0, 1.0]


def test_floor_ocp_rule_exponents_and_saturation():
    # floor(log2(amax)) - 2: 7 -> 0, 0.1 -> -6, 0 -> 0 | 12 -> 1, 6 -> 0, 4.5 -> 0
    qt = quantize(_hand_tensor(), MX_FLOOR)
    assert qt.scale.tolist() == [[1.0, 2.0**-6, 1.0], [2.0, 1.0, 1.0]]
    assert qt.codes[0, :2].tolist() == [7, 2]  # 7 saturates to 6; 1 -> 1
    assert qt.codes[0, 32:34].tolist() == [7, 13]  # 6.4 -> 6; -3.2 -> -3
    assert dequantize(qt)[0, 0].item() == 6.0


@pytest.mark.parametrize("spec", [MX_CEIL, MX_FLOOR], ids=["ceil", "floor_ocp"])
def test_exponent_clamps_to_e8m0_range(spec):
    x = torch.zeros(1, 64)
    x[0, 0] = 1e-40  # log2 about -135 (subnormal float32): clamps to -127
    x[0, 32] = 3e38  # ceil rule 126, floor rule 125: inside the range
    qt = quantize(x, spec)
    assert qt.scale[0, 0].item() == 2.0**-127
    assert qt.scale[0, 1].item() == (2.0**126 if spec is MX_CEIL else 2.0**125)
    assert qt.codes[0, 0].item() == 0  # 1e-40 / 2^-127 = 0.017 rounds to 0


def test_ragged_block_and_power_of_two_scales_on_random_data():
    torch.manual_seed(1)
    x = torch.randn(4, 45) * 3
    qt = quantize(x, MX_CEIL)
    assert qt.scale.shape == (4, 2)
    mantissa, _ = torch.frexp(qt.scale)
    assert (mantissa == 0.5).all()
    # ceil rule never saturates: every block's amax is within 6 * scale
    blocks_amax = torch.stack([x[:, :32].abs().amax(1), x[:, 32:].abs().amax(1)], dim=1)
    assert (blocks_amax <= 6 * qt.scale).all() and (blocks_amax > 3 * qt.scale).all()
