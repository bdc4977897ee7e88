"""residq: post-training quantization of LLMs to 4 bits and below, weights and activations.

Public names::

    from residq import quantize, save, load, load_recipe, PRESETS, formats
"""

from residq import formats
from residq.api import quantize
from residq.checkpoint import load, save
from residq.presets import PRESETS
from residq.recipe import Recipe, load_recipe

__all__ = ["PRESETS", "Recipe", "formats", "load", "load_recipe", "quantize", "save"]
__version__ = "0.1.0"
