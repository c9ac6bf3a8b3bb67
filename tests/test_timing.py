"""Timing statistics, SOL formulas and score, baselines, timer integrity, ncu parsing (CPU);
time_gpu, baselines timing and device peaks on a GPU (marked gpu, skipped without one)."""

from __future__ import annotations

import math
import random
import shutil
import statistics
import time
from pathlib import Path

import pytest
import torch
import yaml

from ksearch.harness import profilers
from ksearch.harness.baselines import ALL_BASELINES, BaselineError, build_baselines, time_baselines
from ksearch.harness.profilers import ncu_duration_us, parse_ncu_csv
from ksearch.harness.sol import (
    IMPOSSIBLE_SPEED,
    MeasuredPeaks,
    SolError,
    datasheet_peaks,
    geomean,
    is_impossible,
    measure_device_peaks,
    roofline,
    sol_fraction,
    sol_score,
    sol_time_us,
    task_roofline,
)
from ksearch.harness.timing import adaptive_sample, time_cpu, time_gpu, timers_intact
from ksearch.harness.timing_stats import TimingError, ci_converged, median_ci, summarize
from ksearch.paths import configs_dir
from ksearch.target import load_target
from ksearch.task import load_task


def _has_gpu() -> bool:
    return bool(torch.cuda.is_available())


# ---- median CI (order statistics) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "low_rank", "high_rank", "coverage"),
    [
        # coverage = 1 - 2 * sum_{k < l} C(n, k) / 2^n
        (6, 1, 6, 1 - 2 * 1 / 64),
        (10, 2, 9, 1 - 2 * (1 + 10) / 1024),
        (20, 6, 15, 1 - 2 * (1 + 20 + 190 + 1140 + 4845 + 15504) / 2**20),
        (100, 40, 61, None),  # the textbook table value for n = 100
    ],
)
def test_median_ci_order_statistics(n: int, low_rank: int, high_rank: int, coverage: float | None) -> None:
    samples = [float(10 * k) for k in range(1, n + 1)]
    random.Random(n).shuffle(samples)  # order of arrival must not matter
    lo, hi, cov = median_ci(samples)
    assert (lo, hi) == (10.0 * low_rank, 10.0 * high_rank)
    assert cov >= 0.95
    if coverage is not None:
        assert cov == pytest.approx(coverage, rel=1e-12)


def test_median_ci_below_six_samples_cannot_reach_95_percent() -> None:
    lo, hi, cov = median_ci([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (lo, hi) == (1.0, 5.0)
    assert cov == pytest.approx(1 - 2 / 32)
    assert cov < 0.95
    assert not ci_converged([1.0] * 5, rel_ci=0.5)
    assert ci_converged([1.0] * 6, rel_ci=1e-9)
    with pytest.raises(TimingError):
        median_ci([])


def test_median_ci_large_n_is_symmetric_about_the_middle() -> None:
    n = 10_000
    lo, hi, cov = median_ci([float(k) for k in range(1, n + 1)])
    # normal approximation: n/2 -/+ 1.96 sqrt(n)/2 = 5000 -/+ 98
    assert 4895 <= lo <= 4905 and 5096 <= hi <= 5106
    assert lo + hi == n + 1  # x_(l) and x_(n-l+1)
    assert 0.95 <= cov < 0.96


def test_summarize_iqr_cv_hand_computed() -> None:
    s = summarize([4.0, 1.0, 100.0, 3.0, 2.0])
    assert s.n == 5
    assert s.median == 3.0
    assert (s.q1, s.q3, s.iqr) == (2.0, 4.0, 2.0)
    assert s.mean == 22.0
    std = math.sqrt((21**2 + 20**2 + 19**2 + 18**2 + 78**2) / 4)
    assert s.std == pytest.approx(std)
    assert s.cv == pytest.approx(std / 22.0)
    # quartiles interpolate linearly between order statistics (numpy's default)
    s8 = summarize([float(k) for k in range(1, 9)])
    assert (s8.q1, s8.median, s8.q3) == (2.75, 4.5, 6.25)
    one = summarize([7.0])
    assert (one.median, one.iqr, one.cv, one.std) == (7.0, 0.0, 0.0, 0.0)


def test_ci_converged_relative_width() -> None:
    samples = [100.0 + (k % 10) * 0.1 for k in range(200)]  # 100.0 .. 100.9
    assert ci_converged(samples, rel_ci=0.01)
    wide = [50.0 if k % 2 else 150.0 for k in range(200)]
    assert not ci_converged(wide, rel_ci=0.01)
    assert ci_converged(wide, rel_ci=0.6)


# ---- adaptive repetition on synthetic streams ----------------------------------------------------


def test_adaptive_stops_at_min_reps_on_a_tight_stream() -> None:
    stream = iter([100.0, 100.05, 99.95] * 100)
    res = adaptive_sample(lambda k: [next(stream) for _ in range(k)], min_reps=10, max_reps=1000, rel_ci=0.01)
    assert res.converged and res.stop_reason == "converged"
    assert len(res.samples) == 10 and res.batches == 1


def test_adaptive_runs_to_max_reps_on_a_bimodal_stream() -> None:
    values = [50.0, 150.0] * 1000
    stream = iter(values)
    res = adaptive_sample(
        lambda k: [next(stream) for _ in range(k)], min_reps=10, max_reps=300, rel_ci=0.01, budget_s=1e9
    )
    assert not res.converged and res.stop_reason == "max_reps"
    assert len(res.samples) == 300
    assert res.samples == values[:300]  # every sample kept, in order


def test_adaptive_stops_on_the_time_budget() -> None:
    clock = {"t": 0.0}

    def draw(k: int) -> list[float]:
        clock["t"] += 0.001 * k  # 1 ms per sample
        return [50.0 if j % 2 else 150.0 for j in range(k)]

    res = adaptive_sample(
        draw, min_reps=10, max_reps=100_000, rel_ci=0.01, budget_s=0.05, clock=lambda: clock["t"]
    )
    assert res.stop_reason == "budget" and not res.converged
    # batches are cut to what the remaining budget allows at the observed rate
    assert 50 <= len(res.samples) <= 60
    assert res.elapsed_s >= 0.05


def test_adaptive_converges_after_a_noisy_start() -> None:
    rng = random.Random(1)
    count = {"n": 0}

    def draw(k: int) -> list[float]:
        out = []
        for _ in range(k):
            count["n"] += 1
            out.append(
                rng.choice([50.0, 150.0]) if count["n"] <= 20 else 100.0 * (1 + rng.uniform(-0.002, 0.002))
            )
        return out

    res = adaptive_sample(draw, min_reps=10, max_reps=10_000, rel_ci=0.005, budget_s=1e9)
    assert res.converged and 10 < len(res.samples) < 10_000
    assert statistics.median(res.samples) == pytest.approx(100.0, rel=0.005)


def test_adaptive_rejects_bad_arguments() -> None:
    with pytest.raises(TimingError):
        adaptive_sample(lambda k: [1.0] * k, min_reps=0)
    with pytest.raises(TimingError):
        adaptive_sample(lambda k: [1.0] * k, min_reps=10, max_reps=5)
    with pytest.raises(TimingError):
        adaptive_sample(lambda k: [1.0] * k, rel_ci=0)
    with pytest.raises(TimingError, match="returned 1 samples"):
        adaptive_sample(lambda k: [1.0], min_reps=3)


# ---- time_cpu, time_gpu without a device ---------------------------------------------------------


def test_time_cpu_rotates_arg_sets_and_excludes_warmup() -> None:
    seen: list[int] = []

    def fn(i: int) -> None:
        seen.append(i)
        time.sleep(0.0002)

    t = time_cpu(fn, 3, warmup=4, min_reps=10, max_reps=40, budget_s=5.0, rel_ci=1e-6)
    assert seen[:7] == [0, 1, 2, 0, 1, 2, 0]
    assert len(seen) == 4 + t.n
    assert len(t.samples_us) == t.n and t.n == 40 and t.stop_reason == "max_reps"
    assert t.clock == "perf_counter_ns" and t.flush == "none" and t.n_arg_sets == 3
    assert t.ci_low_us <= t.median_us <= t.ci_high_us
    assert t.median_us >= 150.0  # slept at least 0.2 ms per call
    assert t.median_us == statistics.median(t.samples_us)


@pytest.mark.skipif(_has_gpu(), reason="checks the error raised without a GPU")
def test_time_gpu_without_a_device_is_an_error() -> None:
    with pytest.raises(TimingError, match="needs a CUDA or ROCm device"):
        time_gpu(lambda i: None, 1, device="cuda")


# ---- timer integrity ---------------------------------------------------------------------------


def test_timers_intact_detects_patched_perf_counter() -> None:
    assert timers_intact() == []
    original = time.perf_counter
    time.perf_counter = lambda: 0.0  # type: ignore[assignment]
    try:
        assert timers_intact() == ["time.perf_counter"]
    finally:
        time.perf_counter = original
    assert timers_intact() == []


def test_timers_intact_detects_patched_cuda_event_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda.Event, "elapsed_time", lambda self, other: 0.001)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    assert sorted(timers_intact()) == ["torch.cuda.Event.elapsed_time", "torch.cuda.synchronize"]
    monkeypatch.undo()
    assert timers_intact() == []


def test_timing_uses_the_clock_captured_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """A candidate that patches time.perf_counter_ns after the harness was imported cannot shrink samples."""
    monkeypatch.setattr(time, "perf_counter_ns", lambda: 0)
    t = time_cpu(lambda i: time.sleep(0.0005), 1, warmup=0, min_reps=10, max_reps=10, budget_s=5.0)
    assert t.median_us >= 400.0


# ---- ncu ------------------------------------------------------------------------------------------

_NCU_CSV = """\
==PROF== Connected to process 4242 (/usr/bin/python3)
==PROF== Profiling "rmsnorm_row_kernel" - 0: 0%....50%....100% - 1 pass
==PROF== Profiling "rmsnorm_row_kernel" - 1: 0%....50%....100% - 1 pass
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"
"0","4242","python3","127.0.0.1","rmsnorm_row_kernel","1","7","(256, 1, 1)","(4096, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","nsecond","22,528"
"1","4242","python3","127.0.0.1","rmsnorm_row_kernel","1","7","(256, 1, 1)","(4096, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","nsecond","21,984"
"2","4242","python3","127.0.0.1","other","1","7","(128, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","usecond","1.5"
"""


def test_parse_ncu_csv_converts_units_and_keeps_launch_order() -> None:
    rows = parse_ncu_csv(_NCU_CSV)
    assert [name for name, _ in rows] == ["rmsnorm_row_kernel", "rmsnorm_row_kernel", "other"]
    assert [us for _, us in rows] == pytest.approx([22.528, 21.984, 1.5])
    assert parse_ncu_csv("no csv here\n") == []


def test_ncu_missing_returns_no_number_and_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profilers.shutil, "which", lambda name: None)
    monkeypatch.setattr(profilers.glob, "glob", lambda pattern: [])
    res = ncu_duration_us(["python3", "-c", "pass"])
    assert not res.available and res.median_us is None
    assert "not on PATH" in (res.reason or "")


# ---- SOL formulas and score --------------------------------------------------------------------


def test_sol_time_us_hand_computed() -> None:
    # 2e12 FLOP at 1000 TFLOP/s = 2 ms; 3.35e9 B at 3.35 TB/s = 1 ms -> compute-bound, 2000 us
    assert sol_time_us(2e12, 3.35e9, 1000.0, 3.35) == pytest.approx(2000.0)
    # 1e12 FLOP = 1 ms; 6.7e9 B = 2 ms -> memory-bound, 2000 us
    assert sol_time_us(1e12, 6.7e9, 1000.0, 3.35) == pytest.approx(2000.0)
    assert sol_time_us(1e12, 6.7e9, None, 3.35) == pytest.approx(2000.0)
    assert sol_time_us(2e12, 6.7e9, 1000.0, None) == pytest.approx(2000.0)
    with pytest.raises(SolError):
        sol_time_us(1.0, 1.0, None, None)
    with pytest.raises(SolError):
        sol_time_us(1.0, 1.0, 0.0, 1.0)
    r = roofline(1e12, 6.7e9, 1000.0, 3.35, basis="test")
    assert (
        r.bound == "memory" and r.compute_us == pytest.approx(1000.0) and r.memory_us == pytest.approx(2000.0)
    )


def test_sol_fraction_and_impossibility() -> None:
    assert sol_fraction(50.0, 200.0) == 0.25
    assert sol_fraction(50.0, 40.0) == 1.25  # faster than the floor: returned as is
    assert is_impossible(80.0, 100.0, margin=0.1)
    assert not is_impossible(91.0, 100.0, margin=0.1)
    with pytest.raises(SolError):
        sol_fraction(1.0, 0.0)


@pytest.mark.parametrize(
    ("t_k", "t_b", "t_sol", "expected"),
    [
        (30.0, 30.0, 10.0, 0.5),  # at the baseline
        (10.0, 30.0, 10.0, 1.0),  # at the floor
        (20.0, 30.0, 10.0, 2.0 / 3.0),  # 1 / (1 + 10/20)
        (50.0, 30.0, 10.0, 1.0 / 3.0),  # 1 / (1 + 40/20)
        (110.0, 30.0, 10.0, 1.0 / 6.0),  # 1 / (1 + 100/20)
    ],
)
def test_sol_score_hand_computed(t_k: float, t_b: float, t_sol: float, expected: float) -> None:
    s = sol_score(t_k, t_b, t_sol)
    assert s.score == pytest.approx(expected)
    assert s.failure_class is None and s.note == ""


def test_sol_score_edge_cases() -> None:
    # more than the margin under the floor: physically impossible
    s = sol_score(8.0, 30.0, 10.0, margin=0.1)
    assert s.score is None and s.failure_class == IMPOSSIBLE_SPEED == "reward_hack:impossible_speed"
    # under the floor but within the margin: taken as the floor
    s = sol_score(9.5, 30.0, 10.0, margin=0.1)
    assert s.score == 1.0 and s.failure_class is None and "within the margin" in s.note
    # the baseline beats the floor: the roofline model is wrong, no score, not the candidate's fault
    s = sol_score(20.0, 8.0, 10.0, margin=0.1)
    assert s.score is None and s.failure_class is None and "FLOP/byte model" in s.note
    # the baseline sits at the floor: its gap is raised to margin * T_sol = 1.0
    s = sol_score(11.0, 10.0, 10.0, margin=0.1)
    assert s.score == pytest.approx(1.0 / (1.0 + 1.0 / 1.0))
    assert "gap raised" in s.note
    s = sol_score(10.2, 10.2, 10.0, margin=0.1)  # gap 0.2 -> 1.0: 1 / (1 + 0.2 / 1.0)
    assert s.score == pytest.approx(1.0 / 1.2)
    # margin 0 and the baseline exactly at the floor
    assert sol_score(10.0, 10.0, 10.0, margin=0.0).score == 1.0
    assert sol_score(12.0, 10.0, 10.0, margin=0.0).score == 0.0
    with pytest.raises(SolError):
        sol_score(0.0, 10.0, 10.0)
    with pytest.raises(SolError):
        sol_score(1.0, 10.0, float("nan"))


def test_geomean() -> None:
    assert geomean([0.25, 1.0]) == pytest.approx(0.5)
    assert geomean([]) is None
    with pytest.raises(SolError):
        geomean([0.0, 1.0])


def test_task_roofline_rmsnorm_and_gemm_on_h100_datasheet() -> None:
    h100 = load_target("h100")
    rms = load_task("rmsnorm")
    r = task_roofline(rms, "llama3_8b_prefill_m4096_n4096", "float16", profile=h100)
    nbytes = 4096 * 4096 * 2 * 2 + 4096 * 2
    assert r.bytes == nbytes and r.flops == 4 * 4096 * 4096
    assert r.bound == "memory" and r.sol_us == pytest.approx(nbytes / 3.35e6)  # 20.035 us
    mm = load_task("matmul")
    g = task_roofline(mm, "llama3_8b_o_proj_prefill_m2048_n4096_k4096", "bfloat16", profile=h100)
    assert g.bound == "compute" and g.sol_us == pytest.approx(2 * 2048 * 4096 * 4096 / 989.4e6)  # 69.46 us

    peaks = datasheet_peaks(h100).model_copy(
        update={"hbm_bandwidth_tbs": 3.0, "bf16_tflops": 800.0, "source": "measured"}
    )
    meas = task_roofline(
        rms, "llama3_8b_prefill_m4096_n4096", "float16", profile=h100, peaks=peaks, basis="measured"
    )
    assert meas.sol_us == pytest.approx(nbytes / 3.0e6)
    opt = task_roofline(
        rms, "llama3_8b_prefill_m4096_n4096", "float16", profile=h100, peaks=peaks, basis="optimistic"
    )
    assert opt.sol_us == pytest.approx(nbytes / 3.35e6)
    gm = task_roofline(
        mm,
        "llama3_8b_o_proj_prefill_m2048_n4096_k4096",
        "bfloat16",
        profile=h100,
        peaks=peaks,
        basis="measured",
    )
    assert gm.sol_us == pytest.approx(2 * 2048 * 4096 * 4096 / 800e6)


def test_peaks_without_a_gpu_fall_back_to_the_datasheet(tmp_path: Path) -> None:
    if _has_gpu():
        pytest.skip("checks the fallback without a GPU")
    p = measure_device_peaks(profile="h200", cache_dir=tmp_path)
    assert p.source == "datasheet" and p.profile == "h200"
    assert (
        p.hbm_bandwidth_tbs is None and p.datasheet_bandwidth_tbs == load_target("h200").memory.bandwidth_tbs
    )
    assert p.bandwidth("measured") == p.datasheet_bandwidth_tbs  # nothing measured: the datasheet stands in
    assert p.gemm_tflops("bfloat16", "datasheet") == load_target("h200").peak_tflops("bf16")
    assert not list(tmp_path.iterdir())  # nothing measured, nothing cached
    with pytest.raises(SolError, match="no GPU"):
        measure_device_peaks(cache_dir=tmp_path)


def test_measured_peaks_round_trip_and_basis_choice() -> None:
    p = datasheet_peaks(load_target("h100"), "NVIDIA H100 80GB HBM3", "580.159.04")
    p = p.model_copy(update={"hbm_bandwidth_tbs": 3.0, "bf16_tflops": 1100.0, "source": "measured"})
    again = MeasuredPeaks.model_validate_json(p.model_dump_json())
    assert again == p
    assert p.key == "NVIDIA_H100_80GB_HBM3__580.159.04"
    assert (
        p.bandwidth("measured") == 3.0
        and p.bandwidth("datasheet") == 3.35
        and p.bandwidth("optimistic") == 3.35
    )
    assert p.gemm_tflops("bf16", "optimistic") == 1100.0 and p.gemm_tflops("fp16", "measured") == 989.4


# ---- baselines on CPU ----------------------------------------------------------------------------

TASKS = [
    "matmul",
    "softmax",
    "rmsnorm",
    "fused_add_rmsnorm",
    "gqa_decode_attention",
    "silu_and_mul",
    "moe_topk_routing",
]


def _close(task, got: dict, ref: dict) -> None:  # noqa: ANN001
    for name, want in ref.items():
        tol = task.tolerance(str(want.dtype).removeprefix("torch."))
        assert got[name].shape == want.shape and got[name].dtype == want.dtype, name
        err = (got[name].double() - want.double()).abs()
        matched = (err <= tol.atol + tol.rtol * want.double().abs()).double().mean().item()
        assert matched >= tol.matched_ratio, (task.name, name, matched)
        assert err.max().item() <= tol.max_error_cap, (task.name, name, err.max().item())


@pytest.mark.parametrize("task_name", TASKS)
def test_eager_and_vendor_baselines_match_the_reference_on_cpu(task_name: str) -> None:
    task = load_task(task_name)
    wl = task.workloads(cpu_only=True)[-1]
    for dtype in task.dtypes:
        sets = [task.make_inputs(wl, seed=s, dtype=dtype) for s in range(2)]
        built = build_baselines(task, wl.name, sets, which=("torch_eager", "vendor"))
        assert set(built) == {"torch_eager", "vendor"}
        for b in built.values():
            assert b.available and b.reason is None and b.n_arg_sets == 2, (b.name, b.reason)
        for i in range(2):
            ref = task.run_reference(sets[i], workload=wl.name)
            for b in built.values():
                _close(task, b.compute(i), ref)
        # rotation: call i runs on argument set i % 2
        eager = built["torch_eager"]
        first = next(iter(task.output_names))
        assert torch.equal(eager.compute(0)[first], eager.compute(2)[first])
        assert not torch.equal(eager.compute(0)[first], eager.compute(1)[first])


def test_vendor_unavailable_for_an_unregistered_task(tmp_path: Path) -> None:
    dest = tmp_path / "my_softmax"
    shutil.copytree(configs_dir() / "tasks" / "softmax", dest)
    data = yaml.safe_load((dest / "task.yaml").read_text())
    data["name"] = "my_softmax"
    (dest / "task.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    task = load_task(dest)
    wl = task.workloads(cpu_only=True)[0]
    built = build_baselines(task, wl.name, [task.make_inputs(wl)], which=("torch_eager", "vendor"))
    assert built["torch_eager"].available
    v = built["vendor"]
    assert not v.available and "no vendor op is registered for task my_softmax" in (v.reason or "")
    with pytest.raises(BaselineError, match="unavailable"):
        v(0)


def test_compile_failure_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    task = load_task("softmax")
    wl = task.workloads(cpu_only=True)[0]
    sets = [task.make_inputs(wl)]

    def broken_compile(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("inductor exploded")

    monkeypatch.setattr(torch, "compile", broken_compile)
    b = build_baselines(task, wl.name, sets, which=("torch_compile",))["torch_compile"]
    assert not b.available and "inductor exploded" in (b.reason or "") and b.compute is None

    def lazy_failure(fn, **kwargs):  # noqa: ANN001, ANN003, ANN202
        def compiled(*args):  # noqa: ANN002, ANN202
            raise TypeError("graph break in fullgraph mode")

        return compiled

    monkeypatch.setattr(torch, "compile", lazy_failure)
    b = build_baselines(task, wl.name, sets, which=("torch_compile",))["torch_compile"]
    assert not b.available and "TypeError: graph break" in (b.reason or "")


@pytest.mark.slow
def test_torch_compile_baseline_matches_the_reference_on_cpu() -> None:
    # rmsnorm's reference reads a module global (torch.rsqrt) and takes a keyword-only param: dynamo
    # must trace it without importing its (unregistered) module by name.
    task = load_task("rmsnorm")
    wl = task.workload("qwen3_qk_norm_m96_n128")
    sets = [task.make_inputs(wl, seed=s, dtype="float32") for s in range(2)]
    b = build_baselines(task, wl.name, sets, which=("torch_compile",))["torch_compile"]
    assert b.available, b.reason
    _close(task, b.compute(1), task.run_reference(sets[1], workload=wl.name))


def test_build_baselines_rejects_bad_arguments() -> None:
    task = load_task("softmax")
    wl = task.workloads(cpu_only=True)[0]
    with pytest.raises(BaselineError, match="at least one"):
        build_baselines(task, wl.name, [])
    with pytest.raises(BaselineError, match="lack inputs"):
        build_baselines(task, wl.name, [{"y": torch.zeros(1)}])
    with pytest.raises(BaselineError, match="unknown baselines"):
        build_baselines(task, wl.name, [task.make_inputs(wl)], which=("cudnn",))  # type: ignore[arg-type]
    assert ALL_BASELINES == ("torch_eager", "torch_compile", "vendor")


# ---- on a GPU ------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_time_gpu_measures_a_copy_with_cold_l2() -> None:
    dev = torch.device("cuda", 0)
    n = 64 * 1024 * 1024 // 4  # 64 MiB float32 per tensor
    srcs = [torch.randn(n, device=dev) for _ in range(2)]
    dst = torch.empty(n, device=dev)
    seen: list[int] = []

    def fn(i: int) -> None:
        seen.append(i)
        dst.copy_(srcs[i % 2])

    t = time_gpu(fn, 2, device=dev, warmup=2, min_reps=10, budget_s=2.0)
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    assert t.l2_flush_bytes == 2 * l2 and t.flush == "write_read" and t.clock == "cuda_event"
    assert t.event_floor_us is not None and 0.0 <= t.event_floor_us < 20.0
    assert t.lead_us is not None and t.host_us is not None and t.host_us > 0
    assert len(seen) == 2 + t.n and seen[:4] == [0, 1, 0, 1]
    assert len(t.samples_us) == t.n >= 10
    assert t.ci_low_us <= t.median_us <= t.ci_high_us
    moved = 2 * n * 4
    tbs = moved / (t.median_us * 1e-6) / 1e12
    assert 0.3 < tbs < 10.0, tbs  # a plausible HBM rate: the copy was really timed
    if t.converged:
        assert max(t.median_us - t.ci_low_us, t.ci_high_us - t.median_us) <= 0.01 * t.median_us
    raw = time_gpu(fn, 2, device=dev, correct_floor=False, lead=False, budget_s=1.0)
    assert raw.event_floor_us is None and raw.median_us >= t.median_us * 0.9


@pytest.mark.gpu
def test_baselines_time_on_the_gpu() -> None:
    dev = torch.device("cuda", 0)
    task = load_task("rmsnorm")
    wl = task.workload("llama3_70b_prefill_m1024_n8192")
    sets = [task.make_inputs(wl, seed=s, device=dev) for s in range(2)]
    built = build_baselines(task, wl.name, sets, which=("torch_eager", "vendor"))
    for b in built.values():
        _close(task, b.compute(1), task.run_reference(sets[1], workload=wl.name))
    timed = time_baselines(built, device=dev, budget_s=1.0)
    for name in ("torch_eager", "vendor"):
        assert timed[name].available and timed[name].timing is not None
        assert timed[name].timing.median_us > 0


@pytest.mark.gpu
def test_device_peaks_are_measured_then_cached(tmp_path: Path) -> None:
    p = measure_device_peaks(cache_dir=tmp_path, refresh=True, copy_bytes=512 * 1024 * 1024, gemm_n=4096)
    assert p.source == "measured"
    assert p.hbm_bandwidth_tbs and 0.3 < p.hbm_bandwidth_tbs < 20
    assert p.bf16_tflops and p.bf16_tflops > 10
    again = measure_device_peaks(cache_dir=tmp_path)
    assert again.source == "cache" and again.hbm_bandwidth_tbs == p.hbm_bandwidth_tbs
    assert (tmp_path / f"{p.key}.json").is_file()
