"""GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization
for Generative Pre-trained Transformers", Algorithm 1).

Columns are quantized left to right; each column's rounding error is spread over the columns
not yet quantized through the upper Cholesky factor of ``H⁻¹`` (``H = 2 XᵀX + λI``, with
``λ = damp · mean(diag H)``). Any residq format serves as the grid: a group's scales (INT group
g, NVFP4 16-blocks, MXFP4 32-blocks) are fitted on the *updated* weights when the sweep
reaches the group's first column, so they see the error feedback of earlier columns;
per-channel and per-tensor scales are fitted once up front. NVFP4's global scale is fixed from
the original weight.
"""

from __future__ import annotations

import torch

from residq.formats import decode, encode, fit_scales, nvfp4_global_scale
from residq.formats.spec import FormatSpec, QuantizedTensor


def gptq_quantize(
    W: torch.Tensor,
    H: torch.Tensor,
    spec: FormatSpec,
    damp: float = 0.01,
    block_size: int = 128,
    act_order: bool = False,
    static_groups: bool = False,
) -> QuantizedTensor:
    """Quantize ``W`` (M, K) under the input second moment ``H`` (K, K).

    Args:
        W: float weight (M, K); not modified.
        H: ``XᵀX`` or ``2XᵀX`` (K, K), any float dtype (float64 recommended).
        spec: the grid.
        damp: relative dampening λ / mean(diag H).
        block_size: columns per lazy-batch block (the paper's B = 128).
        act_order: quantize columns in order of decreasing diag(H). Group scales are then
            fitted from the original weight before the sweep (static groups) so the stored
            layout stays in natural column order.
        static_groups: fit every group's scales from the original weight up front.

    Returns:
        QuantizedTensor with codes (M, K) in natural column order.
    """
    M, K = W.shape
    device = W.device
    W = W.detach().to(torch.float32).clone()
    H = H.detach().to(torch.float64).clone()
    global_scale = nvfp4_global_scale(W) if spec.kind == "nvfp4" else None
    group = spec.block_size(K)
    grouped = group < K and not spec.is_per_tensor

    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0

    scales = _ScaleTable(W, spec, global_scale, group, grouped)
    if not grouped or static_groups or act_order:
        scales.fit_all(W)

    perm = torch.argsort(torch.diag(H), descending=True) if act_order else torch.arange(K, device=device)
    W = W[:, perm]
    H = H[perm][:, perm]
    Hinv = _inverse_cholesky_upper(H, damp).to(torch.float32)

    codes = torch.zeros(M, K, dtype=torch.int16, device=device)
    for i1 in range(0, K, block_size):
        i2 = min(i1 + block_size, K)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = int(perm[i1 + i])
            if grouped and not scales.fitted(col):
                # Natural order without act-order: the group starts here; fit on updated W.
                scales.fit_group(W1[:, i:], W[:, i2:], col)
            w = W1[:, i]
            c, q = scales.round_column(w, col)
            codes[:, col] = c.to(torch.int16)
            err = (w - q) / Hinv1[i, i]
            W1[:, i:] -= err.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return scales.build(codes)


def _inverse_cholesky_upper(H: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of ``(H + λI)⁻¹`` (K, K) float64, retrying with more damping."""
    K = H.shape[0]
    mean_diag = torch.diag(H).mean()
    eye = torch.eye(K, dtype=H.dtype, device=H.device)
    for factor in (1.0, 10.0, 100.0):
        L, info = torch.linalg.cholesky_ex(H + damp * factor * mean_diag * eye)
        if int(info) == 0:
            Hinv = torch.cholesky_inverse(L)
            U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
            if int(info) == 0:
                return U
    raise ValueError("GPTQ: the Hessian is not positive definite even after 100x dampening")


class _ScaleTable:
    """Per-group scales of one weight, filled group by group during the sweep."""

    def __init__(self, W: torch.Tensor, spec: FormatSpec, global_scale, group: int, grouped: bool):
        self.spec, self.global_scale, self.group, self.grouped = spec, global_scale, group, grouped
        K = W.shape[1]
        self.k = K
        self.n_groups = -(-K // group) if grouped else 1
        self.scale: torch.Tensor | None = None
        self.zero: torch.Tensor | None = None
        self.done = torch.zeros(self.n_groups, dtype=torch.bool)

    def _store(self, g: int, scale: torch.Tensor, zero: torch.Tensor | None) -> None:
        if self.scale is None:
            shape = (scale.shape[0], self.n_groups)
            self.scale = torch.zeros(shape, dtype=scale.dtype, device=scale.device)
            self.zero = torch.zeros(shape, dtype=zero.dtype, device=zero.device) if zero is not None else None
        self.scale[:, g] = scale[:, 0]
        if zero is not None:
            self.zero[:, g] = zero[:, 0]
        self.done[g] = True

    def fit_all(self, W: torch.Tensor) -> None:
        scale, zero, _ = fit_scales(W, self.spec, self.global_scale)
        if not self.grouped:
            self.scale, self.zero = scale, zero
            self.done[:] = True
            return
        for g in range(self.n_groups):
            self._store(g, scale[:, g : g + 1], None if zero is None else zero[:, g : g + 1])

    def fitted(self, col: int) -> bool:
        return bool(self.done[col // self.group])

    def fit_group(self, block_rest: torch.Tensor, after_block: torch.Tensor, col: int) -> None:
        """Fit the group starting at ``col`` on the current (error-updated) weights."""
        g = col // self.group
        width = min(self.group, self.k - col)
        if width <= block_rest.shape[1]:
            cols = block_rest[:, :width]
        else:
            cols = torch.cat([block_rest, after_block[:, : width - block_rest.shape[1]]], dim=1)
        scale, zero, _ = fit_scales(cols, _single_block(self.spec, width), self.global_scale)
        self._store(g, scale[:, :1], None if zero is None else zero[:, :1])

    def _column_params(self, col: int):
        if not self.grouped:
            return self.scale, self.zero
        g = col // self.group
        zero = None if self.zero is None else self.zero[:, g : g + 1]
        return self.scale[:, g : g + 1], zero

    def round_column(self, w: torch.Tensor, col: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes and dequantized values (M,) of one column under its group's scales."""
        scale, zero = self._column_params(col)
        x = w.unsqueeze(1)
        c = encode(x, scale, zero, self.global_scale, self.spec)
        q = decode(c, scale, zero, self.global_scale, self.spec)
        return c[:, 0], q[:, 0].to(w.dtype)

    def build(self, codes: torch.Tensor) -> QuantizedTensor:
        dtype = torch.uint8 if self.spec.kind in ("nvfp4", "mxfp4", "fp8") else torch.int8
        if self.spec.kind == "int" and not self.spec.symmetric:
            dtype = torch.uint8
        return QuantizedTensor(codes=codes.to(dtype), scale=self.scale, spec=self.spec,
                               zero=self.zero, global_scale=self.global_scale)


def _single_block(spec: FormatSpec, width: int) -> FormatSpec:
    """The same format with one block spanning ``width`` columns (for fitting one group)."""
    if spec.kind in ("nvfp4", "mxfp4"):
        return spec
    from dataclasses import replace

    return replace(spec, granularity="group", group_size=max(width, 1))


def quantize_layer_gptq(name, weight, bias, stats, recipe):
    """Method handler: GPTQ weights on the layer's input Hessian, the recipe's activations.

    Args are those of every handler: ``(name: str, weight: (M, K) float, bias: (M,) | None,
    stats: InputStats, recipe: Recipe) -> QuantizedLayer``.
    """
    from residq.methods.quantized_layer import QuantizedLayer

    qweight = gptq_quantize(weight, stats.hessian, recipe.weight, damp=recipe.damp,
                            block_size=recipe.block_size, act_order=recipe.act_order,
                            static_groups=recipe.static_groups)
    return QuantizedLayer(weight=qweight, bias=bias, act_spec=recipe.activation)


def _handler():
    from residq.methods.registry import MethodHandler

    return MethodHandler(quantize_layer_gptq)


HANDLER = _handler()
