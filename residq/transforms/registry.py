"""Where the calibration driver finds the recipe's transforms.

Two kinds:

* model transforms run once on the float model before calibration (e.g. a Hadamard rotation
  of the residual stream): ``fn(model, arch, recipe) -> None``;
* block transforms run on each decoder block when the driver reaches it, before its linears
  are quantized, and may use the block's calibration inputs (e.g. smoothing scales from
  activation ranges): ``fn(block, arch, prefix, inputs, kwargs, recipe, device) -> None``.

Both must preserve the block's / model's function in full precision.
"""

from __future__ import annotations

from collections.abc import Callable

MODEL_TRANSFORMS: dict[str, Callable] = {}
BLOCK_TRANSFORMS: dict[str, Callable] = {}


def _check_known(name: str) -> None:
    if name not in MODEL_TRANSFORMS and name not in BLOCK_TRANSFORMS:
        available = sorted(set(MODEL_TRANSFORMS) | set(BLOCK_TRANSFORMS))
        raise ValueError(f"transform {name!r} is not available; available: {available}")


def apply_model_transforms(model, arch, recipe) -> None:
    for name in recipe.transforms:
        _check_known(name)
        if name in MODEL_TRANSFORMS:
            MODEL_TRANSFORMS[name](model, arch, recipe)


def apply_block_transforms(block, arch, prefix, inputs, kwargs, recipe, device) -> None:
    for name in recipe.transforms:
        _check_known(name)
        if name in BLOCK_TRANSFORMS:
            BLOCK_TRANSFORMS[name](block, arch, prefix, inputs, kwargs, recipe, device)
