"""scripts/relabel_rows.py: every row's label rebuilds the recipe it ran under today's presets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from residq.presets import PRESETS

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "relabel_rows.py"
_spec = importlib.util.spec_from_file_location("relabel_rows", _SCRIPT)
relabel_rows = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(relabel_rows)


@pytest.mark.parametrize("name", ["w4a4-nvfp4-flagship", "w4a4-nvfp4-arhq", "w4a16-int4g128-awq"])
def test_a_preset_unchanged_keeps_its_bare_name(name):
    assert relabel_rows.minimal_label(PRESETS[name].to_dict()) == name


@pytest.mark.parametrize("overrides", [["rank=32", "act_order=false"], ["transforms=", "refit=false"],
                                       ["weight.group_size=32"], ["arc_fraction=0.25", "rank=16"]])
def test_overrides_are_recovered_and_rebuild_the_recipe(overrides):
    name = "w4a4-nvfp4-flagship" if "arc_fraction=0.25" in overrides or "act_order=false" in overrides \
        else "w4a4-nvfp4-arhq"
    recipe = PRESETS[name].with_overrides(overrides)
    label = relabel_rows.minimal_label(recipe.to_dict())
    name_back, *found = label.split("+")
    assert name_back == name
    assert sorted(found) == sorted(overrides)
    assert PRESETS[name].with_overrides(found) == PRESETS[name].with_overrides(overrides)


def test_a_row_older_than_a_field_takes_the_field_default():
    old = PRESETS["w4a4-nvfp4-arhq"].to_dict()
    del old["refit"]  # rows written before the field existed ran without refit
    assert "refit=false" in relabel_rows.minimal_label(old).split("+")


def test_a_removed_field_at_a_non_default_value_is_refused():
    row = dict(PRESETS["w4a4-nvfp4-arhq"].to_dict(), gptq_target="output")
    with pytest.raises(ValueError, match="gptq_target"):
        relabel_rows.minimal_label(row)


def test_relabel_file_rewrites_only_stale_labels(tmp_path):
    rows = [{"label": "fp", "ppl": {"wikitext2": 1.0}},
            {"label": "w4a4-nvfp4-flagship", "recipe": PRESETS["w4a4-nvfp4-flagship"].with_overrides(["rank=32"]).to_dict()},
            {"label": "w4a4-nvfp4-arhq", "recipe": PRESETS["w4a4-nvfp4-arhq"].to_dict()}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert relabel_rows.relabel_file(path, write=False) == [("w4a4-nvfp4-flagship", "w4a4-nvfp4-flagship+rank=32")]
    assert json.loads(path.read_text().splitlines()[1])["label"] == "w4a4-nvfp4-flagship"  # check only
    relabel_rows.relabel_file(path, write=True)
    labels = [json.loads(line)["label"] for line in path.read_text().splitlines()]
    assert labels == ["fp", "w4a4-nvfp4-flagship+rank=32", "w4a4-nvfp4-arhq"]
    assert not list(tmp_path.glob("*.tmp"))
