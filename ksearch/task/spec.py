"""The Task contract as pydantic models: what `configs/tasks/<name>/task.yaml` may say.

Field-level problems (a missing field, a wrong type, an unknown generator kind) are pydantic
validation errors that `load.py` turns into one-line `TaskError`s. Cross-field problems (a shape
using an undeclared axis, a workload missing a var axis, a formula reading an unknown name) are
raised as `TaskError` directly from the model validator, which pydantic lets through unchanged.

This module does not import torch: listing and describing tasks stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ksearch.errors import TaskError
from ksearch.evidence import BUILTIN_LANGUAGES, known_languages
from ksearch.task.formula import Formula, Number, parse_formula

# Bytes per element of every dtype a task may name (torch spelling).
DTYPE_ITEMSIZE: Mapping[str, int] = MappingProxyType(
    {
        "float64": 8,
        "float32": 4,
        "float16": 2,
        "bfloat16": 2,
        "float8_e4m3fn": 1,
        "float8_e5m2": 1,
        "int64": 8,
        "int32": 4,
        "int16": 2,
        "int8": 1,
        "uint8": 1,
        "bool": 1,
    }
)
FLOAT_DTYPES = frozenset({"float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2"})
# Largest finite value of each floating dtype (torch.finfo(...).max, without importing torch).
FLOAT_MAX: Mapping[str, float] = MappingProxyType(
    {
        "float64": 1.7976931348623157e308,
        "float32": 3.4028234663852886e38,
        "float16": 65504.0,
        "bfloat16": 3.3895313892515355e38,
        "float8_e4m3fn": 448.0,
        "float8_e5m2": 57344.0,
    }
)
INT_DTYPES = frozenset({"int64", "int32", "int16", "int8", "uint8"})

# A tensor whose dtype is this placeholder takes the dtype variant chosen for the run.
DTYPE_VARIANT = "$dtype"

LANGUAGES = BUILTIN_LANGUAGES  # what an imported task lists; a task may name a plugin's too

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TASK_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_WORKLOAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENTRY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$")


class _Strict(BaseModel):
    # Typos in a hand-written task file must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------------------------------------
# Axes


class AxisSpec(_Strict):
    """A named dimension: `const` with a fixed value, or `var` with a value per workload."""

    kind: Literal["const", "var"]
    value: int | None = Field(default=None, ge=1)
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `M: var` and `D: 128` are accepted as short forms of the full mapping.
        if data == "var":
            return {"kind": "var"}
        if isinstance(data, int) and not isinstance(data, bool):
            return {"kind": "const", "value": data}
        return data

    @model_validator(mode="after")
    def _value_matches_kind(self) -> AxisSpec:
        if self.kind == "const" and self.value is None:
            raise ValueError("a const axis needs a value, e.g. {kind: const, value: 128}")
        if self.kind == "var" and self.value is not None:
            raise ValueError("a var axis takes its value from each workload; remove 'value' or make it const")
        return self


# ---------------------------------------------------------------------------------------------
# Input generators (one per `kind`)


class RowFeatures(_Strict):
    """Row-level features any floating-point generator may add to its draws; all off by default.

    A row is one vector along the last dim (a token's hidden state, a logit row, one key); a
    column is one position along it (a channel). They put in the values a careless kernel gets
    wrong and a clipped random draw never reaches: logits far from 0, massive activations, rows
    of zeros and constant rows. Applied after the base draw, in this order: row offsets, column
    offsets, massive values, constant rows, zero rows.

    Which rows are zero, constant or massive depends on the tensor's shape only (not on the seed),
    so inputs of one shape under one distribution put them at the same rows (in x + residual, a row
    zero in both is zero). Zero and constant rows always leave at least one row that is neither (a
    one-row tensor has none); massive rows are taken from the rows left.
    """

    # every row shifted by its own +-U(0.5, 1) * row_offset (softmax logits far from 0)
    row_offset: float = Field(default=0.0, ge=0)
    # every column shifted by its own +-U(0.5, 1) * column_offset, the same in every row (a
    # per-channel mean: a key bias, activations with a nonzero channel mean)
    column_offset: float = Field(default=0.0, ge=0)
    # massive activations (Sun et al. 2024): in `massive_rows` rows (tokens), the same
    # `massive_channels` channels take +-values log-uniform in [low, high]
    massive: tuple[float, float] | None = None
    massive_rows: int = Field(default=1, ge=1)
    massive_channels: int = Field(default=1, ge=1)
    # rows of zeros (an RMSNorm of a zero row is 0: eps keeps it finite; softmax gives 1/N)
    zero_rows: int = Field(default=0, ge=0)
    # rows whose every element is the row's first draw (RMSNorm gives +-weight, softmax 1/N)
    constant_rows: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _massive_consistent(self) -> RowFeatures:
        if self.massive is None:
            stray = sorted({"massive_rows", "massive_channels"} & self.model_fields_set)
            if stray:
                raise ValueError(
                    f"{stray[0]} is set but massive is not; add massive: [low, high] (magnitudes)"
                )
        elif not 0 < self.massive[0] <= self.massive[1]:
            raise ValueError(f"massive needs 0 < low <= high, got {list(self.massive)}")
        return self


class NormalGen(RowFeatures):
    """Gaussian values: mean + std * N(0, 1)."""

    kind: Literal["normal"]
    mean: float = 0.0
    std: float = Field(default=1.0, ge=0)
    clip: float | None = Field(default=None, gt=0)


class UniformGen(RowFeatures):
    """Uniform values in [low, high)."""

    kind: Literal["uniform"]
    low: float = -1.0
    high: float = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> UniformGen:
        if self.high <= self.low:
            raise ValueError(f"uniform needs low < high, got low={self.low} high={self.high}")
        return self


class StudentTGen(RowFeatures):
    """Heavy-tailed values: scale * Student-t(df); small df gives heavy tails (df=3: infinite kurtosis)."""

    kind: Literal["student_t"]
    df: int = Field(default=3, ge=1, le=30)
    scale: float = Field(default=1.0, gt=0)
    clip: float | None = Field(default=None, gt=0)


class OutliersGen(RowFeatures):
    """std * N(0, 1) with max(1, round(fraction * numel)) elements replaced by +-magnitude * U(0.5, 1.5),
    like the rare large activations of LLMs."""

    kind: Literal["outliers"]
    std: float = Field(default=1.0, ge=0)
    fraction: float = Field(default=1e-3, gt=0, lt=1)
    magnitude: float = Field(default=64.0, gt=0)


class ChannelOutliersGen(RowFeatures):
    """std * N(0, 1) with `channels` columns of the last dim scaled by `magnitude` (LLM.int8-style
    outlier features concentrate in a few hidden channels)."""

    kind: Literal["channel_outliers"]
    std: float = Field(default=1.0, ge=0)
    channels: int = Field(default=4, ge=1)
    magnitude: float = Field(default=16.0, gt=0)


class HotColumnsGen(RowFeatures):
    """std * N(0, 1) plus a per-column bias strength / rank**exponent over a random ranking of the last
    dim: a few columns (e.g. experts) win systematically, with zipf-like popularity."""

    kind: Literal["hot_columns"]
    std: float = Field(default=1.0, ge=0)
    strength: float = Field(default=4.0, gt=0)
    exponent: float = Field(default=1.2, gt=0)


class ZipfGen(_Strict):
    """Integer indices in [0, high) with P(k-th most popular) proportional to 1/k**exponent;
    `high` is an int or a formula over the axes (e.g. E)."""

    kind: Literal["zipf"]
    high: int | str
    exponent: float = Field(default=1.1, gt=0)
    permute: bool = True  # shuffle which index is hot so kernels cannot assume index 0 is


class RandintGen(_Strict):
    """Integers uniform in [low, high); bounds are ints or formulas over the axes."""

    kind: Literal["randint"]
    low: int | str = 0
    high: int | str


class BernoulliGen(_Strict):
    """Masks: 1/True with probability p."""

    kind: Literal["bernoulli"]
    p: float = Field(default=0.5, ge=0, le=1)


class ConstantGen(_Strict):
    """Every element equal to value."""

    kind: Literal["constant"]
    value: float


_GENERATOR_KINDS = (
    "normal",
    "uniform",
    "student_t",
    "outliers",
    "channel_outliers",
    "hot_columns",
    "zipf",
    "randint",
    "bernoulli",
    "constant",
)
GENERATOR_KINDS = frozenset(_GENERATOR_KINDS)
HEAVY_TAILED_KINDS = frozenset({"student_t", "outliers", "channel_outliers"})
FLOAT_KINDS = frozenset(
    {"normal", "uniform", "student_t", "outliers", "channel_outliers", "hot_columns", "constant"}
)
INT_KINDS = frozenset({"zipf", "randint", "bernoulli", "constant"})
BOOL_KINDS = frozenset({"bernoulli", "constant"})


def _check_generator_kind(data: Any) -> Any:
    # A clearer message than pydantic's discriminator error, listing what is available.
    if isinstance(data, Mapping):
        kind = data.get("kind")
        if kind is None:
            raise ValueError(f"generator has no 'kind'; use one of: {', '.join(_GENERATOR_KINDS)}")
        if kind not in GENERATOR_KINDS:
            raise ValueError(
                f"unknown distribution generator '{kind}'; use one of: {', '.join(_GENERATOR_KINDS)}"
            )
    return data


Generator = Annotated[
    NormalGen
    | UniformGen
    | StudentTGen
    | OutliersGen
    | ChannelOutliersGen
    | HotColumnsGen
    | ZipfGen
    | RandintGen
    | BernoulliGen
    | ConstantGen,
    Field(discriminator="kind"),
    BeforeValidator(_check_generator_kind),
]


def generator_summary(gen: BaseModel) -> str:
    """`student_t(df=3, scale=1.0, clip=100.0)`: the kind and its settings, for display."""
    fields = gen.model_dump(exclude={"kind"}, exclude_none=True)
    # row features show only where set: `normal(mean=0.0, std=1.0)` stays as it was
    defaults = {k: f.default for k, f in RowFeatures.model_fields.items()}
    massive_set = fields.get("massive") is not None
    fields = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in sorted(fields.items(), key=lambda kv: kv[0] in defaults)  # the kind's own settings first
        if not (k in defaults and v == defaults[k] and not (massive_set and k.startswith("massive_")))
    }
    args = ", ".join(f"{k}={v}" for k, v in fields.items())
    return f"{gen.kind}({args})"  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Tensors, tolerances, workloads


Dim = int | str


class TensorSpec(_Strict):
    """One input or output: dtype (concrete or "$dtype"), shape over axis names, ints or formulas."""

    dtype: str
    shape: list[Dim]
    description: str = ""
    # Inputs only: the generator used when a distribution does not override this input.
    distribution: Generator | None = None
    # Inputs only: nudge equal values along the last dim apart by one ulp, so that top-k/argmax
    # over them has exactly one right answer.
    distinct_last_dim: bool = False


class ToleranceSpec(_Strict):
    """Pass criteria for one output dtype.

    An element matches when |out - ref| <= atol + rtol * |ref|; at least `matched_ratio` of the
    elements must match, and no element may be further than `max_error_cap` from the reference.
    """

    atol: float = Field(ge=0)
    rtol: float = Field(ge=0)
    matched_ratio: float = Field(gt=0, le=1)
    max_error_cap: float = Field(ge=0)

    @model_validator(mode="after")
    def _cap_covers_atol(self) -> ToleranceSpec:
        if self.max_error_cap < self.atol:
            raise ValueError(
                f"max_error_cap ({self.max_error_cap}) is below atol ({self.atol}); "
                "the cap bounds every element, so it must be at least atol"
            )
        return self


class TargetOnlySpec(_Strict):
    """A task whose reference runs only on its target machines (it calls a vendor library such as
    `aiter`, or a device-only op such as fp4 `torch._scaled_mm`): candidates are still compiled and
    audited anywhere, but verifying (and timing) them needs one of `targets`. Such a task needs no
    `cpu: true` workload; an evaluator elsewhere reports it unmeasured with `reason`."""

    reason: str = Field(min_length=1)  # one line: what the reference needs that this machine lacks
    targets: list[str] = Field(
        min_length=1
    )  # target profile names (configs/targets/*.yaml) that can verify it

    @model_validator(mode="after")
    def _names(self) -> TargetOnlySpec:
        if "\n" in self.reason.strip():
            raise ValueError("target_only.reason is one line; shorten it")
        for name in self.targets:
            if not _TASK_NAME.match(name):
                raise ValueError(
                    f"target_only.targets: '{name}' is not a target profile name (e.g. b200, mi355x)"
                )
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"target_only.targets {self.targets} lists a target twice")
        return self


class WorkloadSpec(_Strict):
    """One point of the shape suite: a value for every var axis."""

    name: str
    axes: dict[str, int]
    cpu: bool = False  # small enough for the CPU Triton interpreter
    note: str = ""


# ---------------------------------------------------------------------------------------------
# The task


class TaskSpec(_Strict):
    """Everything `task.yaml` declares. See docs in DESIGN.md ("Task")."""

    name: str
    description: str = Field(min_length=1)
    op_family: str = Field(min_length=1)
    models: str = Field(min_length=1)
    axes: dict[str, AxisSpec]
    params: dict[str, bool | int | float | str] = Field(default_factory=dict)
    dtypes: list[str] = Field(min_length=1)
    inputs: dict[str, TensorSpec] = Field(min_length=1)
    outputs: dict[str, TensorSpec] = Field(min_length=1)
    entry: str
    workloads: list[WorkloadSpec]
    distributions: dict[str, dict[str, Generator]]
    tolerances: dict[str, ToleranceSpec]
    flops_formula: str | int | float = Field(alias="flops")
    bytes_formula: str | int | float = Field(alias="bytes")
    languages: list[str] = Field(min_length=1)
    # set when verification needs the target machine (see TargetOnlySpec); absent for most tasks
    target_only: TargetOnlySpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        _check_name(self)
        _check_dtypes(self)
        _check_axes_and_params(self)
        _check_tensors(self)
        _check_entry(self)
        _check_distributions(self)
        _check_tolerances(self)
        _check_formulas(self)
        _check_languages(self)
        _check_workloads(self)
        return self

    # ---- helpers used by the loaded Task -----------------------------------------------------

    @property
    def var_axes(self) -> list[str]:
        return [n for n, a in self.axes.items() if a.kind == "var"]

    @property
    def const_axes(self) -> dict[str, int]:
        return {n: a.value for n, a in self.axes.items() if a.kind == "const" and a.value is not None}

    @property
    def tensors(self) -> dict[str, TensorSpec]:
        return {**self.inputs, **self.outputs}

    def entry_signature(self) -> tuple[str, list[str]]:
        match = _ENTRY.match(self.entry)
        if match is None:  # unreachable after validation; kept for direct callers
            raise TaskError(f"task {self.name}: entry '{self.entry}' is not of the form run(a, b, out)")
        args = [a.strip() for a in match.group(2).split(",") if a.strip()]
        return match.group(1), args

    def axis_values(self, workload: WorkloadSpec) -> dict[str, int]:
        """Every axis in declared order: const values, then this workload's var values."""
        values = {**self.const_axes, **workload.axes}
        return {name: values[name] for name in self.axes if name in values}

    def param_values(self, axes: Mapping[str, int]) -> dict[str, bool | int | float]:
        """Params with formula strings evaluated over the axes (e.g. scale: 1/sqrt(D))."""
        values: dict[str, bool | int | float] = {}
        for name, raw in self.params.items():
            if isinstance(raw, str):
                values[name] = parse_formula(raw, f"param '{name}'").evaluate(axes, f"param '{name}'")
            else:
                values[name] = raw
        return values

    def resolve_dtype(self, tensor: TensorSpec, variant: str) -> str:
        return variant if tensor.dtype == DTYPE_VARIANT else tensor.dtype

    def resolve_shape(self, name: str, axes: Mapping[str, int]) -> tuple[int, ...]:
        return _resolve_shape(name, self.tensors[name], axes)


def _resolve_shape(name: str, tensor: TensorSpec, axes: Mapping[str, int]) -> tuple[int, ...]:
    dims: list[int] = []
    for dim in tensor.shape:
        what = f"shape of '{name}'"
        value: Number = dim if isinstance(dim, int) else parse_formula(dim, what).evaluate(axes, what)
        if isinstance(value, float):
            if not value.is_integer():
                raise TaskError(
                    f"{what}: dim '{dim}' evaluates to {value}, not an integer; fix the expression"
                )
            value = int(value)
        if value < 1:
            raise TaskError(f"{what}: dim '{dim}' evaluates to {value}; every dim must be >= 1")
        dims.append(value)
    return tuple(dims)


def _is_pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def _check_name(spec: TaskSpec) -> None:
    if not _TASK_NAME.match(spec.name):
        raise TaskError(
            f"task name '{spec.name}' is not a valid name; use lowercase letters, digits, '_', '.', '-'"
        )


def _check_dtypes(spec: TaskSpec) -> None:
    known = ", ".join(DTYPE_ITEMSIZE)
    for dtype in spec.dtypes:
        if dtype not in DTYPE_ITEMSIZE:
            raise TaskError(f"dtypes: unknown dtype '{dtype}'; use one of: {known}")
    if len(set(spec.dtypes)) != len(spec.dtypes):
        raise TaskError(f"dtypes {spec.dtypes} lists a dtype twice; list each variant once")


def _check_axes_and_params(spec: TaskSpec) -> None:
    if not spec.axes:
        raise TaskError("axes is empty; declare every dim name, e.g. axes: {M: var, N: var}")
    for name in spec.axes:
        if not _IDENT.match(name):
            raise TaskError(f"axis name '{name}' is not an identifier; use letters, digits and '_'")
    for name, raw in spec.params.items():
        if not _IDENT.match(name):
            raise TaskError(f"param name '{name}' is not an identifier; use letters, digits and '_'")
        if name in spec.axes:
            raise TaskError(f"param '{name}' has the same name as an axis; rename one of them")
        if isinstance(raw, str):
            formula = parse_formula(raw, f"param '{name}'")
            unknown = sorted(formula.names - set(spec.axes))
            if unknown:
                raise TaskError(
                    f"param '{name}' formula '{raw}' uses unknown name '{unknown[0]}'; "
                    f"params may read the axes: {', '.join(spec.axes)}"
                )


def _check_tensors(spec: TaskSpec) -> None:
    clash = sorted(set(spec.inputs) & set(spec.outputs))
    if clash:
        raise TaskError(f"'{clash[0]}' is both an input and an output; give every tensor its own name")
    known = ", ".join(DTYPE_ITEMSIZE)
    for role, tensors in (("input", spec.inputs), ("output", spec.outputs)):
        for name, tensor in tensors.items():
            if not _IDENT.match(name):
                raise TaskError(f"{role} name '{name}' is not an identifier; use letters, digits and '_'")
            if tensor.dtype != DTYPE_VARIANT and tensor.dtype not in DTYPE_ITEMSIZE:
                raise TaskError(
                    f"{role} '{name}' has unknown dtype '{tensor.dtype}'; use {DTYPE_VARIANT} "
                    f"(the run's dtype variant) or one of: {known}"
                )
            if not tensor.shape:
                raise TaskError(
                    f"{role} '{name}' has an empty shape; scalars are params, tensors need >= 1 dim"
                )
            for dim in tensor.shape:
                if isinstance(dim, bool):
                    raise TaskError(f"{role} '{name}' shape has a boolean dim; use axis names or ints")
                if isinstance(dim, int):
                    if dim < 1:
                        raise TaskError(f"{role} '{name}' shape has dim {dim}; every dim must be >= 1")
                    continue
                formula = parse_formula(dim, f"{role} '{name}' shape dim")
                unknown = sorted(formula.names - set(spec.axes))
                if unknown:
                    raise TaskError(
                        f"{role} '{name}' shape uses unknown axis '{unknown[0]}'; declare it under "
                        f"axes: or use one of: {', '.join(spec.axes)}"
                    )
            if role == "output" and tensor.distribution is not None:
                raise TaskError(f"output '{name}' has a distribution; only inputs are generated, remove it")
            if role == "output" and tensor.distinct_last_dim:
                raise TaskError(
                    f"output '{name}' sets distinct_last_dim; it applies to inputs only, remove it"
                )
            if role == "input":
                gen = tensor.distribution or NormalGen(kind="normal")
                _check_generator_dtype(spec, name, tensor, gen, "default distribution")


def _check_generator_dtype(spec: TaskSpec, name: str, tensor: TensorSpec, gen: BaseModel, where: str) -> None:
    kind = gen.kind  # type: ignore[attr-defined]
    dtypes = spec.dtypes if tensor.dtype == DTYPE_VARIANT else [tensor.dtype]
    for dtype in dtypes:
        if dtype in FLOAT_DTYPES:
            allowed = FLOAT_KINDS
        elif dtype == "bool":
            allowed = BOOL_KINDS
        else:
            allowed = INT_KINDS
        if kind not in allowed:
            raise TaskError(
                f"input '{name}' ({dtype}), {where}: generator '{kind}' does not produce {dtype} values; "
                f"use one of: {', '.join(sorted(allowed))}"
            )
    if isinstance(gen, RowFeatures):
        largest = max(gen.row_offset + gen.column_offset, gen.massive[1] if gen.massive else 0.0)
        for dtype in dtypes:
            if dtype in FLOAT_MAX and largest > FLOAT_MAX[dtype]:
                raise TaskError(
                    f"input '{name}' ({dtype}), {where}: offsets or massive values reach {largest:g}, past "
                    f"{dtype}'s largest finite value {FLOAT_MAX[dtype]:g}; keep every value representable"
                )
    for field in ("high", "low"):
        bound = getattr(gen, field, None)
        if isinstance(bound, str):
            formula = parse_formula(bound, f"input '{name}' generator {field}")
            unknown = sorted(formula.names - set(spec.axes))
            if unknown:
                raise TaskError(
                    f"input '{name}', {where}: {field} '{bound}' uses unknown axis '{unknown[0]}'; "
                    f"use one of: {', '.join(spec.axes)}"
                )
    if tensor.distinct_last_dim and any(d not in FLOAT_DTYPES for d in dtypes):
        raise TaskError(f"input '{name}' sets distinct_last_dim but is not floating point; remove it")


def _check_entry(spec: TaskSpec) -> None:
    match = _ENTRY.match(spec.entry)
    expected = f"run({', '.join([*spec.inputs, *spec.outputs])})"
    if match is None:
        raise TaskError(f"entry '{spec.entry}' is not a call signature; write it as {expected}")
    args = [a.strip() for a in match.group(2).split(",") if a.strip()]
    if args != [*spec.inputs, *spec.outputs]:
        raise TaskError(
            f"entry '{spec.entry}' must list the inputs then the outputs in declared order "
            f"(destination-passing); write {match.group(1)}({', '.join([*spec.inputs, *spec.outputs])})"
        )


def _check_distributions(spec: TaskSpec) -> None:
    if "normal" not in spec.distributions:
        raise TaskError(
            "distributions has no 'normal' entry; add `normal: {}` (every input from its default generator)"
        )
    heavy = False
    for dist_name, overrides in spec.distributions.items():
        if not _IDENT.match(dist_name):
            raise TaskError(
                f"distribution name '{dist_name}' is not an identifier; use letters, digits and '_'"
            )
        for input_name, gen in overrides.items():
            if input_name not in spec.inputs:
                raise TaskError(
                    f"distribution '{dist_name}' overrides '{input_name}', which is not an input; "
                    f"inputs are: {', '.join(spec.inputs)}"
                )
            _check_generator_dtype(
                spec, input_name, spec.inputs[input_name], gen, f"distribution '{dist_name}'"
            )
            heavy = heavy or gen.kind in HEAVY_TAILED_KINDS
            # a task with integer inputs only (a histogram's values) stresses them with skewed (zipf) draws
            heavy = heavy or (gen.kind == "zipf" and not _has_float_input(spec))
    if not heavy:
        if not _has_float_input(spec):
            raise TaskError(
                "distributions has no skewed entry; a task with integer inputs only needs one that overrides "
                "an input with zipf (e.g. skewed: {x: {kind: zipf, high: 256}})"
            )
        raise TaskError(
            "distributions has no heavy-tailed entry; add one that overrides an input with "
            f"one of: {', '.join(sorted(HEAVY_TAILED_KINDS))} (e.g. heavy_tailed: {{x: {{kind: student_t, df: 3}}}})"
        )


def _has_float_input(spec: TaskSpec) -> bool:
    return any(spec.resolve_dtype(t, v) in FLOAT_DTYPES for t in spec.inputs.values() for v in spec.dtypes)


def _output_dtypes(spec: TaskSpec) -> set[str]:
    return {spec.resolve_dtype(t, v) for t in spec.outputs.values() for v in spec.dtypes}


def _check_tolerances(spec: TaskSpec) -> None:
    for dtype in spec.tolerances:
        if dtype not in DTYPE_ITEMSIZE:
            raise TaskError(f"tolerances: unknown dtype '{dtype}'; use one of: {', '.join(DTYPE_ITEMSIZE)}")
    for dtype in sorted(_output_dtypes(spec)):
        if dtype not in spec.tolerances:
            raise TaskError(
                f"tolerances has no entry for output dtype '{dtype}'; add "
                f"{dtype}: {{atol, rtol, matched_ratio, max_error_cap}}"
            )


def formula_names(spec: TaskSpec, *, for_bytes: bool) -> set[str]:
    names = set(spec.axes) | {n for n, v in spec.params.items() if not isinstance(v, bool)}
    if for_bytes:
        names |= {f"itemsize_{t}" for t in spec.tensors}
    return names


def _check_formulas(spec: TaskSpec) -> None:
    for field, raw, for_bytes in (("flops", spec.flops_formula, False), ("bytes", spec.bytes_formula, True)):
        formula: Formula = parse_formula(raw, f"{field} formula")
        allowed = formula_names(spec, for_bytes=for_bytes)
        unknown = sorted(formula.names - allowed)
        if unknown:
            raise TaskError(
                f"{field} formula '{raw}' uses unknown name '{unknown[0]}'; "
                f"available: {', '.join(sorted(allowed))}"
            )


def _check_languages(spec: TaskSpec) -> None:
    for lang in spec.languages:
        if lang not in known_languages():
            raise TaskError(
                f"languages: unknown language '{lang}'; use any of: {', '.join(known_languages())}"
            )


def _workload_shapes(spec: TaskSpec, workload: WorkloadSpec) -> list[tuple[int, ...]]:
    axes = spec.axis_values(workload)
    return [_resolve_shape(name, t, axes) for name, t in spec.tensors.items()]


def _check_workloads(spec: TaskSpec) -> None:
    if len(spec.workloads) < 4:
        raise TaskError(
            f"workloads has {len(spec.workloads)} entries; a task needs at least 4 (include a "
            "non-power-of-two shape, a small edge case and a cpu: true subset)"
        )
    seen: set[str] = set()
    var_axes = spec.var_axes
    for wl in spec.workloads:
        where = f"workload '{wl.name}'"
        if not _WORKLOAD_NAME.match(wl.name):
            raise TaskError(f"{where}: name is not valid; use letters, digits, '_', '.', '-'")
        if wl.name in seen:
            raise TaskError(f"{where} appears twice; give every workload a unique name")
        seen.add(wl.name)
        for axis, value in wl.axes.items():
            if axis not in spec.axes:
                raise TaskError(f"{where} sets unknown axis '{axis}'; var axes are: {', '.join(var_axes)}")
            if spec.axes[axis].kind == "const":
                raise TaskError(
                    f"{where} sets const axis '{axis}' (fixed at {spec.axes[axis].value}); remove it from the workload"
                )
            if value < 1:
                raise TaskError(f"{where}: axis '{axis}' = {value}; axis values must be >= 1")
        missing = [a for a in var_axes if a not in wl.axes]
        if missing:
            raise TaskError(
                f"{where} misses var axis '{missing[0]}'; give a value for each of: {', '.join(var_axes)}"
            )
        try:
            _workload_shapes(spec, wl)
            spec.param_values(spec.axis_values(wl))
        except TaskError as exc:
            raise TaskError(f"{where}: {exc}") from exc

    def has_non_pow2(wl: WorkloadSpec) -> bool:
        return any(not _is_pow2(d) for shape in _workload_shapes(spec, wl) for d in shape)

    if spec.target_only is not None:  # verified on its targets only: no CPU subset to require
        return
    cpu = [wl for wl in spec.workloads if wl.cpu]
    if not cpu:
        raise TaskError(
            "no workload has cpu: true; mark a small subset that the CPU Triton interpreter can run"
        )
    if not any(has_non_pow2(wl) for wl in cpu):
        raise TaskError(
            "the cpu: true workloads have only power-of-two dims; add a small cpu workload with a "
            "non-power-of-two dim (e.g. 96 or 1000) so masking is tested without a GPU"
        )
