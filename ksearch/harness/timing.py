"""Honest kernel timing: cold L2, CUDA events per call, all samples kept, adaptive repetition.

`time_gpu(fn, n_arg_sets, device=...)` times `fn(i)`, one call on argument set `i % n_arg_sets`
(the harness prepares several input sets so consecutive calls never see the previous call's
inputs). Every sample is one call between two CUDA events, preceded by an L2 flush; warm-up calls
(flushed too) are run and dropped. Samples are taken in batches with one synchronize per batch, and
sampling stops as soon as the 95% confidence interval of the median (order statistics, see
ksearch.harness.timing_stats) lies within `rel_ci` of the median (or at `max_reps` samples, or when
`budget_s` of wall time is spent).

L2 flush: before each sample a buffer of `l2_flush_bytes` (default 2x the device's L2) is written
(`zero_`), then read back by a reduction. The write evicts everything the previous call left in
L2; the read leaves L2 holding clean lines, so the timed call does not pay for writing back the
flush buffer's dirty lines (a write-only flush leaves up to one L2 of dirty lines that the timed
kernel's own traffic would have to evict). `flush="write"` selects the write-only flush, as
`triton.testing.do_bench` does; `l2_flush_bytes=0` times with a warm cache.

Event floor: an event pair with nothing between it reads a small constant (1.3-1.6 us on an
H200); it is measured in the same loop and subtracted from every sample (`correct_floor=False`
keeps raw event times). The remainder still holds the kernel's launch latency, so it stays at or
above the device-side kernel time that CUPTI and Nsight Compute report.

Launch gaps: before each start event the GPU is held back by a short spin kernel sized from the
measured host time of a sample, so the call's launch is already queued when the start event runs
and host-side launch cost (about 25 us for a Triton launch) is never counted as kernel time.

The profilers that cross-check these times (CUPTI, Nsight Compute) are in ksearch.harness.profilers.

Timer integrity: the identities of the clocks and event API are captured when this module is
imported; `timers_intact()` names any that were replaced since (the GPU self-check reports it; the
harness times in the judge, a process no candidate runs in), and the timing functions (and the
profilers) call the captured originals.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from ksearch.harness.timing_stats import TimingError, ci_converged, summarize

FlushMode = Literal["write_read", "write"]


# ---- timer integrity ---------------------------------------------------------------------------

# Captured once, at import: the objects the timing code trusts. Names are dotted paths resolved
# from the `time` and `torch` modules at check time.
_TRUSTED_NAMES: tuple[str, ...] = (
    "time.perf_counter",
    "time.perf_counter_ns",
    "time.monotonic",
    "time.monotonic_ns",
    "time.time",
    "time.time_ns",
    "torch.cuda.Event",
    "torch.cuda.Event.record",
    "torch.cuda.Event.elapsed_time",
    "torch.cuda.Event.synchronize",
    "torch.cuda.Event.query",
    "torch.cuda.synchronize",
    "torch.cuda.current_stream",
    "torch.cuda.Stream.synchronize",
)
_ROOTS: dict[str, Any] = {"time": time, "torch": torch}


def _resolve(dotted: str) -> Any:
    head, *rest = dotted.split(".")
    obj = _ROOTS[head]
    for part in rest:
        obj = getattr(obj, part)
    return obj


_TRUSTED: dict[str, Any] = {name: _resolve(name) for name in _TRUSTED_NAMES}

# The originals the timing functions call, immune to later patching of the modules.
_perf_counter = time.perf_counter
_perf_counter_ns = time.perf_counter_ns
_Event = torch.cuda.Event
_event_record = torch.cuda.Event.record
_event_elapsed = torch.cuda.Event.elapsed_time
_cuda_synchronize = torch.cuda.synchronize
_cuda_sleep = getattr(torch.cuda, "_sleep", None)


def timers_intact() -> list[str]:
    """Dotted names of the timers and event API that no longer are the objects seen at import.

    [] means intact. A name that can no longer be resolved at all counts as replaced.
    """
    replaced: list[str] = []
    for name, original in _TRUSTED.items():
        try:
            current = _resolve(name)
        except AttributeError:
            replaced.append(name)
            continue
        if current is not original:
            replaced.append(name)
    return replaced


StopReason = Literal["converged", "max_reps", "budget"]


class AdaptiveResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: list[float]
    converged: bool
    stop_reason: StopReason
    batches: int
    elapsed_s: float


def adaptive_sample(
    draw: Callable[[int], Sequence[float]],
    *,
    min_reps: int = 10,
    max_reps: int = 10_000,
    budget_s: float = 2.0,
    rel_ci: float = 0.01,
    max_batch: int = 256,
    clock: Callable[[], float] | None = None,
) -> AdaptiveResult:
    """Draw samples in batches until the median's 95% CI is within `rel_ci`, `max_reps`, or the budget.

    `draw(k)` returns k new samples. The first batch is `min_reps`; later batches grow with the
    sample count (half of it, at most `max_batch`) and are cut to what the remaining budget allows
    at the rate seen so far. Convergence is checked after every batch, never before `min_reps`.
    """
    if min_reps < 1 or max_reps < min_reps:
        raise TimingError(f"need 1 <= min_reps <= max_reps, got min_reps={min_reps} max_reps={max_reps}")
    if rel_ci <= 0 or budget_s <= 0:
        raise TimingError(f"rel_ci and budget_s must be > 0, got rel_ci={rel_ci} budget_s={budget_s}")
    now = clock or _perf_counter
    t0 = now()
    samples: list[float] = []
    batch = min_reps
    batches = 0
    while True:
        take = max(1, min(batch, max_reps - len(samples)))
        got = list(draw(take))
        if len(got) != take:
            raise TimingError(f"draw({take}) returned {len(got)} samples")
        samples.extend(float(x) for x in got)
        batches += 1
        elapsed = now() - t0
        if len(samples) >= min_reps and ci_converged(samples, rel_ci):
            return AdaptiveResult(
                samples=samples, converged=True, stop_reason="converged", batches=batches, elapsed_s=elapsed
            )
        if len(samples) >= max_reps:
            return AdaptiveResult(
                samples=samples, converged=False, stop_reason="max_reps", batches=batches, elapsed_s=elapsed
            )
        if elapsed >= budget_s:
            return AdaptiveResult(
                samples=samples, converged=False, stop_reason="budget", batches=batches, elapsed_s=elapsed
            )
        per_sample = elapsed / len(samples)
        affordable = int((budget_s - elapsed) / per_sample) if per_sample > 0 else max_batch
        batch = max(1, min(max(min_reps, len(samples) // 2), max_batch, affordable))


# ---- results -----------------------------------------------------------------------------------


class Timing(BaseModel):
    """All samples of one timed function and the statistics over them (microseconds)."""

    model_config = ConfigDict(extra="forbid")

    samples_us: list[float] = Field(
        description="every timed sample, in order, warm-up excluded; event time minus event_floor_us where set"
    )
    median_us: float
    iqr_us: float
    cv: float = Field(description="std / mean of the samples")
    n: int
    ci_low_us: float = Field(description="95% CI of the median, low end (order statistics)")
    ci_high_us: float
    ci_coverage: float = Field(description="exact coverage of the CI (>= 0.95 once n >= 6)")
    converged: bool = Field(description="the CI lies within rel_ci of the median")
    stop_reason: StopReason
    rel_ci: float
    warmup: int
    clock: Literal["cuda_event", "perf_counter_ns"]
    l2_flush_bytes: int = Field(description="bytes written (and read) before each sample; 0: warm cache")
    flush: str = Field(description="write_read | write | none")
    n_arg_sets: int
    elapsed_s: float = Field(description="wall time of the sampling phase")
    device: str | None = None
    host_us: float | None = Field(default=None, description="median host time of one call (launch cost)")
    lead_us: float | None = Field(
        default=None, description="median GPU spin before each start event (time_gpu)"
    )
    event_floor_us: float | None = Field(
        default=None,
        description="event-pair time with nothing between, subtracted from every sample; None: raw",
    )
    event_floor_samples_us: list[float] | None = Field(
        default=None, description="the empty event pairs event_floor_us is the median of"
    )
    method: str = Field(description="one line: how the samples were taken and the CI computed")


def _timing_from(
    result: AdaptiveResult,
    *,
    rel_ci: float,
    warmup: int,
    clock: Literal["cuda_event", "perf_counter_ns"],
    l2_flush_bytes: int,
    flush: str,
    n_arg_sets: int,
    device: str | None,
    method: str,
    host_us: float | None = None,
    lead_us: float | None = None,
    event_floor_us: float | None = None,
    event_floor_samples_us: list[float] | None = None,
) -> Timing:
    stats = summarize(result.samples)
    return Timing(
        samples_us=result.samples,
        median_us=stats.median,
        iqr_us=stats.iqr,
        cv=stats.cv,
        n=stats.n,
        ci_low_us=stats.ci_low,
        ci_high_us=stats.ci_high,
        ci_coverage=stats.ci_coverage,
        converged=result.converged,
        stop_reason=result.stop_reason,
        rel_ci=rel_ci,
        warmup=warmup,
        clock=clock,
        l2_flush_bytes=l2_flush_bytes,
        flush=flush,
        n_arg_sets=n_arg_sets,
        elapsed_s=result.elapsed_s,
        device=device,
        host_us=host_us,
        lead_us=lead_us,
        event_floor_us=event_floor_us,
        event_floor_samples_us=event_floor_samples_us,
        method=method,
    )


# ---- GPU timing --------------------------------------------------------------------------------


def default_l2_flush_bytes(device: Any = None) -> int:
    """2x the device's L2 (torch's device properties), else 2x the matching target profile's L2."""
    props = torch.cuda.get_device_properties(device if device is not None else torch.cuda.current_device())
    l2 = int(getattr(props, "L2_cache_size", 0) or 0)
    if l2 > 0:
        return 2 * l2
    from ksearch.target import detect_local_device, load_target

    index = torch.device(device).index if device is not None else torch.cuda.current_device()
    local = detect_local_device(index or 0)
    if local is not None and local.profile is not None:
        return int(2 * load_target(local.profile).caches.l2_mib * 1024 * 1024)
    raise TimingError(
        f"cannot tell the L2 size of {getattr(props, 'name', 'this device')}: torch reports none and no "
        "target profile matches; pass l2_flush_bytes explicitly"
    )


LEAD_FACTOR = 1.5
LEAD_SLACK_US = 10.0
MAX_LEAD_US = 20_000.0
FLOOR_SAMPLES = 50
MIN_SAMPLE_US = 1e-3


def time_gpu(
    fn: Callable[[int], object],
    n_arg_sets: int,
    *,
    device: Any,
    l2_flush_bytes: int | None = None,
    warmup: int = 3,
    min_reps: int = 10,
    max_reps: int = 10_000,
    budget_s: float = 2.0,
    rel_ci: float = 0.01,
    flush: FlushMode = "write_read",
    lead: bool = True,
    correct_floor: bool = True,
    max_batch: int = 256,
    before: Callable[[int], None] | None = None,
) -> Timing:
    """Time `fn(i)` (one call on argument set i % n_arg_sets) on a CUDA/ROCm device. `before(i)`, if
    given, runs ahead of every sample's L2 flush, outside the timed events (the harness re-poisons
    set i's outputs there, so no call finds the previous one's results).

    Per sample: flush L2 (see the module doc), hold the GPU back with a spin kernel, record a CUDA
    event, call, record an event. One synchronize per batch. The first `warmup` calls (flushed like
    the rest) are not kept. Stops when the order-statistic 95% CI of the median is within `rel_ci`
    of the median, at `max_reps` samples, or after `budget_s` seconds of sampling.

    The spin (`lead`): events time what the GPU does between them, so a call whose host-side launch
    takes longer than the GPU work queued before it (a Triton launch costs ~25 us of Python; a
    flush ~60 us of GPU) would let the GPU reach the start event, idle until the launch arrives,
    and count the host's launch time as kernel time. Before each start event the GPU therefore
    spins (`torch.cuda._sleep`) for LEAD_FACTOR x the host time of one sample (measured, updated
    every batch) minus the flush's own GPU time, so the launch is always queued before the start
    event executes. `Timing.host_us` reports the host time of a call, which the spin keeps out.

    The event floor (`correct_floor`): an event pair with nothing between it reads 1.3-1.6 us on an
    H200, time no kernel spends. It is measured once per call of time_gpu (median of
    FLOOR_SAMPLES pairs, same flush and spin) and subtracted from every sample; `event_floor_us`
    records it, so raw times are samples + floor. What remains still includes the kernel's launch
    latency, so it does not undercut the kernel's device time (CUPTI or ncu).
    """
    if not torch.cuda.is_available():
        raise TimingError("time_gpu needs a CUDA or ROCm device and none is visible to torch; use time_cpu")
    if n_arg_sets < 1:
        raise TimingError(f"n_arg_sets must be >= 1, got {n_arg_sets}")
    dev = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
    if dev.type != "cuda":
        raise TimingError(f"time_gpu needs a cuda device, got {dev}")
    with torch.cuda.device(dev):
        flush_bytes = default_l2_flush_bytes(dev) if l2_flush_bytes is None else int(l2_flush_bytes)
        if flush_bytes < 0:
            raise TimingError(f"l2_flush_bytes must be >= 0, got {flush_bytes}")
        buf = torch.empty(max(flush_bytes // 4, 1), dtype=torch.int32, device=dev) if flush_bytes else None
        sink = torch.empty((), dtype=torch.int64, device=dev)
        read_back = flush == "write_read"

        def flush_l2() -> None:
            if buf is not None:
                buf.zero_()
                if read_back:
                    torch.sum(buf, dim=0, dtype=torch.int64, out=sink)

        counter = 0
        warm_host: list[float] = []
        for _ in range(warmup):
            t0 = _perf_counter_ns()
            if before is not None:
                before(counter % n_arg_sets)
            flush_l2()
            fn(counter % n_arg_sets)
            warm_host.append((_perf_counter_ns() - t0) / 1000.0)
            counter += 1
        _cuda_synchronize(dev)

        spin = _cuda_sleep if lead else None
        cycles_per_us = _calibrate_sleep(dev) if spin is not None else None
        if cycles_per_us is None:
            spin = None
        flush_gpu_us = _gpu_time_us(flush_l2, dev) if buf is not None else 0.0
        # The first batch's lead comes from the last warm-up call (earlier ones may include JIT compiles).
        state = {"host_sample_us": warm_host[-1] if warm_host else 100.0}
        host_fn: list[float] = []
        leads: list[float] = []

        def events(call: Callable[[int], object], k: int, record_host: bool) -> list[float]:
            """k samples of `call`: flush, spin, start event, call, end event; raw event times in us."""
            nonlocal counter
            starts = [_Event(enable_timing=True) for _ in range(k)]
            ends = [_Event(enable_timing=True) for _ in range(k)]
            lead_us = min(
                MAX_LEAD_US, max(0.0, LEAD_FACTOR * state["host_sample_us"] + LEAD_SLACK_US - flush_gpu_us)
            )
            cycles = int(lead_us * cycles_per_us) if spin is not None and cycles_per_us else 0
            sample_host: list[float] = []
            for j in range(k):
                t0 = _perf_counter_ns()
                if before is not None and record_host:
                    before(counter % n_arg_sets)
                flush_l2()
                if cycles > 0 and spin is not None:
                    spin(cycles)
                _event_record(starts[j])
                t1 = _perf_counter_ns()
                call(counter % n_arg_sets)
                t2 = _perf_counter_ns()
                _event_record(ends[j])
                sample_host.append((_perf_counter_ns() - t0) / 1000.0)
                if record_host:
                    host_fn.append((t2 - t1) / 1000.0)
                    counter += 1
            _cuda_synchronize(dev)
            if record_host:
                leads.append(lead_us if cycles > 0 else 0.0)
                state["host_sample_us"] = statistics.median(sample_host)
            return [_event_elapsed(s, e) * 1000.0 for s, e in zip(starts, ends, strict=True)]

        floor_us, floor_samples = 0.0, None
        if correct_floor:
            # Nothing between the two events: what the event pair itself reads, under the same flush and spin.
            floor_samples = events(lambda i: None, FLOOR_SAMPLES, record_host=False)
            floor_us = statistics.median(floor_samples)

        def draw(k: int) -> list[float]:
            raw = events(fn, k, record_host=True)
            if not correct_floor:
                return raw
            return [max(t - floor_us, MIN_SAMPLE_US) for t in raw]

        result = adaptive_sample(
            draw, min_reps=min_reps, max_reps=max_reps, budget_s=budget_s, rel_ci=rel_ci, max_batch=max_batch
        )
        name = torch.cuda.get_device_name(dev)
    flush_name = "none" if not flush_bytes else flush
    lead_note = (
        f"GPU held back by a spin of {statistics.median(leads):.0f} us (median) before each start event"
        if spin is not None
        else "no spin before the start event (torch.cuda._sleep unavailable or lead=False)"
    )
    floor_note = (
        f"the event pair's own time with nothing between ({floor_us:.2f} us, median of {FLOOR_SAMPLES}) "
        "subtracted from every sample"
        if correct_floor
        else "raw event times (no floor subtracted)"
    )
    method = (
        f"cuda events around each call on the current stream; L2 flush before every sample "
        f"({flush_name}, {flush_bytes} B); {lead_note}; {floor_note}; {warmup} warm-up calls dropped; one "
        f"synchronize per batch; 95% CI of the median from order statistics (exact binomial), stop when "
        f"within {rel_ci:.2%}"
    )
    return _timing_from(
        result,
        rel_ci=rel_ci,
        warmup=warmup,
        clock="cuda_event",
        l2_flush_bytes=flush_bytes,
        flush=flush_name,
        n_arg_sets=n_arg_sets,
        device=name,
        method=method,
        host_us=statistics.median(host_fn) if host_fn else None,
        lead_us=statistics.median(leads) if spin is not None and leads else 0.0,
        event_floor_us=floor_us if correct_floor else None,
        event_floor_samples_us=floor_samples,
    )


def _gpu_time_us(work: Callable[[], None], dev: torch.device, reps: int = 3) -> float:
    """Median event time of `work()` over a few runs (for calibration, not for results)."""
    times = []
    for _ in range(reps):
        s, e = _Event(enable_timing=True), _Event(enable_timing=True)
        _event_record(s)
        work()
        _event_record(e)
        _cuda_synchronize(dev)
        times.append(_event_elapsed(s, e) * 1000.0)
    return statistics.median(times)


def _calibrate_sleep(dev: torch.device) -> float | None:
    """GPU clock cycles per microsecond of `torch.cuda._sleep`, or None where it cannot be used."""
    if _cuda_sleep is None:
        return None
    cycles = 200_000
    try:
        us = _gpu_time_us(lambda: _cuda_sleep(cycles), dev)
    except RuntimeError:
        return None
    return cycles / us if us > 0 else None


def time_cpu(
    fn: Callable[[int], object],
    n_arg_sets: int,
    *,
    warmup: int = 3,
    min_reps: int = 10,
    max_reps: int = 10_000,
    budget_s: float = 2.0,
    rel_ci: float = 0.01,
    max_batch: int = 256,
) -> Timing:
    """Time `fn(i)` on the host with `time.perf_counter_ns` (no synchronization, no flush).

    For host-side costs (launch overhead, harness overhead); for device work use time_gpu.
    """
    if n_arg_sets < 1:
        raise TimingError(f"n_arg_sets must be >= 1, got {n_arg_sets}")
    counter = 0
    for _ in range(warmup):
        fn(counter % n_arg_sets)
        counter += 1

    def draw(k: int) -> list[float]:
        nonlocal counter
        out: list[float] = []
        for _ in range(k):
            t0 = _perf_counter_ns()
            fn(counter % n_arg_sets)
            out.append((_perf_counter_ns() - t0) / 1000.0)
            counter += 1
        return out

    result = adaptive_sample(
        draw, min_reps=min_reps, max_reps=max_reps, budget_s=budget_s, rel_ci=rel_ci, max_batch=max_batch
    )
    method = (
        f"time.perf_counter_ns around each call (host time, no device synchronize); {warmup} warm-up "
        f"calls dropped; 95% CI of the median from order statistics, stop when within {rel_ci:.2%}"
    )
    return _timing_from(
        result,
        rel_ci=rel_ci,
        warmup=warmup,
        clock="perf_counter_ns",
        l2_flush_bytes=0,
        flush="none",
        n_arg_sets=n_arg_sets,
        device=None,
        method=method,
    )
