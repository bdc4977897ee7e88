"""GPU kernels (Triton) for quantized linear layers, each beside its torch reference.

``import residq.kernels`` never imports Triton; the kernel modules (``act_quant``, ``w4a16``,
``w4a4``, ``w8a8``) do, and ``dispatch`` imports them on first use. Check ``available()``.

Files: ``fp4_codes`` / ``block_formats`` (torch reference arithmetic and packing),
``triton_codes`` / ``triton_tiles`` / ``triton_mma`` (device helpers), ``act_quant``,
``w4a16``, ``w4a4``, ``w8a8`` (kernels), ``dispatch`` (the API below), ``interpreter`` (running
them on CPU through Triton's interpreter, for tests).
"""

from residq.kernels.dispatch import (
    available,
    quantize_activation,
    w4a4_linear,
    w4a16_linear,
    w8a8_linear,
)

__all__ = ["available", "quantize_activation", "w4a4_linear", "w4a16_linear", "w8a8_linear"]
