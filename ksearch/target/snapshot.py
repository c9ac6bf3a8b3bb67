"""Hardware and toolchain snapshot: what an EvidencePacket's `environment` block is built from.

`environment_snapshot()` never raises for a missing tool, package or GPU: each absent item carries
`None` and a reason. It works on a CPU-only machine and on a CUDA or ROCm GPU host.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ksearch import settings
from ksearch.target.detect import LocalDevice, detect_local_device

SNAPSHOT_SCHEMA_VERSION = 1
DEFAULT_TOOL_TIMEOUT_S = 10.0

# Environment variables worth recording for a replay (GPU selection and tool overrides only).
ENV_ALLOWLIST: tuple[str, ...] = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "CUDA_HOME",
    "CUDA_PATH",
    "ROCM_PATH",
    "TRITON_PTXAS_PATH",
    "TRITON_PTXAS_BLACKWELL_PATH",
    "TRITON_CACHE_DIR",
    "TRITON_INTERPRET",
    settings.CONFIGS.name,
)

_NVIDIA_SMI_FIELDS = (
    "index",
    "name",
    "uuid",
    "driver_version",
    "memory.total",
    "clocks.sm",
    "clocks.mem",
    "clocks.max.sm",
    "clocks.max.mem",
    "pci.bus_id",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HostInfo(_Model):
    hostname: str
    os: str  # platform.system()
    kernel: str  # platform.release()
    distribution: str | None  # PRETTY_NAME from /etc/os-release
    machine: str
    cpu_model: str | None
    cpu_count: int | None  # logical CPUs on the host
    cpu_count_usable: int | None  # CPUs this process may run on (affinity)
    memory_gib: float | None


class PythonInfo(_Model):
    version: str
    implementation: str
    executable: str


class PackageInfo(_Model):
    name: str
    version: str | None
    location: str | None = None
    reason: str | None = None  # why version is None


class ToolInfo(_Model):
    name: str
    path: str | None
    version: str | None
    version_line: str | None = None  # the line the version was read from
    reason: str | None = None  # why version is None


class GpuInfo(_Model):
    index: int
    name: str
    uuid: str | None = None
    pci_bus_id: str | None = None
    driver_version: str | None
    memory_total_mib: float | None
    sm_clock_mhz: float | None  # current
    mem_clock_mhz: float | None  # current
    sm_clock_max_mhz: float | None
    mem_clock_max_mhz: float | None
    source: str  # "nvidia-smi" or "torch"


class EnvSnapshot(_Model):
    """Hardware, OS, package and toolchain facts of the machine a measurement ran on (JSON-able)."""

    schema_version: int = SNAPSHOT_SCHEMA_VERSION
    created_at: str  # UTC, ISO 8601
    host: HostInfo
    python: PythonInfo
    ksearch_version: str
    packages: dict[str, PackageInfo]  # torch, triton, tilelang, numpy
    torch_cuda: str | None  # torch.version.cuda
    torch_hip: str | None  # torch.version.hip
    toolchain: dict[
        str, ToolInfo
    ]  # nvcc, ptxas, triton-ptxas, triton-ptxas-blackwell, clang++-22, clang, hipcc
    gpus: list[GpuInfo]
    gpu_query: str  # how `gpus` was obtained, or why it is empty
    local_device: LocalDevice | None
    env: dict[str, str]

    def package_version(self, name: str) -> str | None:
        info = self.packages.get(name)
        return info.version if info else None

    def tool_version(self, name: str) -> str | None:
        info = self.toolchain.get(name)
        return info.version if info else None


# ---- host ------------------------------------------------------------------------------------


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _cpu_model() -> str | None:
    text = _read_text("/proc/cpuinfo")
    if text:
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    return platform.processor() or None


def _memory_gib() -> float | None:
    text = _read_text("/proc/meminfo")
    if text:
        match = re.search(r"^MemTotal:\s+(\d+)\s+kB", text, flags=re.MULTILINE)
        if match:
            return round(int(match.group(1)) / 1024**2, 2)
    try:
        return round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1024**3, 2)
    except (ValueError, OSError, AttributeError):
        return None


def _distribution() -> str | None:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        return None


def host_info() -> HostInfo:
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return HostInfo(
        hostname=socket.gethostname(),
        os=platform.system(),
        kernel=platform.release(),
        distribution=_distribution(),
        machine=platform.machine(),
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count(),
        cpu_count_usable=usable,
        memory_gib=_memory_gib(),
    )


# ---- packages --------------------------------------------------------------------------------


def _package_from_metadata(name: str) -> PackageInfo:
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return PackageInfo(name=name, version=None, reason="not installed")
    spec = importlib.util.find_spec(name)
    location = str(Path(spec.origin).parent) if spec and spec.origin else None
    return PackageInfo(name=name, version=version, location=location)


def _package_from_import(name: str) -> tuple[PackageInfo, object | None]:
    """Import `name` and read `__version__` (what the running process really uses)."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        return PackageInfo(name=name, version=None, reason=f"not importable: {exc}"), None
    version = getattr(module, "__version__", None)
    module_file = getattr(module, "__file__", None)
    location = str(Path(module_file).parent) if module_file else None
    if version is None:
        return PackageInfo(
            name=name, version=None, location=location, reason="module has no __version__"
        ), module
    return PackageInfo(name=name, version=str(version), location=location), module


# ---- toolchain -------------------------------------------------------------------------------

_VERSION_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"release \d+\.\d+, V(?P<v>[\d.]+)"),  # nvcc, ptxas
    re.compile(r"HIP version:\s*(?P<v>\S+)"),  # hipcc
    re.compile(r"clang version\s+(?P<v>\S+)"),  # clang, amdclang
    re.compile(r"\bversion\s+v?(?P<v>\d+(?:\.\d+)+\S*)", re.IGNORECASE),
)


def parse_tool_version(output: str) -> tuple[str | None, str | None]:
    """(version, the line it came from) from a tool's `--version` output."""
    for pattern in _VERSION_PATTERNS:
        for line in output.splitlines():
            match = pattern.search(line)
            if match:
                return match.group("v"), line.strip()
    return None, None


def _first_existing(candidates: Sequence[str | None]) -> str | None:
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _cuda_bin_dirs() -> list[str]:
    dirs = [os.path.join(os.environ[v], "bin") for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    dirs.append("/usr/local/cuda/bin")
    versioned = sorted(
        Path("/usr/local").glob("cuda-*/bin"), key=lambda p: _version_key(p.parent.name), reverse=True
    )
    dirs.extend(str(p) for p in versioned)
    return dirs


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text))


def _triton_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("triton")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent


def _tool_candidates() -> dict[str, tuple[list[str | None], str]]:
    """name -> (candidate paths in order, reason when none exists)."""
    rocm = os.environ.get("ROCM_PATH") or "/opt/rocm"
    triton_bin = _triton_dir()
    triton_nv = triton_bin / "backends" / "nvidia" / "bin" if triton_bin else None
    llvm_dirs = sorted(
        Path("/usr/lib").glob("llvm-*/bin"), key=lambda p: _version_key(p.parent.name), reverse=True
    )
    return {
        "nvcc": (
            [shutil.which("nvcc")] + [os.path.join(d, "nvcc") for d in _cuda_bin_dirs()],
            "nvcc not on PATH nor in CUDA_HOME, /usr/local/cuda*",
        ),
        "ptxas": (
            [shutil.which("ptxas")] + [os.path.join(d, "ptxas") for d in _cuda_bin_dirs()],
            "no system ptxas (Triton uses its bundled one, see triton-ptxas)",
        ),
        "triton-ptxas": (
            [os.environ.get("TRITON_PTXAS_PATH"), str(triton_nv / "ptxas") if triton_nv else None],
            "triton is not installed or ships no NVIDIA ptxas",
        ),
        "triton-ptxas-blackwell": (
            [
                os.environ.get("TRITON_PTXAS_BLACKWELL_PATH"),
                str(triton_nv / "ptxas-blackwell") if triton_nv else None,
            ],
            "this triton ships no ptxas-blackwell",
        ),
        "clang++-22": (
            [shutil.which("clang++-22"), "/usr/lib/llvm-22/bin/clang++"],
            "clang++-22 not on PATH nor in /usr/lib/llvm-22/bin",
        ),
        "clang": (
            [shutil.which("clang"), os.path.join(rocm, "llvm", "bin", "clang")]
            + [str(d / "clang") for d in llvm_dirs],
            f"clang not on PATH nor in {rocm}/llvm/bin, /usr/lib/llvm-*/bin",
        ),
        "hipcc": (
            [shutil.which("hipcc"), os.path.join(rocm, "bin", "hipcc")],
            f"hipcc not on PATH nor in {rocm}/bin (no ROCm install)",
        ),
    }


def probe_tool(
    name: str, path: str | None, *, reason_missing: str, timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
) -> ToolInfo:
    """Run `path --version` with a timeout; never raises."""
    if path is None:
        return ToolInfo(name=name, path=None, version=None, reason=reason_missing)
    try:
        proc = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return ToolInfo(
            name=name, path=path, version=None, reason=f"`{path} --version` timed out after {timeout_s:g}s"
        )
    except OSError as exc:
        return ToolInfo(
            name=name, path=path, version=None, reason=f"cannot run {path}: {exc.strerror or exc}"
        )
    output = (proc.stdout or "") + "\n" + (proc.stderr or "")
    version, line = parse_tool_version(output)
    if proc.returncode != 0 and version is None:
        tail = " ".join(output.split())[-200:]
        return ToolInfo(
            name=name, path=path, version=None, reason=f"`--version` exited {proc.returncode}: {tail}"
        )
    if version is None:
        first = next((ln.strip() for ln in output.splitlines() if ln.strip()), "")
        return ToolInfo(
            name=name, path=path, version=None, version_line=first or None, reason="no version in output"
        )
    return ToolInfo(name=name, path=path, version=version, version_line=line)


def toolchain_info(timeout_s: float = DEFAULT_TOOL_TIMEOUT_S) -> dict[str, ToolInfo]:
    """Versions of nvcc, ptxas (system and Triton's), clang++-22, clang and hipcc, probed in parallel."""
    candidates = _tool_candidates()
    with ThreadPoolExecutor(max_workers=len(candidates)) as pool:
        futures = {
            name: pool.submit(
                probe_tool, name, _first_existing(cands), reason_missing=reason, timeout_s=timeout_s
            )
            for name, (cands, reason) in candidates.items()
        }
        return {name: fut.result() for name, fut in futures.items()}


# ---- GPUs ------------------------------------------------------------------------------------


def _num(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def _opt(text: str) -> str | None:
    text = text.strip()
    return None if not text or text.startswith("[") or text in ("N/A",) else text


def parse_nvidia_smi_csv(output: str) -> list[GpuInfo]:
    """Parse `nvidia-smi --query-gpu=<_NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits` output."""
    gpus: list[GpuInfo] = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(_NVIDIA_SMI_FIELDS):
            continue
        row = dict(zip(_NVIDIA_SMI_FIELDS, cells))
        try:
            index = int(row["index"])
        except ValueError:
            continue
        gpus.append(
            GpuInfo(
                index=index,
                name=row["name"],
                uuid=_opt(row["uuid"]),
                pci_bus_id=_opt(row["pci.bus_id"]),
                driver_version=_opt(row["driver_version"]),
                memory_total_mib=_num(row["memory.total"]),
                sm_clock_mhz=_num(row["clocks.sm"]),
                mem_clock_mhz=_num(row["clocks.mem"]),
                sm_clock_max_mhz=_num(row["clocks.max.sm"]),
                mem_clock_max_mhz=_num(row["clocks.max.mem"]),
                source="nvidia-smi",
            )
        )
    return gpus


def _kernel_driver_version() -> str | None:
    text = _read_text("/proc/driver/nvidia/version")
    if text:
        match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+(?:\.\d+)+)", text)
        if match:
            return match.group(1)
    amd = _read_text("/sys/module/amdgpu/version")
    return amd.strip() if amd and amd.strip() else None


def _gpus_from_nvidia_smi(timeout_s: float) -> tuple[list[GpuInfo], str | None]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], "nvidia-smi not on PATH"
    try:
        proc = subprocess.run(
            [smi, f"--query-gpu={','.join(_NVIDIA_SMI_FIELDS)}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [], f"nvidia-smi timed out after {timeout_s:g}s"
    except OSError as exc:
        return [], f"cannot run nvidia-smi: {exc.strerror or exc}"
    if proc.returncode != 0:
        return (
            [],
            f"nvidia-smi exited {proc.returncode}: {' '.join((proc.stdout + proc.stderr).split())[-200:]}",
        )
    return parse_nvidia_smi_csv(proc.stdout), None


def _gpus_from_torch(torch: Any) -> list[GpuInfo]:  # the torch module, imported by the caller
    cuda = torch.cuda
    driver = _kernel_driver_version()
    gpus: list[GpuInfo] = []
    for i in range(cuda.device_count()):
        props = cuda.get_device_properties(i)
        clock_khz = getattr(props, "clock_rate", 0) or 0
        mem_khz = getattr(props, "memory_clock_rate", 0) or 0
        gpus.append(
            GpuInfo(
                index=i,
                name=str(props.name),
                uuid=str(getattr(props, "uuid", "")) or None,
                driver_version=driver,
                memory_total_mib=round(props.total_memory / 1024**2, 1),
                sm_clock_mhz=None,
                mem_clock_mhz=None,
                sm_clock_max_mhz=round(clock_khz / 1000, 1) if clock_khz else None,
                mem_clock_max_mhz=round(mem_khz / 1000, 1) if mem_khz else None,
                source="torch",
            )
        )
    return gpus


def gpu_info(torch: Any, timeout_s: float = DEFAULT_TOOL_TIMEOUT_S) -> tuple[list[GpuInfo], str]:
    """GPUs with driver and clocks: nvidia-smi when present, else torch's device properties."""
    gpus, smi_problem = _gpus_from_nvidia_smi(timeout_s)
    if gpus:
        return gpus, "nvidia-smi --query-gpu"
    reasons = [smi_problem or "nvidia-smi listed no GPU"]
    if torch is None:
        reasons.append("torch not importable")
        return [], "; ".join(reasons)
    try:
        if torch.cuda.is_available():
            found = _gpus_from_torch(torch)
            if found:
                return found, f"torch.cuda device properties ({reasons[0]}; current clocks unknown)"
        reasons.append("torch.cuda.is_available() is False")
    except (RuntimeError, AssertionError, OSError) as exc:
        reasons.append(f"torch.cuda failed: {exc}")
    return [], "no GPU: " + "; ".join(reasons)


# ---- snapshot --------------------------------------------------------------------------------


def environment_snapshot(
    *, probe_tools: bool = True, timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
) -> EnvSnapshot:
    """Collect the snapshot. Missing tools / packages / GPUs are recorded with a reason, never raised.

    `probe_tools=False` skips running `--version` on compilers (the entries then say so).
    """
    import ksearch

    torch_info, torch = _package_from_import("torch")
    triton_info, _ = _package_from_import("triton")
    packages = {
        "torch": torch_info,
        "triton": triton_info,
        "tilelang": _package_from_metadata("tilelang"),
        "numpy": _package_from_metadata("numpy"),
    }
    torch_version = getattr(torch, "version", None) if torch is not None else None
    if probe_tools:
        tools = toolchain_info(timeout_s)
    else:
        tools = {
            name: ToolInfo(name=name, path=None, version=None, reason="not probed (probe_tools=False)")
            for name in _tool_candidates()
        }
    gpus, gpu_query = gpu_info(torch, timeout_s)
    return EnvSnapshot(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        host=host_info(),
        python=PythonInfo(
            version=platform.python_version(),
            implementation=platform.python_implementation(),
            executable=sys.executable,
        ),
        ksearch_version=ksearch.__version__,
        packages=packages,
        torch_cuda=getattr(torch_version, "cuda", None) if torch_version else None,
        torch_hip=getattr(torch_version, "hip", None) if torch_version else None,
        toolchain=tools,
        gpus=gpus,
        gpu_query=gpu_query,
        local_device=detect_local_device(),
        env={k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ},
    )
