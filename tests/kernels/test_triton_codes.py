"""Triton encoders of ``residq.kernels.triton_codes`` == the torch references of ``fp4_codes``, on
the values where rounding decides: every E2M1 rounding boundary and its float neighbours, both
signs, zeros; every E4M3 rounding midpoint and its neighbours (GPU, or Triton's interpreter)."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

import triton
import triton.language as tl

from residq.kernels import fp4_codes
from residq.kernels.interpreter import kernel_device
from residq.kernels.triton_codes import e2m1_encode, e4m3_round

DEVICE, SKIP = kernel_device()
pytestmark = pytest.mark.skipif(DEVICE is None, reason=str(SKIP))


@triton.jit
def _encode_kernel(v_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    v = tl.load(v_ptr + offs, mask=offs < n, other=0.0)
    tl.store(out_ptr + offs, e2m1_encode(v), mask=offs < n)


@triton.jit
def _e4m3_kernel(v_ptr, bits_ptr, value_ptr, n, BLOCK: tl.constexpr, HARDWARE: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    v = tl.load(v_ptr + offs, mask=offs < n, other=1.0)
    bits, value = e4m3_round(v, HARDWARE)
    tl.store(bits_ptr + offs, bits, mask=offs < n)
    tl.store(value_ptr + offs, value, mask=offs < n)


def _with_neighbours(points: torch.Tensor) -> torch.Tensor:
    """float32 points, their next float up and down."""
    up = torch.nextafter(points, torch.full_like(points, float("inf")))
    down = torch.nextafter(points, torch.full_like(points, -float("inf")))
    return torch.cat([points, up, down])


def test_e2m1_encode_at_every_rounding_boundary():
    boundaries = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0, 0.5, 1.0, 2.0, 4.0, 7.0, 1e-30, 1e30])
    values = _with_neighbours(boundaries)
    values = torch.cat([values, -values, torch.tensor([0.0, -0.0])])
    out = torch.empty(values.numel(), dtype=torch.int32, device=DEVICE)
    _encode_kernel[(triton.cdiv(values.numel(), 128),)](values.to(DEVICE), out, values.numel(), BLOCK=128)
    assert torch.equal(out.cpu(), fp4_codes.e2m1_encode(values).to(torch.int32))


def _e4m3_cases() -> torch.Tensor:
    """Every E4M3 value in [2^-9, 448], the midpoints between neighbours (ties) and the float
    neighbours of both."""
    grid = fp4_codes.e4m3_values(torch.arange(1, 127, dtype=torch.uint8))  # 2^-9 .. 448
    midpoints = (grid[1:] + grid[:-1]) / 2  # exact in float32
    values = _with_neighbours(torch.cat([grid, midpoints]))
    return values[(values >= 2.0**-9) & (values <= 448.0)]


@pytest.mark.parametrize("hardware", [False, True])
def test_e4m3_round_matches_torch(hardware):
    if hardware and (DEVICE.type != "cuda" or torch.cuda.get_device_capability(DEVICE) < (8, 9)):
        pytest.skip("the hardware E4M3 conversion needs a GPU with FP8 (sm_89+)")
    values = _e4m3_cases()
    n = values.numel()
    bits = torch.empty(n, dtype=torch.int32, device=DEVICE)
    rounded = torch.empty(n, dtype=torch.float32, device=DEVICE)
    _e4m3_kernel[(triton.cdiv(n, 256),)](values.to(DEVICE), bits, rounded, n, BLOCK=256, HARDWARE=hardware)
    expected_bits = fp4_codes.e4m3_bits(values)
    assert torch.equal(bits.cpu(), expected_bits.to(torch.int32))
    assert torch.equal(rounded.cpu(), fp4_codes.e4m3_values(expected_bits))
