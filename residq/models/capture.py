"""Capturing what each decoder block receives, and running one block on its own.

``capture_block_inputs`` runs the float model once over the calibration windows with every
decoder layer wrapped by a forward hook: it records the hidden states entering block 0 (one
tensor per batch chunk, kept on CPU) and, for each block, the keyword arguments the model
passes to it (rotary embeddings, attention mask, positions) for the first chunk. All chunks
have the same shape and no padding, so those keyword arguments are valid for every chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from residq.models.arch import Architecture, decoder_layers, get_submodule


@dataclass
class BlockInputs:
    """Calibration inputs of the current block.

    Attributes:
        hidden: list of (B, S, H) chunks on CPU, in the model's dtype.
        layer_kwargs: per block index, the keyword arguments of its forward (on CPU).
    """

    hidden: list[torch.Tensor]
    layer_kwargs: list[dict]


def to_device(value, device: torch.device):
    """Move tensors inside nested tuples/lists/dicts to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(to_device(v, device) for v in value)
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


class _Recorder(nn.Module):
    """Stands in for decoder layer ``index`` during capture: records, computes nothing.

    It returns its input unchanged. Families whose layers return tuples then hand later
    recorders a slice instead of the hidden states, which is harmless: masks and rotary
    embeddings are computed before the layer loop, and only block 0's hidden input is kept.
    """

    def __init__(self, index: int, layer: nn.Module, sink: BlockInputs) -> None:
        super().__init__()
        self.index = index
        self.sink = sink
        for attr in ("attention_type", "is_sliding", "layer_idx"):
            if hasattr(layer, attr):
                setattr(self, attr, getattr(layer, attr))

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        if self.index == 0:
            self.sink.hidden.append(hidden_states.detach().cpu())
        if self.sink.layer_kwargs[self.index] is None:
            dropped = ("past_key_values", "past_key_value")
            kept = {k: v for k, v in kwargs.items() if k not in dropped}
            self.sink.layer_kwargs[self.index] = to_device(kept, torch.device("cpu"))
        return hidden_states


@torch.no_grad()
def capture_block_inputs(
    model: nn.Module,
    arch: Architecture,
    input_ids: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> BlockInputs:
    """Record block 0's hidden inputs and every block's keyword arguments.

    Only the embeddings, rotary tables and final norm run (on ``device``); the decoder
    layers are swapped for recorders during the pass and restored afterwards.

    Args:
        input_ids: (n, S) int64 calibration windows.
        batch_size: chunk size; must divide n.
        device: where the embedding pass runs.
    """
    layers = decoder_layers(model, arch)
    originals = list(layers)
    sink = BlockInputs(hidden=[], layer_kwargs=[None] * len(originals))
    base = get_submodule(model, arch.base_path)
    original_device = next(model.parameters()).device
    try:
        for index, layer in enumerate(originals):
            layers[index] = _Recorder(index, layer, sink)
        base.to(device)
        for chunk in input_ids.split(batch_size):
            base(input_ids=chunk.to(device), use_cache=False)
    finally:
        for index, layer in enumerate(originals):
            layers[index] = layer
        base.to(original_device)
    return sink


def run_block(block: nn.Module, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
    """One decoder block's output hidden states (B, S, H), whatever its return type."""
    out = block(hidden, **kwargs)
    return out[0] if isinstance(out, tuple) else out


class _InputSeen(Exception):
    """Raised by ``feed_inputs_of``'s hook: the rest of the block is not needed."""


@torch.no_grad()
def feed_inputs_of(module: nn.Module, block: nn.Module, hidden: list[torch.Tensor], kwargs: dict,
                   device: torch.device, consume) -> None:
    """Run every calibration chunk through ``block`` and hand ``module``'s input (its first
    positional argument, shape (..., K)) to ``consume`` on each call.

    The block's forward stops right after ``module``'s input is seen (nothing after it is
    needed), so collecting q_proj's statistics costs a norm, not a whole block.
    """

    def hook(_module, args):
        consume(args[0])
        raise _InputSeen

    handle = module.register_forward_pre_hook(hook)
    try:
        for chunk in hidden:
            try:
                run_block(block, chunk.to(device), kwargs)
            except _InputSeen:
                pass
    finally:
        handle.remove()
