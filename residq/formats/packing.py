"""Compact storage of ``QuantizedTensor``s: the layouts GPU kernels read.

``pack(qt)`` returns a dict of tensors with these keys (``K`` = last dim of the original
tensor, ``...`` = its leading dims, ``n_blocks`` as in ``qt.scale``):

``codes``
    - ``nvfp4`` / ``mxfp4``: uint8 ``(..., ceil(K/2))``, two E2M1 codes per byte, low nibble
      first: ``byte[j] = code[2j] | code[2j+1] << 4`` (odd K: the last high nibble is 0).
    - ``int`` (codes stored unsigned: symmetric codes are offset by ``+2^(b-1)``, asymmetric
      codes are already unsigned):
        - INT4: uint8 ``(..., ceil(K/2))``, two per byte, low nibble first;
        - INT2: uint8 ``(..., ceil(K/4))``, four per byte, lowest bits first:
          ``byte[j] = c[4j] | c[4j+1] << 2 | c[4j+2] << 4 | c[4j+3] << 6``;
        - INT3: uint8 ``(..., K)``, one code per byte (3 of 8 bits used: simple and
          byte-aligned; a dense 3-bit layout is left to a kernel that needs it);
        - INT8: symmetric int8 ``(..., K)`` as is (no offset); asymmetric uint8 ``(..., K)``.
    - ``fp8``: uint8 ``(..., K)`` E4M3 bit patterns.
``scale``
    - ``int``: float16 ``(..., n_blocks)``. Exact: ``fit_int_scales`` already rounds scales to
      float16 before computing codes, so nothing is lost here.
    - ``fp8``: float32 ``(..., n_blocks)``.
    - ``nvfp4``: uint8 ``(..., n_blocks)``, E4M3 bit patterns of the block scales ``s``.
    - ``mxfp4``: uint8 ``(..., n_blocks)``, E8M0 biased exponent ``e + 127`` of ``2^e``.
    Per-tensor formats: shape ``(1,)``.
``zero`` (asymmetric int only)
    uint8 like ``scale``: the integer zero points.
``global_scale`` (nvfp4 only)
    float32 shape ``()``.

``unpack(pack(qt), qt.spec, qt.shape)`` rebuilds ``qt`` exactly (bitwise-equal dequantized
values), for any K including odd K.
"""

from __future__ import annotations

import torch

from residq.formats.blocks import block_count
from residq.formats.fp8 import e4m3_from_bits, e4m3_to_bits
from residq.formats.mxfp4 import E8M0_BIAS, power_of_two, scale_exponent
from residq.formats.spec import FormatSpec, QuantizedTensor

_DENSE_INT_BITS = (2, 4)  # int widths packed several per byte
_SCALE_BITS = {"int": 16, "fp8": 32, "nvfp4": 8, "mxfp4": 8}
_ZERO_POINT_BITS = 8


def bits_per_element(spec: FormatSpec, k: int) -> float:
    """Average bits per element: element bits plus per-block scale (and zero point) bits.

    ``k`` is the length of the quantized (last) dimension; a ragged last block counts as a
    whole block. Element bits are nominal (INT3 counts 3 even though it is stored one code per
    byte). Per-tensor scales and the NVFP4 global scale (one number per tensor) are counted as
    0. Examples: nvfp4 4.5, mxfp4 4.25, int4 g128 symmetric 4.125 (fp16 scale), asymmetric
    4.1875 (plus a uint8 zero point).
    """
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    if spec.is_per_tensor:
        return float(spec.element_bits)
    overhead = _SCALE_BITS[spec.kind]
    if spec.kind == "int" and not spec.symmetric:
        overhead += _ZERO_POINT_BITS
    return spec.element_bits + overhead * block_count(k, spec.block_size(k)) / k


def pack_uint_u8(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack unsigned ``bits``-bit codes (2 or 4) along the last dim, lowest bits first.

    Args:
        codes: uint8 ``(..., K)`` with values below ``2^bits``.

    Returns:
        uint8 ``(..., ceil(K * bits / 8))``; padding codes are 0.
    """
    if bits not in _DENSE_INT_BITS:
        raise ValueError(f"pack_uint_u8 packs 2- or 4-bit codes, got bits={bits}")
    per_byte = 8 // bits
    k = codes.shape[-1]
    padding = -k % per_byte
    wide = codes.to(torch.int32)
    if padding:
        wide = torch.nn.functional.pad(wide, (0, padding))
    groups = wide.reshape(*wide.shape[:-1], -1, per_byte)
    shifts = torch.arange(per_byte, device=codes.device, dtype=torch.int32) * bits
    return (groups << shifts).sum(dim=-1).to(torch.uint8)


def unpack_uint_u8(packed: torch.Tensor, bits: int, k: int) -> torch.Tensor:
    """Inverse of ``pack_uint_u8``: uint8 ``(..., ceil(k * bits / 8))`` -> uint8 ``(..., k)``."""
    if bits not in _DENSE_INT_BITS:
        raise ValueError(f"unpack_uint_u8 unpacks 2- or 4-bit codes, got bits={bits}")
    per_byte = 8 // bits
    expected = -(-k // per_byte)
    if packed.dtype != torch.uint8 or packed.shape[-1] != expected:
        raise ValueError(
            f"expected uint8 packed codes with last dim {expected} for K={k} at {bits} bits, "
            f"got {packed.dtype} with last dim {packed.shape[-1]}"
        )
    shifts = torch.arange(per_byte, device=packed.device, dtype=torch.int32) * bits
    fields = (packed.to(torch.int32).unsqueeze(-1) >> shifts) & (2**bits - 1)
    return fields.reshape(*packed.shape[:-1], -1)[..., :k].to(torch.uint8)


def _int_codes_offset(spec: FormatSpec) -> int:
    """Offset that makes stored int codes unsigned (0 for asymmetric)."""
    return 2 ** (spec.bits - 1) if spec.symmetric else 0


def _pack_int_codes(codes: torch.Tensor, spec: FormatSpec) -> torch.Tensor:
    if spec.bits == 8:
        return codes.clone()
    unsigned = (codes.to(torch.int16) + _int_codes_offset(spec)).to(torch.uint8)
    if spec.bits == 3:
        return unsigned
    return pack_uint_u8(unsigned, spec.bits)


def _unpack_int_codes(stored: torch.Tensor, spec: FormatSpec, k: int) -> torch.Tensor:
    if spec.bits == 8:
        return stored.clone()
    unsigned = stored if spec.bits == 3 else unpack_uint_u8(stored, spec.bits, k)
    if not spec.symmetric:
        return unsigned.clone()
    return (unsigned.to(torch.int16) - _int_codes_offset(spec)).to(torch.int8)


def _require_exact(original: torch.Tensor, rebuilt: torch.Tensor, what: str) -> None:
    if not torch.equal(original, rebuilt):
        raise ValueError(
            f"{what}: packing would change the values (scales not fitted by "
            f"fit_scales?); refusing to store them lossily"
        )


def _pack_scale(scale: torch.Tensor, spec: FormatSpec) -> torch.Tensor:
    if spec.kind == "int":
        packed = scale.to(torch.float16)
        _require_exact(scale, packed.float(), "int scales must be float16-exact")
    elif spec.kind == "fp8":
        packed = scale.float().clone()
    elif spec.kind == "nvfp4":
        packed = e4m3_to_bits(scale)
        _require_exact(scale, e4m3_from_bits(packed), "nvfp4 block scales must be E4M3-exact")
    else:
        packed = (scale_exponent(scale) + E8M0_BIAS).to(torch.uint8)
    return packed


def _unpack_scale(stored: torch.Tensor, spec: FormatSpec) -> torch.Tensor:
    if spec.kind == "nvfp4":
        return e4m3_from_bits(stored)
    if spec.kind == "mxfp4":
        return power_of_two(stored.to(torch.int32) - E8M0_BIAS)
    return stored.float()


def pack(qt: QuantizedTensor) -> dict[str, torch.Tensor]:
    """Compact storage of ``qt``; keys and layouts in this module's docstring."""
    spec = qt.spec
    if spec.kind == "int":
        codes = _pack_int_codes(qt.codes, spec)
    elif spec.kind == "fp8":
        codes = qt.codes.clone()
    else:
        codes = pack_uint_u8(qt.codes, 4)
    packed = {"codes": codes, "scale": _pack_scale(qt.scale, spec)}
    if qt.zero is not None:
        packed["zero"] = qt.zero.to(torch.uint8)
        _require_exact(qt.zero, packed["zero"].float(), "int zero points must be in [0, 255]")
    if qt.global_scale is not None:
        packed["global_scale"] = qt.global_scale.float().reshape(())
    return packed


def _require_key(packed: dict[str, torch.Tensor], key: str, spec: FormatSpec) -> torch.Tensor:
    if key not in packed:
        raise KeyError(f"packed {spec.describe()} tensor needs key {key!r}; got {sorted(packed)}")
    return packed[key]


def unpack(
    packed: dict[str, torch.Tensor], spec: FormatSpec, shape: tuple[int, ...]
) -> QuantizedTensor:
    """Exact inverse of ``pack``; ``shape`` is the original tensor's shape ``(..., K)``."""
    shape = torch.Size(shape)
    k = shape[-1]
    stored = _require_key(packed, "codes", spec)
    if spec.kind == "int":
        codes = _unpack_int_codes(stored, spec, k)
    elif spec.kind == "fp8":
        codes = stored.clone()
    else:
        codes = unpack_uint_u8(stored, 4, k)
    if codes.shape != shape:
        raise ValueError(
            f"packed codes unpack to shape {tuple(codes.shape)}, expected {tuple(shape)}"
        )
    scale = _unpack_scale(_require_key(packed, "scale", spec), spec)
    zero = global_scale = None
    if spec.kind == "int" and not spec.symmetric:
        zero = _require_key(packed, "zero", spec).float()
    if spec.kind == "nvfp4":
        global_scale = _require_key(packed, "global_scale", spec).float().reshape(())
    return QuantizedTensor(
        codes=codes, scale=scale, spec=spec, zero=zero, global_scale=global_scale
    )
