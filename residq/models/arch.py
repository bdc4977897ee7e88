"""The one architecture table: where each decoder family keeps its blocks, norms and linears.

Every supported family is a pre-norm decoder whose block has four linear *input groups*: the
attention input (q/k/v share it), the attention output (o_proj), the MLP input (gate/up share
it) and the MLP output (down_proj). Methods collect statistics once per group; transforms fold
scales into the op that produces the group's input (``producer``): a norm, or a linear whose
output rows map one-to-one onto the group's input channels.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class InputGroup:
    """Linears of one block that read the same input.

    Attributes:
        name: ``attn_in``, ``attn_out``, ``mlp_in`` or ``mlp_out``.
        linears: dotted paths inside the block, e.g. ``("self_attn.q_proj", ...)``.
        producer: dotted path of the op whose output is this input (a norm for ``*_in``;
            ``self_attn.v_proj`` / ``mlp.up_proj`` for the outputs), or None.
        producer_is_norm: True when ``producer`` is an RMSNorm.
    """

    name: str
    linears: tuple[str, ...]
    producer: str | None
    producer_is_norm: bool


@dataclass(frozen=True)
class Architecture:
    """How one decoder family is laid out.

    Attributes:
        family: short name (``llama``, ``qwen2``, ``qwen3``, ``mistral``, ``gemma2``, ``gemma3``).
        model_types: HF ``config.model_type`` values served.
        groups: the four input groups, in execution order.
        norm_plus_one: Gemma's RMSNorm multiplies by ``(1 + weight)``.
        sandwich_norms: Gemma 2/3 also normalize each sublayer's output before the residual add.
        needs_bos: evaluation windows start with BOS (Gemma).
    """

    family: str
    model_types: tuple[str, ...]
    groups: tuple[InputGroup, ...]
    norm_plus_one: bool = False
    sandwich_norms: bool = False
    needs_bos: bool = False
    base_path: str = "model"
    layers_path: str = "model.layers"
    embed_path: str = "model.embed_tokens"
    final_norm_path: str = "model.norm"
    lm_head_path: str = "lm_head"


def _groups(mlp_norm: str) -> tuple[InputGroup, ...]:
    return (
        InputGroup("attn_in", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
                   "input_layernorm", True),
        InputGroup("attn_out", ("self_attn.o_proj",), "self_attn.v_proj", False),
        InputGroup("mlp_in", ("mlp.gate_proj", "mlp.up_proj"), mlp_norm, True),
        InputGroup("mlp_out", ("mlp.down_proj",), "mlp.up_proj", False),
    )


_LLAMA_GROUPS = _groups("post_attention_layernorm")
_GEMMA_GROUPS = _groups("pre_feedforward_layernorm")

ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("llama", ("llama",), _LLAMA_GROUPS),
    Architecture("mistral", ("mistral",), _LLAMA_GROUPS),
    Architecture("qwen2", ("qwen2",), _LLAMA_GROUPS),
    Architecture("qwen3", ("qwen3",), _LLAMA_GROUPS),
    Architecture("gemma2", ("gemma2",), _GEMMA_GROUPS, norm_plus_one=True,
                 sandwich_norms=True, needs_bos=True),
    Architecture("gemma3", ("gemma3_text",), _GEMMA_GROUPS, norm_plus_one=True,
                 sandwich_norms=True, needs_bos=True),
)


class UnsupportedArchitectureError(ValueError):
    """The model's family is not in the architecture table."""


def architecture_of(model: nn.Module) -> Architecture:
    """The table entry for a HF causal LM, by ``model.config.model_type``."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    for arch in ARCHITECTURES:
        if model_type in arch.model_types:
            return arch
    served = sorted(t for a in ARCHITECTURES for t in a.model_types)
    raise UnsupportedArchitectureError(
        f"model_type {model_type!r} ({type(model).__name__}) is not supported; "
        f"supported decoder families: {served}"
    )


def get_submodule(root: nn.Module, path: str) -> nn.Module:
    """``root.get_submodule(path)`` with an error that names what is missing."""
    try:
        return root.get_submodule(path)
    except AttributeError as err:
        raise AttributeError(f"{type(root).__name__} has no submodule {path!r}: {err}") from err


def set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    """Replace the module at dotted ``path`` inside ``root``."""
    parent_path, _, child = path.rpartition(".")
    parent = get_submodule(root, parent_path) if parent_path else root
    setattr(parent, child, module)


def decoder_layers(model: nn.Module, arch: Architecture) -> nn.ModuleList:
    return get_submodule(model, arch.layers_path)


def block_linears(block: nn.Module, arch: Architecture) -> dict[str, nn.Module]:
    """Every quantizable linear of one decoder block, by dotted path inside the block."""
    return {path: get_submodule(block, path) for group in arch.groups for path in group.linears}
