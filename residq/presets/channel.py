"""The channel family: ARCQuant, Atom, QuaRot, AWQ, the W4A8 reference points, the flagship.

Flagship (``w4a4-nvfp4-flagship``): NVFP4 W4A4 with ARCQuant's reordering and augmented residual
activation channels (2⁻³ rule, alignment 16), an ARHQ low-rank branch (rank 64, fp16 factors)
fitted on the residual covariance of the *deployed* two-stage activation quantizer, GPTQ with
act-order on ``W - L`` under the deployed quantized-activation Hessian, then the branch refitted
to the whole layer error (``Recipe.refit``). Each part attacks a different error: augmented
channels remove most of the activation error of the outlier channels, the branch the remaining
activation error along the directions ``W`` amplifies most, GPTQ the weight error, and the refit
lets the branch absorb what GPTQ left.

Why these settings (docs/RESULTS.md, bar table, 512-token windows): without the refit the
composition lost to ARHQ alone; with it, rank 32 is level with ARHQ (33.59 vs 33.45, H200);
rank 64 brings it to 32.42, and act-order GPTQ to 31.81 (1.09x FP), ahead of ARHQ (32.47) and
SVDQuant (32.93) at the same rank. Smoothing first did not help it (33.71 at rank 32). The cost
is real on a small model: the rank-64 branch is 18% of SmolLM2-135M's linear parameters
(8.2 stored bits per weight with the repeated ARCQuant columns), about 3% on a 4096-wide layer;
``--set rank=32`` halves it.
"""

from __future__ import annotations

from residq.formats.spec import FormatSpec
from residq.recipe import Recipe

NVFP4 = FormatSpec(kind="nvfp4")
MXFP4 = FormatSpec(kind="mxfp4")
INT4_G128 = FormatSpec(kind="int", bits=4, granularity="group", group_size=128)
FP8_TOKEN = FormatSpec(kind="fp8", granularity="token")


def _preset(name: str, description: str, **kwargs) -> Recipe:
    return Recipe(name=name, description=description, **kwargs)


_ALL = [
    _preset("w4a4-nvfp4-arcquant",
            "ARCQuant: reorder, NVFP4 W4A4 with augmented residual channels (2^-3 rule, align 16), RTN",
            weight=NVFP4, activation=NVFP4, method="arcquant", arc_align=16),
    _preset("w4a4-mxfp4-arcquant",
            "ARCQuant with MXFP4 weights and activations (align 32 = one MX block)",
            weight=MXFP4, activation=MXFP4, method="arcquant", arc_align=32),
    _preset("w4a4-int4-atom",
            "Atom: reorder, top-128 outlier channels INT8 (weights and activations), rest INT4 g128",
            weight=INT4_G128, activation=INT4_G128, method="atom", atom_outliers=128),
    _preset("w4a4-nvfp4-quarot-gptq",
            "QuaRot: Hadamard-rotated residual stream + online Hadamard before down_proj, GPTQ, NVFP4 W4A4",
            weight=NVFP4, activation=NVFP4, method="gptq", transforms=("rotate",)),
    _preset("w4a4-nvfp4-quarot-rtn",
            "QuaRot rotation, RTN, NVFP4 W4A4",
            weight=NVFP4, activation=NVFP4, method="rtn", transforms=("rotate",)),
    _preset("w4a16-int4g128-awq",
            "AWQ: activation-aware per-channel scales (alpha grid search), INT4 g128 weights",
            weight=INT4_G128, method="awq"),
    _preset("w4a4-nvfp4-flagship",
            "reorder + ARCQuant augmented activations + ARHQ rank-64 branch on the deployed "
            "residual covariance + GPTQ residual weights (act-order) + branch refit, NVFP4 W4A4",
            weight=NVFP4, activation=NVFP4, method="arcquant", arc_weight="gptq", rank=64,
            act_order=True, lowrank_dtype="float16", refit=True),
    _preset("w4a8-nvfp4-fp8-rtn",
            "NVFP4 weights (RTN), FP8 E4M3 per-token activations: ARCQuant's reference point",
            weight=NVFP4, activation=FP8_TOKEN, method="rtn"),
    _preset("w4a8-nvfp4-fp8-gptq",
            "NVFP4 weights (GPTQ), FP8 E4M3 per-token activations",
            weight=NVFP4, activation=FP8_TOKEN, method="gptq"),
]

RECIPES: tuple[Recipe, ...] = tuple(_ALL)
