"""Triton backend: capture a candidate's launches on the CPU, compile each one ahead of time.

Public API:
    compile_triton(source, source_path, task, target_profile, outdir, dtype=None, *, workloads=None)
        -> CompileResult        AOT compile for a target profile (b200, h100, mi355x, ...); no GPU needed
    compile_triton_local(source, source_path, task, outdir, dtype=None, *, workloads=None)
        -> CompileResult        the same for the local GPU, and the binaries loaded on it
    triton_toolchain() -> dict  versions of Triton and the tools it drives

Neither compile function raises for a fault of the candidate: a syntax error, an exception in
`run`, a Triton type error or a ptxas failure becomes `ok=False` with a failure class and located
diagnostics. Failure classes: `import_error` for anything raised while importing the module (syntax
errors included), `entry_signature` for a missing or mis-shaped entry, `compile_error` for an
exception in `run` during capture, a kernel Triton cannot compile, or a run that launches nothing,
`audit:resource_limit` when the local driver refuses a binary (local compile only).

Each compile runs fresh in a private Triton cache directory, deleted afterwards: timings are
honest, the ptxas log (registers, spills) is always produced, and `~/.triton/cache` is untouched.
Caching belongs to the compile service above this module.

Artifacts, per kernel: ttir, ttgir, llir, then ptx, cubin, sass (NVIDIA) or amdgcn, hsaco (AMD),
named `<kernel>_<hash10>.<kind>`; per candidate: `candidate.py` (the compiled source) and
`compile.log` (launch capture, compiler output, warnings).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ksearch.compile.amdgcn import amd_resources, parse_amdgcn_metadata
from ksearch.compile.capture import Specialization, candidate_module, capture_specializations
from ksearch.compile.diagnostics import (
    diagnostics_from_compiler_output,
    diagnostics_from_exception,
    diagnostics_from_ptxas,
    exception_message,
)
from ksearch.compile.registry import FunctionCompiler
from ksearch.compile.result import CompileResult, KernelInfo
from ksearch.errors import ConfigError
from ksearch.evidence import Diagnostic, FailureClass

if TYPE_CHECKING:
    from ksearch.target import TargetProfile
    from ksearch.task import Task

_TEXT_STAGES = ("ttir", "ttgir", "llir", "ptx", "amdgcn")
_BINARY_STAGES = ("cubin", "hsaco")
_TOOL_TIMEOUT_S = 120


# ---- public API ----------------------------------------------------------------------------------


def triton_toolchain() -> dict[str, str | None]:
    """Triton's version and build hash and the versions of the tools it drives (None: not found)."""
    try:
        import triton
    except ImportError:
        return {"triton": None}
    versions: dict[str, str | None] = {"triton": triton.__version__, "triton_build": _triton_build()}
    versions.update(_nvidia_tools())
    versions["amd_codegen"] = _amd_codegen_revision()
    return versions


def compile_triton(
    source: str,
    source_path: Path,
    task: Task,
    target_profile: TargetProfile,
    outdir: Path,
    dtype: str | None = None,
    *,
    workloads: Sequence[str] | None = None,
) -> CompileResult:
    """Compile a Triton candidate for `target_profile` without a GPU.

    Launches are captured by calling the entry once per workload (all of the task's unless
    `workloads` names some) on CPU tensors; each distinct specialization is compiled once.
    Raises ConfigError (TaskError) only for bad arguments: an unknown dtype or workload.
    """
    from triton.backends.compiler import GPUTarget

    backend, arch = target_profile.triton.backend, target_profile.triton.arch
    target = GPUTarget(backend, arch, target_profile.warp_size)
    return _compile(
        source,
        Path(source_path),
        task,
        Path(outdir),
        dtype,
        workloads,
        target,
        target_profile.name,
        target_profile.arch,
        load=False,
    )


def compile_triton_local(
    source: str,
    source_path: Path,
    task: Task,
    outdir: Path,
    dtype: str | None = None,
    *,
    workloads: Sequence[str] | None = None,
) -> CompileResult:
    """Compile for the local GPU (Triton's active driver target) and load each binary on it.

    `target` is the matching profile name (e.g. h100) or `local`; each kernel's specialization gains
    a `device` entry with the registers and spills the driver reports. Raises ConfigError when no
    CUDA/ROCm device is visible.
    """
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            "no local CUDA or ROCm GPU is visible to torch; use compile_triton with a target profile"
        )
    from triton.runtime import driver

    from ksearch.target import detect_local_device

    target = driver.active.get_current_target()
    device = detect_local_device(torch.cuda.current_device())
    if target.backend == "cuda":
        from triton.backends.nvidia.compiler import sm_arch_from_capability

        arch = sm_arch_from_capability(int(target.arch))
    else:
        arch = str(target.arch)
    name = device.profile if device is not None and device.profile else "local"
    return _compile(
        source, Path(source_path), task, Path(outdir), dtype, workloads, target, name, arch, load=True
    )


# ---- the compile ---------------------------------------------------------------------------------


@dataclass
class _Run:
    """What one compile_* call accumulates."""

    target_name: str
    arch: str
    outdir: Path
    source_path: Path
    started: float = field(default_factory=time.perf_counter)
    log: list[str] = field(default_factory=list)
    kernels: list[KernelInfo] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    toolchain: dict[str, str | None] = field(default_factory=dict)

    def result(
        self,
        failure: FailureClass | None = None,
        diagnostics: list[Diagnostic] | None = None,
        message: str = "",
    ) -> CompileResult:
        log_path = self.outdir / "compile.log"
        log_path.write_text("\n".join(self.log) + "\n")
        self.artifacts["compile_log"] = str(log_path)
        return CompileResult(
            ok=failure is None,
            language="triton",
            target=self.target_name,
            arch=self.arch,
            seconds=round(time.perf_counter() - self.started, 3),
            kernels=self.kernels,
            artifacts=self.artifacts,
            diagnostics=diagnostics or [],
            failure_class=failure,
            message=message,
            toolchain=self.toolchain,
        )


def _compile(
    source: str,
    source_path: Path,
    task: Task,
    outdir: Path,
    dtype: str | None,
    workloads: Sequence[str] | None,
    target: Any,
    target_name: str,
    arch: str,
    *,
    load: bool,
) -> CompileResult:
    # Bad arguments are the caller's error, raised before any work.
    names = (
        [task.workload(w).name for w in workloads]
        if workloads is not None
        else [w.name for w in task.workloads()]
    )
    if not names:
        raise ConfigError(f"task {task.name}: no workloads to capture launches with; name at least one")
    variant = dtype if dtype is not None else task.default_dtype
    task.input_specs(names[0], variant)  # raises TaskError for a dtype the task does not have
    outdir.mkdir(parents=True, exist_ok=True)
    run = _Run(target_name, arch, outdir, source_path)
    candidate_copy = outdir / "candidate.py"
    candidate_copy.write_text(source)
    run.artifacts["source"] = str(candidate_copy)
    try:
        import triton
        from triton.compiler.compiler import make_backend
    except ImportError as exc:
        return run.result(FailureClass.SKIPPED_TOOLCHAIN_MISSING, message=f"triton is not importable: {exc}")
    run.toolchain = _toolchain_for(target)
    run.log.append(f"triton {triton.__version__}; target {target_name} ({arch}) = {target}; dtype {variant}")
    backend = make_backend(target)

    with contextlib.ExitStack() as stack:
        caught: list[warnings.WarningMessage] = stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always")
        try:
            module = stack.enter_context(candidate_module(source, source_path))
        except (Exception, SystemExit) as exc:  # anything the candidate raises at import
            run.log.append(f"import failed: {exception_message(exc)}")
            diags = diagnostics_from_exception(exc, source_path, source)
            return run.result(
                FailureClass.IMPORT_ERROR, diags, f"importing the candidate failed: {diags[0].message}"
            )

        entry, problem = _entry(module, task, source_path)
        if entry is None:
            assert problem is not None
            run.log.append(problem.message)
            return run.result(FailureClass.ENTRY_SIGNATURE, [problem], problem.message)

        try:
            recorder = capture_specializations(entry, task, backend, variant, names)
        except (Exception, SystemExit) as exc:  # the candidate's run() failed on the CPU tensors
            run.log.append(f"launch capture failed: {exception_message(exc)}")
            diags = diagnostics_from_exception(exc, source_path, source)
            return run.result(
                FailureClass.COMPILE_ERROR,
                diags,
                f"run() raised while launches were captured: {diags[0].message}",
            )
        finally:
            _log_warnings(run, caught)
        specs = recorder.specializations
        run.log.append(
            f"captured {recorder.launches} launch(es) over {len(names)} workload(s): "
            f"{len(specs)} distinct specialization(s)"
        )
        if not specs:
            diag = Diagnostic(
                file=str(source_path),
                line=_code_line(entry, source_path),
                message=f"{task.entry_name}() launched no @triton.jit kernel; a Triton candidate "
                "must compute its outputs with Triton kernels",
            )
            return run.result(FailureClass.COMPILE_ERROR, [diag], diag.message)

        with tempfile.TemporaryDirectory(prefix="ksearch-triton-cache-") as cache_dir:
            for spec in specs:
                failure = _compile_one(run, spec, target, Path(cache_dir), source, load=load)
                _log_warnings(run, caught)
                if failure is not None:
                    return failure
    return run.result(message=f"{len(run.kernels)} kernel(s) compiled for {target_name} ({arch})")


def _entry(module: Any, task: Task, source_path: Path) -> tuple[Any, Diagnostic | None]:
    """The entry function, or a diagnostic saying why it is missing or cannot take the task's args."""
    import inspect

    name, args = task.entry_name, task.entry_args
    entry = getattr(module, name, None)
    if entry is None or not callable(entry):
        what = "no" if entry is None else f"a non-callable {type(entry).__name__} as"
        return None, Diagnostic(
            file=str(source_path),
            message=f"the module defines {what} '{name}'; define def {name}({', '.join(args)})",
        )
    try:
        inspect.signature(entry).bind(*args)
    except TypeError as exc:
        return None, Diagnostic(
            file=str(source_path),
            line=_code_line(entry, source_path),
            message=f"{name}() cannot be called as {name}({', '.join(args)}): {exc}",
        )
    except ValueError:  # builtins without a signature: let the call decide
        pass
    return entry, None


def _code_line(fn: Any, source_path: Path, source: str | None = None) -> int | None:
    """The line of `def` of a function defined in the candidate file (past its decorators)."""
    code = getattr(fn, "__code__", None)
    if code is None or Path(code.co_filename) != source_path:
        return None
    line = int(code.co_firstlineno)
    if source is not None:
        lines = source.splitlines()
        for index in range(line - 1, min(len(lines), line + 50)):
            if re.match(r"\s*(async\s+)?def\s", lines[index]):
                return index + 1
    return line


def _compile_one(
    run: _Run, spec: Specialization, target: Any, cache_dir: Path, source: str, *, load: bool
) -> CompileResult | None:
    """Compile one specialization into run.kernels; a CompileResult when it fails."""
    import triton
    from triton.compiler import ASTSource

    label = f"{spec.fn.__qualname__} {spec.describe()['options']}"
    begun = time.perf_counter()
    with _compiler_session(cache_dir) as output:
        try:
            compiled = triton.compile(
                ASTSource(spec.fn, spec.signature, spec.constexprs, spec.attrs),
                target=target,
                options=dict(spec.options.__dict__),
            )
            error: BaseException | None = None
        except Exception as exc:  # any compiler failure of this kernel is the candidate's
            compiled, error = None, exc
    seconds = time.perf_counter() - begun
    if output.text.strip():
        run.log.append(f"--- compiler output for {label} ---\n{output.text.rstrip()}")
    if error is not None or compiled is None:
        assert error is not None
        run.log.append(f"compile of {label} failed after {seconds:.2f}s: {exception_message(error)}")
        diags = _compile_diagnostics(error, output.text, spec, run, source)
        return run.result(
            FailureClass.COMPILE_ERROR,
            diags,
            f"Triton could not compile {spec.fn.__qualname__}: {diags[0].message}",
        )
    run.log.append(f"compiled {label} in {seconds:.2f}s")
    info = _kernel_info(run, spec, compiled, output.text, target)
    info.specialization["compile_seconds"] = round(seconds, 3)
    run.kernels.append(info)
    if load:
        return _load_on_device(run, compiled, info)
    return None


def _compile_diagnostics(
    error: BaseException, output: str, spec: Specialization, run: _Run, source: str
) -> list[Diagnostic]:
    from triton.compiler.errors import CompilationError

    if isinstance(error, CompilationError):
        return diagnostics_from_exception(error, run.source_path, source)
    if type(error).__name__ == "PTXASError":
        # Triton prints the PTX it gave ptxas right after the error; its .loc lines lead back to
        # the candidate's lines.
        ptx = _printed_ptx(output)
        ptxas = [d for d in diagnostics_from_ptxas(str(error), ptx, run.source_path) if d.severity == "error"]
        if ptxas:
            return ptxas
    # A backend failure (MLIR pass, LLVM, ptxas): MLIR prints located errors for the candidate file.
    located = diagnostics_from_compiler_output(output, run.source_path)
    errors = [d for d in located if d.severity == "error"]
    if errors:
        return errors + [d for d in located if d.severity != "error"][:5]
    line = _code_line(spec.fn.fn, run.source_path, source)
    return [
        Diagnostic(
            file=str(run.source_path),
            line=line,
            message=f"while compiling {spec.fn.__qualname__}: {exception_message(error)}",
        )
    ]


def _printed_ptx(output: str) -> str | None:
    start = output.find("//\n// Generated by LLVM NVPTX Back-End")
    if start < 0:
        return None
    end = output.find("\n" + "=" * 32, start)
    return output[start:] if end < 0 else output[start:end]


def _load_on_device(run: _Run, compiled: Any, info: KernelInfo) -> CompileResult | None:
    """Load the binary with the local driver: the check only a device can make (smem, threads)."""
    from triton.runtime.errors import OutOfResources

    try:
        compiled._init_handles()
    except OutOfResources as exc:
        diag = Diagnostic(file=str(run.source_path), message=f"{info.name}: {exc}")
        return run.result(FailureClass.AUDIT_RESOURCE_LIMIT, [diag], diag.message)
    # As the driver reports them; Triton's n_spills is the function's local memory in 4-byte words
    # on CUDA (local_bytes / 4), not a spill count.
    info.specialization["device"] = {
        "registers": int(compiled.n_regs),
        "n_spills": int(compiled.n_spills),
        "max_threads": int(compiled.n_max_threads),
    }
    return None


# ---- artifacts and resources ---------------------------------------------------------------------


def _kernel_info(run: _Run, spec: Specialization, compiled: Any, output: str, target: Any) -> KernelInfo:
    meta = compiled.metadata
    stem = f"{meta.name}_{str(compiled.hash)[:10]}"
    artifacts: dict[str, str] = {}
    for kind in _TEXT_STAGES + _BINARY_STAGES:
        data = compiled.asm.get(kind)
        if data is None:
            continue
        path = run.outdir / f"{stem}.{kind}"
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
        artifacts[kind] = str(path)
    num_warps = int(meta.num_warps)  # final: warp specialization may change it
    warp_size = int(getattr(meta, "warp_size", None) or target.warp_size)
    info = KernelInfo(
        name=str(meta.name),
        specialization={**spec.describe(), "hash": str(compiled.hash)},
        num_warps=num_warps,
        num_stages=int(meta.num_stages),
        threads_per_block=num_warps * warp_size,
        artifacts=artifacts,
    )
    dynamic_smem = int(getattr(meta, "shared", 0) or 0)
    if "cubin" in artifacts:
        _nvidia_resources(run, info, Path(artifacts["cubin"]), output, dynamic_smem)
    elif "amdgcn" in artifacts:
        _amd_resources(info, compiled.asm["amdgcn"], dynamic_smem)
    else:
        info.smem_bytes = dynamic_smem
    return info


def _nvidia_resources(run: _Run, info: KernelInfo, cubin: Path, output: str, dynamic_smem: int) -> None:
    from triton import knobs

    cuobjdump = _tool_path(knobs.nvidia, "cuobjdump")
    sass = _run_tool([cuobjdump, "-sass", str(cubin)], run) if cuobjdump else None
    if sass is None:
        nvdisasm = _tool_path(knobs.nvidia, "nvdisasm")
        sass = _run_tool([nvdisasm, "-c", str(cubin)], run) if nvdisasm else None
    if sass is not None:
        sass_path = cubin.with_suffix(".sass")
        sass_path.write_text(sass)
        info.artifacts["sass"] = str(sass_path)
    usage = parse_ptxas_log(output, info.name)
    if "registers" not in usage and cuobjdump:
        # No ptxas log (a Triton that does not print it): the cubin's resource table has no spill
        # counts, only registers and local memory.
        table = _run_tool([cuobjdump, "-res-usage", str(cubin)], run)
        usage = parse_res_usage(table or "", info.name)
    info.registers = usage.get("registers")
    info.spill_stores = usage.get("spill_stores")
    info.spill_loads = usage.get("spill_loads")
    info.local_bytes = usage.get("local_bytes")
    info.smem_bytes = usage.get("static_smem", 0) + dynamic_smem


def _amd_resources(info: KernelInfo, amdgcn: str, dynamic_smem: int) -> None:
    metas = parse_amdgcn_metadata(amdgcn)
    meta = next((m for m in metas if m.get(".name") == info.name), metas[0] if metas else {})
    for name, value in amd_resources(meta).items():
        setattr(info, name, value)
    info.smem_bytes = (info.smem_bytes or 0) + dynamic_smem


def parse_ptxas_log(text: str, kernel: str | None = None) -> dict[str, int]:
    """Registers, spills (bytes), stack frame and static smem from `ptxas -v` output.

    With `kernel`, only the block after "Compiling entry function '<kernel>'" counts.
    """
    if kernel is not None:
        start = text.find(f"Compiling entry function '{kernel}'")
        if start >= 0:
            text = text[start:]
            nxt = text.find("Compiling entry function", 10)
            text = text if nxt < 0 else text[:nxt]
    found: dict[str, int] = {}
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", text)
    if frame:
        found["local_bytes"], found["spill_stores"], found["spill_loads"] = (int(g) for g in frame.groups())
    regs = re.search(r"Used (\d+) registers", text)
    if regs:
        found["registers"] = int(regs.group(1))
    smem = re.search(r"Used \d+ registers.*?(\d+) bytes smem", text)
    if smem:
        found["static_smem"] = int(smem.group(1))
    return found


def parse_res_usage(text: str, kernel: str | None = None) -> dict[str, int]:
    """Registers and local memory from `cuobjdump -res-usage` (REG, STACK, SHARED, LOCAL)."""
    blocks = re.findall(r"Function ([^\s:]+):\s*\n\s*(REG:.*)", text)
    for name, line in blocks:
        if kernel is not None and name != kernel:
            continue
        fields = dict(re.findall(r"(\w+):(\d+)", line))
        found = {"registers": int(fields.get("REG", 0)), "local_bytes": int(fields.get("LOCAL", 0))}
        return found
    return {}


# ---- compiler session: private cache, captured output ---------------------------------------------


@dataclass
class _Output:
    text: str = ""


@contextlib.contextmanager
def _compiler_session(cache_dir: Path) -> Iterator[_Output]:
    """Knobs for one fresh compile, with its stdout/stderr (Python and native) captured.

    Triton prints the ptxas log with print() (dump_ptxas_log) and MLIR writes diagnostics to fd 2;
    both end up in the returned text, read once the block exits.
    """
    from triton import knobs

    result = _Output()
    buffer = io.StringIO()
    with knobs.cache.scope(), knobs.compilation.scope(), knobs.nvidia.scope():
        knobs.cache.dir = str(cache_dir)
        knobs.compilation.always_compile = True
        knobs.nvidia.dump_ptxas_log = True
        with (
            _native_output() as native,
            contextlib.redirect_stdout(buffer),
            contextlib.redirect_stderr(buffer),
        ):
            yield result
    result.text = buffer.getvalue() + native.text


@contextlib.contextmanager
def _native_output() -> Iterator[_Output]:
    """Send fds 1 and 2 to a temporary file for the block (output of C++ code and subprocesses)."""
    captured = _Output()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with tempfile.TemporaryFile() as sink:
        saved: list[tuple[int, int]] = []
        try:
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
                except OSError:  # fd closed (a daemon): nothing to capture there
                    continue
            yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", errors="replace")


def _log_warnings(run: _Run, caught: list[warnings.WarningMessage]) -> None:
    seen: set[str] = set()
    for w in caught:
        text = f"warning: {w.category.__name__}: {w.message}"
        if text not in seen:
            seen.add(text)
            run.log.append(text)
    caught.clear()


# ---- tools and versions --------------------------------------------------------------------------


def _run_tool(cmd: list[str], run: _Run) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        run.log.append(f"{Path(cmd[0]).name} failed: {exc}")
        return None
    if done.returncode != 0:
        run.log.append(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[:500]}")
        return None
    return done.stdout


def _tool_path(nvidia_knobs: Any, name: str) -> str | None:
    try:
        tool = getattr(nvidia_knobs, name)
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return None
    path = getattr(tool, "path", None)
    return str(path) if path and Path(path).exists() else None


def _tool_version(nvidia_knobs: Any, name: str) -> str | None:
    try:
        tool = getattr(nvidia_knobs, name)
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return None
    return getattr(tool, "version", None)


def _nvidia_tools() -> dict[str, str | None]:
    from triton import knobs

    return {
        "ptxas": _tool_version(knobs.nvidia, "ptxas"),
        "ptxas_blackwell": _tool_version(knobs.nvidia, "ptxas_blackwell"),
        "cuobjdump": _tool_version(knobs.nvidia, "cuobjdump"),
        "nvdisasm": _tool_version(knobs.nvidia, "nvdisasm"),
    }


def _toolchain_for(target: Any) -> dict[str, str | None]:
    """The versions that decide this target's output (part of the compile cache key)."""
    import triton

    versions: dict[str, str | None] = {"triton": triton.__version__, "triton_build": _triton_build()}
    if target.backend == "cuda":
        from triton import knobs
        from triton.backends.nvidia.compiler import get_ptxas

        # Which ptxas compiles for an arch differs by version (3.6: the blackwell one from sm_100,
        # 3.9: from sm_90); Triton's own choice is the truth.
        tool = get_ptxas(int(target.arch))
        versions["ptxas"] = getattr(tool, "version", None)
        versions["ptxas_binary"] = Path(tool.path).name if getattr(tool, "path", None) else None
        versions["cuobjdump"] = _tool_version(knobs.nvidia, "cuobjdump")
        versions["nvdisasm"] = _tool_version(knobs.nvidia, "nvdisasm")
    else:
        versions["amd_codegen"] = _amd_codegen_revision()
    return versions


def _triton_build() -> str | None:
    """A short hash of Triton's frontend, backends and native library (Triton's own cache key)."""
    try:
        from triton.runtime.cache import triton_key
    except ImportError:
        return None
    return hashlib.sha256(triton_key().encode()).hexdigest()[:16]


def _amd_codegen_revision() -> str | None:
    # Triton 3.9 builds AMD code with a separate codegen library that reports its revision; 3.6
    # uses the LLVM inside libtriton, whose version Triton does not expose.
    try:
        from triton.backends.amd.compiler import get_amd_codegen_revision
    except ImportError:
        return None
    try:
        return str(get_amd_codegen_revision())
    except (OSError, RuntimeError, AttributeError):
        return None


# The fallback of detection: a module no other compiler claims. Runs on a GPU, or in the Triton
# interpreter on CPU.
COMPILER = FunctionCompiler(
    language="triton",
    claims=lambda path, source: True,
    toolchain=triton_toolchain,
    compile=lambda source, path, task, target, outdir, *, dtype, timeout_s: compile_triton(
        source, path, task, target, outdir, dtype=dtype
    ),
    cannot_run=lambda device: None,
)
