"""Quantized modules: packed storage plus a reference (emulated) forward."""

from residq.nn.quant_linear import QuantLinear

__all__ = ["QuantLinear"]
