"""Recipes: frozen, validated descriptions of one quantization run.

A recipe is an ordered list of function-preserving transforms, one weight method, a weight
format and an optional activation format, plus the method's options as flat fields (so that
``--set rank=32`` maps one-to-one onto a field). Recipes load from preset names, YAML or JSON
files, and plain dicts; ``with_overrides`` applies ``key=value`` strings.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from residq.formats.spec import FormatSpec

METHODS = ("rtn", "gptq", "awq", "svdquant", "arhq", "arcquant", "atom")
TRANSFORMS = ("smooth", "rotate", "reorder")
RESIDUAL_METHODS = ("rtn", "gptq")


@dataclass(frozen=True)
class Recipe:
    """One quantization run.

    Attributes:
        name: preset or file name, used in reports.
        weight: weight format.
        activation: activation format, or None for weight-only (A16).
        method: the weight method, one of ``METHODS``.
        transforms: ordered transforms applied before the method, from ``TRANSFORMS``.
        ignore: substrings of module names left unquantized (``lm_head`` by default; embeddings
            are never quantized).
        damp: GPTQ dampening, as a fraction of mean(diag H).
        block_size: GPTQ column block size.
        act_order: GPTQ: sweep columns by decreasing diag(H).
        static_groups: GPTQ: fix every group's scales from the unquantized W before the sweep
            (what act-order needs for a deployable layout).
        residual: how low-rank methods quantize ``W - L``: ``gptq`` or ``rtn``.
        rank: low-rank branch rank (int), or ``"adaptive"`` (then ``tau`` decides).
        tau: adaptive rank: largest tail energy fraction dropped.
        rank_budget: global rank budget as a fraction of the model's linear parameters
            (overrides ``rank`` when set).
        ridge: ARHQ ridge factor rho (0 = pure ARHQ).
        lowrank_dtype: storage of low-rank factors: ``float16``, ``bfloat16`` or ``int8``.
        smooth_alpha: SmoothQuant migration strength; None = search by output error.
        eig_floor: ARHQ: eigenvalues of G below ``eig_floor · λ_max`` are raised to it.
        refit: ARHQ branches (also ARCQuant + ARHQ): once ``W - L`` is quantized, refit ``L``
            to the whole layer error ``‖X Wᵀ - Q_x(X) W_qᵀ - X Lᵀ‖²`` from second moments
            (``lowrank.refit_factors``); False keeps the paper's closed form alone.
        rank_plan: per-layer ranks ``((layer name, rank), ...)`` from the global budget planner
            (``models/planning.py``); filled by ``api.quantize`` when ``rank_budget`` is set.
        arc_align: ARCQuant alignment of the augmented channel count.
        arc_fraction: ARCQuant fixed fraction of K (None = the 2^-3 threshold rule).
        arc_select: ARCQuant's choice of ``s`` when ``arc_fraction`` is None: ``rule`` (the
            paper's 2^-3 threshold rule) or ``error`` (chosen by measured output error, see
            ``residq.methods.arcquant.select_by_output_error``).
        arc_weight: ARCQuant's weight quantizer on the reordered weight: ``rtn`` or ``gptq``
            (GPTQ on the Hessian of the deployed two-stage activations).
        atom_outliers: Atom: number of INT8 outlier channels.
        awq_grid: AWQ: number of alpha values searched in [0, 1].
        seed: random seed for calibration sampling and random rotations.
        description: one line for humans.
    """

    name: str = "custom"
    weight: FormatSpec = field(default_factory=lambda: FormatSpec(kind="nvfp4"))
    activation: FormatSpec | None = None
    method: str = "rtn"
    transforms: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ("lm_head",)
    damp: float = 0.01
    block_size: int = 128
    act_order: bool = False
    static_groups: bool = False
    residual: str = "gptq"
    rank: int | str = 0
    tau: float = 0.05
    rank_budget: float | None = None
    ridge: float = 0.0
    lowrank_dtype: str = "float16"
    smooth_alpha: float | None = 0.5
    eig_floor: float = 1e-6
    refit: bool = False
    rank_plan: tuple[tuple[str, int], ...] = ()
    arc_align: int = 16
    arc_fraction: float | None = None
    arc_select: str = "rule"
    arc_weight: str = "rtn"
    atom_outliers: int = 128
    awq_grid: int = 20
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}{_suggest(self.method, METHODS)}")
        for t in self.transforms:
            if t not in TRANSFORMS:
                raise ValueError(f"unknown transform {t!r}{_suggest(t, TRANSFORMS)}")
        if self.residual not in RESIDUAL_METHODS:
            raise ValueError(f"residual must be one of {RESIDUAL_METHODS}, got {self.residual!r}")
        if not 0 <= self.damp < 1:
            raise ValueError(f"damp must be in [0, 1), got {self.damp}")
        if self.block_size < 1:
            raise ValueError(f"block_size must be positive, got {self.block_size}")
        if not (self.rank == "adaptive" or (isinstance(self.rank, int) and self.rank >= 0)):
            raise ValueError(f"rank must be a non-negative int or 'adaptive', got {self.rank!r}")
        if not 0 < self.tau < 1:
            raise ValueError(f"tau must be in (0, 1), got {self.tau}")
        if self.rank_budget is not None and not 0 < self.rank_budget < 1:
            raise ValueError(f"rank_budget must be in (0, 1), got {self.rank_budget}")
        if self.lowrank_dtype not in ("float16", "bfloat16", "int8"):
            raise ValueError(f"lowrank_dtype must be float16, bfloat16 or int8, got {self.lowrank_dtype!r}")
        if not 0 < self.eig_floor < 1:
            raise ValueError(f"eig_floor must be in (0, 1), got {self.eig_floor}")
        if self.smooth_alpha is not None and not 0 <= self.smooth_alpha <= 1:
            raise ValueError(f"smooth_alpha must be in [0, 1] or None, got {self.smooth_alpha}")
        if self.arc_align < 1:
            raise ValueError(f"arc_align must be positive, got {self.arc_align}")
        if self.arc_fraction is not None and not 0 <= self.arc_fraction <= 1:
            raise ValueError(f"arc_fraction must be in [0, 1] or None, got {self.arc_fraction}")
        if self.arc_select not in ("rule", "error"):
            raise ValueError(f"arc_select must be 'rule' or 'error', got {self.arc_select!r}")
        if self.arc_weight not in ("rtn", "gptq"):
            raise ValueError(f"arc_weight must be 'rtn' or 'gptq', got {self.arc_weight!r}")

    @property
    def weight_only(self) -> bool:
        return self.activation is None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["transforms"] = list(self.transforms)
        out["ignore"] = list(self.ignore)
        out["rank_plan"] = [list(item) for item in self.rank_plan]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "recipe") -> Recipe:
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"{source}: unknown recipe field {key!r}{_suggest(key, known)}")
            if key in ("weight", "activation"):
                value = _format_from(value, f"{source}: {key}")
            elif key in ("transforms", "ignore"):
                value = tuple(value)
            elif key == "rank_plan":
                value = tuple((str(name), int(rank)) for name, rank in value)
            kwargs[key] = value
        return cls(**kwargs)

    def with_overrides(self, assignments: list[str] | tuple[str, ...]) -> Recipe:
        """Apply ``key=value`` strings; ``weight.group_size=64`` reaches into a format."""
        data = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise ValueError(f"--set expects key=value, got {item!r}")
            key, raw = item.split("=", 1)
            key = key.strip()
            value = _parse_value(raw.strip())
            if "." in key:
                outer, inner = key.split(".", 1)
                if outer not in ("weight", "activation") or data.get(outer) is None:
                    raise ValueError(f"--set {key}: only weight.* and activation.* are nested")
                fmt_fields = {f.name for f in fields(FormatSpec)}
                if inner not in fmt_fields:
                    raise ValueError(f"--set {key}: unknown format field{_suggest(inner, fmt_fields)}")
                data[outer] = {**data[outer], inner: value}
            else:
                if key not in data:
                    raise ValueError(f"unknown recipe field {key!r}{_suggest(key, data)}")
                if key in ("transforms", "ignore") and isinstance(value, str):
                    value = [v for v in value.split(",") if v]
                data[key] = value
        return Recipe.from_dict(data, source="--set")


def _format_from(value: Any, where: str) -> FormatSpec | None:
    if value is None or isinstance(value, FormatSpec):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping of format fields, got {value!r}")  # noqa: TRY004 - a recipe file's value error
    known = {f.name for f in fields(FormatSpec)}
    for key in value:
        if key not in known:
            raise ValueError(f"{where}: unknown format field {key!r}{_suggest(key, known)}")
    return FormatSpec(**value)


def _parse_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            continue
    return raw


def _suggest(name: str, choices) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of {sorted(map(str, choices))}"


def load_recipe(name_or_file: str | Path) -> Recipe:
    """A preset name, or a ``.yaml``/``.yml``/``.json`` file holding recipe fields."""
    from residq.presets import PRESETS

    text = str(name_or_file)
    if text in PRESETS:
        return PRESETS[text]
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        if not path.is_file():
            raise FileNotFoundError(f"recipe file {path} does not exist")
        raw = path.read_text()
        if path.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            import yaml

            data = yaml.safe_load(raw)
        if not isinstance(data, dict):
            raise ValueError(f"recipe file {path}: expected a mapping at the top level")
        data.setdefault("name", path.stem)
        return Recipe.from_dict(data, source=str(path))
    raise ValueError(f"unknown recipe {text!r}{_suggest(text, PRESETS)} (or pass a .yaml/.json file)")
