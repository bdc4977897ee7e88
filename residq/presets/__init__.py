"""Named recipes: ``residq quantize --recipe NAME``. One module per method family.

Each module defines ``RECIPES: tuple[Recipe, ...]``; names must be unique across modules.
"""

from __future__ import annotations

import importlib
import importlib.util

from residq.recipe import Recipe

_MODULES = ("residq.presets.spine", "residq.presets.lowrank", "residq.presets.channel")


def _collect() -> dict[str, Recipe]:
    presets: dict[str, Recipe] = {}
    for module_name in _MODULES:
        if importlib.util.find_spec(module_name) is None:
            continue
        for recipe in importlib.import_module(module_name).RECIPES:
            if recipe.name in presets:
                raise ValueError(f"preset {recipe.name!r} is defined twice ({module_name})")
            presets[recipe.name] = recipe
    return presets


PRESETS: dict[str, Recipe] = _collect()
