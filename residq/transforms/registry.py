"""Where the calibration driver finds the recipe's transforms.

Two kinds, each module exporting the one it implements:

* ``MODEL_TRANSFORM``: runs once on the float model before calibration (e.g. a Hadamard
  rotation of the residual stream): ``fn(model, arch, recipe) -> None``;
* ``BLOCK_TRANSFORM``: runs on each decoder block when the driver reaches it, before its
  linears are quantized, and may use the block's calibration inputs (e.g. smoothing scales
  from activation ranges): ``fn(block, arch, prefix, inputs, kwargs, recipe, device) -> None``.

Both preserve the function in full precision. Modules are imported on first use.
"""

from __future__ import annotations

import importlib
import importlib.util

TRANSFORM_MODULES: dict[str, str] = {
    "smooth": "residq.transforms.smooth",
    "rotate": "residq.transforms.rotate",
    "reorder": "residq.transforms.reorder",
}


def _module(name: str):
    if name not in TRANSFORM_MODULES:
        raise ValueError(f"transform {name!r} is unknown; available: {sorted(TRANSFORM_MODULES)}")
    module_name = TRANSFORM_MODULES[name]
    if importlib.util.find_spec(module_name) is None:
        raise ValueError(f"transform {name!r} is not available in this build ({module_name} is missing)")
    return importlib.import_module(module_name)


def apply_model_transforms(model, arch, recipe) -> None:
    for name in recipe.transforms:
        fn = getattr(_module(name), "MODEL_TRANSFORM", None)
        if fn is not None:
            fn(model, arch, recipe)


def apply_block_transforms(block, arch, prefix, inputs, kwargs, recipe, device) -> None:
    for name in recipe.transforms:
        fn = getattr(_module(name), "BLOCK_TRANSFORM", None)
        if fn is not None:
            fn(block, arch, prefix, inputs, kwargs, recipe, device)
