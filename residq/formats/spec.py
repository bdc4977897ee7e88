"""Declarative description of a number format, and the container for quantized tensors.

Every format quantizes along the LAST dimension of a tensor (``K``, the reduction dimension of
a linear layer). A weight ``W`` is ``(M, K)``; an activation ``X`` is ``(..., K)``. Leading
dimensions are "rows": for a weight a row is an output channel, for an activation a token.

Block structure along K (ALGORITHMS.md section 1):

=========  ============================  =====================================================
kind       granularity                   scales
=========  ============================  =====================================================
``int``    tensor / channel / token /    one fp32 scale (and a zero point if asymmetric) per
           group(g)                      block; ``channel`` and ``token`` both mean "per row"
``fp8``    tensor / channel / token      one fp32 scale per block, E4M3 elements (max 448)
``nvfp4``  always blocks of 16           E4M3 block scale x FP32 global scale, E2M1 elements
``mxfp4``  always blocks of 32           E8M0 (power of two) block scale, E2M1 elements
=========  ============================  =====================================================

A K that is not a multiple of the block size is handled by a ragged last block (documented
padding: the block's amax is taken over the real elements only, and packing pads codes with
zeros that unpacking drops).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

FORMAT_KINDS = ("int", "fp8", "nvfp4", "mxfp4")
GRANULARITIES = ("tensor", "channel", "token", "group")
MX_EXPONENT_RULES = ("ceil", "floor_ocp")
GLOBAL_SCALE_MODES = ("dynamic", "static")


@dataclass(frozen=True)
class FormatSpec:
    """A number format and its scaling granularity.

    Attributes:
        kind: ``"int"``, ``"fp8"``, ``"nvfp4"`` or ``"mxfp4"``.
        bits: element bits for ``int`` (2, 3, 4 or 8); ignored by the others.
        symmetric: ``int`` only: signed codes in ``[-2^(b-1), 2^(b-1)-1]`` (scale = amax /
            (2^(b-1)-1)) when True, unsigned codes ``[0, 2^b-1]`` with a zero point when False.
        granularity: ``int`` and ``fp8``: ``tensor``, ``channel``/``token`` (per row) or
            ``group`` (``group_size`` elements of a row). ``nvfp4``/``mxfp4`` ignore it.
        group_size: group length for ``granularity="group"``.
        mx_exponent: MXFP4 shared exponent rule, ``"ceil"`` = ceil(log2(amax/6)) (default) or
            ``"floor_ocp"`` = floor(log2(amax)) - 2 (the OCP spec's rule).
        global_scale: NVFP4 activations: ``"dynamic"`` (amax of each call) or ``"static"``
            (a calibrated value supplied by the caller).
    """

    kind: str = "int"
    bits: int = 4
    symmetric: bool = True
    granularity: str = "group"
    group_size: int = 128
    mx_exponent: str = "ceil"
    global_scale: str = "dynamic"

    def __post_init__(self) -> None:
        if self.kind not in FORMAT_KINDS:
            raise ValueError(f"unknown format kind {self.kind!r}; expected one of {FORMAT_KINDS}")
        if self.kind == "int" and self.bits not in (2, 3, 4, 8):
            raise ValueError(f"int formats support bits in (2, 3, 4, 8), got {self.bits}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"unknown granularity {self.granularity!r}; expected one of {GRANULARITIES}"
            )
        if self.kind == "fp8" and self.granularity == "group":
            raise ValueError("fp8 supports tensor, channel or token granularity, not group")
        if self.group_size < 1:
            raise ValueError(f"group_size must be positive, got {self.group_size}")
        if self.mx_exponent not in MX_EXPONENT_RULES:
            raise ValueError(f"mx_exponent must be one of {MX_EXPONENT_RULES}")
        if self.global_scale not in GLOBAL_SCALE_MODES:
            raise ValueError(f"global_scale must be one of {GLOBAL_SCALE_MODES}")

    def block_size(self, k: int) -> int:
        """Elements per scale block along a last dimension of length ``k``."""
        if self.kind == "nvfp4":
            return 16
        if self.kind == "mxfp4":
            return 32
        if self.granularity == "group":
            return self.group_size
        return k

    @property
    def is_per_tensor(self) -> bool:
        return self.kind in ("int", "fp8") and self.granularity == "tensor"

    @property
    def element_bits(self) -> int:
        """Bits of one stored element code."""
        if self.kind == "int":
            return self.bits
        if self.kind == "fp8":
            return 8
        return 4

    def describe(self) -> str:
        """Short human name, e.g. ``nvfp4``, ``int4-g128-sym``, ``fp8-token``."""
        if self.kind in ("nvfp4", "mxfp4"):
            return self.kind
        gran = f"g{self.group_size}" if self.granularity == "group" else self.granularity
        if self.kind == "fp8":
            return f"fp8-{gran}"
        return f"int{self.bits}-{gran}-{'sym' if self.symmetric else 'asym'}"


@dataclass
class QuantizedTensor:
    """Codes plus scales of a tensor quantized along its last dimension.

    Attributes:
        codes: same shape as the original tensor ``(..., K)``. ``int``: int8 holding signed
            codes (symmetric) or uint8 holding unsigned codes ``[0, 2^b-1]`` (asymmetric;
            uint8 so that INT8's ``[0, 255]`` fits); ``fp8``: uint8
            holding the E4M3 bit pattern; ``nvfp4``/``mxfp4``: uint8 E2M1 codes in ``[0, 15]``
            (bit 3 = sign, code 8 is -0).
        scale: float32 ``(..., n_blocks)`` per-block scale. ``nvfp4``: the E4M3 block scale's
            value (exactly representable in E4M3); ``mxfp4``: ``2**e``; ``int``/``fp8``: the
            step size. ``n_blocks = ceil(K / block)``; per-tensor formats use shape ``(1,)``.
        zero: float32 like ``scale`` for asymmetric int, else None.
        global_scale: float32 scalar tensor for nvfp4, else None.
        spec: the format.
    """

    codes: torch.Tensor
    scale: torch.Tensor
    spec: FormatSpec
    zero: torch.Tensor | None = None
    global_scale: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    @property
    def shape(self) -> torch.Size:
        return self.codes.shape
