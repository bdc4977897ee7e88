"""GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization
for Generative Pre-trained Transformers", Algorithm 1).

Columns are quantized left to right; each column's rounding error is spread over the columns
not yet quantized through the upper Cholesky factor of ``H⁻¹`` (``H = 2 XᵀX + λI``, with
``λ = damp · mean(diag H)``). Any residq format serves as the grid: a group's scales (INT group
g, NVFP4 16-blocks, MXFP4 32-blocks) are fitted on the *updated* weights when the sweep
reaches the group's first column, so they see the error feedback of earlier columns;
per-channel and per-tensor scales are fitted once up front. NVFP4's global scale is fixed from
the original weight.

Speed. The sweep is sequential in the columns and each column is a few tiny tensor ops, so
the cost is per-op overhead. A lazy batch of ``block_size`` columns (the paper's section 3,
step 2) runs on static buffers (``_BlockSweep``, cached across calls by shape): a column is
rounded by the format's own ``encode_*`` / ``decode_*`` functions against its scale column,
with no generic dispatch, host-device synchronisation or allocation of our own. On CUDA the
column loop between two group fits is recorded once as a CUDA graph and replayed for every
later block of the same shape, when the format's functions allow capture (``_capturable``).
Results are bit-identical to the plain loop on every device.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from residq.formats import fit_scales, nvfp4_global_scale
from residq.formats.fp8 import decode_e4m3, encode_e4m3, fit_fp8_scales
from residq.formats.int import decode_int, encode_int, fit_int_scales
from residq.formats.mxfp4 import decode_mxfp4, encode_mxfp4, fit_mxfp4_scales
from residq.formats.nvfp4 import decode_nvfp4, encode_nvfp4, fit_nvfp4_scales
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
    W = W.detach().to(torch.float32).clone()
    H = H.detach().to(torch.float64).clone()
    global_scale = nvfp4_global_scale(W) if spec.kind == "nvfp4" else None

    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0

    table = _ScaleTable(W, spec, global_scale, fit_during_sweep=not (static_groups or act_order))
    if act_order:
        order = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, order], H[order][:, order]
    else:
        order = torch.arange(K, device=W.device)
    Hinv = _inverse_cholesky_upper(H, damp).to(torch.float32)

    codes = torch.empty(M, K, dtype=_code_dtype(spec), device=W.device)
    with torch.cuda.device(W.device) if W.is_cuda else contextlib.nullcontext():
        for i1 in range(0, K, block_size):
            i2 = min(i1 + block_size, K)
            Err1 = _sweep_block(W, Hinv, order, i1, i2, table, codes)
            W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return table.build(codes)


def _sweep_block(
    W: torch.Tensor,
    Hinv: torch.Tensor,
    order: torch.Tensor,
    i1: int,
    i2: int,
    table: _ScaleTable,
    codes: torch.Tensor,
) -> torch.Tensor:
    """Quantize sweep positions ``[i1, i2)``: one lazy batch of GPTQ Algorithm 1.

    Args:
        W: float32 (M, K) in sweep order, updated by every earlier block (read only here).
        Hinv: float32 (K, K) upper Cholesky factor of ``H⁻¹`` in sweep order.
        order: int64 (K,) natural column index of each sweep position.
        table: the scales; groups that open in this block are fitted and stored here.
        codes: (M, K) in natural order; this block's columns are written.

    Returns:
        float32 (M, i2 - i1), valid until the next block: the scaled errors
        ``(w - q) / [H⁻¹]_ii`` for the lazy update of the columns after the block.
    """
    fits = {col - i1: width for col, width in table.groups_opening(i1, i2)}  # in-block start -> width
    extra = max([i1 + start + width - i2 for start, width in fits.items()] + [0])
    sweep = _block_sweep(W.device, W.shape[0], table.rows, i2 - i1, extra, tuple(fits), table.spec)
    sweep.load(W[:, i1 : i2 + extra], Hinv[i1:i2, i1:i2], table, order[i1:i2])
    for start, stop in sweep.segments:
        if start in fits:
            table.store(i1 + start, *sweep.fit(start, fits[start]))
        sweep.run(start, stop)
    codes.index_copy_(1, order[i1:i2], sweep.codes)
    return sweep.Err1


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


def _code_dtype(spec: FormatSpec) -> torch.dtype:
    """dtype of ``QuantizedTensor.codes`` for ``spec`` (int8 only for symmetric INT)."""
    return torch.int8 if spec.kind == "int" and spec.symmetric else torch.uint8


class _ScaleTable:
    """Scales (and zero points) of one weight, float32 (M, n_groups); (1,) per tensor.

    Groups are fitted up front from ``W``, or, with ``fit_during_sweep`` and a grouped format
    (natural column order), one by one when the sweep reaches their first column.
    """

    def __init__(self, W: torch.Tensor, spec: FormatSpec, global_scale: torch.Tensor | None,
                 fit_during_sweep: bool):
        M, K = W.shape
        self.spec, self.global_scale, self.k = spec, global_scale, K
        group = spec.block_size(K)
        grouped = group < K and not spec.is_per_tensor
        self.group = group if grouped else K
        self.rows = 1 if spec.is_per_tensor else M
        self.dynamic = grouped and fit_during_sweep
        if self.dynamic:
            self.scale = torch.zeros(M, -(-K // group), dtype=torch.float32, device=W.device)
            asymmetric = spec.kind == "int" and not spec.symmetric
            self.zero = torch.zeros_like(self.scale) if asymmetric else None
        else:
            self.scale, self.zero, _ = fit_scales(W, spec, global_scale)

    def groups_opening(self, i1: int, i2: int) -> list[tuple[int, int]]:
        """``(first column, width)`` of the groups fitted during the sweep that open in [i1, i2)."""
        if not self.dynamic:
            return []
        first = -(-i1 // self.group) * self.group
        return [(col, min(self.group, self.k - col)) for col in range(first, i2, self.group)]

    def gather(self, cols: torch.Tensor, scale_out: torch.Tensor, zero_out: torch.Tensor | None) -> None:
        """Scale (and zero) of each natural column in ``cols`` (n,) into (rows, n) buffers."""
        groups = cols // self.group
        torch.index_select(self.scale.reshape(self.rows, -1), 1, groups, out=scale_out)
        if zero_out is not None:
            torch.index_select(self.zero.reshape(self.rows, -1), 1, groups, out=zero_out)

    def store(self, col: int, scale: torch.Tensor, zero: torch.Tensor | None) -> None:
        """Record the (M,) scale and zero point of the group opening at natural column ``col``."""
        self.scale[:, col // self.group] = scale
        if zero is not None:
            self.zero[:, col // self.group] = zero

    def build(self, codes: torch.Tensor) -> QuantizedTensor:
        return QuantizedTensor(codes=codes, scale=self.scale, spec=self.spec,
                               zero=self.zero, global_scale=self.global_scale)


@dataclass(frozen=True)
class _Codec:
    """One format's fit / encode / decode on a single column, bypassing the generic dispatch.

    Attributes:
        fit: float32 blocks (M, 1, width) -> ``(scale, zero)``, float32 (M, 1) each (``zero``
            None unless asymmetric INT); as ``fit_scales`` on one block of ``width`` columns,
            whose zero padding of a ragged block never changes the statistics (``blocks.py``).
        encode: ``(x (M,) float32, scale, zero)`` -> codes (M,) in the ``QuantizedTensor``
            dtype; ``scale`` / ``zero`` are (M,) or (1,) and broadcast.
        decode: ``(codes (M,), scale, zero)`` -> float32 values (M,).
    """

    fit: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
    encode: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    decode: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def _codec(spec: FormatSpec, global_scale: torch.Tensor | None) -> _Codec:
    """The ``residq.formats`` functions that ``fit_scales`` / ``encode`` / ``decode`` route to."""
    if spec.kind == "int":
        return _Codec(
            fit=lambda blocks: fit_int_scales(blocks, spec.bits, spec.symmetric),
            encode=lambda x, scale, zero: encode_int(x, scale, zero, spec.bits),
            decode=decode_int,
        )
    if spec.kind == "fp8":
        return _Codec(
            fit=lambda blocks: (fit_fp8_scales(blocks), None),
            encode=lambda x, scale, zero: encode_e4m3(x, scale),
            decode=lambda codes, scale, zero: decode_e4m3(codes, scale),
        )
    if spec.kind == "nvfp4":
        return _Codec(
            fit=lambda blocks: (fit_nvfp4_scales(blocks, global_scale), None),
            encode=lambda x, scale, zero: encode_nvfp4(x, scale, global_scale),
            decode=lambda codes, scale, zero: decode_nvfp4(codes, scale, global_scale),
        )
    return _Codec(
        fit=lambda blocks: (fit_mxfp4_scales(blocks, spec.mx_exponent), None),
        encode=lambda x, scale, zero: encode_mxfp4(x, scale),
        decode=lambda codes, scale, zero: decode_mxfp4(codes, scale),
    )


def _capturable(spec: FormatSpec) -> bool:
    """Whether the column loop of ``spec`` can be recorded as a CUDA graph.

    Capture forbids host-to-device copies, and ``e2m1_round`` / ``e2m1_values`` (the NVFP4 and
    MXFP4 codes) build their small lookup tensors from Python lists on every call. Once they
    cache them per device, every kind qualifies. (Scale fits, which also copy host scalars in
    ``fit_int_scales`` / ``fit_fp8_scales``, always run outside the graphs.)
    """
    return spec.kind in ("int", "fp8")


class _BlockSweep:
    """Static buffers of one lazy batch of ``n`` columns, and the column loop over them.

    Buffers (float32 unless noted): ``W1`` (M, n + extra), the block's columns followed by the
    ``extra`` columns after it that a group opening in the block reaches into; ``Hinv1`` (n, n);
    ``scale`` / ``zero`` (rows, n), each column's scale (and zero point); ``codes`` (M, n) in
    the ``QuantizedTensor`` dtype; ``Err1`` (M, n); ``g``, NVFP4's global scale (). The column
    loop is cut into ``segments`` ``[start, stop)`` at the in-block group fits (``offsets``);
    each segment runs eagerly once, then, when capturable, as a CUDA graph: replays read and
    write the same buffers.
    """

    def __init__(self, device: torch.device, M: int, rows: int, n: int, extra: int,
                 offsets: tuple[int, ...], spec: FormatSpec):
        def buffer(r: int, c: int, dtype=torch.float32) -> torch.Tensor:
            return torch.zeros(r, c, dtype=dtype, device=device)

        with torch.inference_mode(False):  # usable whatever mode the first caller ran in
            self.W1, self.Hinv1, self.scale = buffer(M, n + extra), buffer(n, n), buffer(rows, n)
            asymmetric = spec.kind == "int" and not spec.symmetric
            self.zero = buffer(rows, n) if asymmetric else None
            self.codes, self.Err1 = buffer(M, n, _code_dtype(spec)), buffer(M, n)
            self.outer = buffer(M, n)  # rank-1 update, narrowed as the block is consumed
            self.g = torch.ones((), device=device) if spec.kind == "nvfp4" else None
        self.n, self.codec = n, _codec(spec, self.g)
        bounds = sorted({0, *offsets, n})
        self.segments = list(itertools.pairwise(bounds))
        self.capturable = device.type == "cuda" and _capturable(spec)
        # The segments' graphs share a memory pool: they replay one at a time and keep no tensor
        # alive between replays.
        self.pool = torch.cuda.graph_pool_handle() if self.capturable else None
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.warm: set[int] = set()

    def load(self, cols: torch.Tensor, Hinv1: torch.Tensor, table: _ScaleTable, natural: torch.Tensor) -> None:
        """Copy in a block: ``cols`` (M, n + extra), ``Hinv1`` (n, n), the scales of the natural
        columns ``natural`` (n,) int64 (groups not fitted yet are filled in by ``fit``)."""
        self.W1.copy_(cols)
        self.Hinv1.copy_(Hinv1)
        table.gather(natural, self.scale, self.zero)
        if self.g is not None:
            self.g.copy_(table.global_scale)

    def fit(self, start: int, width: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fit the group of ``width`` columns opening at ``start`` on the current ``W1``.

        Fills the group's columns of the block's scale buffers; returns (M,) scale and zero.
        """
        scale, zero = self.codec.fit(self.W1[:, start : start + width].unsqueeze(1))
        stop = min(start + width, self.n)
        self.scale[:, start:stop] = scale
        if zero is not None:
            self.zero[:, start:stop] = zero
        return scale[:, 0], None if zero is None else zero[:, 0]

    def run(self, start: int, stop: int) -> None:
        """Columns ``[start, stop)``: eagerly the first time, then from a CUDA graph if possible."""
        if start in self.graphs:
            self.graphs[start].replay()
        elif self.capturable and start in self.warm:
            self.graphs[start] = graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                self._columns(start, stop)
            graph.replay()
        else:
            self._columns(start, stop)
            self.warm.add(start)

    def _columns(self, start: int, stop: int) -> None:
        """GPTQ Algorithm 1's inner loop: round column i, then spread its error over ``W1[:, i:n]``."""
        n, W1, Hinv1 = self.n, self.W1, self.Hinv1
        for i in range(start, stop):
            w, err = W1[:, i], self.Err1[:, i]
            scale, zero = self.scale[:, i], None if self.zero is None else self.zero[:, i]
            c = self.codec.encode(w, scale, zero)
            self.codes[:, i] = c
            torch.sub(w, self.codec.decode(c, scale, zero), out=err)
            err.div_(Hinv1[i, i])
            update = self.outer[:, : n - i]
            torch.mul(err.unsqueeze(1), Hinv1[i, i:], out=update)
            W1[:, i:n] -= update


@functools.lru_cache(maxsize=8)
def _block_sweep(device: torch.device, M: int, rows: int, n: int, extra: int, offsets: tuple[int, ...],
                 spec: FormatSpec) -> _BlockSweep:
    """The ``_BlockSweep`` of a block shape, kept across calls so its CUDA graphs are reused."""
    return _BlockSweep(device, M, rows, n, extra, offsets, spec)


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
