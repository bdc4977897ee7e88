"""GPTQ must beat RTN on output error, for every grid, on held-out inputs from the same law."""

import pytest
import torch

from residq.formats import dequantize
from residq.formats.spec import FormatSpec
from residq.methods.gptq import gptq_quantize
from residq.methods.rtn import rtn_quantize

GRIDS = {
    "nvfp4": FormatSpec(kind="nvfp4"),
    "mxfp4": FormatSpec(kind="mxfp4"),
    "int4-g32": FormatSpec(kind="int", bits=4, granularity="group", group_size=32),
    "int4-g48-ragged": FormatSpec(kind="int", bits=4, granularity="group", group_size=48),
    "int3-channel": FormatSpec(kind="int", bits=3, granularity="channel"),
    "int4-asym-g32": FormatSpec(kind="int", bits=4, symmetric=False, group_size=32),
    "fp8-channel": FormatSpec(kind="fp8", granularity="channel"),
    "int4-tensor": FormatSpec(kind="int", bits=4, granularity="tensor"),
}


def correlated_inputs(n: int, k: int, seed: int) -> torch.Tensor:
    law = torch.Generator().manual_seed(1234)  # one fixed distribution; seed picks the samples
    mix = torch.randn(k, k, generator=law) / k**0.5 + torch.eye(k)
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.2, 3.0, k)
    return (torch.randn(n, k, generator=g) @ mix) * scale


def output_error(x, w, q):
    return ((x @ w.T - x @ q.T) ** 2).sum().item()


@pytest.mark.parametrize("grid", GRIDS)
def test_gptq_beats_rtn_on_held_out_data(grid):
    k, m = 128, 48
    torch.manual_seed(0)
    w = torch.randn(m, k)
    x_cal, x_test = correlated_inputs(1024, k, 1), correlated_inputs(512, k, 2)
    spec = GRIDS[grid]
    q_gptq = dequantize(gptq_quantize(w, x_cal.double().T @ x_cal.double(), spec, block_size=32))
    q_rtn = dequantize(rtn_quantize(w, spec))
    assert output_error(x_test, w, q_gptq) < 0.9 * output_error(x_test, w, q_rtn)


def test_gptq_codes_lie_on_the_format_grid_with_consistent_scales():
    k, m = 96, 16
    w = torch.randn(m, k)
    x = correlated_inputs(512, k, 3)
    qt = gptq_quantize(w, x.double().T @ x.double(), FormatSpec(kind="nvfp4"))
    assert qt.codes.shape == (m, k) and qt.scale.shape == (m, k // 16)
    # Every stored value is code x block scale x global scale: requantizing is the identity.
    from residq.formats import decode, encode

    values = dequantize(qt)
    again = encode(values, qt.scale, None, qt.global_scale, qt.spec)
    assert torch.equal(again, qt.codes)
    assert torch.equal(decode(again, qt.scale, None, qt.global_scale, qt.spec), values)


def test_act_order_and_static_groups_stay_in_natural_layout_and_help():
    k, m = 128, 32
    w = torch.randn(m, k)
    x_cal, x_test = correlated_inputs(1024, k, 4), correlated_inputs(512, k, 5)
    h = x_cal.double().T @ x_cal.double()
    spec = FormatSpec(kind="int", bits=4, group_size=32)
    q_ord = dequantize(gptq_quantize(w, h, spec, act_order=True))
    q_static = dequantize(gptq_quantize(w, h, spec, static_groups=True))
    q_rtn = dequantize(rtn_quantize(w, spec))
    assert output_error(x_test, w, q_ord) < output_error(x_test, w, q_rtn)
    assert output_error(x_test, w, q_static) < output_error(x_test, w, q_rtn)


def test_dead_inputs_get_zero_weight_and_no_nan():
    k, m = 64, 8
    x = correlated_inputs(256, k, 6)
    x[:, 5] = 0.0
    qt = gptq_quantize(torch.randn(m, k), x.double().T @ x.double(), FormatSpec(kind="nvfp4"))
    values = dequantize(qt)
    assert torch.isfinite(values).all()
    assert torch.all(values[:, 5] == 0)


# --- The fast sweep must reproduce the textbook loop bit for bit --------------------------------


def _reference_gptq(W, H, spec, damp=0.01, block_size=128, act_order=False, static_groups=False):
    """GPTQ's Algorithm 1 with lazy batches, one column at a time through the generic formats API.

    Slow and plain on purpose: the oracle for ``gptq_quantize``'s codes (int16 (M, K), natural
    column order), scales and zero points (float32 (M, n_groups), ``(1,)`` per tensor).
    """
    from dataclasses import replace

    from residq.formats import decode, encode, fit_scales, nvfp4_global_scale

    M, K = W.shape
    W, H = W.float().clone(), H.double().clone()
    g = nvfp4_global_scale(W) if spec.kind == "nvfp4" else None
    group = spec.block_size(K)
    grouped = group < K and not spec.is_per_tensor
    dead = H.diag() == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    scale, zero, _ = fit_scales(W, spec, g)  # dynamic groups: overwritten as the sweep arrives
    dynamic = grouped and not (static_groups or act_order)
    perm = torch.argsort(H.diag(), descending=True) if act_order else torch.arange(K, device=W.device)
    W, H = W[:, perm], H[perm][:, perm]
    eye = torch.eye(K, dtype=H.dtype, device=H.device)
    L = torch.linalg.cholesky(H + damp * H.diag().mean() * eye)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True).float()
    codes = torch.zeros(M, K, dtype=torch.int16, device=W.device)
    for i1 in range(0, K, block_size):
        i2 = min(i1 + block_size, K)
        W1, Err1, Hinv1 = W[:, i1:i2].clone(), torch.zeros_like(W[:, i1:i2]), Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = int(perm[i1 + i])
            b = col // group if grouped else 0
            if dynamic and col % group == 0:
                width = min(group, K - col)
                one_block = spec if spec.kind in ("nvfp4", "mxfp4") else replace(spec, group_size=width)
                s, z, _ = fit_scales(torch.cat([W1[:, i:], W[:, i2:]], 1)[:, :width], one_block, g)
                scale[:, b] = s[:, 0]
                if z is not None:
                    zero[:, b] = z[:, 0]
            s = scale if spec.is_per_tensor else scale[:, b : b + 1]
            z = zero if zero is None or spec.is_per_tensor else zero[:, b : b + 1]
            c = encode(W1[:, i : i + 1], s, z, g, spec)
            codes[:, col] = c[:, 0].to(torch.int16)
            err = (W1[:, i] - decode(c, s, z, g, spec)[:, 0]) / Hinv1[i, i]
            W1[:, i:] -= err.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return codes, scale, zero


EXACT_GRIDS = {
    **{f"int{b}-{gran}-{'sym' if sym else 'asym'}": FormatSpec(kind="int", bits=b, symmetric=sym,
                                                               granularity=gran, group_size=32)
       for b in (2, 3, 4, 8) for sym in (True, False) for gran in ("channel", "group")},
    "int4-g48-sym": FormatSpec(kind="int", bits=4, group_size=48),
    "int4-tensor-asym": FormatSpec(kind="int", bits=4, symmetric=False, granularity="tensor"),
    "fp8-channel": FormatSpec(kind="fp8", granularity="channel"),
    "fp8-tensor": FormatSpec(kind="fp8", granularity="tensor"),
    "nvfp4": FormatSpec(kind="nvfp4"),
    "mxfp4": FormatSpec(kind="mxfp4"),
    "mxfp4-floor-ocp": FormatSpec(kind="mxfp4", mx_exponent="floor_ocp"),
}
ORDERS = {"natural": {}, "act-order": {"act_order": True}, "static-groups": {"static_groups": True}}


def _exact_problem(k: int, device: str = "cpu"):
    """(24, k) weights with a dead input column and a few outliers, and ``H = XᵀX`` float64."""
    torch.manual_seed(k)
    w = torch.randn(24, k)
    w[3, 7] = 9.0
    x = correlated_inputs(256, k, 7)
    x[:, k // 3] = 0.0
    return w.to(device), (x.double().T @ x.double()).to(device)


def _assert_matches_reference(w, h, spec, **options):
    qt = gptq_quantize(w, h, spec, **options)
    codes, scale, zero = _reference_gptq(w, h, spec, **options)
    assert torch.equal(qt.codes.to(torch.int16), codes)
    assert torch.equal(qt.scale, scale)
    assert (qt.zero is None) == (zero is None)
    if zero is not None:
        assert torch.equal(qt.zero, zero)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("grid", EXACT_GRIDS)
def test_gptq_equals_the_reference_loop_bit_for_bit(grid, order):
    # K = 96 with blocks of 40: groups of 16, 32 and 48 straddle lazy-batch blocks.
    w, h = _exact_problem(96)
    _assert_matches_reference(w, h, EXACT_GRIDS[grid], block_size=40, **ORDERS[order])


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("grid", ["int4-group-sym", "int3-group-asym", "int4-g48-sym", "int8-channel-asym",
                                  "nvfp4", "mxfp4"])
def test_gptq_equals_the_reference_loop_on_a_ragged_width(grid, order):
    # K = 80: ragged last group of 32 (and MXFP4) 16 wide, of 48 32 wide; blocks of 128 and 24.
    w, h = _exact_problem(80)
    _assert_matches_reference(w, h, EXACT_GRIDS[grid], **ORDERS[order])
    _assert_matches_reference(w, h, EXACT_GRIDS[grid], block_size=24, **ORDERS[order])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("grid", ["int4-group-asym", "fp8-channel", "nvfp4", "mxfp4"])
def test_gptq_equals_the_reference_loop_on_cuda(grid, order):
    w, h = _exact_problem(96, "cuda")
    _assert_matches_reference(w, h, EXACT_GRIDS[grid], block_size=40, **ORDERS[order])
