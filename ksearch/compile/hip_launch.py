"""The launch description of a HIP candidate: how its kernels are launched (grid, block, arguments).

A HIP candidate is one `.hip` source holding `extern "C" __global__` kernels and a **launch
description**: a block comment whose first word is `ksearch:launch`, holding YAML::

    /* ksearch:launch
    kernels:                                  # launched in this order, on one stream
      - name: gemm_bf16_mfma_64x64x32         # an extern "C" __global__ function of this file
        block: [256]                          # threads per workgroup, 1 to 3 ints, product <= 1024
        grid: ["ceil(N / 64)", "ceil(M / 64)"]  # workgroups per dim, 1 to 3 formulas
        args: [a, b, c, M, N, K]              # the kernel's parameters, in order
        shared_bytes: 0                       # optional: dynamic LDS bytes (a formula), default 0
    */

* `grid` and `shared_bytes` are formulas over the task's axes and params (the arithmetic of task
  files: numbers, names, + - * / // % **, min/max/ceil/floor/sqrt/log2).
* Each `args` entry is a task tensor name (input or output), passed as a device pointer, or a
  formula over axes and params, passed by value. A value is `int32` when it is an integer and `float32`
  otherwise; write `EXPR:TYPE` with TYPE one of i32, u32, i64, u64, f32, f64 to choose (`"M*N:i64"`).
* `parse_launch` validates the description (pydantic); `check_launch_against_task` checks its names
  and formulas against the task and evaluates every workload's grid; `check_launch_against_kernels`
  checks it against the compiled kernels' metadata: every named kernel must exist, `args` must
  match its parameter count and kinds (pointer vs by-value, 4 vs 8 bytes), and `block` must fit its
  `__launch_bounds__`. Errors are located Diagnostics pointing at the line inside the comment.
* `resolve_launch(spec, axes, params, tensor_names)` turns it into concrete launches for one workload.

How the source is built into a code object is `ksearch.compile.hip_backend`'s job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ksearch.compile.amdgcn import int_field as _int
from ksearch.errors import KsearchError, describe_problem
from ksearch.evidence import Diagnostic
from ksearch.task.formula import parse_formula

if TYPE_CHECKING:
    from ksearch.task import Task

LAUNCH_MARKER = "ksearch:launch"
ArgType = Literal["i32", "u32", "i64", "u64", "f32", "f64"]
ARG_TYPE_SIZE: dict[ArgType, int] = {"i32": 4, "u32": 4, "f32": 4, "i64": 8, "u64": 8, "f64": 8}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _formula_text(value: int | str, what: str) -> str:
    try:
        return parse_formula(value, what).text
    except KsearchError as exc:  # TaskError: turn into a validation error pydantic can locate
        raise ValueError(str(exc)) from exc


class LaunchArg(BaseModel):
    """One kernel parameter: a tensor name (pointer) or a formula passed by value."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    expr: str
    type: ArgType | None = Field(default=None, description="by-value type; None: i32 for ints, f32 otherwise")

    @classmethod
    def parse(cls, text: str | float) -> LaunchArg:
        raw = str(text).strip()
        expr, ctype = raw, None
        head, sep, tail = raw.rpartition(":")
        if sep and tail.strip() in ARG_TYPE_SIZE:
            expr, ctype = head.strip(), cast(ArgType, tail.strip())
        return cls(expr=_formula_text(expr, "launch arg"), type=ctype)

    @property
    def is_name(self) -> bool:
        return bool(_IDENT.match(self.expr))

    def __str__(self) -> str:
        return f"{self.expr}:{self.type}" if self.type else self.expr


class KernelLaunch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description='the extern "C" __global__ function')
    block: list[int] = Field(min_length=1, max_length=3, description="threads per workgroup (x, y, z)")
    grid: list[str] = Field(min_length=1, max_length=3, description="workgroups per dim, formulas")
    args: list[LaunchArg] = Field(default_factory=list)
    shared_bytes: str = Field(default="0", description="dynamic LDS bytes, a formula")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError(f"kernel name {v!r} is not a C identifier")
        return v

    @field_validator("block")
    @classmethod
    def _block(cls, v: list[int]) -> list[int]:
        if any(b < 1 for b in v):
            raise ValueError(f"block {v} has a dimension < 1")
        if math.prod(v) > 1024:
            raise ValueError(f"block {v} has {math.prod(v)} threads; AMD workgroups hold at most 1024")
        return v

    @field_validator("grid", mode="before")
    @classmethod
    def _grid(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        return [_formula_text(g, "grid entry") for g in v]

    @field_validator("shared_bytes", mode="before")
    @classmethod
    def _shared(cls, v: Any) -> str:
        return _formula_text(v, "shared_bytes")

    @field_validator("args", mode="before")
    @classmethod
    def _args(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out = []
        for a in v:
            if isinstance(a, bool) or not isinstance(a, (str, int, float)):
                raise ValueError(f"launch arg {a!r} must be a name or a formula string")
            out.append(LaunchArg.parse(a))
        return out

    @property
    def threads(self) -> int:
        return math.prod(self.block)


class LaunchSpec(BaseModel):
    """The launch description of a HIP candidate."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kernels: list[KernelLaunch] = Field(min_length=1)

    def names_used(self) -> set[str]:
        names: set[str] = set()
        for k in self.kernels:
            for text in [*k.grid, k.shared_bytes, *(a.expr for a in k.args)]:
                names |= set(parse_formula(text).names)
        return names


@dataclass(frozen=True)
class ParsedLaunch:
    """A validated LaunchSpec plus where each of its YAML nodes sits in the source (for diagnostics)."""

    spec: LaunchSpec
    marker_line: int
    root: yaml.Node | None = field(repr=False, default=None)

    def line_of(self, *loc: str | int) -> int:
        return _node_line(self.root, loc, self.marker_line)


_LAUNCH_RE = re.compile(r"/\*\s*" + re.escape(LAUNCH_MARKER) + r"\b(?P<body>.*?)\*/", re.DOTALL)


def _node_line(root: yaml.Node | None, loc: Sequence[str | int], base: int) -> int:
    """The source line of the YAML node at `loc` (pydantic's error path), or the deepest parent found."""
    node = root
    line = base + (root.start_mark.line if root is not None else 0)
    for key in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(key, str):
            nxt = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = base + node.start_mark.line
    return line


def parse_launch(source: str, file: str | None = None) -> tuple[ParsedLaunch | None, list[Diagnostic]]:
    """Find and validate the `/* ksearch:launch ... */` block. (None, []) when there is none."""
    m = _LAUNCH_RE.search(source)
    if m is None:
        if LAUNCH_MARKER in source:
            line = source[: source.index(LAUNCH_MARKER)].count("\n") + 1
            return None, [
                Diagnostic(
                    file=file,
                    line=line,
                    message=f"the {LAUNCH_MARKER} comment is not "
                    "closed: the description must sit inside one /* ... */ block",
                )
            ]
        return None, []
    marker_line = source[: m.start()].count("\n") + 1
    body = m.group("body")
    try:
        root = yaml.compose(body, Loader=yaml.SafeLoader)
        data = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = marker_line + (mark.line if mark is not None else 0)
        column = mark.column + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [
            Diagnostic(
                file=file,
                line=line,
                column=column,
                message=f"launch description is not valid YAML: {problem}",
            )
        ]
    if not isinstance(data, dict):
        return None, [
            Diagnostic(
                file=file,
                line=marker_line,
                message="launch description must be a YAML mapping with a 'kernels:' list",
            )
        ]
    try:
        spec = LaunchSpec.model_validate(data)
    except ValidationError as exc:
        diags = []
        for err in exc.errors():
            diags.append(
                Diagnostic(
                    file=file,
                    line=_node_line(root, tuple(err["loc"]), marker_line),
                    message=f"launch description: {describe_problem(err)}",
                )
            )
        return None, diags
    return ParsedLaunch(spec=spec, marker_line=marker_line, root=root), []


class ResolvedArg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["tensor", "scalar"]
    name: str | None = Field(default=None, description="tensor name (kind=tensor)")
    value: int | float | None = Field(default=None, description="scalar value (kind=scalar)")
    type: ArgType | None = None


class ResolvedLaunch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_bytes: int
    args: list[ResolvedArg]


class LaunchResolveError(ValueError):
    """A launch description cannot be evaluated for a workload (a candidate fault, not a user error)."""


def resolve_launch(
    spec: LaunchSpec,
    axes: Mapping[str, int],
    params: Mapping[str, int | float] | None = None,
    tensor_names: Sequence[str] = (),
) -> list[ResolvedLaunch]:
    """Concrete launches for one workload: grid, block, dynamic LDS and argument values."""
    namespace: dict[str, int | float] = {**dict(params or {}), **dict(axes)}
    tensors = set(tensor_names)
    launches = []
    for k in spec.kernels:
        grid = [int(_eval(g, namespace, f"kernel {k.name}: grid entry")) for g in k.grid]
        if any(g < 1 for g in grid):
            raise LaunchResolveError(
                f"kernel {k.name}: grid {grid} has a dimension < 1 for axes {dict(axes)}"
            )
        shared = int(_eval(k.shared_bytes, namespace, f"kernel {k.name}: shared_bytes"))
        args = []
        for a in k.args:
            if a.is_name and a.expr in tensors:
                if a.type is not None:
                    raise LaunchResolveError(f"kernel {k.name}: tensor arg '{a}' cannot take a by-value type")
                args.append(ResolvedArg(kind="tensor", name=a.expr))
                continue
            value = _eval(a.expr, namespace, f"kernel {k.name}: arg")
            ctype = a.type or ("i32" if isinstance(value, int) else "f32")
            value = float(value) if ctype.startswith("f") else int(value)
            args.append(ResolvedArg(kind="scalar", value=value, type=ctype))
        gx, gy, gz = (grid + [1, 1])[:3]
        bx, by, bz = (list(k.block) + [1, 1])[:3]
        launches.append(
            ResolvedLaunch(
                kernel=k.name,
                grid=(gx, gy, gz),
                block=(bx, by, bz),
                shared_bytes=shared,
                args=args,
            )
        )
    return launches


def _eval(text: str, namespace: Mapping[str, int | float], what: str) -> int | float:
    try:
        return parse_formula(text, what).evaluate(namespace, what)
    except KsearchError as exc:
        raise LaunchResolveError(str(exc)) from exc


def check_launch_against_task(parsed: ParsedLaunch, task: Task, file: str | None = None) -> list[Diagnostic]:
    """Names in the description exist in the task, and every workload resolves to a valid launch."""
    spec = parsed.spec
    tensors = [*task.input_names, *task.output_names]
    known = set(tensors) | set(task.spec.axes) | set(task.spec.params)
    diags: list[Diagnostic] = []
    for i, k in enumerate(spec.kernels):
        for j, a in enumerate(k.args):
            unknown = sorted(parse_formula(a.expr).names - known)
            if unknown:
                diags.append(
                    Diagnostic(
                        file=file,
                        line=parsed.line_of("kernels", i, "args", j),
                        message=f"kernel {k.name}: arg '{a}' uses '{unknown[0]}', which is not a "
                        f"tensor, axis or param of task {task.name} (tensors: {', '.join(tensors)}; "
                        f"axes: {', '.join(task.spec.axes)})",
                    )
                )
            elif not a.is_name and set(parse_formula(a.expr).names) & set(tensors):
                diags.append(
                    Diagnostic(
                        file=file,
                        line=parsed.line_of("kernels", i, "args", j),
                        message=f"kernel {k.name}: arg '{a}' does arithmetic on a tensor; "
                        "name a tensor alone to pass its pointer",
                    )
                )
        for what, texts in (("grid", k.grid), ("shared_bytes", [k.shared_bytes])):
            for text in texts:
                bad = sorted(parse_formula(text).names & set(tensors))
                if bad:
                    diags.append(
                        Diagnostic(
                            file=file,
                            line=parsed.line_of("kernels", i, what),
                            message=f"kernel {k.name}: {what} '{text}' uses tensor '{bad[0]}'; "
                            "use axes and params",
                        )
                    )
    if diags:
        return diags
    for wl in task.workloads():
        try:
            resolve_launch(spec, task.axes_for(wl), task.params_for(wl), tensors)
        except LaunchResolveError as exc:
            diags.append(Diagnostic(file=file, line=parsed.marker_line, message=f"workload {wl.name}: {exc}"))
            break
    return diags


# ---- against the built kernels ------------------------------------------------------------


def kernel_params(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The parameters a kernel's AMDGPU metadata lists, less the hidden ones the runtime adds."""
    return [a for a in meta.get(".args", []) if not str(a.get(".value_kind", "")).startswith("hidden_")]


def check_launch_against_kernels(
    parsed: ParsedLaunch, metas: dict[str, dict[str, Any]], file: str | None, task: Task | None
) -> list[Diagnostic]:
    """The description against what the compiler built: names, parameter kinds and sizes, block size."""
    diags: list[Diagnostic] = []
    tensors = {*task.input_names, *task.output_names} if task is not None else None
    for i, k in enumerate(parsed.spec.kernels):
        meta = metas.get(k.name)
        if meta is None:
            found = ", ".join(sorted(metas)) or "none"
            diags.append(
                Diagnostic(
                    file=file,
                    line=parsed.line_of("kernels", i, "name"),
                    message=f"kernel '{k.name}' of the launch description was not built: it must be "
                    f'an extern "C" __global__ function of this file (kernels built: {found})',
                )
            )
            continue
        params = kernel_params(meta)
        if len(params) != len(k.args):
            diags.append(
                Diagnostic(
                    file=file,
                    line=parsed.line_of("kernels", i, "args"),
                    message=f"kernel '{k.name}' takes {len(params)} parameter(s) but the launch "
                    f"description passes {len(k.args)}: {[str(a) for a in k.args]}",
                )
            )
        else:
            for j, (a, p) in enumerate(zip(k.args, params, strict=True)):
                problem = _arg_problem(a, p, tensors)
                if problem:
                    diags.append(
                        Diagnostic(
                            file=file,
                            line=parsed.line_of("kernels", i, "args", j),
                            message=f"kernel '{k.name}' parameter {j + 1}: {problem}",
                        )
                    )
        limit = _int(meta.get(".max_flat_workgroup_size"))
        if limit is not None and k.threads > limit:
            diags.append(
                Diagnostic(
                    file=file,
                    line=parsed.line_of("kernels", i, "block"),
                    message=f"kernel '{k.name}': block {k.block} has {k.threads} threads but the "
                    f"kernel allows at most {limit} (__launch_bounds__ / amdgpu_flat_work_group_size)",
                )
            )
    return diags


def _arg_problem(a: LaunchArg, param: Mapping[str, Any], tensors: set[str] | None) -> str | None:
    kind, size = str(param.get(".value_kind")), _int(param.get(".size"))
    is_pointer = kind in ("global_buffer", "dynamic_shared_pointer")
    if is_pointer:
        if not a.is_name or a.type is not None or (tensors is not None and a.expr not in tensors):
            return (
                f"the kernel takes a pointer here but the description passes '{a}' by value (name a tensor)"
            )
        return None
    if tensors is not None and a.expr in tensors:
        return f"the kernel takes a {size}-byte value here but the description passes tensor '{a.expr}'"
    if a.type is not None and size is not None and ARG_TYPE_SIZE[a.type] != size:
        return f"the kernel takes a {size}-byte value here but '{a}' is {ARG_TYPE_SIZE[a.type]} bytes"
    if a.type is None and size not in (None, 4) and (tensors is not None or not a.is_name):
        return f"the kernel takes a {size}-byte value here; write '{a.expr}:i64' (or f64, u64) in the description"
    return None
