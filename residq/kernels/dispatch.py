"""The small API that ``QuantLinear`` calls: fused GPU kernels for quantized linear layers.

Triton is imported only inside these functions, so ``import residq.kernels`` works on machines
without it; call ``available()`` first and fall back to the reference path when it is False.
Inputs may have leading dimensions ``(..., K)``; they are flattened to rows and restored.

Formats: ``"nvfp4"``, ``"mxfp4"``, ``"int4"`` (symmetric, group 128; ``"int4-g128-sym"`` is
accepted too). Packed tensors are dicts laid out as ``residq.formats.pack`` writes them.
"""

from __future__ import annotations

import functools
import importlib.util

import torch

_FORMAT_ALIASES = {"nvfp4": "nvfp4", "mxfp4": "mxfp4", "int4": "int4", "int4-g128-sym": "int4"}


@functools.lru_cache(maxsize=1)
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def available() -> bool:
    """True when CUDA is usable and Triton is importable (the kernels can run). Called on every
    QuantLinear forward, so the package lookup is done once."""
    return torch.cuda.is_available() and _triton_installed()


def _format(fmt: str) -> str:
    if fmt not in _FORMAT_ALIASES:
        raise ValueError(f"unsupported kernel format {fmt!r}; expected one of {sorted(_FORMAT_ALIASES)}")
    return _FORMAT_ALIASES[fmt]


def _rows(x: torch.Tensor, in_features: int) -> torch.Tensor:
    if x.shape[-1] != in_features:
        raise ValueError(f"expected input (..., {in_features}), got {tuple(x.shape)}")
    return x.reshape(-1, in_features)


def quantize_activation(x: torch.Tensor, fmt: str, perm: torch.Tensor | None = None, s: int = 0,
                        global_scale: torch.Tensor | None = None,
                        lowrank_a: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Packed activations of ``x`` ``(..., K)`` flattened to rows; see ``act_quant.launch``.

    ``perm``: channel gather (ARCQuant order); ``s``: ARCQuant residual channels;
    ``global_scale``: static NVFP4 scale (None = dynamic); ``lowrank_a``: ARHQ ``A`` ``(K, r)``,
    adds ``lowrank_xa = X_perm A``.
    """
    from residq.kernels import act_quant

    return act_quant.launch(_rows(x, x.shape[-1]), _format(fmt), perm, s, global_scale, lowrank_a)


def w4a16_linear(x: torch.Tensor, packed: dict[str, torch.Tensor], fmt: str, out_features: int,
                 in_features: int) -> torch.Tensor:
    """``x (..., K) @ W^T`` with a packed 4-bit weight ``(N, K)``; output ``(..., N)``, x's dtype."""
    from residq.kernels import w4a16

    fmt = _format(fmt)
    w4a16.check_packed(packed, fmt, out_features, in_features)
    out = w4a16.launch(_rows(x, in_features), packed, fmt)
    return out.reshape(*x.shape[:-1], out_features)


def w4a4_linear(x: torch.Tensor, w_packed: dict[str, torch.Tensor], fmt: str,
                act_global_scale: torch.Tensor | None = None, perm: torch.Tensor | None = None,
                s: int = 0, lowrank: tuple[torch.Tensor, torch.Tensor] | None = None,
                lowrank_a_in_input_order: bool = False) -> torch.Tensor:
    """W4A4 linear: quantize x (gather, ARCQuant residual, ARHQ ``X A``) then the emulated GEMM.

    Args:
        x: ``(..., K)`` bf16/fp16 activations (before the channel permutation).
        w_packed: packed weight ``(N, K + s)`` (``w4a4.augment_weight`` for ARCQuant), input
            channels already in ``perm`` order.
        fmt: ``nvfp4``, ``mxfp4`` or ``int4``.
        act_global_scale: static NVFP4 activation scale, or None for dynamic.
        perm: int64 ``(K,)`` channel order, or None.
        s: ARCQuant residual channels (a multiple of the format's block).
        lowrank: ARHQ ``(A (K, r), B (N, r))``, A in ``perm`` order (in x's own channel order
            with ``lowrank_a_in_input_order``: then no gather per call); adds ``(X A) B^T``.

    Returns:
        ``(..., N)`` in x's dtype.
    """
    from residq.kernels import w4a4

    fmt = _format(fmt)
    k = x.shape[-1]
    rows = _rows(x, k)
    lowrank_a, lowrank_b = lowrank if lowrank is not None else (None, None)
    xq = quantize_activation(rows, fmt, perm, s, act_global_scale)
    xa = None
    if lowrank_a is not None:
        # X_perm A = X A[argsort(perm)]: one cuBLAS product on the unpermuted rows. The quantizer
        # can fuse X A into its read of X (act_quant.launch(lowrank_a=...)), but its one program
        # per row tile runs at about 0.12 of copy bandwidth (benchmarks/README.md): slower.
        in_order = lowrank_a_in_input_order or perm is None
        a = lowrank_a if in_order else lowrank_a[torch.argsort(perm.to(lowrank_a.device))]
        xa = rows @ a.to(device=rows.device, dtype=rows.dtype)
    out = w4a4.launch(xq, w_packed, fmt, s=s, lowrank_xa=xa, lowrank_b=lowrank_b, out_dtype=x.dtype)
    return out.reshape(*x.shape[:-1], out.shape[-1])


def w8a8_linear(x: torch.Tensor, w_codes: torch.Tensor, w_scale: torch.Tensor, kind: str = "fp8",
                fast_accum: bool = False) -> torch.Tensor:
    """W8A8 linear (``kind`` ``fp8`` or ``int8``): per-token x, per-channel weight ``(N, K)``."""
    from residq.kernels import w8a8

    out = w8a8.launch(_rows(x, x.shape[-1]), w_codes, w_scale, kind, fast_accum)
    return out.reshape(*x.shape[:-1], w_codes.shape[0])
