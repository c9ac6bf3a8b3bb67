"""Kernel selection in an exported kernel library: the manifest schema, platform matching, shape
inference and the explanation of every decision (kept, filtered out by which constraint, chosen).

Standard library only (torch is imported lazily, to detect a device), plus ksearch's formula
evaluator: `ksearch export` copies this file and `ksearch/task/formula.py` verbatim into the package
it writes, so `ksearch registry` and the installed package decide and explain with one
implementation, and read shape formulas as ksearch's tasks do.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    from .formula import evaluate_formula, parse_formula  # in an exported package
except ImportError:
    from ksearch.task.formula import evaluate_formula, parse_formula

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
CPU = "cpu"  # the capability of kernels verified in the Triton interpreter

Dim = str | int  # an axis name, a literal size, or an arithmetic formula over axes ("2*I")
Param = bool | int | float | str  # a value, or a formula over axes ("1/sqrt(D)")


@dataclass(frozen=True)
class AxisRange:
    """What the verified shapes of one axis share: their range, and the power of two dividing all."""

    min: int
    max: int
    multiple_of: int = 1

    @classmethod
    def of(cls, values: list[int]) -> AxisRange:
        multiple = 1
        while multiple < 1024 and all(v % (multiple * 2) == 0 for v in values):
            multiple *= 2
        return cls(min(values), max(values), multiple)

    def violation(self, axis: str, value: int) -> str | None:
        if not self.min <= value <= self.max:
            return f"{axis}={value} is outside the verified range {self.min}..{self.max}"
        if value % self.multiple_of:
            return f"{axis}={value} is not a multiple of {self.multiple_of} ({axis} % {self.multiple_of})"
        return None


@dataclass
class TensorDecl:
    name: str
    dtype: str  # "$dtype": the kernel's dtype variant
    shape: list[Dim]


@dataclass
class OpSpec:
    """One operator: the task contract it implements (inputs, outputs, entry, axes, params)."""

    name: str
    description: str
    inputs: list[TensorDecl]
    outputs: list[TensorDecl]
    entry: str  # the kernels' destination-passing entry, e.g. "run(x, weight, out)"
    const_axes: dict[str, int]
    params: dict[str, Param]
    reference: str  # module under references/
    aliases: list[str] = field(default_factory=list)
    # per concrete dtype: atol, rtol, matched_ratio, max_error_cap (the task's pass criteria)
    tolerances: dict[str, dict[str, float]] = field(default_factory=dict)
    workloads: dict[str, dict[str, int]] = field(default_factory=dict)  # the task's, by name: axes


@dataclass
class Kernel:
    id: str
    op: str
    dtype: str
    capability: str  # sm_90a, sm_100a, gfx942, gfx950, or cpu (the Triton interpreter)
    target: str  # the target profile the evidence is for (h100, mi355x), or cpu
    module: str  # kernels/<module>.py
    language: str
    constraints: dict[str, AxisRange]
    params: dict[str, bool | int | float]  # the constant params it was verified with (eps)
    priority: float  # measured: geomean speedup on the target; else the run's static estimate
    measured: bool
    basis: str  # what the priority is: "measured speedup on h100", "unmeasured: static-estimate:h100"
    verified_on: str  # where its outputs were checked (triton-interpreter, cuda:NVIDIA H100 ...)
    verified_shapes: list[dict[str, int]]
    provenance: dict[str, str]  # run, candidate, packet_id, source_hash, packet (file in the package)

    def rank(self) -> tuple[bool, float, str]:
        # any measured kernel outranks every unmeasured one; the id breaks ties deterministically
        return (self.measured, self.priority, self.id)


@dataclass
class Manifest:
    package: str
    ops: dict[str, OpSpec]
    kernels: list[Kernel]
    schema_version: int = SCHEMA_VERSION

    @property
    def interpret_env(self) -> str:
        return f"{self.package.upper()}_INTERPRET"

    def op(self, name: str) -> OpSpec:
        for spec in self.ops.values():
            if name == spec.name or name in spec.aliases:
                return spec
        raise KeyError(f"{self.package} has no operator {name!r}; it has: {', '.join(self.ops)}")

    def kernels_of(self, op: str) -> list[Kernel]:
        return sorted((k for k in self.kernels if k.op == op), key=Kernel.rank, reverse=True)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"manifest schema_version {data.get('schema_version')} is not {SCHEMA_VERSION}")
        ops = {
            name: OpSpec(
                **{
                    **op,
                    "inputs": [TensorDecl(**t) for t in op["inputs"]],
                    "outputs": [TensorDecl(**t) for t in op["outputs"]],
                }
            )
            for name, op in data["ops"].items()
        }
        kernels = [
            Kernel(**{**k, "constraints": {a: AxisRange(**r) for a, r in k["constraints"].items()}})
            for k in data["kernels"]
        ]
        return cls(package=data["package"], ops=ops, kernels=kernels)

    @classmethod
    def load(cls, package_dir: Path) -> Manifest:
        return cls.from_dict(json.loads((Path(package_dir) / MANIFEST).read_text()))


# ---- platforms ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    """Where a call runs: a capability (sm_90, gfx942, cpu) and, on the CPU, whether the Triton
    interpreter may run kernels."""

    capability: str
    interpret: bool = False

    @classmethod
    def parse(cls, text: str, interpret: bool = False) -> Platform:
        return cls(text.strip().lower(), interpret)


def detect_platform(device: Any, interpret: bool = False) -> Platform:
    """The platform of a torch device: sm_XY from the CUDA capability, the ROCm gcnArchName, or cpu."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return Platform(CPU, interpret)
    if torch.version.hip:
        arch = torch.cuda.get_device_properties(device).gcnArchName
        return Platform(arch.split(":")[0])  # "gfx942:sramecc+:xnack-": the features do not matter
    major, minor = torch.cuda.get_device_capability(device)
    return Platform(f"sm_{major}{minor}")


def platform_of(device: str | None, interpret: bool = False) -> Platform:
    """A named capability (sm_90, gfx950, cpu), or this machine's first device when None."""
    if device is not None:
        return Platform.parse(device, interpret)
    import torch

    return detect_platform("cuda" if torch.cuda.is_available() else "cpu", interpret)


def capability_matches(kernel: str, platform: str) -> bool:
    # an sm_90a kernel was compiled for and verified on Hopper only: the arch-specific suffix
    # narrows it to exactly that major.minor, which the device reports without the suffix
    return kernel.removesuffix("a") == platform.removesuffix("a")


# ---- shapes, params -----------------------------------------------------------------------------


def evaluate(formula: Dim | Param, names: dict[str, Any]) -> Any:
    """A number as it is; a formula of the task contract through ksearch's own evaluator (`formula.py`,
    vendored next to this file in an exported package)."""
    return evaluate_formula(formula, names) if isinstance(formula, str) else formula


def axes_of(spec: OpSpec, shapes: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The axis values of a call, read off its input shapes (one per input, in declared order).

    An axis seen only inside a formula dim of one axis ("2*I") is solved for, the formula being
    linear in it; every dim is then checked against the axes found."""
    axes: dict[str, Any] = dict(spec.const_axes)
    if len(shapes) != len(spec.inputs):
        raise ValueError(f"{spec.name} takes {len(spec.inputs)} inputs, got {len(shapes)}")
    dims = []
    for decl, shape in zip(spec.inputs, shapes, strict=True):
        if len(shape) != len(decl.shape):
            raise ValueError(
                f"{spec.name}: {decl.name} must have {len(decl.shape)} dims {decl.shape}, got {shape}"
            )
        dims += list(zip(decl.shape, shape, strict=True))
    for dim, size in dims:
        if isinstance(dim, str) and dim.isidentifier():
            axes.setdefault(dim, size)
    for dim, size in dims:
        if isinstance(dim, str) and not dim.isidentifier():
            unknown = set(parse_formula(dim).names) - set(axes)
            if len(unknown) == 1:
                (name,) = unknown
                at0, at1 = evaluate(dim, {**axes, name: 0}), evaluate(dim, {**axes, name: 1})
                axes[name] = (size - at0) // (at1 - at0)
    for decl, shape in zip(spec.inputs, shapes, strict=True):
        expected = tuple(evaluate(d, axes) for d in decl.shape)
        if any(e != s for e, s in zip(expected, shape, strict=True)):
            raise ValueError(
                f"{spec.name}: {decl.name} has shape {tuple(shape)}, the contract wants {decl.shape}"
            )
    return axes


def output_shapes(spec: OpSpec, axes: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(evaluate(d, axes) for d in decl.shape) for decl in spec.outputs]


def constant_params(spec: OpSpec) -> dict[str, bool | int | float]:
    """The params a caller may pass (eps); formula params (scale = 1/sqrt(D)) follow from the shape."""
    return {k: v for k, v in spec.params.items() if not isinstance(v, str)}


def param_values(spec: OpSpec, axes: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    return {k: given[k] if k in given else evaluate(v, axes) for k, v in spec.params.items()}


def parse_shape(text: str) -> dict[str, int]:
    """`M=64,N=4096` -> {"M": 64, "N": 4096}."""
    axes = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"shape {text!r}: write axis=value pairs, e.g. M=64,N=4096")
        axes[name.strip()] = int(value)
    return axes


# ---- selection ----------------------------------------------------------------------------------


@dataclass
class Verdict:
    kernel: Kernel
    reason: str | None  # why it was filtered out; None: it fits
    chosen: bool = False


@dataclass
class Explanation:
    op: str
    platform: Platform
    dtype: str
    axes: dict[str, int]
    verdicts: list[Verdict]  # in rank order

    @property
    def chosen(self) -> Kernel | None:
        return next((v.kernel for v in self.verdicts if v.chosen), None)


def explain(
    manifest: Manifest,
    op: str,
    platform: Platform,
    dtype: str,
    axes: dict[str, int],
    params: dict[str, Any] | None = None,
) -> Explanation:
    """Every kernel of `op`, highest priority first, with why it was filtered out; the first that
    fits is chosen. Params not given are the task's (the values the kernels were verified with)."""
    spec = manifest.op(op)
    given = {**constant_params(spec), **(params or {})}
    verdicts = []
    for kernel in manifest.kernels_of(spec.name):
        verdicts.append(Verdict(kernel, _rejection(manifest, kernel, platform, dtype, axes, given)))
    first = next((v for v in verdicts if v.reason is None), None)
    if first is not None:
        first.chosen = True
    return Explanation(spec.name, platform, dtype, axes, verdicts)


def platform_rejection(manifest: Manifest, kernel: Kernel, platform: Platform) -> str | None:
    """Why `kernel` cannot run on `platform` at all, or None. At its own dtype, params and first
    verified shape only the platform can filter it out."""
    axes = kernel.verified_shapes[0] if kernel.verified_shapes else {}
    return _rejection(manifest, kernel, platform, kernel.dtype, axes, kernel.params)


def _rejection(
    manifest: Manifest, kernel: Kernel, platform: Platform, dtype: str, axes: dict[str, int], params: dict
) -> str | None:
    if not capability_matches(kernel.capability, platform.capability):
        return f"capability: built for {kernel.capability}, this platform is {platform.capability}"
    if kernel.capability == CPU and not platform.interpret:
        return (
            f"capability: a CPU kernel runs in the Triton interpreter, off unless {manifest.interpret_env}=1"
        )
    if kernel.dtype != dtype:
        return f"dtype: verified for {kernel.dtype}, the call is {dtype}"
    for name, value in kernel.params.items():
        if params.get(name, value) != value:
            return f"param: {name}={params[name]} differs from the verified {name}={value}"
    for axis, allowed in kernel.constraints.items():
        if axis not in axes:
            return f"shape: axis {axis} is not given"
        if why := allowed.violation(axis, int(axes[axis])):
            return f"shape: {why}"
    return None


# ---- text shared by `ksearch registry` and `python -m <package>.registry` -----------------------


def describe_constraints(kernel: Kernel) -> str:
    parts = []
    for axis, r in kernel.constraints.items():
        span = str(r.min) if r.min == r.max else f"{r.min}..{r.max}"
        parts.append(f"{axis} in {span}" + (f", {axis} % {r.multiple_of} == 0" if r.multiple_of > 1 else ""))
    return "; ".join(parts)


def describe_priority(kernel: Kernel) -> str:
    return (
        f"{kernel.priority:.3g} ({kernel.basis})"
        if kernel.measured
        else f"unmeasured {kernel.priority:.3g} ({kernel.basis})"
    )


def render_list(manifest: Manifest, op: str | None = None) -> str:
    lines = [f"package {manifest.package}: {len(manifest.kernels)} kernels"]
    for spec in manifest.ops.values():
        if op is not None and manifest.op(op).name != spec.name:
            continue
        names = ", ".join([spec.name, *spec.aliases])
        args = ", ".join(
            [*(t.name for t in spec.inputs), *(f"{k}={v}" for k, v in constant_params(spec).items())]
        )
        lines.append(f"{names}({args}) -> {', '.join(t.name for t in spec.outputs)}")
        for k in manifest.kernels_of(spec.name):
            lines.append(
                f"  {k.id}  {k.capability:<8} {k.dtype:<9} priority {describe_priority(k)}  [{describe_constraints(k)}]"
            )
    return "\n".join(lines)


def render_show(manifest: Manifest, op: str) -> str:
    spec = manifest.op(op)
    lines = [
        f"{spec.name}: {spec.description.strip()}",
        f"  entry: {spec.entry}",
        *(f"  input {t.name}: {t.dtype} {t.shape}" for t in spec.inputs),
        *(f"  output {t.name}: {t.dtype} {t.shape}" for t in spec.outputs),
        f"  params: {spec.params}   const axes: {spec.const_axes}   fallback: references/{spec.reference}.py",
    ]
    for k in manifest.kernels_of(spec.name):
        lines += [
            f"  kernel {k.id}: kernels/{k.module}.py ({k.language})",
            f"    capability {k.capability} (target {k.target}), dtype {k.dtype}, params {k.params}",
            f"    shapes: {describe_constraints(k)}; verified on {k.verified_on}: {k.verified_shapes}",
            f"    priority: {describe_priority(k)}",
            "    provenance: " + ", ".join(f"{key} {value}" for key, value in k.provenance.items()),
        ]
    return "\n".join(lines)


def render_explanation(e: Explanation) -> str:
    where = e.platform.capability + (" (Triton interpreter on)" if e.platform.interpret else "")
    shape = ",".join(f"{a}={v}" for a, v in e.axes.items())
    lines = [f"{e.op} on {where}, {e.dtype}, {shape}:"]
    for v in e.verdicts:
        verdict = (
            "CHOSEN"
            if v.chosen
            else ("kept (lower priority)" if v.reason is None else f"filtered out: {v.reason}")
        )
        lines.append(f"  {v.kernel.id} [priority {describe_priority(v.kernel)}]: {verdict}")
    if e.chosen is None:
        lines.append("  no kernel fits: the reference implementation runs (with a warning)")
    return "\n".join(lines)
