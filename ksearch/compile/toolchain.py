"""Finding the compilers the HIP and TileLang backends call, their versions, and running them.

Nothing here is cached at module level: every `find_*` looks again (a few `--version` calls, tens
of milliseconds), so a tool installed mid-run is seen and the versions that go into a cache key are
the ones that actually ran.

HIP device code (AMD gfx942 / gfx950) is built one of two ways:

* **hipcc** -- a ROCm install (`hipcc` on PATH, under `$ROCM_PATH/bin` or `/opt/rocm/bin`); ROCm's
  clang brings its own headers and device libraries.
* **clang** -- an upstream clang >= 20 with the AMDGPU backend (`clang++-22` from Debian/apt.llvm.org),
  the HIP headers of a HIP runtime package (`libamdhip64-dev`: `/usr/include/hip`), ROCm's device
  bitcode (`ocml.bc`, `ockl.bc`; Triton's wheel ships both under `triton/backends/amd/lib`) and,
  to link a code object (`.hsaco`), `ld.lld` of the same LLVM (`lld-22`). Without `ld.lld` only the
  AMDGCN assembly is produced.

`KSEARCH_HIP_COMPILER=hipcc|clang` forces one way; by default hipcc wins when it is found.

NVIDIA device code from TileLang is built with `nvcc` (`$CUDA_HOME/bin`, PATH, `/usr/local/cuda/bin`)
and disassembled with `cuobjdump`/`nvdisasm` (CUDA's, or the copies Triton's wheel ships under
`triton/backends/nvidia/bin`).

A tool that is absent is described by a `ToolMissing` (which tool, why it is needed, how to
install it); backends turn that into `CompileResult(failure_class=skipped:toolchain_missing)`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ksearch import settings

APT_HIP = "apt-get install clang-22 lld-22 libamdhip64-dev"
MIN_CLANG_MAJOR = 20  # first upstream LLVM release with gfx950
CLANG_NAMES = ("clang++-22", "clang++-21", "clang++-20", "clang++")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tool(_Model):
    name: str = Field(description="logical name: clang, ld.lld, hipcc, nvcc, cuobjdump, nvdisasm")
    path: str
    version: str | None = Field(default=None, description="first line of `--version` (or the release line)")


class ToolMissing(_Model):
    """A required tool that is not installed: what, why, and how to get it."""

    tool: str
    reason: str
    install: str

    @property
    def message(self) -> str:
        return f"{self.tool} not installed ({self.reason}): {self.install}"


class DeviceLibs(_Model):
    """ROCm device bitcode linked into clang-built HIP code (math: ocml, kernel ABI helpers: ockl)."""

    directory: str
    ocml: str
    ockl: str
    origin: str = Field(description="where it comes from, e.g. 'triton 3.9.0' or a ROCm path")
    digest: str = Field(description="sha256 (first 16 hex) of ocml.bc + ockl.bc, for cache keys")


class HipTools(_Model):
    mode: Literal["hipcc", "clang"] | None = Field(description="None when neither way is usable")
    hipcc: Tool | None = None
    clang: Tool | None = None
    lld: Tool | None = None
    rocm_path: str | None = Field(default=None, description="root holding include/hip/hip_runtime.h")
    hip_version: str | None = None
    device_libs: DeviceLibs | None = None
    missing: list[ToolMissing] = Field(default_factory=list, description="why mode is None")
    notes: list[str] = Field(default_factory=list, description="optional tools that are absent")

    def versions(self) -> dict[str, str | None]:
        return {
            "hipcc": self.hipcc.version if self.hipcc else None,
            "clang": self.clang.version if self.clang else None,
            "ld.lld": self.lld.version if self.lld else None,
            "hip_headers": self.hip_version,
            "device_libs": f"{self.device_libs.origin} {self.device_libs.digest}"
            if self.device_libs
            else None,
        }


class CudaTools(_Model):
    nvcc: Tool | None = None
    cuobjdump: Tool | None = None
    nvdisasm: Tool | None = None
    cuda_home: str | None = None
    missing: list[ToolMissing] = Field(default_factory=list)

    def versions(self) -> dict[str, str | None]:
        return {
            "nvcc": self.nvcc.version if self.nvcc else None,
            "cuobjdump": self.cuobjdump.version if self.cuobjdump else None,
            "nvdisasm": self.nvdisasm.version if self.nvdisasm else None,
        }


class ToolRun(_Model):
    """One subprocess run: the command, its output, and whether it was killed at the deadline."""

    cmd: list[str]
    returncode: int | None = Field(description="None when it was killed at the timeout")
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    def log(self) -> str:
        status = "TIMED OUT (killed)" if self.timed_out else f"exit {self.returncode}"
        parts = [f"$ {' '.join(self.cmd)}", f"# {status} after {self.seconds:.3f}s"]
        if self.stdout.strip():
            parts += ["# stdout:", self.stdout.rstrip()]
        if self.stderr.strip():
            parts += ["# stderr:", self.stderr.rstrip()]
        return "\n".join(parts) + "\n"


# ---- running tools --------------------------------------------------------------------------


def run_tool(
    cmd: Sequence[str], timeout_s: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> ToolRun:
    """Run `cmd` with a wall-clock limit. The tool runs in its own process group, so on timeout the
    whole group (a compiler driver and the jobs it spawned) is killed, not just the driver."""
    cmd = [str(c) for c in cmd]
    start = time.monotonic()
    if timeout_s <= 0:
        return ToolRun(cmd=cmd, returncode=None, stdout="", stderr="", seconds=0.0, timed_out=True)
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return ToolRun(
            cmd=cmd,
            returncode=None,
            stdout=out or "",
            stderr=err or "",
            seconds=time.monotonic() - start,
            timed_out=True,
        )
    return ToolRun(
        cmd=cmd, returncode=proc.returncode, stdout=out, stderr=err, seconds=time.monotonic() - start
    )


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it exited between the timeout and the kill
    except PermissionError:
        proc.kill()


def tool_version(path: str, flag: str = "--version") -> str | None:
    """The first informative line of `path --version`, or None if it does not run."""
    try:
        run = run_tool([path, flag], timeout_s=20)
    except OSError:
        return None
    if run.timed_out or run.returncode != 0:
        return None
    lines = [ln.strip() for ln in (run.stdout + run.stderr).splitlines() if ln.strip()]
    # nvcc/cuobjdump: the release line ("Cuda compilation tools, release 13.0, V13.0.88") says the most.
    for ln in lines:
        if ln.startswith("Cuda compilation tools"):
            return ln
    return lines[0] if lines else None


def clang_major(version: str | None) -> int | None:
    m = re.search(r"clang version (\d+)", version or "")
    return int(m.group(1)) if m else None


def _which(name: str, extra_dirs: Sequence[str | Path] = ()) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        cand = Path(d) / name
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def _package_dir(package: str) -> Path | None:
    """Where an installed package lives, without importing it (triton and tilelang are slow to import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---- HIP ------------------------------------------------------------------------------------


def _rocm_roots() -> list[Path]:
    roots = [os.environ.get("ROCM_PATH"), os.environ.get("HIP_PATH"), "/opt/rocm", "/usr"]
    return [Path(r) for r in roots if r]


def find_hipcc() -> Tool | None:
    extra = [Path(r) / "bin" for r in _rocm_roots() if str(r) != "/usr"]
    path = _which("hipcc", extra)
    if path is None:
        return None
    version = None
    try:
        run = run_tool([path, "--version"], timeout_s=30)
        text = run.stdout + run.stderr
        hip = re.search(r"HIP version:\s*(\S+)", text)
        clang = re.search(r"clang version \S+", text)
        version = " ".join(x.group(0) for x in (hip, clang) if x) or None
    except OSError:
        pass
    return Tool(name="hipcc", path=path, version=version)


def find_clang() -> Tool | None:
    """An upstream clang++ >= 20 (gfx950 support): clang++-22, -21, -20, or clang++ if new enough."""
    llvm_dirs = [f"/usr/lib/llvm-{v}/bin" for v in (22, 21, 20)]
    for name in CLANG_NAMES:
        path = _which(name, llvm_dirs)
        if path is None:
            continue
        version = tool_version(path)
        major = clang_major(version)
        if major is not None and major >= MIN_CLANG_MAJOR:
            return Tool(name="clang", path=path, version=version)
    return None


def find_lld(clang: Tool | None) -> Tool | None:
    """ld.lld of the same LLVM as `clang` (ld.lld-22 for clang-22), else any ld.lld."""
    major = clang_major(clang.version) if clang else None
    names = ([f"ld.lld-{major}"] if major else []) + ["ld.lld"]
    dirs: list[str | Path] = []
    if clang is not None:
        dirs.append(Path(clang.path).resolve().parent)
    if major:
        dirs.append(f"/usr/lib/llvm-{major}/bin")
    for name in names:
        path = _which(name, dirs)
        if path:
            return Tool(name="ld.lld", path=path, version=tool_version(path))
    return None


def find_hip_headers() -> tuple[str | None, str | None]:
    """(root, version) of the first install holding include/hip/hip_runtime.h."""
    for root in _rocm_roots():
        header = root / "include" / "hip" / "hip_runtime.h"
        if header.is_file():
            return str(root), _hip_header_version(root / "include" / "hip" / "hip_version.h")
    return None, None


def _hip_header_version(path: Path) -> str | None:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    found = [re.search(rf"#define\s+HIP_VERSION_{k}\s+(\d+)", text) for k in ("MAJOR", "MINOR", "PATCH")]
    numbers = [m.group(1) for m in found if m is not None]
    return ".".join(numbers) if len(numbers) == len(found) else None


def find_device_libs() -> DeviceLibs | None:
    """ocml.bc and ockl.bc: Triton's wheel first (the newest LLVM), then a ROCm install."""
    candidates: list[tuple[Path, str]] = []
    triton_dir = _package_dir("triton")
    if triton_dir is not None:
        candidates.append((triton_dir / "backends" / "amd" / "lib", f"triton {package_version('triton')}"))
    for root in _rocm_roots():
        for sub in ("amdgcn/bitcode", "lib/amdgcn/bitcode", "lib/x86_64-linux-gnu/amdgcn/bitcode"):
            candidates.append((root / sub, str(root / sub)))
    for directory, origin in candidates:
        ocml, ockl = directory / "ocml.bc", directory / "ockl.bc"
        if ocml.is_file() and ockl.is_file():
            h = hashlib.sha256()
            for p in (ocml, ockl):
                h.update(p.read_bytes())
            return DeviceLibs(
                directory=str(directory),
                ocml=str(ocml),
                ockl=str(ockl),
                origin=origin,
                digest=h.hexdigest()[:16],
            )
    return None


def find_hip_tools() -> HipTools:
    """Everything the HIP backend may call, and which way (hipcc or clang) it will build."""
    forced = settings.forced_hip_compiler()
    hipcc = find_hipcc() if forced in (None, "hipcc") else None
    clang = find_clang()
    lld = find_lld(clang)
    rocm_path, hip_version = find_hip_headers()
    device_libs = find_device_libs()
    notes: list[str] = []
    if hipcc is not None:
        return HipTools(
            mode="hipcc",
            hipcc=hipcc,
            clang=clang,
            lld=lld,
            rocm_path=rocm_path,
            hip_version=hip_version,
            device_libs=device_libs,
        )
    missing: list[ToolMissing] = []
    if forced == "hipcc":
        missing.append(
            ToolMissing(
                tool="hipcc",
                reason="KSEARCH_HIP_COMPILER=hipcc but no ROCm hipcc was found",
                install="install ROCm (hipcc under /opt/rocm/bin) or unset KSEARCH_HIP_COMPILER",
            )
        )
    if clang is None:
        missing.append(
            ToolMissing(
                tool="clang-22",
                reason=f"HIP device code needs clang >= {MIN_CLANG_MAJOR} "
                "with the AMDGPU backend, or ROCm's hipcc",
                install=APT_HIP,
            )
        )
    if rocm_path is None:
        missing.append(
            ToolMissing(
                tool="HIP headers",
                reason="hip/hip_runtime.h not found under $ROCM_PATH, /opt/rocm or /usr",
                install="apt-get install libamdhip64-dev",
            )
        )
    if device_libs is None:
        missing.append(
            ToolMissing(
                tool="ROCm device bitcode",
                reason="ocml.bc/ockl.bc not found",
                install="pip install triton (ships them under triton/backends/amd/lib) or install ROCm",
            )
        )
    if lld is None:
        notes.append("ld.lld not found: AMDGCN assembly only, no .hsaco code object (apt-get install lld-22)")
    return HipTools(
        mode=None if missing else "clang",
        clang=clang,
        lld=lld,
        rocm_path=rocm_path,
        hip_version=hip_version,
        device_libs=device_libs,
        missing=missing,
        notes=notes,
    )


def hip_toolchain() -> dict[str, str | None]:
    """Tool -> version (None when absent) of everything the HIP backend may call."""
    return find_hip_tools().versions()


# ---- CUDA -----------------------------------------------------------------------------------


def find_cuda_tools() -> CudaTools:
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    home_bins = [Path(h) / "bin" for h in homes if h]
    nvcc_path = _which("nvcc", home_bins)
    cuda_home = None
    if nvcc_path is not None:
        real = Path(nvcc_path).resolve()
        # /usr/local/bin/nvcc may be a wrapper script; look for the toolkit it runs.
        if real.parent.name == "bin" and (real.parent.parent / "include" / "cuda_runtime.h").is_file():
            cuda_home = str(real.parent.parent)
        else:
            cuda_home = next((str(b.parent) for b in home_bins if (b / "nvcc").exists()), None)
            if cuda_home is None:
                cuda_home = _cuda_home_from_wrapper(nvcc_path)
    triton_dir = _package_dir("triton")
    triton_bin = [triton_dir / "backends" / "nvidia" / "bin"] if triton_dir else []
    bins: list[str | Path] = [*([Path(cuda_home) / "bin"] if cuda_home else []), *home_bins, *triton_bin]
    tools: dict[str, Tool | None] = {}
    for name in ("cuobjdump", "nvdisasm"):
        path = _which(name, bins)
        tools[name] = Tool(name=name, path=path, version=tool_version(path)) if path else None
    missing = []
    if nvcc_path is None:
        missing.append(
            ToolMissing(
                tool="nvcc",
                reason="TileLang's CUDA output is built to a cubin with nvcc",
                install="install the CUDA toolkit >= 12.8 (sm_100a) or pip install nvidia-cuda-nvcc",
            )
        )
    if tools["cuobjdump"] is None and tools["nvdisasm"] is None:
        missing.append(
            ToolMissing(
                tool="cuobjdump",
                reason="SASS is dumped from the cubin",
                install="install the CUDA toolkit or pip install triton (ships cuobjdump)",
            )
        )
    nvcc = Tool(name="nvcc", path=nvcc_path, version=tool_version(nvcc_path)) if nvcc_path else None
    return CudaTools(
        nvcc=nvcc,
        cuobjdump=tools["cuobjdump"],
        nvdisasm=tools["nvdisasm"],
        cuda_home=cuda_home,
        missing=missing,
    )


def _cuda_home_from_wrapper(path: str) -> str | None:
    try:
        text = Path(path).read_text(errors="replace")[:4096]
    except (OSError, UnicodeDecodeError):
        return None
    m = re.search(r"(/\S+)/bin/nvcc", text)
    return m.group(1) if m and Path(m.group(1), "include").is_dir() else None
