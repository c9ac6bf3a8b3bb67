"""Speed of light: roofline floors, SOL fraction, SOL-ExecBench's score, measured device peaks.

* `sol_time_us(flops, bytes, peak_tflops, bandwidth_tbs)`: the roofline floor,
  max(flops / peak, bytes / bandwidth), in microseconds.
* `sol_fraction(sol_us, measured_us)`: sol_us / measured_us (1.0 = at the floor).
* `sol_score(t_k, t_b, t_sol)`: SOL-ExecBench's score 1 / (1 + (T_k - T_sol) / (T_b - T_sol)):
  1 at the floor, 0.5 at the baseline's time, towards 0 when slower. A T_k more than `margin`
  under T_sol is flagged `reward_hack:impossible_speed`.
* `measure_device_peaks(device)`: HBM bandwidth from a large device-to-device copy (bytes read plus
  bytes written) and bf16/fp16 dense GEMM rates from 8192^3 `torch.matmul`, measured once per
  device and driver and cached as JSON under `~/.cache/ksearch/peaks/`; the datasheet values
  of the target profile are reported beside them and stand in where nothing was measured.

Which peaks to divide by (`task_roofline(..., basis=)`): "datasheet" (the target profile: a fixed,
hardware-grounded target, as SOL-ExecBench uses), "measured" (what this device reached through
PyTorch), or "optimistic" (the larger of the two for each rate; use it for the impossible-speed
check so that a kernel beating an achievable-but-not-maximal measurement is never called a cheat).
The compute term uses the target's dense peak for the task's dtype (tensor-core rate for 16-bit
types), the most optimistic rate the part has: memory-bound tasks are floored by bytes anyway.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ksearch import settings
from ksearch.errors import KsearchError
from ksearch.paths import write_atomic

if TYPE_CHECKING:
    from ksearch.harness.timing import Timing
    from ksearch.target import TargetProfile
    from ksearch.task import Task, WorkloadSpec

IMPOSSIBLE_MARGIN = 0.10
IMPOSSIBLE_SPEED = "reward_hack:impossible_speed"
Basis = Literal["datasheet", "measured", "optimistic"]


class SolError(KsearchError):
    """A roofline or SOL score cannot be computed from the numbers given."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- formulas ------------------------------------------------------------------------------------


def sol_time_us(flops: float, bytes: float, peak_tflops: float | None, bandwidth_tbs: float | None) -> float:  # noqa: A002
    """Roofline floor in microseconds: max(flops / peak, bytes / bandwidth).

    A term whose rate is None (or whose work is 0) drops out; at least one term must remain.
    TFLOP/s = 1e12 FLOP/s and TB/s = 1e12 B/s, so flops / (peak * 1e6) is already microseconds.
    """
    if flops < 0 or bytes < 0:
        raise SolError(f"flops and bytes must be >= 0, got flops={flops} bytes={bytes}")
    terms: list[float] = []
    if peak_tflops is not None:
        if peak_tflops <= 0:
            raise SolError(f"peak_tflops must be > 0, got {peak_tflops}")
        terms.append(flops / (peak_tflops * 1e6))
    if bandwidth_tbs is not None:
        if bandwidth_tbs <= 0:
            raise SolError(f"bandwidth_tbs must be > 0, got {bandwidth_tbs}")
        terms.append(bytes / (bandwidth_tbs * 1e6))
    if not terms:
        raise SolError("sol_time_us needs a peak rate, a bandwidth or both")
    return max(terms)


def sol_fraction(sol_us: float, measured_us: float) -> float:
    """sol_us / measured_us: 1.0 at the floor, 0.5 at twice the floor. Over 1 means faster than the
    floor (see `is_impossible`); the value is returned as is, not clamped."""
    if measured_us <= 0:
        raise SolError(f"measured time must be > 0 us, got {measured_us}")
    if sol_us < 0:
        raise SolError(f"sol time must be >= 0 us, got {sol_us}")
    return sol_us / measured_us


def is_impossible(measured_us: float, sol_us: float, margin: float = IMPOSSIBLE_MARGIN) -> bool:
    """True where the measured time is under the floor by more than `margin` (a fraction of sol_us)."""
    return measured_us < sol_us * (1.0 - margin)


class SolScore(_Model):
    score: float | None = Field(description="in [0, 1]; None where undefined (see note)")
    t_k_us: float
    t_b_us: float
    t_sol_us: float
    failure_class: str | None = Field(default=None, description="reward_hack:impossible_speed or None")
    note: str = ""


def sol_score(
    t_k_us: float, t_b_us: float, t_sol_us: float, *, margin: float = IMPOSSIBLE_MARGIN
) -> SolScore:
    """SOL-ExecBench's score S = 1 / (1 + (T_k - T_sol) / (T_b - T_sol)).

    S = 1 at the floor, 0.5 at the baseline's time, > 0.5 when faster than the baseline, towards 0
    when slower. Edge cases:

    * T_k < T_sol * (1 - margin): physically impossible; score None and failure class
      `reward_hack:impossible_speed` (the candidate skipped work, or timing was tampered with).
    * T_sol * (1 - margin) <= T_k < T_sol: faster than the floor but within the margin (clocks above
      the datasheet's, noise); T_k is taken as T_sol and S = 1.
    * T_b < T_sol * (1 - margin): the baseline itself beats the floor, so the roofline model of the
      workload is wrong (bytes or FLOPs overcounted); score None, no failure class.
    * T_b - T_sol < margin * T_sol (the baseline is at the floor): the baseline gap in the
      denominator is raised to margin * T_sol so the score stays defined and continuous.
    """
    for label, value in (("t_k", t_k_us), ("t_b", t_b_us), ("t_sol", t_sol_us)):
        if not (value > 0 and math.isfinite(value)):
            raise SolError(f"{label} must be a finite time > 0 us, got {value}")
    if not 0 <= margin < 1:
        raise SolError(f"margin must be in [0, 1), got {margin}")
    scored = partial(SolScore, t_k_us=t_k_us, t_b_us=t_b_us, t_sol_us=t_sol_us)
    if is_impossible(t_k_us, t_sol_us, margin):
        return scored(
            score=None,
            failure_class=IMPOSSIBLE_SPEED,
            note=f"T_k is {1 - t_k_us / t_sol_us:.1%} under the speed-of-light floor (margin {margin:.0%})",
        )
    if is_impossible(t_b_us, t_sol_us, margin):
        return scored(
            score=None,
            note="the baseline beats the speed-of-light floor: the workload's FLOP/byte model "
            "or the peaks are wrong; no score",
        )
    notes: list[str] = []
    t_k = t_k_us
    if t_k < t_sol_us:
        notes.append(f"T_k {1 - t_k / t_sol_us:.1%} under the floor, within the margin: taken as T_sol")
        t_k = t_sol_us
    gap_b = t_b_us - t_sol_us
    if gap_b < margin * t_sol_us:
        notes.append(f"baseline within {margin:.0%} of the floor: its gap raised to {margin:.0%} of T_sol")
        gap_b = margin * t_sol_us
    if gap_b <= 0:  # margin == 0 and the baseline sits exactly on the floor
        score = 1.0 if t_k <= t_sol_us else 0.0
    else:
        score = 1.0 / (1.0 + (t_k - t_sol_us) / gap_b)
    return scored(score=score, note="; ".join(notes))


def geomean(values: Iterable[float]) -> float | None:
    """Geometric mean of positive values; None for none."""
    vals = [float(v) for v in values]
    if not vals:
        return None
    if any(v <= 0 for v in vals):
        raise SolError(f"geomean needs positive values, got {vals}")
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


# ---- device peaks --------------------------------------------------------------------------------


class MeasuredPeaks(_Model):
    """One device's measured ceilings beside its target profile's datasheet values."""

    device: str = Field(description="device name as torch reports it")
    driver: str | None = None
    key: str = Field(description="cache key: device name + driver")
    source: Literal["measured", "cache", "datasheet"]
    measured_at: str | None = None
    torch_version: str | None = None
    hbm_bandwidth_tbs: float | None = Field(
        default=None, description="measured: copy bytes read + written / time"
    )
    bf16_tflops: float | None = Field(default=None, description="measured dense bf16 GEMM rate")
    fp16_tflops: float | None = Field(default=None, description="measured dense fp16 GEMM rate")
    copy_bytes: int | None = Field(default=None, description="bytes of the copied tensor (moved: 2x)")
    gemm_n: int | None = None
    copy_median_us: float | None = None
    gemm_median_us: dict[str, float] = Field(default_factory=dict)
    profile: str | None = Field(default=None, description="target profile the datasheet values come from")
    datasheet_bandwidth_tbs: float | None = None
    datasheet_bf16_tflops: float | None = None
    datasheet_fp16_tflops: float | None = None
    method: str = ""

    def bandwidth(self, basis: Basis) -> float | None:
        return _pick(self.hbm_bandwidth_tbs, self.datasheet_bandwidth_tbs, basis)

    def gemm_tflops(self, dtype: str, basis: Basis) -> float | None:
        from ksearch.target import normalize_dtype

        canon = normalize_dtype(dtype)
        measured = {"bf16": self.bf16_tflops, "fp16": self.fp16_tflops}.get(canon)
        sheet = {"bf16": self.datasheet_bf16_tflops, "fp16": self.datasheet_fp16_tflops}.get(canon)
        return _pick(measured, sheet, basis)


def _pick(measured: float | None, sheet: float | None, basis: Basis) -> float | None:
    if basis == "datasheet":
        return sheet if sheet is not None else measured
    if basis == "measured":
        return measured if measured is not None else sheet
    vals = [v for v in (measured, sheet) if v is not None]
    return max(vals) if vals else None


def default_peaks_dir() -> Path:
    """`peaks` under the cache root (`$KSEARCH_CACHE_DIR`, else `~/.cache/ksearch`)."""
    return settings.cache_root() / "peaks"


def driver_version() -> str | None:
    """The GPU driver's version: NVIDIA kernel module, else NVML, else the CUDA/HIP driver API number."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    match = re.search(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", text)
    if match:
        return match.group(1)
    try:
        import pynvml  # nvidia-ml-py, where installed

        pynvml.nvmlInit()
        try:
            value = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return value.decode() if isinstance(value, bytes) else str(value)
    except Exception:  # noqa: BLE001 - NVML is optional; any failure means "not this way"
        pass
    try:
        import torch

        if getattr(torch.version, "hip", None):
            return f"hip-{torch.version.hip}"
        # A private torch API, absent from its type stubs.
        return f"cuda-driver-api-{torch._C._cuda_getDriverVersion()}"  # type: ignore[attr-defined]
    except (ImportError, AttributeError, RuntimeError):
        return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "device"


def datasheet_peaks(
    profile: TargetProfile, device: str | None = None, driver: str | None = None
) -> MeasuredPeaks:
    """A MeasuredPeaks holding only the profile's datasheet values (source 'datasheet')."""
    name = device or profile.product
    return MeasuredPeaks(
        device=name,
        driver=driver,
        key=f"{_slug(name)}__{_slug(driver or 'unknown-driver')}",
        source="datasheet",
        profile=profile.name,
        datasheet_bandwidth_tbs=profile.memory.bandwidth_tbs,
        datasheet_bf16_tflops=profile.peak_tflops_or_none("bf16"),
        datasheet_fp16_tflops=profile.peak_tflops_or_none("fp16"),
        method="datasheet values of the target profile; nothing measured",
    )


def _time_copy(dev: Any, nbytes: int) -> Timing:
    """Event timing of one device-to-device copy of `nbytes`; its buffers are freed on return, before
    the GEMM operands are allocated."""
    import torch

    from ksearch.harness.timing import time_gpu

    src = torch.empty(nbytes // 4, dtype=torch.float32, device=dev).normal_()
    dst = torch.empty_like(src)
    return time_gpu(
        lambda i: dst.copy_(src),
        1,
        device=dev,
        l2_flush_bytes=0,
        warmup=3,
        min_reps=10,
        max_reps=100,
        budget_s=2.0,
        rel_ci=0.01,
    )


def measure_device_peaks(
    device: Any = None,
    *,
    cache_dir: Path | str | None = None,
    refresh: bool = False,
    profile: TargetProfile | str | None = None,
    copy_bytes: int | None = None,
    gemm_n: int = 8192,
) -> MeasuredPeaks:
    """Measured HBM bandwidth and bf16/fp16 GEMM rates of `device`, cached per device + driver.

    Bandwidth: `dst.copy_(src)` of a random float32 tensor of `copy_bytes` (default 2 GiB, at most
    1/8 of device memory), counting bytes read plus bytes written. GEMM: `torch.matmul(a, b, out=c)`
    with random normal gemm_n x gemm_n operands, 2 n^3 FLOP per call. Both timed with `time_gpu`
    (no L2 flush: the operands are far larger than L2). A cached JSON (same device name and driver)
    is returned unless `refresh`. Without a GPU, the profile's datasheet values are returned
    (source 'datasheet'); with neither a GPU nor a profile, SolError.
    """
    from ksearch.target import detect_local_device, load_target

    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None  # type: ignore[assignment]
    prof: TargetProfile | None = load_target(profile) if isinstance(profile, str) else profile
    if torch is None or not torch.cuda.is_available():
        if prof is None:
            raise SolError(
                "no GPU is visible to torch and no target profile was given; pass profile='h100' (say)"
            )
        return datasheet_peaks(prof)

    dev = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
    if dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    name = torch.cuda.get_device_name(dev)
    if prof is None:
        local = detect_local_device(dev.index)
        if local is not None and local.profile is not None:
            prof = load_target(local.profile)
    driver = driver_version()
    key = f"{_slug(name)}__{_slug(driver or 'unknown-driver')}"
    cache_root = Path(cache_dir) if cache_dir is not None else default_peaks_dir()
    cache_file = cache_root / f"{key}.json"
    if not refresh and cache_file.is_file():
        try:
            cached = MeasuredPeaks.model_validate_json(cache_file.read_text(encoding="utf-8"))
        except ValueError:
            cached = None  # unreadable cache: measure again and overwrite it
        if cached is not None and cached.key == key:
            return cached.model_copy(update={"source": "cache"})

    from ksearch.harness.timing import time_gpu

    props = torch.cuda.get_device_properties(dev)
    nbytes = int(copy_bytes) if copy_bytes is not None else min(2 * 1024**3, int(props.total_memory) // 8)
    nbytes -= nbytes % 4
    with torch.cuda.device(dev):
        copy_t = _time_copy(dev, nbytes)
        bandwidth = 2 * nbytes / (copy_t.median_us * 1e-6) / 1e12
        gemm: dict[str, float] = {}
        rates: dict[str, float] = {}
        for label, dt in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
            a = torch.randn(gemm_n, gemm_n, device=dev, dtype=dt)
            b = torch.randn(gemm_n, gemm_n, device=dev, dtype=dt)
            c = torch.empty(gemm_n, gemm_n, device=dev, dtype=dt)

            def gemm_call(i: int, a: torch.Tensor = a, b: torch.Tensor = b, c: torch.Tensor = c) -> None:
                torch.matmul(a, b, out=c)

            t = time_gpu(
                gemm_call,
                1,
                device=dev,
                l2_flush_bytes=0,
                warmup=3,
                min_reps=10,
                max_reps=50,
                budget_s=2.0,
                rel_ci=0.01,
            )
            gemm[label] = t.median_us
            rates[label] = 2 * gemm_n**3 / (t.median_us * 1e-6) / 1e12
            del a, b, c
        torch.cuda.empty_cache()
    sheet = datasheet_peaks(prof, name, driver) if prof is not None else None
    peaks = MeasuredPeaks(
        device=name,
        driver=driver,
        key=key,
        source="measured",
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        torch_version=torch.__version__,
        hbm_bandwidth_tbs=bandwidth,
        bf16_tflops=rates["bf16"],
        fp16_tflops=rates["fp16"],
        copy_bytes=nbytes,
        gemm_n=gemm_n,
        copy_median_us=copy_t.median_us,
        gemm_median_us=gemm,
        profile=sheet.profile if sheet else None,
        datasheet_bandwidth_tbs=sheet.datasheet_bandwidth_tbs if sheet else None,
        datasheet_bf16_tflops=sheet.datasheet_bf16_tflops if sheet else None,
        datasheet_fp16_tflops=sheet.datasheet_fp16_tflops if sheet else None,
        method=(
            f"bandwidth: dst.copy_(src) of {nbytes} B float32 (random normal), 2x bytes per copy, median of "
            f"{copy_t.n} event-timed copies; GEMM: torch.matmul {gemm_n}^3 random normal operands, 2n^3 FLOP, "
            "median of event-timed calls; clocks as found"
        ),
    )
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        write_atomic(cache_file, peaks.model_dump_json(indent=2))
    except OSError:
        pass  # an unwritable cache costs a re-measurement next time, nothing else
    return peaks


# ---- task rooflines ------------------------------------------------------------------------------


class Roofline(_Model):
    flops: float
    bytes: float
    peak_tflops: float | None
    bandwidth_tbs: float | None
    compute_us: float | None
    memory_us: float | None
    sol_us: float
    bound: Literal["compute", "memory"]
    basis: str


def roofline(
    flops: float,
    bytes: float,
    peak_tflops: float | None,
    bandwidth_tbs: float | None,  # noqa: A002
    basis: str = "",
) -> Roofline:
    sol = sol_time_us(flops, bytes, peak_tflops, bandwidth_tbs)
    compute = flops / (peak_tflops * 1e6) if peak_tflops else None
    memory = bytes / (bandwidth_tbs * 1e6) if bandwidth_tbs else None
    bound: Literal["compute", "memory"] = "compute" if (compute or 0.0) >= (memory or 0.0) else "memory"
    return Roofline(
        flops=flops,
        bytes=bytes,
        peak_tflops=peak_tflops,
        bandwidth_tbs=bandwidth_tbs,
        compute_us=compute,
        memory_us=memory,
        sol_us=sol,
        bound=bound,
        basis=basis,
    )


def task_roofline(
    task: Task,
    workload: str | WorkloadSpec,
    dtype: str | None,
    *,
    profile: TargetProfile,
    peaks: MeasuredPeaks | None = None,
    basis: Basis = "datasheet",
) -> Roofline:
    """The roofline floor of one workload: the task's FLOP and byte formulas over the chosen peaks.

    Compute peak: the profile's dense peak for the dtype (for bf16/fp16 GEMM-class rates the measured
    value where `basis` asks for it); bandwidth: the profile's HBM bandwidth or the measured copy rate.
    """
    variant = dtype or task.default_dtype
    flops = task.flops(workload, variant)
    nbytes = task.bytes(workload, variant)
    sheet_peak = profile.peak_tflops_or_none(variant)
    sheet_bw = profile.memory.bandwidth_tbs
    if peaks is None or basis == "datasheet":
        return roofline(flops, nbytes, sheet_peak, sheet_bw, basis="datasheet")
    from ksearch.target import normalize_dtype

    canon = normalize_dtype(variant)
    measured_peak = {"bf16": peaks.bf16_tflops, "fp16": peaks.fp16_tflops}.get(canon)
    peak = _pick(measured_peak, sheet_peak, basis)
    bw = _pick(peaks.hbm_bandwidth_tbs, sheet_bw, basis)
    return roofline(flops, nbytes, peak, bw, basis=basis)
