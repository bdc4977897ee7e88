"""QuaRot's rotation of the residual stream (Ashkboos et al. 2024, arXiv 2404.00456).

``MODEL_TRANSFORM`` rewrites a float model so that its function is unchanged (to float
round-off) while its linear inputs have no outlier channels:

1. fold every RMSNorm weight into the linears that read the norm's output (q/k/v, gate/up,
   lm_head; a tied lm_head is untied first) and set the norm weight to 1;
2. rotate the residual stream by the orthogonal ``R = rotation_matrix(hidden)`` (a Hadamard,
   see ``residq.transforms.hadamard``): embeddings ``E R``, readers ``W R`` (q/k/v, gate/up,
   lm_head), writers ``Rᵀ W`` and ``b R`` (o_proj, down_proj). A weightless RMSNorm commutes
   with ``R`` because ``‖x R‖ = ‖x‖``;
3. an online Hadamard ``H`` on down_proj's input: ``W_down ← W_down H`` and the layer computes
   ``(z H) W_downᵀ``. The float layer becomes ``HadamardInputLinear``; after quantization
   ``QuantLinear.input_hadamard`` does the same (saved in its layer config).

Gemma 2/3 are refused: their sandwich norms normalize each sublayer's output *before* the
residual add, ``x + norm(o_proj(.))``, and ``norm(y) R`` is not ``norm'(y R)`` for any diagonal
weight, so the writers cannot absorb the rotation without a dense matrix after each post-norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from residq.models.arch import Architecture, decoder_layers, get_submodule, set_submodule
from residq.transforms.hadamard import hadamard_transform, rotation_matrix


class RotationUnsupportedError(ValueError):
    """The architecture cannot be rotated exactly."""


class HadamardInputLinear(nn.Linear):
    """``nn.Linear`` whose input first goes through the online Hadamard: ``(x H) Wᵀ + b``."""

    input_hadamard = True

    def transform_input(self, x: torch.Tensor) -> torch.Tensor:
        return hadamard_transform(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform_input(x), self.weight, self.bias)


def _set_weight(linear: nn.Module, value: torch.Tensor) -> None:
    linear.weight.data = value.to(dtype=linear.weight.dtype, device=linear.weight.device).contiguous()


def _fold_norm(norm: nn.Module, readers: list[nn.Module], plus_one: bool) -> None:
    """``W ← W diag(w)`` for every reader, then ``w ← 1`` (``0`` for Gemma's ``1 + w``)."""
    w = norm.weight.detach().double()
    scale = (1.0 + w) if plus_one else w
    for linear in readers:
        _set_weight(linear, linear.weight.detach().double() * scale.to(linear.weight.device))
    norm.weight.data = (torch.zeros_like(norm.weight) if plus_one else torch.ones_like(norm.weight))


def _rotate_readers(readers: list[nn.Module], R: torch.Tensor) -> None:
    for linear in readers:
        _set_weight(linear, linear.weight.detach().double() @ R.to(linear.weight.device))


def _rotate_writer(linear: nn.Module, R: torch.Tensor) -> None:
    R = R.to(linear.weight.device)
    _set_weight(linear, R.T @ linear.weight.detach().double())
    if linear.bias is not None:
        linear.bias.data = (linear.bias.detach().double() @ R).to(linear.bias.dtype)


def _untie_lm_head(model: nn.Module, arch: Architecture) -> nn.Module:
    head = get_submodule(model, arch.lm_head_path)
    embed = get_submodule(model, arch.embed_path)
    if head.weight is embed.weight or head.weight.data_ptr() == embed.weight.data_ptr():
        head.weight = nn.Parameter(embed.weight.detach().clone())
        model.config.tie_word_embeddings = False
    return head


def _online_hadamard_down(block: nn.Module, path: str) -> None:
    down = get_submodule(block, path)
    rotated = HadamardInputLinear(down.in_features, down.out_features, bias=down.bias is not None,
                                  device=down.weight.device, dtype=down.weight.dtype)
    H = rotation_matrix(down.in_features).to(down.weight.device)
    rotated.weight.data = (down.weight.detach().double() @ H).to(down.weight.dtype)
    if down.bias is not None:
        rotated.bias.data = down.bias.detach().clone()
    set_submodule(block, path, rotated)


@torch.no_grad()
def rotate_model(model: nn.Module, arch: Architecture, seed: int = 0) -> None:
    """Fold norms, rotate the residual stream and add the online down_proj Hadamard, in place."""
    if arch.sandwich_norms:
        raise RotationUnsupportedError(
            f"QuaRot rotation is not supported for {arch.family}: its sandwich norms normalize each "
            "sublayer output before the residual add, which no diagonal fold can rotate exactly; "
            "use a recipe without the 'rotate' transform (e.g. ARCQuant or SmoothQuant)")
    groups = {g.name: g for g in arch.groups}
    head = _untie_lm_head(model, arch)
    embed = get_submodule(model, arch.embed_path)
    R = rotation_matrix(embed.weight.shape[1], seed)
    _fold_norm(get_submodule(model, arch.final_norm_path), [head], arch.norm_plus_one)
    _rotate_readers([head], R)
    embed.weight.data = (embed.weight.detach().double() @ R.to(embed.weight.device)).to(embed.weight.dtype)
    for block in decoder_layers(model, arch):
        for reader_group, writer_group in (("attn_in", "attn_out"), ("mlp_in", "mlp_out")):
            group = groups[reader_group]
            readers = [get_submodule(block, p) for p in group.linears]
            _fold_norm(get_submodule(block, group.producer), readers, arch.norm_plus_one)
            _rotate_readers(readers, R)
            for path in groups[writer_group].linears:
                _rotate_writer(get_submodule(block, path), R)
        _online_hadamard_down(block, groups["mlp_out"].linears[0])


def _model_transform(model: nn.Module, arch: Architecture, recipe) -> None:
    rotate_model(model, arch, recipe.seed)


MODEL_TRANSFORM = _model_transform
