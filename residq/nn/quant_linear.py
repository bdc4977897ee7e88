"""``QuantLinear``: a linear layer that stores packed low-bit weights and emulates their GEMM.

Buffers (all saved in the checkpoint):

* ``qweight_<key>``: the packed weight, one buffer per key of ``residq.formats.pack``
  (codes ``(M, K')`` packed, scales, zero points, NVFP4 global scale); ``K' = K + augmented``.
* ``bias`` ``(M,)``, ``input_perm`` ``(K,)`` int64, ``input_scale`` ``(K,)`` float32,
  ``act_global_scale`` () float32, ``lowrank_a`` ``(K, r)`` and ``lowrank_b`` ``(M, r)``:
  each present only when used. Low-rank factors are float16/bfloat16, or int8 codes with
  per-column float32 scales ``lowrank_a_scale`` / ``lowrank_b_scale`` ``(r,)`` (value =
  code x scale; the branch still computes in the input's dtype).

Forward (reference path, any device): optional online Hadamard on the input (QuaRot's
down_proj, config ``input_hadamard``), ``input_perm``, ``/ input_scale``; dequantize the weight
once (cached per device and dtype), quantize-dequantize the activation (ARCQuant's
``augmented`` residual channels, or Atom's ``act_outliers`` INT8 tail channels), and multiply:
weight-only layers in the input's dtype (fp32 accumulation on CPU and in cuBLAS); layers that
quantize activations in float32 on the exactly dequantized operands, the output rounded once
to the input's dtype (what the kernels compute, up to reduction order). ``layer_config()`` is the JSON-able description that
``from_config`` needs to rebuild an empty module before ``load_state_dict``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from residq.formats import dequantize, pack, unpack
from residq.formats.spec import FormatSpec, QuantizedTensor
from residq.methods.quantized_layer import QuantizedLayer
from residq.nn.activation import quantize_activation
from residq.nn.kernel_path import kernel_forward
from residq.transforms.hadamard import hadamard_transform

_OPTIONAL = ("bias", "input_perm", "input_scale", "act_global_scale", "lowrank_a", "lowrank_b",
             "lowrank_a_scale", "lowrank_b_scale")


class QuantLinear(nn.Module):
    """Packed low-bit linear layer with an optional activation quantizer and low-rank branch."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        weight_spec: FormatSpec,
        act_spec: FormatSpec | None = None,
        augmented: int = 0,
        act_outliers: int = 0,
        input_hadamard: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight_spec = weight_spec
        self.act_spec = act_spec
        self.augmented = augmented
        self.act_outliers = act_outliers  # Atom: INT8 tail channels of the activation
        self.input_hadamard = input_hadamard  # QuaRot: online Hadamard on the input, first
        self.packed_keys: list[str] = []
        self.info: dict = {}
        self._cache: tuple[torch.device, torch.dtype, torch.Tensor] | None = None

    @classmethod
    def from_quantized(cls, layer: QuantizedLayer, in_features: int) -> QuantLinear:
        """Build from a method's result; ``in_features`` is the original K."""
        out_features = layer.weight.codes.shape[0]
        module = cls(in_features, out_features, layer.weight.spec, layer.act_spec, layer.augmented,
                     getattr(layer, "act_outliers", 0))
        for key, value in pack(layer.weight).items():
            module.register_buffer(f"qweight_{key}", value.contiguous())
            module.packed_keys.append(key)
        for name in _OPTIONAL:
            value = getattr(layer, name, None)
            if value is not None:
                module.register_buffer(name, value.detach().contiguous())
        module.info = dict(layer.info)
        return module

    @classmethod
    def from_config(cls, config: dict) -> QuantLinear:
        """An empty module with the buffers ``config`` lists (values come from a state dict)."""
        act = config["act_spec"]
        module = cls(
            config["in_features"], config["out_features"], FormatSpec(**config["weight_spec"]),
            FormatSpec(**act) if act else None, config["augmented"],
            config.get("act_outliers", 0), config.get("input_hadamard", False),
        )
        for name, (shape, dtype) in config["buffers"].items():
            module.register_buffer(name, torch.empty(shape, dtype=getattr(torch, dtype)))
            if name.startswith("qweight_"):
                module.packed_keys.append(name[len("qweight_"):])
        module.info = dict(config.get("info", {}))
        return module

    def layer_config(self) -> dict:
        buffers = {n: (list(b.shape), str(b.dtype).replace("torch.", "")) for n, b in self.named_buffers()}
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "weight_spec": dataclasses.asdict(self.weight_spec),
            "act_spec": dataclasses.asdict(self.act_spec) if self.act_spec else None,
            "augmented": self.augmented,
            "act_outliers": self.act_outliers,
            "input_hadamard": self.input_hadamard,
            "buffers": buffers,
            "info": _jsonable(self.info),
        }

    def quantized_weight(self) -> QuantizedTensor:
        packed = {key: getattr(self, f"qweight_{key}") for key in self.packed_keys}
        shape = (self.out_features, self.in_features + self.augmented)
        return unpack(packed, self.weight_spec, shape)

    def dequantized_weight(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``Q_w(W)`` (M, K') in ``dtype``, cached until the device or dtype changes."""
        if self._cache is None or self._cache[0] != device or self._cache[1] != dtype:
            weight = dequantize(self.quantized_weight()).to(device=device, dtype=dtype)
            self._cache = (device, dtype, weight)
        return self._cache[2]

    def _apply(self, fn, recurse=True):
        self._cache = None
        self._kernel_operands = None  # kernel_path's input-order scale and low-rank factors
        return super()._apply(fn, recurse)

    use_kernels: bool = True  # CUDA + bf16/fp16 + Triton: fused kernels where the layout allows
    # dtype of the reference path's quantized-operand product (W4A4 / W8A8). float64 sums the
    # exact products nearly exactly: a second, equally faithful reference, used to measure how
    # far float32 summation order alone moves a model's perplexity (scripts/kernel_ppl.py).
    reference_product_dtype: torch.dtype = torch.float32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        rows = x.reshape(-1, self.in_features)
        fused = kernel_forward(self, rows)
        if fused is not None:
            if getattr(self, "bias", None) is not None:
                fused = fused + self.bias.to(fused.dtype)
            return fused.reshape(*lead, self.out_features)
        if self.input_hadamard:
            rows = hadamard_transform(rows)
        if getattr(self, "input_perm", None) is not None:
            rows = rows[:, self.input_perm]
        if getattr(self, "input_scale", None) is not None:
            rows = rows / self.input_scale.to(rows.dtype)
        if self.act_spec is None:
            out = rows @ self.dequantized_weight(rows.dtype, rows.device).T
        else:
            # Both operands quantized: multiply the dequantized values in float32 and round the
            # output once, as the W4A4 / W8A8 kernels do (they apply the global and per-token
            # scales after an fp32 accumulation). Rounding ``code x block scale x global scale``
            # to bf16 operands first would add an error no deployed kernel makes.
            operand = quantize_activation(
                rows, self.act_spec, getattr(self, "act_global_scale", None), self.augmented,
                self.act_outliers,
            )
            product = self.reference_product_dtype
            weight = self.dequantized_weight(product, rows.device)
            out = (operand.to(product) @ weight.T).to(rows.dtype)
        if getattr(self, "lowrank_a", None) is not None:
            a = self.lowrank_a.to(rows.dtype)
            b = self.lowrank_b.to(rows.dtype)
            if getattr(self, "lowrank_a_scale", None) is not None:
                a = a * self.lowrank_a_scale.to(rows.dtype)
                b = b * self.lowrank_b_scale.to(rows.dtype)
            out = out + (rows @ a) @ b.T
        if getattr(self, "bias", None) is not None:
            out = out + self.bias.to(out.dtype)
        return out.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        act = self.act_spec.describe() if self.act_spec else "a16"
        rank = self.lowrank_a.shape[1] if getattr(self, "lowrank_a", None) is not None else 0
        return (f"in={self.in_features}, out={self.out_features}, w={self.weight_spec.describe()}, "
                f"x={act}, augmented={self.augmented}, rank={rank}")

    def storage_bytes(self) -> int:
        """Bytes of every buffer (packed weight, scales, branch, bias, ...)."""
        return sum(b.numel() * b.element_size() for b in self.buffers())


def _jsonable(info: dict) -> dict:
    out = {}
    for key, value in info.items():
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        out[key] = value
    return out
