import json

import pytest

from residq.formats.spec import FormatSpec
from residq.presets import PRESETS
from residq.recipe import Recipe, load_recipe

SPINE_PRESETS = ("w4a16-nvfp4-rtn", "w4a16-nvfp4-gptq", "w4a16-int4g128-gptq", "w4a16-mxfp4-gptq",
                 "w4a4-nvfp4-rtn", "w8a8-fp8-rtn", "w8a8-int8-rtn")


@pytest.mark.parametrize("name", SPINE_PRESETS)
def test_spine_presets_exist_and_round_trip_through_dict(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_unknown_preset_suggests_closest_name():
    with pytest.raises(ValueError, match="did you mean 'w4a16-nvfp4-gptq'"):
        load_recipe("w4a16-nvfp4-gtpq")


def test_set_overrides_flat_and_nested_fields():
    recipe = load_recipe("w4a16-int4g128-gptq").with_overrides(
        ["damp=0.05", "act_order=true", "weight.group_size=64", "rank=32"])
    assert recipe.damp == 0.05 and recipe.act_order is True and recipe.rank == 32
    assert recipe.weight.group_size == 64 and recipe.weight.kind == "int"
    assert PRESETS["w4a16-int4g128-gptq"].damp == 0.01  # presets are frozen, untouched


def test_unknown_field_in_set_suggests_closest():
    with pytest.raises(ValueError, match="did you mean 'damp'"):
        load_recipe("w4a16-nvfp4-gptq").with_overrides(["dmap=0.1"])
    with pytest.raises(ValueError, match="group_size"):
        load_recipe("w4a16-nvfp4-gptq").with_overrides(["weight.group_sise=8"])


def test_invalid_values_are_refused():
    with pytest.raises(ValueError, match="damp"):
        Recipe(damp=1.5)
    with pytest.raises(ValueError, match="unknown method"):
        Recipe(method="gtpq")
    with pytest.raises(ValueError, match="bits"):
        FormatSpec(kind="int", bits=5)


def test_recipe_files_yaml_and_json(tmp_path):
    (tmp_path / "mine.yaml").write_text("method: gptq\nweight: {kind: mxfp4}\nactivation: null\ndamp: 0.02\n")
    recipe = load_recipe(tmp_path / "mine.yaml")
    assert recipe.name == "mine" and recipe.weight.kind == "mxfp4" and recipe.damp == 0.02
    (tmp_path / "bad.json").write_text(json.dumps({"method": "rtn", "wieght": {"kind": "nvfp4"}}))
    with pytest.raises(ValueError, match="bad.json.*did you mean 'weight'"):
        load_recipe(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_recipe(tmp_path / "missing.yaml")
