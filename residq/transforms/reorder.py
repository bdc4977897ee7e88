"""Channel reordering by calibration range (Atom, Zhao et al. 2023; ARCQuant, arXiv 2601.07475).

Per distinct layer input (q/k/v share one, gate/up share one: they share one ``InputStats``),
the input channels are sorted by calibration ``max|X|`` ascending, so the outlier channels come
last and fall into the same quantization blocks. The permutation ``p`` (int64 ``(K,)``) is

* applied offline to the weight's input dimension: ``W_p = W[:, p]``;
* applied online to the activation inside the activation quantizer:
  ``X_p = X[..., p]`` (``QuantizedLayer.input_perm`` / ``QuantLinear.input_perm``).

Since ``X_p W_pᵀ = X Wᵀ``, reordering alone leaves full-precision outputs unchanged; it only
changes which channels share a block scale.

As a recipe transform (``transforms=("reorder",)``) it wraps the weight method: the driver calls
``reordered(handler_fn)`` which permutes the weight and the statistics, runs the method, and
stores the permutation (composed with any the method chose itself). ARCQuant and Atom reorder
on their own, with the same functions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from residq.methods.stats import InputStats


def reorder_permutation(absmax: torch.Tensor) -> torch.Tensor:
    """Ascending order of per-channel calibration ``max|X|``.

    Args:
        absmax: (K,) float per-channel maximum of ``|X|``.

    Returns:
        int64 (K,) permutation ``p``: ``absmax[p]`` is non-decreasing (stable for ties).
    """
    if absmax.dim() != 1:
        raise ValueError(f"absmax must be a (K,) vector, got shape {tuple(absmax.shape)}")
    return torch.sort(absmax.detach().cpu().double(), stable=True).indices.to(torch.int64)


def invert_permutation(perm: torch.Tensor) -> torch.Tensor:
    """``q`` with ``q[perm] = arange(K)`` (int64 (K,))."""
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), dtype=perm.dtype, device=perm.device)
    return inverse


def permute_stats(stats: InputStats, perm: torch.Tensor) -> InputStats:
    """A copy of ``stats`` describing ``X[..., perm]`` (every per-channel quantity permuted).

    The copy shares no tensors that it changes; ``act_quantizer`` is dropped (it acted on
    unpermuted inputs and the copy is never updated).
    """
    stats.require_data()
    out = InputStats(stats.k, name=stats.name, sample_rows=stats.sample_rows, chunk_rows=stats.chunk_rows)
    out.n = stats.n
    dev_perm = perm.to(stats.xtx.device)
    out.xtx = stats.xtx[dev_perm][:, dev_perm]
    out.absmax = stats.absmax[dev_perm]
    out.abssum = stats.abssum[dev_perm]
    for attr in ("residual_gram", "quantized_gram", "cross_gram"):
        value = getattr(stats, attr)
        if value is not None:
            setattr(out, attr, value[dev_perm][:, dev_perm])
    if stats.sample is not None:
        out.sample = stats.sample[:, perm.cpu()]
    return out


def compose_permutations(outer: torch.Tensor, inner: torch.Tensor | None) -> torch.Tensor:
    """The single permutation equal to applying ``outer`` then ``inner``: ``outer[inner]``."""
    return outer if inner is None else outer[inner.to(outer.device)]


def reordered(quantize_layer: Callable) -> Callable:
    """Wrap a method handler so that it runs on channel-reordered weights and statistics.

    The wrapped handler has the handler signature ``(name, weight (M, K), bias, stats, recipe)
    -> QuantizedLayer`` and returns a layer whose ``input_perm`` is the composed order.
    """

    def quantize_reordered(name, weight, bias, stats, recipe):
        perm = reorder_permutation(stats.absmax)
        layer = quantize_layer(name, weight[:, perm.to(weight.device)], bias, permute_stats(stats, perm), recipe)
        # A method's own input_perm / input_scale live in the reordered basis; the layer's
        # forward applies input_perm first, so composing the orders keeps them consistent.
        layer.input_perm = compose_permutations(perm.to(weight.device), layer.input_perm)
        return layer

    return quantize_reordered
