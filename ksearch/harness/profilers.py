"""Kernel profilers as cross-checks of the event timing: CUPTI device timestamps and Nsight Compute.

`cupti_kernel_us` reads the device timestamps (CUPTI, through torch.profiler) of the kernels each
call launches, under the same L2 flush as `time_gpu`; summed per call, as Nsight Compute reports
them.

`ncu_duration_us(command)` runs a command under Nsight Compute (`gpu__time_duration.sum`) when
`ncu` is on PATH; the command brackets its measured calls with `torch.cuda.profiler.start()` /
`stop()`.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import shutil
import statistics
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

# `_cuda_synchronize`: the synchronize captured when timing was imported, immune to later patching.
from ksearch.harness.timing import FlushMode, _cuda_synchronize, default_l2_flush_bytes
from ksearch.harness.timing_stats import TimingError

# ---- CUPTI kernel durations (cross-check) ----------------------------------------------------


class CuptiTiming(BaseModel):
    """Per-call kernel durations from CUPTI device timestamps, or why there are none."""

    model_config = ConfigDict(extra="forbid")

    available: bool
    reason: str | None = None
    kernels_per_call: int = 0
    kernel_names: list[str] = Field(default_factory=list, description="the kernels of one call")
    per_call_us: list[float] = Field(default_factory=list, description="sum of kernel durations per call")
    span_us: list[float] = Field(
        default_factory=list, description="first kernel start to last kernel end per call"
    )
    median_us: float | None = None
    flush: str = "write_read"


def _device_kernels(prof: Any) -> list[tuple[str, float, float]]:
    from torch.autograd import DeviceType

    rows = [
        (e.name, float(e.time_range.start), float(e.time_range.end))
        for e in prof.events()
        if e.device_type == DeviceType.CUDA
    ]
    rows.sort(key=lambda r: r[1])
    return rows


def cupti_kernel_us(
    fn: Callable[[int], object],
    n_arg_sets: int,
    *,
    device: Any,
    reps: int = 50,
    warmup: int = 3,
    l2_flush_bytes: int | None = None,
    flush: FlushMode = "write_read",
) -> CuptiTiming:
    """Kernel time of `fn(i)` from CUPTI device timestamps (torch.profiler), `reps` calls, same flush.

    The flush's kernels and one call's kernels are counted in two discovery runs; the measured run
    must show exactly reps x (flush + call) device activities in stream order, else the result is
    unavailable with the reason. Never raises for a profiler problem.
    """
    from torch.profiler import ProfilerActivity, profile

    dev = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
    with torch.cuda.device(dev):
        flush_bytes = default_l2_flush_bytes(dev) if l2_flush_bytes is None else int(l2_flush_bytes)
        buf = torch.empty(max(flush_bytes // 4, 1), dtype=torch.int32, device=dev) if flush_bytes else None
        sink = torch.empty((), dtype=torch.int64, device=dev)

        def flush_l2() -> None:
            if buf is not None:
                buf.zero_()
                if flush == "write_read":
                    torch.sum(buf, dim=0, dtype=torch.int64, out=sink)

        for i in range(warmup):
            flush_l2()
            fn(i % n_arg_sets)
        _cuda_synchronize(dev)
        activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
        try:
            with profile(activities=activities) as p_flush:
                flush_l2()
                _cuda_synchronize(dev)
            with profile(activities=activities) as p_call:
                fn(0)
                _cuda_synchronize(dev)
            n_flush = len(_device_kernels(p_flush))
            call = _device_kernels(p_call)
            with profile(activities=activities) as p_run:
                for i in range(reps):
                    flush_l2()
                    fn(i % n_arg_sets)
                _cuda_synchronize(dev)
            rows = _device_kernels(p_run)
        except (RuntimeError, AssertionError) as exc:
            return CuptiTiming(available=False, reason=f"torch.profiler failed: {exc}", flush=flush)
    k = len(call)
    if k == 0:
        return CuptiTiming(available=False, reason="the profiler saw no kernel of one call", flush=flush)
    if len(rows) != reps * (n_flush + k):
        return CuptiTiming(
            available=False,
            flush=flush,
            kernels_per_call=k,
            kernel_names=[r[0] for r in call],
            reason=f"saw {len(rows)} device activities, expected {reps} x ({n_flush} flush + {k} call)",
        )
    per_call, spans = [], []
    for j in range(reps):
        mine = rows[j * (n_flush + k) + n_flush : (j + 1) * (n_flush + k)]
        per_call.append(sum(end - start for _, start, end in mine))
        spans.append(mine[-1][2] - mine[0][1])
    return CuptiTiming(
        available=True,
        kernels_per_call=k,
        kernel_names=[r[0] for r in call],
        per_call_us=per_call,
        span_us=spans,
        median_us=statistics.median(per_call),
        flush=flush,
    )


# ---- Nsight Compute ----------------------------------------------------------------------------


class NcuResult(BaseModel):
    """Kernel durations Nsight Compute read (`gpu__time_duration.sum`), or why there are none."""

    model_config = ConfigDict(extra="forbid")

    available: bool
    reason: str | None = None
    ncu: str | None = Field(default=None, description="path of the ncu binary")
    version: str | None = None
    command: list[str] = Field(default_factory=list)
    kernels: list[str] = Field(default_factory=list, description="kernel name of each profiled launch")
    durations_us: list[float] = Field(default_factory=list, description="per profiled launch")
    per_call_us: list[float] = Field(default_factory=list, description="launches summed per call")
    median_us: float | None = Field(default=None, description="median over calls; None when unavailable")


_UNIT_TO_US = {
    "nsecond": 1e-3,
    "ns": 1e-3,
    "usecond": 1.0,
    "us": 1.0,
    "msecond": 1e3,
    "ms": 1e3,
    "second": 1e6,
    "s": 1e6,
}


def parse_ncu_csv(text: str, metric: str = "gpu__time_duration.sum") -> list[tuple[str, float]]:
    """(kernel name, microseconds) for each profiled launch in `ncu --csv` output, in launch order.

    Lines before the CSV header (the program's own output, ==PROF== notes) are skipped.
    """
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        return []
    reader = csv.DictReader(io.StringIO("\n".join(lines[start:])))
    rows: list[tuple[int, str, float]] = []
    for row in reader:
        if row.get("Metric Name") != metric:
            continue
        unit = (row.get("Metric Unit") or "").strip()
        raw = (row.get("Metric Value") or "").replace(",", "").strip()
        try:
            value = float(raw)
            launch = int(row.get("ID") or len(rows))
        except ValueError:
            continue
        if unit not in _UNIT_TO_US:
            raise TimingError(f"ncu reported {metric} in unit {unit!r}, which ksearch does not know")
        rows.append((launch, row.get("Kernel Name") or "", value * _UNIT_TO_US[unit]))
    rows.sort(key=lambda r: r[0])
    return [(name, us) for _, name, us in rows]


def ncu_duration_us(
    command: Sequence[str],
    *,
    calls: int | None = None,
    metric: str = "gpu__time_duration.sum",
    timeout_s: float = 300.0,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> NcuResult:
    """Run `command` under `ncu` and return the durations of the kernels it profiled.

    ncu runs with `--profile-from-start off`, so only launches between the program's
    `torch.cuda.profiler.start()` and `stop()` are profiled; `--clock-control none` leaves the
    clocks as they are, and ncu's default cache control flushes caches before each kernel. When
    `calls` is given and the launch count is a multiple of it, launches are summed per call.
    Never raises for a missing or failing ncu: the result says why it has no numbers.
    """
    ncu = shutil.which("ncu")
    if ncu is None:
        for guess in sorted(glob.glob("/usr/local/cuda*/bin/ncu")) + sorted(
            glob.glob("/opt/nvidia/nsight-compute/*/ncu")
        ):
            if os.access(guess, os.X_OK):
                ncu = guess
                break
    if ncu is None:
        return NcuResult(available=False, reason="ncu (Nsight Compute) is not on PATH")
    version: str | None = None
    try:
        out = subprocess.run([ncu, "--version"], capture_output=True, text=True, timeout=60)
        version_lines = out.stdout.strip().splitlines()
        version = version_lines[-1] if version_lines else None
    except (OSError, subprocess.TimeoutExpired) as exc:
        return NcuResult(available=False, ncu=ncu, reason=f"ncu --version failed: {exc}")
    # `--print-units base` (nanoseconds) where this ncu knows the option; units are parsed either way.
    for units in (["--print-units", "base"], []):
        cmd = [
            ncu,
            "--metrics",
            metric,
            "--csv",
            *units,
            "--clock-control",
            "none",
            "--cache-control",
            "all",
            "--profile-from-start",
            "off",
            *extra_args,
            *command,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            return NcuResult(
                available=False,
                ncu=ncu,
                version=version,
                command=cmd,
                reason=f"ncu run exceeded {timeout_s:.0f} s",
            )
        except OSError as exc:
            return NcuResult(
                available=False, ncu=ncu, version=version, command=cmd, reason=f"ncu failed to start: {exc}"
            )
        rows = parse_ncu_csv(proc.stdout, metric)
        if rows or "print-units" not in proc.stderr + proc.stdout:
            break
    if not rows:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        return NcuResult(
            available=False,
            ncu=ncu,
            version=version,
            command=cmd,
            reason=f"ncu exited {proc.returncode} with no {metric} rows: {tail[-800:]}",
        )
    kernels = [name for name, _ in rows]
    durations = [us for _, us in rows]
    per_call = durations
    if calls and len(durations) % calls == 0 and len(durations) > calls:
        k = len(durations) // calls
        per_call = [sum(durations[j * k : (j + 1) * k]) for j in range(calls)]
    return NcuResult(
        available=True,
        ncu=ncu,
        version=version,
        command=cmd,
        kernels=kernels,
        durations_us=durations,
        per_call_us=per_call,
        median_us=statistics.median(per_call),
    )
