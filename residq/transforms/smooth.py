"""SmoothQuant (Xiao et al. 2022, "SmoothQuant: Accurate and Efficient Post-Training
Quantization for Large Language Models", arXiv 2211.10438, section 4).

Per input group of a block, per input channel j: ``s_j = max|X_j|^α / max|W_j|^(1-α)`` (the
weight range taken over every linear of the group), then ``X' = X diag(s)⁻¹`` and
``W' = W diag(s)``. The division is folded into the op that produces X, so the float model is
unchanged up to round-off:

* ``attn_in`` / ``mlp_in`` (producer: RMSNorm): ``w' = w / s``; Gemma's ``(1 + w)`` norm gets
  ``w' = (1 + w) / s - 1``.
* ``mlp_out`` (producer: ``up_proj``): ``down`` reads ``act(gate) * up`` elementwise, so
  dividing up_proj's output rows by ``s`` is always exact.
* ``attn_out`` (producer: ``v_proj``): o_proj's input channel ``j`` is head
  ``h = j // head_dim``, dimension ``d = j % head_dim``, which attention takes from kv head
  ``h // groups`` (GQA, ``groups = n_heads / n_kv_heads``), dimension d. Softmax weights mix
  tokens, never channels, so scaling v_proj's output row ``kv·head_dim + d`` scales exactly
  the o_proj channels of the ``groups`` query heads sharing that kv head. The fold is therefore
  exact when those channels share one scale: we compute ``s`` per v_proj output channel (act
  and weight ranges maxed over the tied o_proj channels) and repeat it across the group.

α is ``Recipe.smooth_alpha``, or searched (None) over ``ALPHA_GRID`` plus "no smoothing" by
the group's output error ``Σ_linears ‖X Wᵀ - Q_x(X / s) Q_w(W s)ᵀ‖²`` (RTN weights, the
recipe's activation quantizer) on a sample of the calibration rows. A group whose producer is
not one of the above (or whose head mapping is unknown) is left unsmoothed with a warning:
keeping such scales online would need the driver to carry them into
``QuantizedLayer.input_scale``, which no architecture in the table requires.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from residq.formats import dequantize, fake_quantize, quantize
from residq.models.arch import Architecture, InputGroup, get_submodule
from residq.models.capture import BlockInputs, feed_inputs_of
from residq.recipe import Recipe

ALPHA_GRID = tuple(round(0.1 * i, 1) for i in range(11))
SAMPLE_ROWS = 2048
_MIN_RANGE = 1e-5


@torch.no_grad()
def group_activations(block: nn.Module, group: InputGroup, inputs: BlockInputs, kwargs: dict,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``max|X|`` (K,) float32 and a strided sample (≤ 2048, K) float32 of the
    group's input rows, over every calibration chunk."""
    first = get_submodule(block, group.linears[0])
    absmax = torch.zeros(first.in_features, device=device)
    rows: list[torch.Tensor] = []

    def consume(x: torch.Tensor) -> None:
        nonlocal absmax
        x = x.detach().reshape(-1, x.shape[-1]).float()
        absmax = torch.maximum(absmax, x.abs().amax(dim=0))
        rows.append(x)

    feed_inputs_of(first, block, inputs.hidden, kwargs, device, consume)
    sample = torch.cat(rows)
    stride = max(1, sample.shape[0] // SAMPLE_ROWS)
    return absmax, sample[::stride][:SAMPLE_ROWS]


def smooth_scales(act_absmax: torch.Tensor, weight_absmax: torch.Tensor, alpha: float) -> torch.Tensor:
    """``s = max|X|^α / max|W|^(1-α)`` (K,) float32, ranges floored at 1e-5 (SmoothQuant eq. 4)."""
    x = act_absmax.double().clamp_min(_MIN_RANGE)
    w = weight_absmax.double().clamp_min(_MIN_RANGE)
    return (x.pow(alpha) / w.pow(1 - alpha)).clamp_min(_MIN_RANGE).float()


def head_tied_index(o_in: int, head_dim: int, groups: int) -> torch.Tensor:
    """For each o_proj input channel (o_in,), the v_proj output channel it comes from."""
    j = torch.arange(o_in)
    return (j // head_dim // groups) * head_dim + j % head_dim


def _tied_max(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.zeros(size, dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, index.to(values.device), values, reduce="amax", include_self=True)


def _group_error(sample: torch.Tensor, weights: list[torch.Tensor], s: torch.Tensor | None,
                 recipe: Recipe) -> float:
    """``Σ ‖X Wᵀ - Q_x(X/s) Q_w(W s)ᵀ‖²`` over the group's linears (RTN weights)."""
    x_s = sample if s is None else sample / s
    x_q = fake_quantize(x_s, recipe.activation) if recipe.activation is not None else x_s
    total = 0.0
    for w in weights:
        w_s = w if s is None else w * s
        w_q = dequantize(quantize(w_s, recipe.weight))
        total += float((sample @ w.T - x_q @ w_q.T).double().pow(2).sum())
    return total


def choose_scales(act_absmax: torch.Tensor, sample: torch.Tensor, weights: list[torch.Tensor],
                  recipe: Recipe, tie: torch.Tensor | None = None, tied_size: int = 0) -> torch.Tensor | None:
    """The group's smoothing scales (K,), or None when not smoothing is best (search mode).

    With ``tie`` (K,) -> [0, tied_size), scales are computed per tied class (ranges maxed over
    it) and repeated, so that they fold into the producer exactly.
    """
    w_absmax = torch.stack([w.abs().amax(dim=0) for w in weights]).amax(dim=0)
    if tie is not None:
        act_absmax = _tied_max(act_absmax, tie, tied_size)[tie.to(act_absmax.device)]
        w_absmax = _tied_max(w_absmax, tie, tied_size)[tie.to(w_absmax.device)]
    if recipe.smooth_alpha is not None:
        return smooth_scales(act_absmax, w_absmax, recipe.smooth_alpha)
    best, best_err = None, _group_error(sample, weights, None, recipe)
    for alpha in ALPHA_GRID:
        s = smooth_scales(act_absmax, w_absmax, alpha)
        err = _group_error(sample, weights, s, recipe)
        if err < best_err:
            best, best_err = s, err
    return best


@torch.no_grad()
def fold_into_norm(norm: nn.Module, s: torch.Tensor, plus_one: bool) -> None:
    """``norm(x) / s``: ``w / s``, or for Gemma's ``(1 + w)``: ``w' = (1 + w) / s - 1``."""
    w = norm.weight.data.double()
    s64 = s.double().to(w.device)
    new = (1 + w) / s64 - 1 if plus_one else w / s64
    norm.weight.data.copy_(new.to(norm.weight.dtype))


@torch.no_grad()
def fold_into_linear_rows(linear: nn.Linear, s_rows: torch.Tensor) -> None:
    """Divide the producing linear's output rows (and bias) by ``s_rows`` (M,)."""
    s64 = s_rows.double().to(linear.weight.device)
    linear.weight.data.copy_((linear.weight.data.double() / s64.unsqueeze(1)).to(linear.weight.dtype))
    if linear.bias is not None:
        linear.bias.data.copy_((linear.bias.data.double() / s64).to(linear.bias.dtype))


@torch.no_grad()
def scale_input_columns(linear: nn.Linear, s: torch.Tensor) -> None:
    """``W diag(s)`` for a consumer linear (in float64, cast back)."""
    s64 = s.double().to(linear.weight.device)
    linear.weight.data.copy_((linear.weight.data.double() * s64).to(linear.weight.dtype))


def _attention_tie(block: nn.Module, group: InputGroup) -> tuple[torch.Tensor, int] | None:
    """(o-input -> v-output index, v_out) when the attention mapping is known, else None."""
    attn = get_submodule(block, group.linears[0].rpartition(".")[0])
    head_dim = getattr(attn, "head_dim", None)
    groups = getattr(attn, "num_key_value_groups", None)
    producer = get_submodule(block, group.producer)
    o_in = get_submodule(block, group.linears[0]).in_features
    if head_dim is None or groups is None or producer.out_features * groups != o_in:
        return None
    return head_tied_index(o_in, head_dim, groups), producer.out_features


def smooth_group(block: nn.Module, arch: Architecture, group: InputGroup, inputs: BlockInputs,
                 kwargs: dict, recipe: Recipe, device: torch.device) -> bool:
    """Smooth one input group in place; False when its producer cannot absorb the scales."""
    if group.producer is None:
        return False
    linears = [get_submodule(block, p) for p in group.linears]
    producer = get_submodule(block, group.producer)
    tie = None
    if not group.producer_is_norm:
        if group.name == "attn_out":
            tie = _attention_tie(block, group)
            if tie is None:
                return False
        elif producer.out_features != linears[0].in_features:
            return False
    act_absmax, sample = group_activations(block, group, inputs, kwargs, device)
    weights = [lin.weight.detach().float() for lin in linears]
    s = choose_scales(act_absmax, sample, weights, recipe, *(tie or (None, 0)))
    if s is None:
        return True
    if group.producer_is_norm:
        fold_into_norm(producer, s, arch.norm_plus_one)
    elif tie is not None:
        index, size = tie
        s_rows = torch.zeros(size, device=s.device).index_copy(0, index.to(s.device), s)
        fold_into_linear_rows(producer, s_rows)
    else:
        fold_into_linear_rows(producer, s)
    for lin in linears:
        scale_input_columns(lin, s)
    return True


@torch.no_grad()
def smooth_block(block: nn.Module, arch: Architecture, prefix: str, inputs: BlockInputs, kwargs: dict,
                 recipe: Recipe, device: torch.device) -> None:
    """BLOCK_TRANSFORM: smooth every input group of the block, in execution order."""
    for group in arch.groups:
        if not smooth_group(block, arch, group, inputs, kwargs, recipe, device):
            warnings.warn(f"{prefix}: smoothing of {group.name} skipped: its producer "
                          f"{group.producer!r} cannot absorb per-channel scales exactly", stacklevel=2)


BLOCK_TRANSFORM = smooth_block
