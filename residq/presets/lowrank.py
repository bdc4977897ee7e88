"""Low-rank family presets: ARHQ, SVDQuant, and the per-channel / per-tensor INT setting.

Rank policy on the command line: ``--set rank=32``, ``--set rank=adaptive --set tau=0.05``,
or ``--set rank_budget=0.05`` (a fraction of the model's linear parameters, spent greedily).

The ``*-int4pc-*`` / ``*-int2pc-*`` rows reproduce the ARHQ write-up's own setting:
symmetric per-channel INT weights and dynamic per-tensor INT4 activations, with the RTN,
GPTQ and SmoothQuant companions (same formats) and the W4A16 GPTQ / AWQ references its
claim is made against.

``w4a4-nvfp4-arhq`` is the recommended NVFP4 configuration, not the bare closed form: the same
SmoothQuant scales SVDQuant uses (folded into the previous norm/linear, so the comparison at
equal rank is like for like), the closed-form branch on the deployed activation-residual
covariance, GPTQ on the residual, then the branch refitted to the whole layer error. Each step
was measured (docs/RESULTS.md, bar and low-rank tables): at the bar the bare closed form gives
34.88, + refit 34.02, + smoothing 33.45 (H100/H200 rows); the bare form is
``w4a4-nvfp4-arhq+transforms=+refit=false``. The other ARHQ presets keep the bare form.
"""

from __future__ import annotations

from residq.formats.spec import FormatSpec
from residq.recipe import Recipe

NVFP4 = FormatSpec(kind="nvfp4")
MXFP4 = FormatSpec(kind="mxfp4")
INT4_G128 = FormatSpec(kind="int", bits=4, granularity="group", group_size=128)
INT2_G64 = FormatSpec(kind="int", bits=2, symmetric=False, granularity="group", group_size=64)
INT4_CHANNEL = FormatSpec(kind="int", bits=4, granularity="channel")
INT2_CHANNEL = FormatSpec(kind="int", bits=2, granularity="channel")
INT4_TENSOR = FormatSpec(kind="int", bits=4, granularity="tensor")


def _preset(name: str, description: str, **kwargs) -> Recipe:
    return Recipe(name=name, description=description, **kwargs)


def _per_channel_rows(tag: str, weight: FormatSpec, rank: int) -> list[Recipe]:
    """ARHQ in the write-up's setting plus its RTN / GPTQ / SmoothQuant companions."""
    act = INT4_TENSOR
    bits = weight.bits
    return [
        _preset(f"w{bits}a4-{tag}-arhq", f"ARHQ rank {rank}: per-channel INT{bits} weights, "
                "per-tensor INT4 activations (the ARHQ write-up's setting)",
                weight=weight, activation=act, method="arhq", rank=rank),
        _preset(f"w{bits}a4-{tag}-rtn", f"RTN per-channel INT{bits} weights, per-tensor INT4 activations",
                weight=weight, activation=act, method="rtn"),
        _preset(f"w{bits}a4-{tag}-gptq", f"GPTQ per-channel INT{bits} weights, per-tensor INT4 activations",
                weight=weight, activation=act, method="gptq"),
        _preset(f"w{bits}a4-{tag}-smoothquant", f"SmoothQuant (alpha searched) + RTN per-channel INT{bits} "
                "weights, per-tensor INT4 activations",
                weight=weight, activation=act, method="rtn", transforms=("smooth",), smooth_alpha=None),
        _preset(f"w{bits}a16-{tag}-gptq", f"GPTQ per-channel INT{bits} weights, 16-bit activations",
                weight=weight, method="gptq"),
        _preset(f"w{bits}a16-{tag}-awq", f"AWQ per-channel INT{bits} weights, 16-bit activations",
                weight=weight, method="awq"),
    ]


_ALL = [
    _preset("w4a4-nvfp4-svdquant", "SVDQuant: smoothing (alpha 0.5) + rank-32 SVD branch in fp16 + "
            "NVFP4 residual by GPTQ, dynamic NVFP4 activations",
            weight=NVFP4, activation=NVFP4, method="svdquant", rank=32, smooth_alpha=0.5),
    _preset("w4a4-nvfp4-arhq", "SmoothQuant (alpha 0.5) + ARHQ rank 32 (fp16 branch) + NVFP4 residual by GPTQ "
            "on Ĥ_q + branch refit, dynamic NVFP4 activations",
            weight=NVFP4, activation=NVFP4, method="arhq", rank=32, transforms=("smooth",), refit=True),
    _preset("w4a4-mxfp4-arhq", "ARHQ rank 32 + MXFP4 residual by GPTQ on Ĥ_q, MXFP4 activations",
            weight=MXFP4, activation=MXFP4, method="arhq", rank=32),
    _preset("w4a4-int4-arhq", "ARHQ rank 32 + INT4 g128 residual by GPTQ on Ĥ_q, INT4 g128 activations",
            weight=INT4_G128, activation=INT4_G128, method="arhq", rank=32),
    _preset("w2a4-int2g64-arhq", "ARHQ rank 64 + asymmetric INT2 g64 residual by GPTQ on Ĥ_q, INT4 g128 activations",
            weight=INT2_G64, activation=INT4_G128, method="arhq", rank=64),
    *_per_channel_rows("int4pc", INT4_CHANNEL, 64),
    *_per_channel_rows("int2pc", INT2_CHANNEL, 128),
]

RECIPES: tuple[Recipe, ...] = tuple(_ALL)
