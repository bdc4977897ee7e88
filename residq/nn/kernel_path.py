"""Which ``QuantLinear`` layers run on the Triton kernels, and how.

On CUDA with bf16/fp16 inputs and Triton available, a layer takes a fused kernel when its
layout is one the kernels implement (``residq.kernels.dispatch``):

* weight-only NVFP4, MXFP4 or symmetric INT4 group-128 -> ``w4a16_linear``;
* the same format for weights and activations (W4A4, emulated: bf16 tensor cores on
  dequantized operands), with ARCQuant's channel order and augmented channels and an ARHQ
  16-bit low-rank branch -> ``w4a4_linear``.

Everything else (CPU, float32, Atom's mixed precision, online Hadamard, int8 low-rank factors,
ragged K, W8A8) returns None and the caller uses the reference path. Set
``QuantLinear.use_kernels = False`` (class or instance) to force the reference path.
"""

from __future__ import annotations

import torch

from residq.formats.spec import FormatSpec

_BLOCK = {"nvfp4": 16, "mxfp4": 32, "int4": 128}


def kernel_format(spec: FormatSpec) -> str | None:
    """The kernels' name for ``spec``, or None when no kernel implements it."""
    if spec.kind in ("nvfp4", "mxfp4"):
        return spec.kind
    if spec.kind == "int" and spec.bits == 4 and spec.symmetric and spec.granularity == "group" \
            and spec.group_size == 128:
        return "int4"
    return None


def _eligible(module, rows: torch.Tensor) -> str | None:
    if not (module.use_kernels and rows.is_cuda and rows.dtype in (torch.bfloat16, torch.float16)):
        return None
    if module.input_hadamard or module.act_outliers or getattr(module, "lowrank_a_scale", None) is not None:
        return None
    fmt = kernel_format(module.weight_spec)
    if fmt is None or module.in_features % _BLOCK[fmt] or module.augmented % _BLOCK[fmt]:
        return None
    if fmt == "mxfp4" and rows.dtype != torch.bfloat16:
        return None
    if module.act_spec is None:
        plain = all(getattr(module, n, None) is None for n in ("input_perm", "input_scale", "lowrank_a"))
        return fmt if plain else None
    return fmt if kernel_format(module.act_spec) == fmt else None


def kernel_forward(module, rows: torch.Tensor) -> torch.Tensor | None:
    """``module``'s output for ``rows`` (N, K) through the kernels, without bias; or None."""
    fmt = _eligible(module, rows)
    if fmt is None:
        return None
    from residq import kernels

    if not kernels.available():
        return None
    packed = {key: getattr(module, f"qweight_{key}") for key in module.packed_keys}
    if module.act_spec is None:
        return kernels.w4a16_linear(rows, packed, fmt, module.out_features, module.in_features)
    perm, scale, lowrank_a, lowrank_b = _input_order_operands(module, rows)
    if scale is not None:  # the kernels gather channels themselves: divide in the input's order
        rows = rows / scale
    lowrank = (lowrank_a, lowrank_b) if lowrank_a is not None else None
    return kernels.w4a4_linear(rows, packed, fmt, getattr(module, "act_global_scale", None), perm,
                               module.augmented, lowrank, lowrank_a_in_input_order=True)


def _input_order_operands(module, rows: torch.Tensor):
    """``(input_perm, input_scale, lowrank_a, lowrank_b)`` as the kernels take them: the channel
    order as int32 on the rows' device (what the channel gather reads), the smoothing scale and
    ARHQ's ``A`` rows in the input's channel order (undoing ``input_perm``), the rest in the
    activations' dtype; None where the layer has none.

    Cached on the module per device, dtype and buffer version (``Tensor._version`` moves on
    every in-place write, ``load_state_dict`` included), so a decode step does not pay an
    argsort, two gathers and three casts per layer: on the H100 that was ~67 us per
    Llama-3-8B-shaped layer at one token, more than the W4A4 GEMM itself.
    """
    names = ("input_perm", "input_scale", "lowrank_a", "lowrank_b")
    buffers = [getattr(module, n, None) for n in names]
    key = (rows.device, rows.dtype, *(None if b is None else (b.data_ptr(), b._version) for b in buffers))
    held = getattr(module, "_kernel_operands", None)
    if held is not None and held[0] == key:
        return held[1]
    perm, scale, a, b = buffers
    inverse = torch.argsort(perm.to(rows.device)) if perm is not None else None

    def input_order(t):
        if t is None:
            return None
        t = t.to(rows.device)
        return (t if inverse is None else t[inverse]).to(rows.dtype).contiguous()

    perm32 = None if perm is None else perm.to(device=rows.device, dtype=torch.int32)
    operands = (perm32, input_order(scale), input_order(a),
                None if b is None else b.to(rows.device, rows.dtype).contiguous())
    module._kernel_operands = (key, operands)
    return operands
