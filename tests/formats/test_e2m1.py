import pytest
import torch

from residq.formats import e2m1_round, e2m1_values

# (input already divided by its scale, expected code): every midpoint, both sides of it, and
# saturation. Ties go to the even magnitude index (values 0, 1, 2, 4).
ROUNDING_CASES = [
    (0.0, 0),
    (0.24, 0),
    (0.25, 0),
    (0.2500001, 1),
    (0.5, 1),
    (0.7499999, 1),
    (0.75, 2),
    (1.0, 2),
    (1.25, 2),
    (1.2500001, 3),
    (1.5, 3),
    (1.7499999, 3),
    (1.75, 4),
    (2.4999998, 4),
    (2.5, 4),
    (2.5000002, 5),
    (3.0, 5),
    (3.4999998, 5),
    (3.5, 6),
    (4.9999995, 6),
    (5.0, 6),
    (5.0001, 7),
    (6.0, 7),
    (7.0, 7),
    (1e30, 7),
    (float("inf"), 7),
    (-0.25, 0),
    (-0.2500001, 9),
    (-0.75, 10),
    (-1.25, 10),
    (-1.75, 12),
    (-2.5, 12),
    (-3.5, 14),
    (-5.0, 14),
    (-5.0001, 15),
    (-7.0, 15),
    (-float("inf"), 15),
]


@pytest.mark.parametrize("value, code", ROUNDING_CASES)
def test_round_boundaries_ties_and_saturation(value, code):
    codes = e2m1_round(torch.tensor([value], dtype=torch.float32))
    assert codes.dtype == torch.uint8
    assert codes.item() == code


def test_zero_and_tiny_negatives_get_the_canonical_zero_code():
    codes = e2m1_round(torch.tensor([0.0, -0.0, -1e-9, -0.1, 1e-9]))
    assert codes.tolist() == [0, 0, 0, 0, 0]


def test_values_of_all_codes():
    values = e2m1_values(torch.arange(16, dtype=torch.uint8))
    expected = [0, 0.5, 1, 1.5, 2, 3, 4, 6, 0, -0.5, -1, -1.5, -2, -3, -4, -6]
    assert values.dtype == torch.float32
    assert values.tolist() == expected
    assert not torch.signbit(values[8])  # -0 decodes to +0.0


def test_round_of_values_gives_back_every_code_but_negative_zero():
    codes = torch.arange(16, dtype=torch.uint8)
    back = e2m1_round(e2m1_values(codes))
    expected = codes.clone()
    expected[8] = 0
    assert torch.equal(back, expected)


def test_low_precision_input_and_shape_are_kept():
    x = torch.tensor([[0.75, -3.5], [5.0, 6.5]], dtype=torch.bfloat16)
    assert e2m1_round(x).tolist() == [[2, 14], [6, 7]]


def test_values_rejects_float_codes():
    with pytest.raises(TypeError, match="integer codes"):
        e2m1_values(torch.tensor([1.0]))
