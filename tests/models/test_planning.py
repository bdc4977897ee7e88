"""The global rank budget: greedy allocation is exact on a toy case and respected end to end."""

import pytest
import torch
from residq_testing import tiny_model

from residq.api import quantize
from residq.models.arch import architecture_of
from residq.models.planning import greedy_ranks, plan_ranks
from residq.presets import PRESETS


def test_greedy_takes_the_most_valuable_chunks_within_budget():
    values = {"a": torch.tensor([5.0, 4.0, 1.0, 0.5]), "b": torch.tensor([3.0, 2.9, 2.8, 0.1])}
    shapes = {"a": (10, 10), "b": (5, 5)}
    # step 2: chunks a0=9 (cost 40), b0=5.9 (cost 20), b1=2.9 (20), a1=1.5 (40)
    assert greedy_ranks(values, shapes, 60, step=2) == {"a": 2, "b": 2}
    assert greedy_ranks(values, shapes, 80, step=2) == {"a": 2, "b": 4}
    assert greedy_ranks(values, shapes, 39, step=2) == {"a": 0, "b": 2}
    assert greedy_ranks(values, shapes, 1000, step=2) == {"a": 4, "b": 4}


@pytest.mark.parametrize("method", ["arhq", "svdquant"])
def test_plan_respects_the_budget_and_drives_quantization(method, calib_ids):
    model = tiny_model("llama", layers=1)
    arch = architecture_of(model)
    name = "w4a4-nvfp4-arhq" if method == "arhq" else "w4a4-nvfp4-svdquant"
    recipe = PRESETS[name].with_overrides(["rank_budget=0.3"])
    plan = dict(plan_ranks(model, arch, recipe, calib_ids, torch.device("cpu")))
    shapes = {n: tuple(m.weight.shape) for n, m in model.named_modules() if n.startswith("model.layers.")
              and isinstance(m, torch.nn.Linear)}
    assert set(plan) == set(shapes)
    spent = sum(r * (m + k) for n, r in plan.items() for m, k in [shapes[n]])
    total = sum(m * k for m, k in shapes.values())
    assert 0 < spent <= 0.3 * total and spent > 0.3 * total - 16 * (128 + 64)
    assert all(r % 16 == 0 or r == min(shapes[n]) for n, r in plan.items())
    result = quantize(model, recipe, calib_ids, device="cpu", progress=False)
    assert {r.name: r.info["rank"] for r in result.layers} == plan
    assert dict(result.recipe.rank_plan) == plan


def test_plan_refuses_methods_without_a_branch(calib_ids):
    model = tiny_model("llama", layers=1)
    with pytest.raises(ValueError, match="needs a low-rank method"):
        plan_ranks(model, architecture_of(model), PRESETS["w4a4-nvfp4-rtn"].with_overrides(["rank_budget=0.1"]),
                   calib_ids, torch.device("cpu"))
