"""HIP C++ backend: build a `.hip` candidate for an AMD target (gfx942, gfx950) into AMDGCN and a code object.

How the candidate's kernels are launched (its `/* ksearch:launch ... */` description: grid, block,
arguments) is `ksearch.compile.hip_launch`; this module checks it against the task before the build
and against the built kernels' metadata after it.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ksearch.compile.amdgcn import amd_resources, parse_amdgcn_metadata
from ksearch.compile.amdgcn import int_field as _int
from ksearch.compile.hip_launch import (
    LAUNCH_MARKER,
    KernelLaunch,
    check_launch_against_kernels,
    check_launch_against_task,
    kernel_params,
    parse_launch,
)
from ksearch.compile.registry import FunctionCompiler
from ksearch.compile.result import CompileResult, KernelInfo
from ksearch.compile.toolchain import HipTools, ToolRun, find_hip_tools, hip_toolchain, run_tool
from ksearch.errors import TargetError
from ksearch.evidence import Diagnostic, FailureClass, Severity

if TYPE_CHECKING:
    from ksearch.target import TargetProfile
    from ksearch.task import Task

__all__ = [
    "DeviceBuild",
    "build_hip_device",
    "compile_hip",
    "hip_compile_flags",
    "hip_toolchain",
    "isa_version",
    "kernel_info_from_metadata",
    "parse_amdgcn_metadata",
    "parse_clang_diagnostics",
    "undefined_calls",
]

MAX_DIAGNOSTICS = 50
CODE_OBJECT_VERSION = 5


# ---- compiler diagnostics -------------------------------------------------------------------

_CLANG_DIAG = re.compile(
    r"^(?P<file>[^\s:][^:]*?):(?P<line>\d+):(?P<col>\d+): (?P<sev>fatal error|error|warning|note|remark): "
    r"(?P<msg>.*)$"
)
_TOOL_DIAG = re.compile(r"^(?:(?P<tool>[\w.+-]+): )?(?P<sev>fatal error|error|warning): (?P<msg>.*)$")
_SEVERITY: dict[str, Severity] = {
    "fatal error": "error",
    "error": "error",
    "warning": "warning",
    "note": "note",
    "remark": "note",
}


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
        "params": [{"kind": a.get(".value_kind"), "bytes": a.get(".size")} for a in kernel_params(meta)],
    }
    if launch is not None:
        spec["launch"] = {
            "block": launch.block,
            "grid": launch.grid,
            "args": [str(a) for a in launch.args],
            "shared_bytes": launch.shared_bytes,
        }
    return KernelInfo.model_validate(
        {
            "name": str(meta.get(".name")),
            "specialization": spec,
            "num_warps": threads // spec["wavefront_size"] if threads else None,
            "threads_per_block": threads,
            **amd_resources(dict(meta)),
        }
    )


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
    problems = check_launch_against_kernels(parsed, metas, display, task) if parsed else []
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


COMPILER = FunctionCompiler(
    language="hip",
    claims=lambda path, source: path.suffix in (".hip", ".cu", ".cpp", ".cc"),
    toolchain=hip_toolchain,
    compile=lambda source, path, task, target, outdir, *, dtype, timeout_s: compile_hip(
        source, path, target, outdir, timeout_s=timeout_s, task=task
    ),
    # The harness launches Python modules only.
    cannot_run=lambda device: "HIP candidates need a ROCm runtime",
)
