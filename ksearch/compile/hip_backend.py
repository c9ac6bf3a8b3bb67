"""HIP C++ backend: compile a `.hip` candidate for an AMD target (gfx942, gfx950) to AMDGCN and a code object.

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
* The description is validated (pydantic) when the candidate compiles, then checked against the
  compiled kernels: every named kernel must exist, `args` must match its parameter count and kinds
  (pointer vs by-value, 4 vs 8 bytes), and `block` must fit its `__launch_bounds__`. Errors are
  located Diagnostics pointing at the line inside the comment. With `task=`, names and formulas are
  also checked against the task and every workload's grid is evaluated.
* `resolve_launch(spec, axes, params, tensor_names)` turns it into concrete launches for one workload.

Compilation (see `ksearch.compile.toolchain` for how tools are found):

* **hipcc** (a ROCm install): `hipcc -x hip --offload-arch=ARCH --cuda-device-only -O3 -S` for the
  AMDGCN assembly and `hipcc --offload-arch=ARCH --genco -O3` for the code object.
* **clang** (upstream clang-22 + `libamdhip64-dev` headers + device bitcode from Triton's wheel):
  `clang++-22 -x hip --offload-arch=ARCH --cuda-device-only --rocm-path=ROOT -nogpulib
  -D__AMDGCN_WAVEFRONT_SIZE=64 -mcode-object-version=5 -O3 -S`, linking `ocml.bc`, `ockl.bc` and a
  small per-arch shim with `-Xclang -mlink-builtin-bitcode`. The HIP headers call into the device
  libraries even for `threadIdx.x` (`__ockl_get_local_id`), so they are always linked; the shim
  supplies what ROCm's `oclc_*.bc` control libraries and `hip.bc` would: the `__oclc_*` constants
  (ISA version, wavefront size, ABI version, math modes) and `__atomic_work_item_fence` (used by
  `__syncthreads` in ROCm 5.x headers). The assembly is then assembled (`clang -x assembler`) and
  linked (`ld.lld -shared`) into the `.hsaco`, so the code object is exactly the listed assembly.

Artifacts: `source` (the compiled copy), `amdgcn` (.s), `hsaco` (when a linker is present),
`compile_log` (every command with its output). Per kernel, KernelInfo carries the resources from
the AMDGPU metadata (`.vgpr_count`, `.agpr_count`, `.sgpr_count`, spill counts,
`.private_segment_fixed_size`, `.group_segment_fixed_size`, `.max_flat_workgroup_size`).

Outcomes: compiler errors are `compile_error` with `file:line:col` Diagnostics pointing into the
candidate; a compile past `timeout_s` is killed (its whole process group) and reported as
`compile_timeout`; a missing toolchain is `skipped:toolchain_missing` with the install line. Only a
caller's mistake (a non-AMD target) raises (TargetError).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ksearch.compile.amdgcn import amd_resources, parse_amdgcn_metadata
from ksearch.compile.amdgcn import int_field as _int
from ksearch.compile.result import CompileResult, KernelInfo
from ksearch.compile.toolchain import HipTools, ToolRun, find_hip_tools, hip_toolchain, run_tool
from ksearch.errors import KsearchError, TargetError
from ksearch.evidence import Diagnostic, FailureClass
from ksearch.task.formula import parse_formula

if TYPE_CHECKING:
    from ksearch.target import TargetProfile
    from ksearch.task import Task

__all__ = [
    "LAUNCH_MARKER",
    "DeviceBuild",
    "KernelLaunch",
    "LaunchArg",
    "LaunchResolveError",
    "LaunchSpec",
    "ResolvedArg",
    "ResolvedLaunch",
    "build_hip_device",
    "check_launch_against_task",
    "compile_hip",
    "hip_compile_flags",
    "hip_toolchain",
    "isa_version",
    "kernel_info_from_metadata",
    "parse_amdgcn_metadata",
    "parse_clang_diagnostics",
    "parse_launch",
    "resolve_launch",
    "undefined_calls",
]

LAUNCH_MARKER = "ksearch:launch"
MAX_DIAGNOSTICS = 50
CODE_OBJECT_VERSION = 5
ArgType = Literal["i32", "u32", "i64", "u64", "f32", "f64"]
ARG_TYPE_SIZE: dict[str, int] = {"i32": 4, "u32": 4, "f32": 4, "i64": 8, "u64": 8, "f64": 8}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---- launch description ---------------------------------------------------------------------


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
            expr, ctype = head.strip(), tail.strip()
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
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "(top)"
            msg = err["msg"].removeprefix("Value error, ")
            diags.append(
                Diagnostic(
                    file=file,
                    line=_node_line(root, loc, marker_line),
                    message=f"launch description: {where}: {msg}",
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
        block = (list(k.block) + [1, 1])[:3]
        launches.append(
            ResolvedLaunch(
                kernel=k.name,
                grid=tuple((grid + [1, 1])[:3]),
                block=tuple(block),
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


# ---- compiler diagnostics -------------------------------------------------------------------

_CLANG_DIAG = re.compile(
    r"^(?P<file>[^\s:][^:]*?):(?P<line>\d+):(?P<col>\d+): (?P<sev>fatal error|error|warning|note|remark): "
    r"(?P<msg>.*)$"
)
_TOOL_DIAG = re.compile(r"^(?:(?P<tool>[\w.+-]+): )?(?P<sev>fatal error|error|warning): (?P<msg>.*)$")
_SEVERITY = {"fatal error": "error", "error": "error", "warning": "warning", "note": "note", "remark": "note"}


def parse_clang_diagnostics(
    text: str, path_map: Mapping[str, str] | None = None, limit: int = MAX_DIAGNOSTICS
) -> list[Diagnostic]:
    """`file:line:col: error: message` lines (and `tool: error: message` driver/linker lines) as
    Diagnostics; `path_map` renames files (the compiled copy back to the candidate's path)."""
    path_map = dict(path_map or {})
    diags: list[Diagnostic] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        m = _CLANG_DIAG.match(line)
        if m:
            file = m.group("file")
            diags.append(
                Diagnostic(
                    file=path_map.get(file, file),
                    line=int(m.group("line")),
                    column=int(m.group("col")),
                    severity=_SEVERITY[m.group("sev")],
                    message=m.group("msg").strip(),
                )
            )
        else:
            m = _TOOL_DIAG.match(line)
            if m:
                tool = f"{m.group('tool')}: " if m.group("tool") else ""
                diags.append(
                    Diagnostic(severity=_SEVERITY[m.group("sev")], message=f"{tool}{m.group('msg').strip()}")
                )
        if len(diags) >= limit:
            break
    return diags


def _meta_args(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [a for a in meta.get(".args", []) if not str(a.get(".value_kind", "")).startswith("hidden_")]


def kernel_info_from_metadata(
    meta: Mapping[str, Any], arch: str, launch: KernelLaunch | None = None, warp_size: int = 64
) -> KernelInfo:
    threads = launch.threads if launch else None
    spec: dict[str, Any] = {
        "arch": arch,
        "max_flat_workgroup_size": _int(meta.get(".max_flat_workgroup_size")),
        "wavefront_size": _int(meta.get(".wavefront_size")) or warp_size,
        "total_vgprs": _int(meta.get(".vgpr_count")),
        "kernarg_bytes": _int(meta.get(".kernarg_segment_size")),
        "uses_dynamic_stack": bool(meta.get(".uses_dynamic_stack", False)),
        "params": [{"kind": a.get(".value_kind"), "bytes": a.get(".size")} for a in _meta_args(meta)],
    }
    if launch is not None:
        spec["launch"] = {
            "block": launch.block,
            "grid": launch.grid,
            "args": [str(a) for a in launch.args],
            "shared_bytes": launch.shared_bytes,
        }
    return KernelInfo(
        name=str(meta.get(".name")),
        specialization=spec,
        num_warps=threads // spec["wavefront_size"] if threads else None,
        threads_per_block=threads,
        **amd_resources(dict(meta)),
    )


def _launch_vs_metadata(
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
        params = _meta_args(meta)
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


# ---- device build ---------------------------------------------------------------------------

# Defines what ROCm's oclc_*.bc control libraries and hip.bc would, for ocml/ockl linked by clang.
_SHIM_C = """\
#define K(T, n, v) __attribute__((visibility("hidden"))) const __attribute__((address_space(4))) T n = v;
K(int, __oclc_ISA_version, {isa_version})
K(int, __oclc_ABI_version, {abi_version})
K(unsigned char, __oclc_wavefrontsize64, {wave64})
K(int, __oclc_wavefrontsize_log2, {wave_log2})
K(unsigned char, __oclc_unsafe_math_opt, 0)
K(unsigned char, __oclc_finite_only_opt, 0)
K(unsigned char, __oclc_correctly_rounded_sqrt32, 1)
K(unsigned char, __oclc_daz_opt, 0)
#define FENCE(scope) switch (order) {{ \\
  case __ATOMIC_ACQUIRE: __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, scope); break; \\
  case __ATOMIC_RELEASE: __builtin_amdgcn_fence(__ATOMIC_RELEASE, scope); break; \\
  case __ATOMIC_ACQ_REL: __builtin_amdgcn_fence(__ATOMIC_ACQ_REL, scope); break; \\
  case __ATOMIC_SEQ_CST: __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, scope); break; \\
  default: break; }}
/* OpenCL memory scopes: 0 work-item, 1 work-group, 2 device, 3 all devices, 4 sub-group. */
__attribute__((visibility("hidden"), always_inline))
void __atomic_work_item_fence(unsigned flags, int order, int scope) {{
  (void)flags;
  switch (scope) {{
    case 1: FENCE("workgroup") break;
    case 2: FENCE("agent") break;
    case 3: FENCE("") break;
    case 4: FENCE("wavefront") break;
    default: break;
  }}
}}
"""


def isa_version(arch: str) -> int:
    """gfx950 -> 9500, gfx942 -> 9402, gfx90a -> 9010, gfx1100 -> 11000 (ROCm's __oclc_ISA_version)."""
    name = arch.split(":")[0].removeprefix("gfx")
    if len(name) < 3:
        raise TargetError(f"arch {arch!r} is not a gfx ISA name (e.g. gfx950)")
    return int(name[:-2]) * 1000 + int(name[-2], 16) * 100 + int(name[-1], 16)


class DeviceBuild(BaseModel):
    """What one device compile of a .hip/.cpp file produced."""

    model_config = ConfigDict(extra="forbid")
    ok: bool
    timed_out: bool = False
    amdgcn: str | None = None
    hsaco: str | None = None
    kernels: list[dict[str, Any]] = Field(default_factory=list, description="amdhsa.kernels metadata")
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    runs: list[ToolRun] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def log(self) -> str:
        return "".join(r.log() for r in self.runs)


def hip_compile_flags(tools: HipTools, arch: str, warp_size: int) -> list[str]:
    """The device-compile flags (without files); part of the cache key."""
    if tools.mode == "hipcc":
        return ["-x", "hip", f"--offload-arch={arch}", "--cuda-device-only", "-O3"]
    return [
        "-x",
        "hip",
        f"--offload-arch={arch}",
        "--cuda-device-only",
        f"--rocm-path={tools.rocm_path}",
        "-nogpulib",
        f"-D__AMDGCN_WAVEFRONT_SIZE={warp_size}",
        f"-mcode-object-version={CODE_OBJECT_VERSION}",
        "-O3",
        "-fuse-cuid=none",
    ]


def build_hip_device(
    src: Path,
    arch: str,
    outdir: Path,
    deadline: float,
    tools: HipTools,
    *,
    warp_size: int = 64,
    include_dirs: Sequence[Path] = (),
    path_map: Mapping[str, str] | None = None,
    stem: str | None = None,
    extra_flags: Sequence[str] = (),
) -> DeviceBuild:
    """Compile `src` (HIP C++) for `arch` to `<stem>.<arch>.s` and, where a linker is found,
    `<stem>.<arch>.hsaco`, all under `outdir`, stopping at the monotonic `deadline`."""
    stem = stem or src.stem
    asm = outdir / f"{stem}.{arch}.s"
    hsaco = outdir / f"{stem}.{arch}.hsaco"
    flags = hip_compile_flags(tools, arch, warp_size) + list(extra_flags)
    incs = [f"-I{d}" for d in [src.parent, *include_dirs]]
    build = DeviceBuild(ok=False, flags=flags)

    def step(cmd: list[str]) -> ToolRun:
        run = run_tool(cmd, timeout_s=deadline - time.monotonic(), cwd=outdir)
        build.runs.append(run)
        return run

    def failed(run: ToolRun) -> DeviceBuild:
        build.timed_out = run.timed_out
        build.diagnostics = parse_clang_diagnostics(run.stderr + run.stdout, path_map)
        if not run.timed_out and not any(d.severity == "error" for d in build.diagnostics):
            tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or [f"exit {run.returncode}"]
            build.diagnostics.append(Diagnostic(message=f"{Path(run.cmd[0]).name} failed: {tail[0]}"))
        return build

    if tools.mode == "hipcc":
        assert tools.hipcc is not None
        run = step([tools.hipcc.path, *flags, *incs, "-S", "-o", str(asm), str(src)])
        if run.timed_out or run.returncode != 0:
            return failed(run)
        link = [
            tools.hipcc.path,
            f"--offload-arch={arch}",
            "--genco",
            "-O3",
            *extra_flags,
            *incs,
            "-o",
            str(hsaco),
            str(src),
        ]
    else:
        assert tools.clang is not None and tools.device_libs is not None
        shim_c = outdir / f"ksearch_device_shim.{arch}.c"
        shim_bc = outdir / f"ksearch_device_shim.{arch}.bc"
        shim_c.write_text(
            _SHIM_C.format(
                isa_version=isa_version(arch),
                abi_version=CODE_OBJECT_VERSION * 100,
                wave64=int(warp_size == 64),
                wave_log2=int(math.log2(warp_size)),
            )
        )
        run = step(
            [
                tools.clang.path,
                "-x",
                "c",
                "-target",
                "amdgcn-amd-amdhsa",
                f"-mcpu={arch}",
                "-nogpulib",
                f"-mcode-object-version={CODE_OBJECT_VERSION}",
                "-O2",
                "-c",
                "-emit-llvm",
                "-o",
                str(shim_bc),
                str(shim_c),
            ]
        )
        if run.timed_out or run.returncode != 0:
            return failed(run)
        bitcode = []
        for bc in (tools.device_libs.ocml, tools.device_libs.ockl, str(shim_bc)):
            bitcode += ["-Xclang", "-mlink-builtin-bitcode", "-Xclang", bc]
        run = step([tools.clang.path, *flags, *bitcode, *incs, "-S", "-o", str(asm), str(src)])
        if run.timed_out or run.returncode != 0:
            return failed(run)
        link = []
        if tools.lld is not None:
            obj = outdir / f"{stem}.{arch}.o"
            run = step(
                [
                    tools.clang.path,
                    "-target",
                    "amdgcn-amd-amdhsa",
                    f"-mcpu={arch}",
                    "-x",
                    "assembler",
                    "-c",
                    "-o",
                    str(obj),
                    str(asm),
                ]
            )
            if run.timed_out or run.returncode != 0:
                return failed(run)
            link = [tools.lld.path, "-shared", "--no-undefined", "-o", str(hsaco), str(obj)]
        else:
            build.notes += tools.notes
    build.diagnostics = parse_clang_diagnostics("".join(r.stderr for r in build.runs), path_map)
    text = asm.read_text(errors="replace")
    build.amdgcn = str(asm)
    build.kernels = parse_amdgcn_metadata(text)
    undefined = undefined_calls(text)
    if undefined:
        build.diagnostics.append(
            Diagnostic(
                message=f"undefined device function(s) {', '.join(undefined)}: "
                "declared but defined neither in this file nor in the device libraries"
            )
        )
        return build
    if link:
        run = step(link)
        if run.timed_out or run.returncode != 0:
            return failed(run)
        build.hsaco = str(hsaco)
    build.ok = True
    return build


_CALL_SYM = re.compile(r"\b([A-Za-z_.$][\w.$]*)@(?:rel32|gotpcrel32|gotpcrel)@lo\b")
_LABEL = re.compile(r"^([A-Za-z_.$][\w.$]*):", re.MULTILINE)


def undefined_calls(asm: str) -> list[str]:
    """Functions the assembly calls (pc-relative) that it does not define: unresolved at link time."""
    defined = set(_LABEL.findall(asm))
    return sorted({s for s in _CALL_SYM.findall(asm) if s not in defined})


# ---- public entry ---------------------------------------------------------------------------


def compile_hip(
    source: str,
    source_path: Path,
    target_profile: TargetProfile,
    outdir: Path,
    timeout_s: float = 120,
    *,
    task: Task | None = None,
    require_launch: bool = True,
) -> CompileResult:
    """Compile a HIP candidate for an AMD target. Never raises for a fault of the candidate."""
    start = time.monotonic()
    if target_profile.vendor != "amd":
        raise TargetError(
            f"HIP candidates compile for AMD targets (gfx942, gfx950); target {target_profile.name} "
            f"is {target_profile.vendor} {target_profile.arch}: use triton or tilelang for it"
        )
    arch = target_profile.arch
    source_path = Path(source_path)
    display = str(source_path)
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    tools = find_hip_tools()
    src = outdir / (
        source_path.name if source_path.suffix == ".hip" else f"{source_path.stem or 'candidate'}.hip"
    )
    src.write_text(source)
    base: dict[str, Any] = {
        "language": "hip",
        "target": target_profile.name,
        "arch": arch,
        "toolchain": tools.versions(),
        "artifacts": {"source": str(src)},
    }

    def result(**kw: Any) -> CompileResult:
        return CompileResult(seconds=time.monotonic() - start, **{**base, **kw})

    parsed, diags = parse_launch(source, display)
    if not diags and parsed is None and require_launch:
        diags = [
            Diagnostic(
                file=display,
                line=1,
                message=f"no launch description: add a /* {LAUNCH_MARKER} ... */ "
                "block naming each kernel, its block, grid and args (see ksearch.compile.hip_backend)",
            )
        ]
    if not diags and parsed is not None and task is not None:
        diags = check_launch_against_task(parsed, task, display)
    if diags:
        return result(
            ok=False,
            diagnostics=diags,
            failure_class=FailureClass.COMPILE_ERROR,
            message=f"{display}:{diags[0].line}: {diags[0].message}",
        )
    if tools.mode is None:
        return result(
            ok=False,
            failure_class=FailureClass.SKIPPED_TOOLCHAIN_MISSING,
            message="; ".join(m.message for m in tools.missing),
        )

    deadline = time.monotonic() + timeout_s  # the limit covers the compiler runs, not tool discovery
    build = build_hip_device(
        src,
        arch,
        outdir,
        deadline,
        tools,
        warp_size=target_profile.warp_size,
        include_dirs=[source_path.parent.resolve()] if source_path.parent.exists() else [],
        path_map={str(src): display, src.name: display},
        stem=src.stem,
    )
    log = outdir / "compile.log"
    log.write_text(build.log())
    artifacts = {**base["artifacts"], "compile_log": str(log)}
    if build.amdgcn:
        artifacts["amdgcn"] = build.amdgcn
    if build.hsaco:
        artifacts["hsaco"] = build.hsaco
    if build.timed_out:
        return result(
            ok=False,
            artifacts=artifacts,
            diagnostics=build.diagnostics,
            failure_class=FailureClass.COMPILE_TIMEOUT,
            message=f"compile did not finish within {timeout_s:g}s and was killed "
            f"({Path(build.runs[-1].cmd[0]).name})",
        )
    if not build.ok:
        first = next((d for d in build.diagnostics if d.severity == "error"), None)
        where = f"{first.file}:{first.line}:{first.column}: " if first and first.file else ""
        return result(
            ok=False,
            artifacts=artifacts,
            diagnostics=build.diagnostics,
            failure_class=FailureClass.COMPILE_ERROR,
            message=f"{where}{first.message}" if first else "compile failed (see compile_log)",
        )

    metas = {str(m.get(".name")): m for m in build.kernels}
    launches = {k.name: k for k in parsed.spec.kernels} if parsed else {}
    kernels = [
        kernel_info_from_metadata(metas[n], arch, launches[n], target_profile.warp_size)
        for n in launches
        if n in metas
    ]
    kernels += [
        kernel_info_from_metadata(m, arch, None, target_profile.warp_size)
        for n, m in metas.items()
        if n not in launches
    ]
    problems = _launch_vs_metadata(parsed, metas, display, task) if parsed else []
    if problems:
        return result(
            ok=False,
            artifacts=artifacts,
            kernels=kernels,
            diagnostics=build.diagnostics + problems,
            failure_class=FailureClass.COMPILE_ERROR,
            message=f"{display}:{problems[0].line}: {problems[0].message}",
        )
    message = f"built {len(kernels)} kernel(s) for {arch} with {tools.mode}"
    if build.notes:
        message += "; " + "; ".join(build.notes)
    return result(
        ok=True, artifacts=artifacts, kernels=kernels, diagnostics=build.diagnostics, message=message
    )
