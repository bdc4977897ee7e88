"""Saving and loading quantized models.

A checkpoint directory holds:

* ``model.safetensors``: every tensor of the model (packed weights and scales of each
  ``QuantLinear``, the float embeddings and norms); tensors shared between names (tied
  embeddings) are stored once and listed in ``residq.json`` under ``aliases``;
* ``config.json`` (the HF model config) and the tokenizer's files;
* ``residq.json``: the recipe, each quantized layer's configuration, the aliases, the dtype;
* ``residq_manifest.json``: sha256 and size of every other file, written last.

Everything is written into a temporary sibling directory which is renamed into place only
when complete, so an interrupted save never leaves a directory that looks finished.
``load`` checks the manifest first and names the file that is missing, truncated or altered.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from residq.models.arch import set_submodule
from residq.nn.quant_linear import QuantLinear
from residq.recipe import Recipe

MANIFEST = "residq_manifest.json"
META = "residq.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint directory is incomplete, altered or inconsistent."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_output_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Validate an output directory path before any work is done."""
    out = Path(out_dir)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write {out}: parent directory {out.parent} does not exist")
    if out.exists() and not overwrite:
        raise FileExistsError(f"output directory {out} already exists (pass --overwrite to replace it)")
    return out


def _split_shared(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Store tensors that share memory once; return (unique tensors, alias -> stored name)."""
    unique: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    owners: dict[tuple, str] = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
        if tensor.numel() and key in owners:
            aliases[name] = owners[key]
        else:
            owners[key] = name
            unique[name] = tensor.detach().cpu().contiguous()
    return unique, aliases


def save(model: nn.Module, tokenizer, out_dir: str | Path, recipe: Recipe | None = None,
         overwrite: bool = False) -> Path:
    """Write a quantized model to ``out_dir`` atomically (temporary directory + rename)."""
    out = prepare_output_dir(out_dir, overwrite)
    recipe = recipe or getattr(model, "residq_recipe", None)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        unique, aliases = _split_shared(model.state_dict())
        save_file(unique, str(tmp / WEIGHTS), metadata={"format": "pt", "residq": str(FORMAT_VERSION)})
        model.config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        layers = {name: m.layer_config() for name, m in model.named_modules() if isinstance(m, QuantLinear)}
        meta = {
            "format_version": FORMAT_VERSION,
            "recipe": recipe.to_dict() if recipe else None,
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "layers": layers,
            "aliases": aliases,
        }
        (tmp / META).write_text(json.dumps(meta, indent=1))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {str(p.relative_to(tmp)): {"sha256": _sha256(p), "bytes": p.stat().st_size} for p in files}
        (tmp / MANIFEST).write_text(json.dumps({"files": manifest}, indent=1))
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def verify(directory: str | Path) -> dict:
    """Check every file against the manifest; return the manifest's file table."""
    root = Path(directory)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{root} is not a residq checkpoint: {MANIFEST} is missing")
    try:
        files = json.loads(manifest_path.read_text())["files"]
    except (json.JSONDecodeError, KeyError) as err:
        raise CheckpointError(f"{manifest_path} is unreadable: {err}") from err
    for name, entry in files.items():
        path = root / name
        if not path.is_file():
            raise CheckpointError(f"{path} is listed in the manifest but missing")
        if path.stat().st_size != entry["bytes"]:
            raise CheckpointError(
                f"{path} has {path.stat().st_size} bytes, the manifest says {entry['bytes']} (truncated?)"
            )
        if _sha256(path) != entry["sha256"]:
            raise CheckpointError(f"{path} does not match its sha256 in the manifest (altered or corrupt)")
    return files


def load(directory: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, object]:
    """Rebuild a saved quantized model (and its tokenizer) exactly as it was saved."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    root = Path(directory)
    verify(root)
    meta = json.loads((root / META).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{root / META}: format_version {meta.get('format_version')} is not supported")
    config = AutoConfig.from_pretrained(root)
    dtype = getattr(torch, meta["dtype"])
    model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    for name, layer_config in meta["layers"].items():
        set_submodule(model, name, QuantLinear.from_config(layer_config))
    state = load_file(str(root / WEIGHTS))
    for alias, owner in meta["aliases"].items():
        state[alias] = state[owner]
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m not in meta["aliases"]]
    if missing or unexpected:
        raise CheckpointError(f"{root / WEIGHTS}: missing tensors {missing[:5]}, unexpected {unexpected[:5]}")
    if meta["recipe"] is not None:
        model.residq_recipe = Recipe.from_dict(meta["recipe"], source=str(root / META))
    tokenizer = AutoTokenizer.from_pretrained(root) if (root / "tokenizer_config.json").is_file() else None
    model.config.use_cache = False
    return model.to(device).eval(), tokenizer
