"""Format-generic quantize / dequantize, routed by ``FormatSpec.kind``.

Everything quantizes along the last dimension ``K`` and computes in float32. Scale tensors are
``(..., n_blocks)`` with ``n_blocks = ceil(K / spec.block_size(K))``; per-tensor formats use a
single scale of shape ``(1,)``. The split into ``fit_scales`` + ``encode`` lets methods such as
GPTQ fix the scales first and then encode columns one at a time::

    scale, zero, g = fit_scales(W, spec)
    zero_b = zero[:, b:b+1] if zero is not None else None
    q_i = encode(W[:, i:i+1], scale[:, b:b+1], zero_b, g, spec)

where ``b`` is column ``i``'s block; the result equals column ``i`` of ``quantize(W, spec).codes``.
Per-tensor formats (scale shape ``(1,)``) pass ``scale`` and ``zero`` unsliced.
"""

from __future__ import annotations

import torch

from residq.formats.blocks import block_count, merge_blocks, split_blocks
from residq.formats.fp8 import decode_e4m3, encode_e4m3, fit_fp8_scales
from residq.formats.int import decode_int, encode_int, fit_int_scales
from residq.formats.mxfp4 import decode_mxfp4, encode_mxfp4, fit_mxfp4_scales
from residq.formats.nvfp4 import (
    check_global_scale,
    decode_nvfp4,
    encode_nvfp4,
    fit_nvfp4_scales,
    nvfp4_global_scale,
)
from residq.formats.spec import FormatSpec, QuantizedTensor


def _as_float32(x: torch.Tensor) -> torch.Tensor:
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor to quantize, got dtype {x.dtype}")
    if x.dim() == 0:
        raise ValueError("expected a tensor with at least one dimension (..., K), got a scalar")
    return x.detach().float()


def _blocks_for_fitting(x32: torch.Tensor, spec: FormatSpec) -> torch.Tensor:
    """``(..., n_blocks, block)`` view of ``x32``; per-tensor formats: ``(1, 1, numel)``."""
    if spec.is_per_tensor:
        return x32.reshape(1, 1, -1)
    return split_blocks(x32, spec.block_size(x32.shape[-1]))


def fit_scales(
    x: torch.Tensor, spec: FormatSpec, global_scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Scales exactly as ``quantize`` computes them.

    Args:
        x: ``(..., K)``, any float dtype (computed in float32).
        spec: the format.
        global_scale: NVFP4 only: a scalar ``g`` to use (static / weight-wide); None computes
            ``amax(|x|) / (6 * 448)`` from ``x`` (dynamic). Ignored by other kinds. These
            functions are stateless: ``spec.global_scale == "static"`` tells the caller to
            calibrate ``g`` (e.g. with ``nvfp4_global_scale``) and pass it here.

    Returns:
        ``(scale, zero, global_scale)``: ``scale`` float32 ``(..., n_blocks)`` (``(1,)`` per
        tensor); ``zero`` float32 like ``scale`` for asymmetric int, else None;
        ``global_scale`` float32 shape ``()`` for nvfp4, else None.
    """
    x32 = _as_float32(x)
    blocks = _blocks_for_fitting(x32, spec)
    zero = g = None
    if spec.kind == "int":
        scale, zero = fit_int_scales(blocks, spec.bits, spec.symmetric)
    elif spec.kind == "fp8":
        scale = fit_fp8_scales(blocks)
    elif spec.kind == "nvfp4":
        if global_scale is None:
            g = nvfp4_global_scale(x32)
        else:
            g = check_global_scale(global_scale).to(x32.device)
        scale = fit_nvfp4_scales(blocks, g)
    else:
        scale = fit_mxfp4_scales(blocks, spec.mx_exponent)
    if spec.is_per_tensor:
        scale = scale.reshape(1)
        zero = zero.reshape(1) if zero is not None else None
    return scale, zero, g


def _block_width(k: int, scale: torch.Tensor, spec: FormatSpec) -> int:
    """Width of the slice of ``x``'s last dim that each scale covers (see ``encode``)."""
    if scale.dim() == 0:
        raise ValueError("scale must have at least one dimension (..., n_blocks), got a scalar")
    n_blocks = scale.shape[-1]
    if n_blocks == 1:
        return max(k, 1)
    block = spec.block_size(k)
    if block_count(k, block) != n_blocks:
        raise ValueError(
            f"scale has {n_blocks} blocks along its last dim, but x has K={k}, which "
            f"{spec.describe()} splits into {block_count(k, block)} blocks of {block}"
        )
    return block


def _check_zero(zero: torch.Tensor | None, spec: FormatSpec) -> None:
    needs_zero = spec.kind == "int" and not spec.symmetric
    if needs_zero and zero is None:
        raise ValueError(f"{spec.describe()} is asymmetric: a zero point tensor is required")
    if not needs_zero and zero is not None:
        raise ValueError(f"{spec.describe()} has no zero point, but zero was given")


def _unsqueeze(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.float().unsqueeze(-1)


def encode(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor | None,
    global_scale: torch.Tensor | None,
    spec: FormatSpec,
) -> torch.Tensor:
    """Codes of ``x`` under given scales.

    Args:
        x: ``(..., K)`` float (computed in float32).
        scale: float32 ``(..., n_blocks)``. With ``n_blocks == 1`` the one scale covers all of
            ``x``'s columns (a single GPTQ column with its block's scale, per-row or per-tensor
            scales); otherwise scale ``j`` covers columns ``[j*B, (j+1)*B)`` with
            ``B = spec.block_size(K)`` and ``n_blocks`` must equal ``ceil(K / B)``.
        zero: like ``scale`` for asymmetric int, else None.
        global_scale: float32 scalar for nvfp4 (required), else ignored.

    Returns:
        codes ``(..., K)`` with the dtype of ``QuantizedTensor.codes`` for ``spec``.
    """
    _check_zero(zero, spec)
    x32 = _as_float32(x)
    k = x32.shape[-1]
    blocks = split_blocks(x32, _block_width(k, scale, spec))
    s, z = _unsqueeze(scale), _unsqueeze(zero)
    if spec.kind == "int":
        codes = encode_int(blocks, s, z, spec.bits)
    elif spec.kind == "fp8":
        codes = encode_e4m3(blocks, s)
    elif spec.kind == "nvfp4":
        codes = encode_nvfp4(blocks, s, _require_global_scale(global_scale, x32.device))
    else:
        codes = encode_mxfp4(blocks, s)
    return merge_blocks(codes, k)


def decode(
    codes: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor | None,
    global_scale: torch.Tensor | None,
    spec: FormatSpec,
) -> torch.Tensor:
    """float32 values ``(..., K)`` of ``codes`` ``(..., K)``; arguments as in ``encode``."""
    _check_zero(zero, spec)
    k = codes.shape[-1]
    blocks = split_blocks(codes, _block_width(k, scale, spec))
    s, z = _unsqueeze(scale), _unsqueeze(zero)
    if spec.kind == "int":
        values = decode_int(blocks, s, z)
    elif spec.kind == "fp8":
        values = decode_e4m3(blocks, s)
    elif spec.kind == "nvfp4":
        values = decode_nvfp4(blocks, s, _require_global_scale(global_scale, codes.device))
    else:
        values = decode_mxfp4(blocks, s)
    return merge_blocks(values, k)


def _require_global_scale(global_scale: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    if global_scale is None:
        raise ValueError("nvfp4 encode/decode needs the global scale g; got None")
    return torch.as_tensor(global_scale, dtype=torch.float32, device=device)


def quantize(
    x: torch.Tensor, spec: FormatSpec, global_scale: torch.Tensor | None = None
) -> QuantizedTensor:
    """Quantize ``x`` ``(..., K)`` (any float dtype, computed in float32) along its last dim.

    NVFP4: ``global_scale`` None computes ``g = amax(|x|) / (6 * 448)`` from ``x`` (dynamic);
    a given scalar is used as is (static activations, or a weight-wide ``g``). A ragged last
    block is used when ``K`` is not a multiple of the block size.
    """
    with torch.no_grad():
        scale, zero, g = fit_scales(x, spec, global_scale)
        codes = encode(x, scale, zero, g, spec)
    return QuantizedTensor(codes=codes, scale=scale, spec=spec, zero=zero, global_scale=g)


def dequantize(qt: QuantizedTensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Values ``(..., K)`` of a ``QuantizedTensor`` in ``dtype`` (decoded in float32)."""
    values = decode(qt.codes, qt.scale, qt.zero, qt.global_scale, qt.spec)
    return values.to(dtype)


def fake_quantize(
    x: torch.Tensor, spec: FormatSpec, global_scale: torch.Tensor | None = None
) -> torch.Tensor:
    """``dequantize(quantize(x))`` in ``x``'s dtype, without autograd tracking.

    NaN-free for all-zero input (zero blocks get unit scales).
    """
    with torch.no_grad():
        return dequantize(quantize(x, spec, global_scale), dtype=x.dtype)
