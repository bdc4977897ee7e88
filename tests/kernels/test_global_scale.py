"""NVFP4's dynamic global-scale pass (``residq/kernels/global_scale.py``) against torch (GPU, or
Triton's interpreter)."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # CPU: run the kernels in Triton's interpreter
pytest.importorskip("triton")

from residq.kernels import global_scale
from residq.kernels.interpreter import kernel_device

DEVICE, SKIP = kernel_device()
pytestmark = pytest.mark.skipif(DEVICE is None, reason=str(SKIP))


def _activations(m, k):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(m, k, generator=gen) * torch.rand(m, 1, generator=gen) * 4
    x[:, -16:] *= 30.0  # outlier channels
    return x.to(torch.bfloat16).to(DEVICE)


@pytest.mark.parametrize("rows, cols, programs", [(8, 1024, 1024), (4, 256, 3), (16, 512, 1)])
def test_amax_pass_writes_the_global_scale(rows, cols, programs):
    """The dynamic-scale pass alone, over tilings that leave programs with several tiles, ragged
    tiles, and all-zero input (scale 1.0); its ticket counter resets itself between calls."""
    x = _activations(40, 768)
    g = torch.empty((), dtype=torch.float32, device=DEVICE)
    for _ in range(2):
        global_scale.amax_pass(x, g, rows=rows, cols=cols, programs=programs)
        expected = x.float().abs().max().cpu() / 2688.0  # float32, as the reference divides
        assert torch.equal(g.cpu(), expected)
    global_scale.amax_pass(torch.zeros_like(x), g, rows=rows, cols=cols, programs=programs)
    assert float(g) == 1.0


def test_amax_pass_rejects_too_many_programs():
    x = _activations(8, 256)
    with pytest.raises(ValueError, match="programs must be in"):
        global_scale.amax_pass(x, torch.empty((), device=DEVICE), programs=global_scale.AMAX_PROGRAMS + 1)
