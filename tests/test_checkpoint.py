import json

import pytest
import torch
from residq_testing import smollm2_tokenizer, tiny_model

from residq.api import quantize
from residq.checkpoint import CheckpointError, load, prepare_output_dir, save
from residq.nn.quant_linear import QuantLinear
from residq.presets import PRESETS


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_model("llama", vocab=49152)
    torch.manual_seed(0)
    calib = torch.randint(0, 49152, (4, 32))
    recipe = PRESETS["w4a4-nvfp4-rtn"]
    quantize(model, recipe, calib, device="cpu", progress=False)
    out = tmp_path_factory.mktemp("ckpt") / "quantized"
    save(model, smollm2_tokenizer(), out, recipe)
    return model, out


def test_loaded_model_equals_in_memory_model_bit_for_bit(saved):
    model, out = saved
    loaded, tokenizer = load(out)
    ids = torch.randint(0, 49152, (2, 16))
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, loaded(input_ids=ids).logits)
    assert isinstance(loaded.model.layers[1].mlp.down_proj, QuantLinear)
    assert loaded.residq_recipe == PRESETS["w4a4-nvfp4-rtn"]
    assert tokenizer is not None and tokenizer("hello").input_ids


def test_manifest_lists_every_file_with_sha256(saved):
    _, out = saved
    manifest = json.loads((out / "residq_manifest.json").read_text())["files"]
    assert {"model.safetensors", "config.json", "residq.json"} <= set(manifest)
    assert all(len(entry["sha256"]) == 64 for entry in manifest.values())


def copy_of(out, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(out, target)
    return target


def test_tampered_file_is_named(saved, tmp_path):
    target = copy_of(saved[1], tmp_path)
    config = target / "config.json"
    config.write_text(config.read_text().replace("silu", "gelu"))
    with pytest.raises(CheckpointError, match=r"config\.json.*(sha256|bytes)"):
        load(target)


def test_truncated_file_is_named(saved, tmp_path):
    target = copy_of(saved[1], tmp_path)
    weights = target / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated"):
        load(target)


def test_missing_file_is_named(saved, tmp_path):
    target = copy_of(saved[1], tmp_path)
    (target / "residq.json").unlink()
    with pytest.raises(CheckpointError, match=r"residq\.json.*missing"):
        load(target)


def test_output_directory_rules(tmp_path):
    with pytest.raises(FileNotFoundError, match="parent directory"):
        prepare_output_dir(tmp_path / "no" / "such" / "out")
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_output_dir(tmp_path / "exists")
    assert prepare_output_dir(tmp_path / "exists", overwrite=True) == tmp_path / "exists"


def test_failed_save_leaves_nothing_that_looks_complete(tmp_path):
    model = tiny_model("llama")
    quantize(model, PRESETS["w4a16-nvfp4-rtn"], torch.randint(0, 256, (2, 16)), device="cpu", progress=False)

    class BrokenTokenizer:
        def save_pretrained(self, path):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save(model, BrokenTokenizer(), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
