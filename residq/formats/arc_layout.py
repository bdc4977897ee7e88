"""ARCQuant's packed interleaved operand layout (arXiv 2601.07475; ALGORITHMS.md section 3.6).

An ARCQuant GEMM operand has ``K + s`` columns: the ``K`` main columns (channels reordered so
the ``s`` outlier channels are last) and ``s`` augmented columns (activations: the quantized
residual ``Q2(R)`` of the outlier channels; weights: a copy of the outlier columns' codes).
With ``B`` the format's block (NVFP4 16, MXFP4 32, INT group g), ``n = K / B`` main blocks and
``t = s / B`` augmented blocks, the stored *block* order is

    main_0, ..., main_{n-t-1},  main_{n-t}, aug_0,  main_{n-t+1}, aug_1, ...,  main_{n-1}, aug_{t-1}

i.e. the normal blocks first, then each outlier block followed by its residual block. Codes
and block scales both follow this order, so a block's scale sits next to its partner's:

``codes``  uint8 ``(..., (K + s) / 2)`` for 4-bit formats: two codes per byte, low nibble
           first (``residq.formats.packing``'s code layout, applied to the interleaved columns).
``scale``  per-block scales ``(..., (K + s) / B)`` in the interleaved block order, stored as
           ``residq.formats.packing`` stores that format's scales (NVFP4: E4M3 bytes).
``global_scale``           NVFP4: float32 ``()`` of the main part.
``residual_global_scale``  NVFP4: float32 ``()`` of the augmented part (activations have their
                           own dynamic scale for ``Q2``; for weights it equals the main one).

``unpack_arc(pack_arc(main, aug), ...)`` returns both parts exactly (codes and scales equal).
"""

from __future__ import annotations

import torch

from residq.formats.packing import pack, unpack
from residq.formats.spec import FormatSpec, QuantizedTensor


def interleaved_block_order(n_main: int, n_aug: int) -> torch.Tensor:
    """Stored position -> block index into ``[main blocks ‖ augmented blocks]`` (int64).

    Args:
        n_main: ``n = K / B`` main blocks; n_aug: ``t = s / B`` augmented blocks (``t <= n``).
    """
    if not 0 <= n_aug <= n_main:
        raise ValueError(f"ARC layout needs 0 <= augmented blocks <= main blocks, got {n_aug} and {n_main}")
    order = list(range(n_main - n_aug))
    for j in range(n_aug):
        order += [n_main - n_aug + j, n_main + j]
    return torch.tensor(order, dtype=torch.int64)


def _column_order(block_order: torch.Tensor, block: int) -> torch.Tensor:
    return (block_order.unsqueeze(1) * block + torch.arange(block)).reshape(-1)


def _block_of(spec: FormatSpec, k: int, s: int) -> int:
    block = spec.block_size(k)
    if spec.is_per_tensor or block >= k:
        raise ValueError(f"ARC layout needs a block-scaled format, got {spec.describe()}")
    if k % block or s % block:
        raise ValueError(f"ARC layout: K={k} and s={s} must be multiples of the block {block}")
    return block


def pack_arc(main: QuantizedTensor, augmented: QuantizedTensor) -> dict[str, torch.Tensor]:
    """Pack the main part ``(..., K)`` and the augmented part ``(..., s)`` interleaved.

    Both must share the format; scales ``(..., K / B)`` and ``(..., s / B)``.
    """
    spec = main.spec
    if augmented.spec != spec:
        raise ValueError(f"ARC layout: both parts need one format, got {spec.describe()} and {augmented.spec.describe()}")
    k, s = main.codes.shape[-1], augmented.codes.shape[-1]
    block = _block_of(spec, k, s)
    blocks = interleaved_block_order(k // block, s // block)
    cols = _column_order(blocks, block)
    zero = None if main.zero is None else torch.cat([main.zero, augmented.zero], -1)[..., blocks]
    joined = QuantizedTensor(
        codes=torch.cat([main.codes, augmented.codes], -1)[..., cols],
        scale=torch.cat([main.scale, augmented.scale], -1)[..., blocks],
        spec=spec, zero=zero, global_scale=main.global_scale,
    )
    packed = pack(joined)
    if augmented.global_scale is not None:
        packed["residual_global_scale"] = augmented.global_scale.reshape(()).float()
    return packed


def unpack_arc(packed: dict[str, torch.Tensor], spec: FormatSpec, lead_shape: tuple[int, ...],
               k: int, s: int) -> tuple[QuantizedTensor, QuantizedTensor]:
    """Inverse of ``pack_arc``: ``(main (..., K), augmented (..., s))``."""
    block = _block_of(spec, k, s)
    blocks = interleaved_block_order(k // block, s // block)
    cols = _column_order(blocks, block)
    joined_packed = {key: value for key, value in packed.items() if key != "residual_global_scale"}
    joined = unpack(joined_packed, spec, (*lead_shape, k + s))
    codes = torch.empty_like(joined.codes)
    codes[..., cols] = joined.codes
    scale = torch.empty_like(joined.scale)
    scale[..., blocks] = joined.scale
    zero = None
    if joined.zero is not None:
        zero = torch.empty_like(joined.zero)
        zero[..., blocks] = joined.zero
    nb = k // block

    def part(sl_cols: slice, sl_blocks: slice, g) -> QuantizedTensor:
        return QuantizedTensor(codes=codes[..., sl_cols], scale=scale[..., sl_blocks], spec=spec,
                               zero=None if zero is None else zero[..., sl_blocks], global_scale=g)

    main = part(slice(0, k), slice(0, nb), joined.global_scale)
    aug = part(slice(k, k + s), slice(nb, None), packed.get("residual_global_scale"))
    return main, aug
