"""Number formats: pure tensor maths for INT-b, FP8 E4M3, NVFP4 and MXFP4 (no nn.Module).

Everything quantizes along the last dimension; see ``spec.py`` for the block structure,
``dispatch.py`` for the format-generic entry points and ``packing.py`` for storage layouts.
"""

from residq.formats.dispatch import (
    decode,
    dequantize,
    encode,
    fake_quantize,
    fit_scales,
    quantize,
)
from residq.formats.e2m1 import e2m1_round, e2m1_values
from residq.formats.nvfp4 import nvfp4_global_scale
from residq.formats.packing import bits_per_element, pack, unpack
from residq.formats.spec import FormatSpec, QuantizedTensor

__all__ = [
    "FormatSpec",
    "QuantizedTensor",
    "bits_per_element",
    "decode",
    "dequantize",
    "e2m1_round",
    "e2m1_values",
    "encode",
    "fake_quantize",
    "fit_scales",
    "nvfp4_global_scale",
    "pack",
    "quantize",
    "unpack",
]
