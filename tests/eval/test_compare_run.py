"""The comparison engine's measuring pieces: activation profile, peak memory, checkpoint size."""

from __future__ import annotations

import pytest
import torch
from residq_testing import tiny_model

from residq.eval.compare_run import (
    PeakMemory,
    activation_profile,
    check_plot_layer,
    checkpoint_bytes,
    default_plot_layer,
    parse_recipe_label,
)


def test_default_plot_layer_is_the_middle_down_proj():
    model = tiny_model("llama", layers=3)
    assert default_plot_layer(model) == "model.layers.1.mlp.down_proj"
    check_plot_layer(model, "model.layers.1.mlp.down_proj")
    with pytest.raises(ValueError, match="expected a linear layer"):
        check_plot_layer(model, "model.layers.1.mlp")
    with pytest.raises(ValueError, match="no submodule"):
        check_plot_layer(model, "model.layers.9.mlp.down_proj")


def test_activation_profile_applies_permutation_and_scale(calib_ids):
    model = tiny_model("llama")
    layer = "model.layers.1.mlp.down_proj"
    plain = activation_profile(model, layer, calib_ids[:2], torch.device("cpu"))
    assert plain["after"] == plain["before"] and len(plain["before"]) == 128
    linear = model.get_submodule(layer)
    perm = torch.randperm(128, generator=torch.Generator().manual_seed(0))
    scale = torch.linspace(0.5, 4.0, 128)
    linear.register_buffer("input_perm", perm)
    linear.register_buffer("input_scale", scale)
    profiled = activation_profile(model, layer, calib_ids[:2], torch.device("cpu"))
    before = torch.tensor(profiled["before"], dtype=torch.float64)
    torch.testing.assert_close(before, torch.tensor(plain["before"], dtype=torch.float64), rtol=0, atol=0)
    expected = before[perm] / scale.double()
    torch.testing.assert_close(torch.tensor(profiled["after"], dtype=torch.float64), expected, rtol=1e-6, atol=0)


def test_peak_memory_sees_a_large_temporary_allocation():
    with PeakMemory(torch.device("cpu")) as memory:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        del block
    assert memory.bytes >= 48 * 2**20


def test_checkpoint_size_counts_the_written_files():
    model = tiny_model("llama")
    sizes = checkpoint_bytes(model, None, None)
    params = sum(p.numel() * 4 for p in model.parameters())
    assert params <= sizes["weights"] < params + 64 * 1024
    assert sizes["total"] > sizes["weights"]


def test_recipe_labels_take_overrides():
    recipe = parse_recipe_label("w4a16-nvfp4-gptq+damp=0.05", ["block_size=64"])
    assert (recipe.name, recipe.damp, recipe.block_size) == ("w4a16-nvfp4-gptq", 0.05, 64)
    with pytest.raises(ValueError, match="unknown recipe"):
        parse_recipe_label("no-such-recipe", [])
