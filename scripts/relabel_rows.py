"""Give every measured row the label that reproduces its recipe under today's presets.

When a preset's definition changes (the flagship's rank, ARHQ's smoothing), rows measured under
the old definition keep their numbers but must not keep the bare preset name: their label
becomes the preset name plus the overrides that rebuild the recipe they ran
(``NAME+key=value+...``, the syntax of ``scripts/run_recipes.py`` and ``--set``). Rows whose
recipe is exactly today's preset get the bare name. Fields a row predates take the Recipe
dataclass default (which is what that code ran).

    python scripts/relabel_rows.py            # rewrite docs/results/*.jsonl in place
    python scripts/relabel_rows.py --check    # list stale labels, exit 1 if any
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from residq.recipe import Recipe, load_recipe

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
_IGNORED = ("name", "description")
# fields that once existed, with the value that meant today's behaviour
_REMOVED_FIELDS = {"gptq_target": "weight"}


def _text(value) -> str:
    """One override value as ``Recipe.with_overrides`` parses it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        if len(value) > 1:
            raise ValueError(f"a label cannot carry the list {value!r} (labels are comma-separated)")
        return ",".join(map(str, value))
    return str(value)


def _with_defaults(recipe: dict) -> dict:
    full = Recipe().to_dict()  # every field has a default
    for key, value in recipe.items():
        if key in _REMOVED_FIELDS:
            if value != _REMOVED_FIELDS[key]:
                raise ValueError(f"{recipe['name']}: removed field {key}={value!r} has no recipe today")
            continue
        full[key] = value
    return full


def minimal_label(recipe: dict) -> str:
    """``NAME+key=value...`` whose recipe equals ``recipe`` (a row's ``recipe`` dict)."""
    name = recipe["name"]
    ran = _with_defaults(recipe)
    preset = load_recipe(name).to_dict()
    overrides = []
    for key in preset:
        if key in _IGNORED or ran[key] == preset[key]:
            continue
        if key in ("weight", "activation") and ran[key] is not None and preset[key] is not None:
            overrides += [f"{key}.{inner}={_text(v)}" for inner, v in ran[key].items() if preset[key][inner] != v]
        elif key in ("weight", "activation"):
            raise ValueError(f"{name}: {key} {ran[key]!r} vs preset {preset[key]!r} cannot be one override")
        else:
            overrides.append(f"{key}={_text(ran[key])}")
    label = "+".join([name, *overrides])
    rebuilt = load_recipe(name).with_overrides(overrides).to_dict()
    if {k: v for k, v in rebuilt.items() if k not in _IGNORED} != {k: v for k, v in ran.items() if k not in _IGNORED}:
        raise AssertionError(f"label {label!r} does not rebuild the recipe of the row")
    return label


def relabel_file(path: Path, write: bool) -> list[tuple[str, str]]:
    """(old, new) for each stale label in ``path``; rewrites it atomically when ``write``."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    changes = []
    for row in rows:
        if "recipe" not in row:
            continue
        new = minimal_label(row["recipe"])
        if new != row["label"]:
            changes.append((row["label"], new))
            row["label"] = new
    if write and changes:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
        os.replace(tmp, path)
    return changes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="JSONL files (default: docs/results/*.jsonl)")
    parser.add_argument("--check", action="store_true", help="only list stale labels; exit 1 if any")
    args = parser.parse_args(argv)
    stale = 0
    for path in args.files or sorted(RESULTS.glob("*.jsonl")):
        for old, new in relabel_file(path, write=not args.check):
            stale += 1
            print(f"{path.name}: {old} -> {new}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
