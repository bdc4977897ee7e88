"""The spine presets: RTN and GPTQ weight-only, RTN W4A4 / W8A8."""

from __future__ import annotations

from residq.formats.spec import FormatSpec
from residq.recipe import Recipe

NVFP4 = FormatSpec(kind="nvfp4")
MXFP4 = FormatSpec(kind="mxfp4")
INT4_G128 = FormatSpec(kind="int", bits=4, granularity="group", group_size=128)
FP8_CHANNEL = FormatSpec(kind="fp8", granularity="channel")
FP8_TOKEN = FormatSpec(kind="fp8", granularity="token")
INT8_CHANNEL = FormatSpec(kind="int", bits=8, granularity="channel")
INT8_TOKEN = FormatSpec(kind="int", bits=8, granularity="token")


def _preset(name: str, description: str, **kwargs) -> Recipe:
    return Recipe(name=name, description=description, **kwargs)


_ALL = [
    _preset("w4a16-nvfp4-rtn", "NVFP4 weights, round to nearest, 16-bit activations",
            weight=NVFP4, method="rtn"),
    _preset("w4a16-nvfp4-gptq", "NVFP4 weights by GPTQ, 16-bit activations",
            weight=NVFP4, method="gptq"),
    _preset("w4a16-int4g128-gptq", "INT4 group-128 symmetric weights by GPTQ",
            weight=INT4_G128, method="gptq"),
    _preset("w4a16-mxfp4-gptq", "MXFP4 weights by GPTQ, 16-bit activations",
            weight=MXFP4, method="gptq"),
    _preset("w4a4-nvfp4-rtn", "NVFP4 weights and dynamic NVFP4 activations, RTN",
            weight=NVFP4, activation=NVFP4, method="rtn"),
    _preset("w8a8-fp8-rtn", "FP8 E4M3 per-channel weights, per-token activations",
            weight=FP8_CHANNEL, activation=FP8_TOKEN, method="rtn"),
    _preset("w8a8-int8-rtn", "INT8 per-channel weights, per-token activations",
            weight=INT8_CHANNEL, activation=INT8_TOKEN, method="rtn"),
]

RECIPES: tuple[Recipe, ...] = tuple(_ALL)
