"""TileLang backend: lower a TileLang candidate without a GPU, then build the device code it emits.

**Candidate convention.** A TileLang candidate is a Python module that defines

* `make_kernel(**kw) -> T.prim_func` (or a dict / list of prim_funcs, for multi-kernel candidates).
  It is called with keyword arguments: every axis and param of the task for one workload (e.g.
  `M=4096, N=4096, K=4096` for `matmul`) and `dtype`, the task's dtype variant as TileLang spells it
  (`"bfloat16"`, `"float16"`, `"float32"`). Only the names its signature accepts are passed (all of
  them if it takes `**kw`). A `@tilelang.jit`-decorated `make_kernel` works too (its `get_tir` is used).
* or, for fixed shapes, a module-level prim_func named `kernel`;
* optionally `PASS_CONFIGS`, a dict of TileLang pass configs (`tilelang.PassConfigKey`) applied while
  lowering;
* and, for the GPU harness, the destination-passing `run(*inputs, *outputs)` (not used here).

**Lowering.** In a subprocess (so a hang is killed at `timeout_s` and a crash in TVM is contained),
the module is imported and each prim_func is lowered with `tilelang.lower(func, target=tgt)` inside
`with tvm.target.Target(spec) as tgt`, where `spec` is `{"kind": "cuda", "arch": "sm_100a"}` (NVIDIA)
or `{"kind": "hip", "mcpu": "gfx950"}` (AMD). TileLang 0.1.15 needs no GPU for this, only the active
target context. The kernel source is artifact `cuda_src` or `hip_src`; launch geometry and dynamic
shared memory come from the lowered device module's attributes.

**Device build.** NVIDIA: `nvcc -std=c++20 -O3 -arch=ARCH -cubin -Xptxas -v` with TileLang's template
and CUTLASS include dirs -> `cubin`, then `cuobjdump -sass` -> `sass`; registers, spills and static
shared memory per kernel come from ptxas's report. AMD: the HIP backend's device build
(`ksearch.compile.hip_backend.build_hip_device`) -> `amdgcn` (+ `hsaco`). When the compiler is not
installed, or the installed headers lack what TileLang's generated code includes (TileLang's HIP
templates need ROCm >= 6 headers: hip_bf16.h and rocWMMA), the lowered source is kept, the result is
still `ok` (lowering is the compile on a CPU-only machine), and a warning Diagnostic plus the message
say the device build was skipped and why. A genuine compiler error in the generated code is
`compile_error` with Diagnostics located in the generated source.

Failure classes: `import_error` (the module does not import), `entry_signature` (no `make_kernel` /
`kernel`, or it rejects the arguments), `compile_error` (building the prim_func or lowering failed;
located in the candidate where the traceback passes through it), `compile_timeout`,
`skipped:toolchain_missing` (tilelang not installed or not importable).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

import ksearch
from ksearch.compile.diagnostics import diagnostics_from_exception
from ksearch.compile.hip_backend import build_hip_device, kernel_info_from_metadata, parse_clang_diagnostics
from ksearch.compile.registry import FunctionCompiler
from ksearch.compile.result import CompileResult, KernelInfo
from ksearch.compile.toolchain import (
    CudaTools,
    HipTools,
    ToolRun,
    find_cuda_tools,
    find_hip_tools,
    package_version,
    run_tool,
)
from ksearch.errors import TaskError
from ksearch.evidence import Diagnostic, FailureClass, Severity

if TYPE_CHECKING:
    from ksearch.target import TargetProfile
    from ksearch.task import Task

__all__ = [
    "compile_tilelang",
    "lower_target_spec",
    "parse_nvcc_diagnostics",
    "parse_ptxas_report",
    "tilelang_available",
]

MAX_WARNINGS = 10


def tilelang_available() -> str | None:
    """None when tilelang is installed, else why not (checked without importing it: that takes seconds)."""
    import importlib.util

    if importlib.util.find_spec("tilelang") is None:
        return "tilelang is not installed: pip install tilelang==0.1.15"
    version = package_version("tilelang")
    if version is None:
        return (
            "tilelang is importable but has no package metadata: reinstall with pip install tilelang==0.1.15"
        )
    return None


def tilelang_toolchain(vendor: str | None = None) -> dict[str, str | None]:
    """TileLang's version and the device toolchain that builds its output (both vendors' when None)."""
    versions: dict[str, str | None] = {"tilelang": package_version("tilelang")}
    if vendor in (None, "nvidia"):
        versions.update(find_cuda_tools().versions())
    if vendor in (None, "amd"):
        versions.update(find_hip_tools().versions())
    return versions


def lower_target_spec(target_profile: TargetProfile) -> dict[str, str]:
    """The TVM target dict TileLang lowers for."""
    if target_profile.vendor == "nvidia":
        return {"kind": "cuda", "arch": target_profile.arch}
    return {"kind": "hip", "mcpu": target_profile.arch}


class _Unit(BaseModel):
    """One lowered prim_func: its generated source and the kernels in it (from the worker)."""

    model_config = ConfigDict(extra="ignore")
    func: str
    source: str
    kernels: list[dict[str, Any]] = Field(default_factory=list)


class _WorkerResult(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str
    message: str = ""
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    units: list[_Unit] = Field(default_factory=list)
    include_dirs: list[str] = Field(default_factory=list)
    tilelang_version: str | None = None


def compile_tilelang(
    source: str,
    source_path: Path,
    task: Task,
    target_profile: TargetProfile,
    outdir: Path,
    dtype: str | None = None,
    timeout_s: float = 300,
    *,
    workload: str | None = None,
) -> CompileResult:
    """Lower a TileLang candidate for one workload of `task` (default: the one with the most FLOPs) and
    dtype variant (default: the task's first), then build its device code. Never raises for a fault of
    the candidate; an unknown dtype or workload (the caller's mistake) raises TaskError."""
    start = time.monotonic()
    source_path = Path(source_path)
    display = str(source_path)
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    arch = target_profile.arch
    variant = dtype or task.default_dtype
    if variant not in task.dtypes:  # a caller's mistake, not the candidate's
        raise TaskError(
            f"task {task.name}: dtype '{variant}' is not one of its variants; use one of: "
            f"{', '.join(task.dtypes)}"
        )
    # Default: the suite's most compute-heavy workload, the one performance hinges on.
    wl = task.workload(workload) if workload else max(task.workloads(), key=lambda w: task.flops(w, variant))
    kwargs: dict[str, Any] = {**task.params_for(wl), **task.axes_for(wl), "dtype": variant}
    toolchain = tilelang_toolchain(target_profile.vendor)
    tl_version = toolchain["tilelang"]
    stem = source_path.stem or "candidate"
    module_copy = outdir / f"{stem}.py"
    module_copy.write_text(source)
    base: dict[str, Any] = {
        "language": "tilelang",
        "target": target_profile.name,
        "arch": arch,
        "toolchain": toolchain,
    }
    artifacts: dict[str, str] = {"source": str(module_copy)}
    log_parts: list[str] = []
    log_path = outdir / "compile.log"

    def result(**kw: Any) -> CompileResult:
        log_path.write_text("".join(log_parts))
        return CompileResult(
            seconds=time.monotonic() - start,
            artifacts={**artifacts, "compile_log": str(log_path)},
            **{**base, **kw},
        )

    missing = tilelang_available()
    if missing:
        return result(ok=False, failure_class=FailureClass.SKIPPED_TOOLCHAIN_MISSING, message=missing)

    # ---- lower, in a subprocess --------------------------------------------------------------
    ext = ".cu" if target_profile.vendor == "nvidia" else ".hip"
    request: dict[str, Any] = {
        "module_path": str(module_copy),
        "display": display,
        "kwargs": kwargs,
        "target": lower_target_spec(target_profile),
        "outdir": str(outdir),
        "stem": stem,
        "arch": arch,
        "ext": ext,
        "result_path": str(outdir / "lower_result.json"),
    }
    request_path = outdir / "lower_request.json"
    request_path.write_text(json.dumps(request, indent=1))
    Path(request["result_path"]).unlink(missing_ok=True)
    env = dict(os.environ)
    root = str(Path(ksearch.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    deadline = time.monotonic() + timeout_s  # the limit covers lowering and device builds, not discovery
    run = run_tool(
        [sys.executable, "-m", "ksearch.compile.tilelang_backend", str(request_path)],
        timeout_s=deadline - time.monotonic(),
        cwd=outdir,
        env=env,
    )
    log_parts.append(run.log())
    warnings = _tilelang_warnings(run.stderr + run.stdout)
    if run.timed_out:
        return result(
            ok=False,
            failure_class=FailureClass.COMPILE_TIMEOUT,
            diagnostics=warnings,
            message=f"TileLang lowering did not finish within {timeout_s:g}s and was killed",
        )
    lowered = _read_worker_result(Path(request["result_path"]))
    if lowered is None:
        tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or [""]
        return result(
            ok=False,
            failure_class=FailureClass.COMPILE_ERROR,
            diagnostics=warnings,
            message=f"TileLang lowering crashed (exit {run.returncode}) without a result: {tail[0]}",
        )
    toolchain["tilelang"] = lowered.tilelang_version or tl_version
    if lowered.status != "ok":
        failure = {
            "toolchain_missing": FailureClass.SKIPPED_TOOLCHAIN_MISSING,
            "import_error": FailureClass.IMPORT_ERROR,
            "entry_signature": FailureClass.ENTRY_SIGNATURE,
        }.get(lowered.status, FailureClass.COMPILE_ERROR)
        return result(
            ok=False,
            failure_class=failure,
            diagnostics=lowered.diagnostics + warnings,
            message=lowered.message,
        )

    kind = "cuda_src" if target_profile.vendor == "nvidia" else "hip_src"
    artifacts[kind] = lowered.units[0].source
    workload_note = {"workload": wl.name, "axes": task.axes_for(wl), "dtype": variant}

    # ---- device build ------------------------------------------------------------------------
    kernels: list[KernelInfo] = []
    diagnostics = list(warnings)
    skipped: list[str] = []
    for unit in lowered.units:
        if target_profile.vendor == "nvidia":
            built = _build_cuda(unit, arch, outdir, deadline, find_cuda_tools(), lowered.include_dirs)
        else:
            built = _build_hip(unit, target_profile, outdir, deadline, find_hip_tools(), lowered.include_dirs)
        log_parts.extend(r.log() for r in built.runs)
        if built.timed_out:
            return result(
                ok=False,
                failure_class=FailureClass.COMPILE_TIMEOUT,
                diagnostics=diagnostics,
                message=f"device compile of the lowered {unit.func} did not finish within {timeout_s:g}s",
            )
        if built.error:
            return result(
                ok=False,
                failure_class=FailureClass.COMPILE_ERROR,
                diagnostics=diagnostics + built.diagnostics,
                message=f"TileLang lowered {unit.func}, but its generated code does not compile: "
                f"{built.error}",
            )
        if built.skipped:
            skipped.append(built.skipped)
            diagnostics += built.diagnostics
        for k in unit.kernels:
            info = built.kernel_infos.get(k["name"], {})
            threads = _threads(k.get("thread_extent", {}))
            smem_static = info.get("smem_bytes")
            dyn = int(k.get("dyn_shared_bytes") or 0)
            warp = target_profile.warp_size
            kernels.append(
                KernelInfo(
                    name=k["name"],
                    specialization={
                        **workload_note,
                        "prim_func": unit.func,
                        "thread_extent": k.get("thread_extent", {}),
                        "dyn_shared_bytes": dyn,
                        **info.get("extra", {}),
                    },
                    num_warps=threads // warp if threads else None,
                    threads_per_block=threads,
                    registers=info.get("registers"),
                    agprs=info.get("agprs"),
                    sgprs=info.get("sgprs"),
                    spill_stores=info.get("spill_stores"),
                    spill_loads=info.get("spill_loads"),
                    sgpr_spills=info.get("sgpr_spills"),
                    local_bytes=info.get("local_bytes"),
                    smem_bytes=(smem_static or 0) + dyn if (smem_static is not None or dyn) else None,
                    artifacts={kind: unit.source, **built.artifacts},
                )
            )
        for art_kind, path in built.artifacts.items():
            artifacts.setdefault(art_kind, path)
    message = f"lowered {len(lowered.units)} prim_func(s) for {arch} ({wl.name}, {variant})"
    if skipped:
        message += "; device build skipped: " + "; ".join(dict.fromkeys(skipped))
    return result(ok=True, kernels=kernels, diagnostics=diagnostics, message=message)


def _threads(extent: Mapping[str, Any]) -> int | None:
    dims = [int(extent.get(f"threadIdx.{d}", 1)) for d in "xyz"]
    return dims[0] * dims[1] * dims[2] if any(f"threadIdx.{d}" in extent for d in "xyz") else None


def _read_worker_result(path: Path) -> _WorkerResult | None:
    try:
        return _WorkerResult.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


_TL_WARNING = re.compile(r"^(?:\[[\d:]+\]\s*)?(?:\S+:\d+:\s*)?:?\s*Warning:\s*(?P<msg>.+)$", re.MULTILINE)


def _tilelang_warnings(text: str) -> list[Diagnostic]:
    msgs = list(dict.fromkeys(m.group("msg").strip() for m in _TL_WARNING.finditer(text)))
    return [Diagnostic(severity="warning", message=f"tilelang: {m}") for m in msgs[:MAX_WARNINGS]]


# ---- device builds ----------------------------------------------------------------------------


class _Built(BaseModel):
    model_config = ConfigDict(extra="forbid")
    runs: list[ToolRun] = Field(default_factory=list)
    artifacts: dict[str, str] = Field(default_factory=dict)
    kernel_infos: dict[str, dict[str, Any]] = Field(default_factory=dict)
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    timed_out: bool = False
    error: str | None = None
    skipped: str | None = None


_NVCC_DIAG = re.compile(
    r"^(?P<file>[^\s(][^(]*)\((?P<line>\d+)\): (?P<sev>error|warning|catastrophic error)"
    r"(?: #[\w-]+)?: (?P<msg>.*)$"
)


def parse_nvcc_diagnostics(text: str, path_map: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """nvcc's `file(line): error: message` lines, plus clang-style lines from the host compiler."""
    path_map = dict(path_map or {})
    diags = []
    for raw in text.splitlines():
        m = _NVCC_DIAG.match(raw.strip())
        if m:
            sev: Severity = "warning" if m.group("sev") == "warning" else "error"
            diags.append(
                Diagnostic(
                    file=path_map.get(m.group("file"), m.group("file")),
                    line=int(m.group("line")),
                    severity=sev,
                    message=m.group("msg").strip(),
                )
            )
    return diags + parse_clang_diagnostics(text, path_map)


_PTXAS_FUNC = re.compile(
    r"Function properties for (?P<name>\S+)\s*\n\s*(?P<stack>\d+) bytes stack frame, "
    r"(?P<st>\d+) bytes spill stores, (?P<ld>\d+) bytes spill loads"
)
_PTXAS_USED = re.compile(
    r"Compiling entry function '(?P<name>[^']+)'.*?Used (?P<reg>\d+) registers"
    r"(?:, used \d+ barriers)?(?:, (?P<smem>\d+) bytes smem)?",
    re.DOTALL,
)


def parse_ptxas_report(text: str) -> dict[str, dict[str, Any]]:
    """Per kernel: registers, static smem, stack (local) bytes and spill bytes from `ptxas -v`."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in re.split(r"(?=ptxas info\s*: Compiling entry function)", text):
        used = _PTXAS_USED.search(chunk)
        if not used:
            continue
        info = out.setdefault(used.group("name"), {})
        info["registers"] = int(used.group("reg"))
        info["smem_bytes"] = int(used.group("smem") or 0)
        props = _PTXAS_FUNC.search(chunk)
        if props:
            info["local_bytes"] = int(props.group("stack"))
            info["spill_stores"] = int(props.group("st"))
            info["spill_loads"] = int(props.group("ld"))
    return out


def _missing_header(diags: Sequence[Diagnostic]) -> Diagnostic | None:
    return next(
        (
            d
            for d in diags
            if d.severity == "error"
            and (
                "file not found" in d.message
                or "No such file or directory" in d.message
                or "cannot open source file" in d.message
            )
        ),
        None,
    )


def _build_cuda(
    unit: _Unit, arch: str, outdir: Path, deadline: float, tools: CudaTools, include_dirs: Sequence[str]
) -> _Built:
    built = _Built()
    if tools.nvcc is None:
        built.skipped = tools.missing[0].message if tools.missing else "nvcc not found"
        built.diagnostics.append(
            Diagnostic(severity="warning", message=f"device build skipped: {built.skipped}")
        )
        return built
    src = Path(unit.source)
    cubin = outdir / f"{src.stem}.cubin"
    cmd = [
        tools.nvcc.path,
        "-std=c++20",
        "-w",
        "-O3",
        "-lineinfo",
        f"-arch={arch}",
        "-cubin",
        "-Xptxas",
        "-v",
        *(f"-I{d}" for d in include_dirs),
        "-o",
        str(cubin),
        str(src),
    ]
    run = run_tool(cmd, timeout_s=deadline - time.monotonic(), cwd=outdir)
    built.runs.append(run)
    if run.timed_out:
        built.timed_out = True
        return built
    if run.returncode != 0:
        diags = parse_nvcc_diagnostics(run.stderr + run.stdout)
        missing = _missing_header(diags)
        if missing is not None:
            built.skipped = f"nvcc cannot find a header the generated code includes: {missing.message}"
            built.diagnostics = [
                d.model_copy(update={"severity": "warning"}) for d in diags if d.severity == "error"
            ]
            return built
        built.diagnostics = diags or [Diagnostic(message=f"nvcc failed (exit {run.returncode})")]
        built.error = next(
            (f"{d.file}:{d.line}: {d.message}" for d in built.diagnostics if d.severity == "error"),
            f"nvcc exit {run.returncode}",
        )
        return built
    built.artifacts["cubin"] = str(cubin)
    built.kernel_infos = parse_ptxas_report(run.stderr + run.stdout)
    dumper = tools.cuobjdump or tools.nvdisasm
    if dumper is not None:
        sass = outdir / f"{src.stem}.sass"
        dump_cmd = (
            [dumper.path, "-sass", str(cubin)]
            if dumper.name == "cuobjdump"
            else [dumper.path, "-c", str(cubin)]
        )
        run = run_tool(dump_cmd, timeout_s=deadline - time.monotonic(), cwd=outdir)
        built.runs.append(run)
        if run.timed_out:
            built.timed_out = True
            return built
        if run.returncode == 0:
            sass.write_text(run.stdout)
            built.artifacts["sass"] = str(sass)
    return built


def _build_hip(
    unit: _Unit,
    target_profile: TargetProfile,
    outdir: Path,
    deadline: float,
    tools: HipTools,
    include_dirs: Sequence[str],
) -> _Built:
    built = _Built()
    if tools.mode is None:
        built.skipped = "; ".join(m.message for m in tools.missing)
        built.diagnostics.append(
            Diagnostic(severity="warning", message=f"device build skipped: {built.skipped}")
        )
        return built
    src = Path(unit.source)
    dev = build_hip_device(
        src,
        target_profile.arch,
        outdir,
        deadline,
        tools,
        warp_size=target_profile.warp_size,
        include_dirs=[Path(d) for d in include_dirs],
        stem=src.stem.rsplit(".", 1)[0],
        extra_flags=["-std=c++17"],
    )
    built.runs = dev.runs
    if dev.timed_out:
        built.timed_out = True
        return built
    if not dev.ok:
        missing = _missing_header(dev.diagnostics)
        if missing is not None:
            where = f" ({missing.file}:{missing.line})" if missing.file else ""
            built.skipped = (
                f"the installed HIP headers lack what TileLang's generated code includes: "
                f"{missing.message}{where}; TileLang's HIP templates need ROCm >= 6 headers and rocWMMA"
            )
            built.diagnostics = [
                d.model_copy(update={"severity": "warning"}) for d in dev.diagnostics if d.severity == "error"
            ]
            return built
        built.diagnostics = dev.diagnostics
        first = next((d for d in dev.diagnostics if d.severity == "error"), None)
        built.error = f"{first.file}:{first.line}: {first.message}" if first else "device compile failed"
        return built
    if dev.amdgcn:
        built.artifacts["amdgcn"] = dev.amdgcn
    if dev.hsaco:
        built.artifacts["hsaco"] = dev.hsaco
    for meta in dev.kernels:
        info = kernel_info_from_metadata(meta, target_profile.arch, None, target_profile.warp_size)
        built.kernel_infos[info.name] = {
            "registers": info.registers,
            "agprs": info.agprs,
            "sgprs": info.sgprs,
            "spill_stores": info.spill_stores,
            "sgpr_spills": info.sgpr_spills,
            "local_bytes": info.local_bytes,
            "smem_bytes": info.smem_bytes,
            "extra": {
                "total_vgprs": info.specialization.get("total_vgprs"),
                "max_flat_workgroup_size": info.specialization.get("max_flat_workgroup_size"),
            },
        }
    return built


# ---- the lowering worker (runs in a subprocess) -----------------------------------------------


def _short_error(exc: BaseException) -> str:
    """TVM errors carry a C++ backtrace; keep the lines that say what went wrong."""
    lines = [ln.rstrip() for ln in str(exc).splitlines()]
    keep = [
        ln
        for ln in lines
        if ln.strip() and not ln.lstrip().startswith(("File ", "Traceback")) and not ln.startswith("  ")
    ]
    text = " ".join(" ".join(keep[-3:]).split()) if keep else " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:2000]


def _locate(exc: BaseException, module_path: str, display: str, source: str) -> list[Diagnostic]:
    diags = diagnostics_from_exception(exc, module_path, source)
    if not diags:
        diags = [Diagnostic(file=module_path, message=_short_error(exc))]
    fixed = []
    for d in diags:
        update: dict[str, Any] = {}
        if d.file and Path(d.file).resolve() == Path(module_path).resolve():
            update["file"] = display
        if "Traceback" in d.message or 'File "<unknown>"' in d.message or len(d.message) > 600:
            update["message"] = _short_error(exc)
        fixed.append(d.model_copy(update=update))
    return fixed


def _prim_funcs(entry: Any) -> dict[str, Any]:
    from tvm import tirx

    if isinstance(entry, tirx.PrimFunc):
        return {
            str(entry.attrs["global_symbol"])
            if entry.attrs and "global_symbol" in entry.attrs
            else "main": entry
        }
    if isinstance(entry, Mapping):
        return {str(k): v for k, v in entry.items()}
    if isinstance(entry, (list, tuple)):
        out = {}
        for i, f in enumerate(entry):
            name = (
                str(f.attrs["global_symbol"])
                if getattr(f, "attrs", None) and "global_symbol" in f.attrs
                else f"f{i}"
            )
            out[name] = f
        return out
    raise TypeError(
        f"make_kernel returned {type(entry).__name__}; return a T.prim_func (or a dict/list of them)"
    )


def _call_make_kernel(fn: Any, kwargs: Mapping[str, Any]) -> Any:
    target = fn.get_tir if hasattr(fn, "get_tir") else fn
    inner = getattr(fn, "func", fn) if hasattr(fn, "get_tir") else fn
    try:
        sig = inspect.signature(inner)
    except (TypeError, ValueError):
        return target(**kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return target(**kwargs)
    accepted = {k: v for k, v in kwargs.items() if k in sig.parameters}
    needed = [
        p.name
        for p in sig.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in accepted
    ]
    if needed:
        raise _EntryError(
            f"make_kernel needs {', '.join(needed)}, which the task does not provide; "
            f"it is called with keywords {', '.join(kwargs)}"
        )
    return target(**accepted)


class _EntryError(Exception):
    pass


def _worker(request_path: str) -> int:
    req = json.loads(Path(request_path).read_text())
    out: dict[str, Any] = {"status": "compile_error", "message": "", "diagnostics": [], "units": []}
    result_path = Path(req["result_path"])
    module_path, display = req["module_path"], req["display"]
    source = Path(module_path).read_text()

    def finish(status: str, message: str, diags: Sequence[Diagnostic] = ()) -> int:
        out.update(status=status, message=message, diagnostics=[d.model_dump() for d in diags])
        result_path.write_text(json.dumps(out, default=str))
        return 0

    try:
        import tilelang
        import tvm
        from tilelang.env import CUTLASS_INCLUDE_DIR, TILELANG_TEMPLATE_PATH
        from tvm.target import Target
    except Exception as exc:  # noqa: BLE001 - any import failure means the toolchain is unusable here
        return finish("toolchain_missing", f"tilelang does not import: {_short_error(exc)}")
    out["tilelang_version"] = getattr(tilelang, "__version__", None)
    out["include_dirs"] = [str(Path(p).resolve()) for p in (TILELANG_TEMPLATE_PATH, CUTLASS_INCLUDE_DIR) if p]

    import importlib.util

    spec = importlib.util.spec_from_file_location(f"ksearch_tilelang_candidate_{req['stem']}", module_path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001 - the candidate's import failure is reported, not raised
        diags = _locate(exc, module_path, display, source)
        return finish("import_error", f"{display}: the module does not import: {diags[0].message}", diags)

    try:
        if callable(getattr(module, "make_kernel", None)):
            entry = _call_make_kernel(module.make_kernel, req["kwargs"])
        elif getattr(module, "kernel", None) is not None:
            entry = module.kernel
        else:
            return finish(
                "entry_signature",
                f"{display} defines neither make_kernel(**axes, dtype) nor a module-level prim_func `kernel`",
                [
                    Diagnostic(
                        file=display,
                        line=1,
                        message=(
                            "define make_kernel(**axes, dtype) returning a T.prim_func (see "
                            "ksearch.compile.tilelang_backend)"
                        ),
                    )
                ],
            )
        funcs = _prim_funcs(entry)
    except _EntryError as exc:
        return finish("entry_signature", str(exc), [Diagnostic(file=display, message=str(exc))])
    except Exception as exc:  # noqa: BLE001
        diags = _locate(exc, module_path, display, source)
        return finish("compile_error", f"building the prim_func failed: {diags[0].message}", diags)

    pass_configs = getattr(module, "PASS_CONFIGS", None) or {}
    outdir, stem, arch, ext = Path(req["outdir"]), req["stem"], req["arch"], req["ext"]
    for name, func in funcs.items():
        try:
            with tvm.transform.PassContext(config=dict(pass_configs)), Target(req["target"]) as target:
                artifact = tilelang.lower(func, target=target)
        except Exception as exc:  # noqa: BLE001
            diags = _locate(exc, module_path, display, source)
            return finish(
                "compile_error", f"TileLang could not lower {name} for {arch}: {diags[0].message}", diags
            )
        suffix = "" if len(funcs) == 1 else f".{name}"
        src_path = outdir / f"{stem}{suffix}.{arch}{ext}"
        src_path.write_text(artifact.kernel_source)
        kernels = []
        for gv, fn in artifact.device_mod.functions.items():
            attrs = fn.attrs or {}
            extent = {str(k): int(v) for k, v in dict(attrs.get("thread_extent", {})).items()}
            kernels.append(
                {
                    "name": str(attrs.get("global_symbol", gv.name_hint)),
                    "thread_extent": extent,
                    "dyn_shared_bytes": int(attrs.get("dyn_shared_memory_buf", 0) or 0),
                }
            )
        out["units"].append({"func": name, "source": str(src_path), "kernels": kernels})
    return finish("ok", f"lowered {len(funcs)} prim_func(s)")


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1]))


COMPILER = FunctionCompiler(
    language="tilelang",
    claims=lambda path, source: "import tilelang" in source or "from tilelang" in source,
    toolchain=tilelang_toolchain,
    compile=compile_tilelang,
    cannot_run=lambda device: "TileLang candidates run on a GPU" if device == "cpu" else None,
)
