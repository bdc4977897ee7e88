import pytest
import torch

from residq.models.loading import load_float_model, resolve_model


def test_builtin_name_resolves_to_the_installed_gguf():
    source = resolve_model("smollm2-135m")
    assert source.kind == "gguf" and source.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_hub_ids_resolve_without_loading():
    source = resolve_model("HuggingFaceTB/SmolLM2-135M")
    assert source.kind == "hub" and source.location == "HuggingFaceTB/SmolLM2-135M"


def test_bad_paths_get_specific_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(FileNotFoundError, match="without config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="smollm2-135m"):
        resolve_model("no-such-model")


def test_hf_directory_loads_as_float_model(tiny_hf_dir):
    model, tokenizer, source = load_float_model(str(tiny_hf_dir))
    assert source.kind == "hf-dir" and model.dtype == torch.float32 and not model.training
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tokenizer("hello world").input_ids])).logits
    assert torch.isfinite(logits).all()
