"""GPU self-check of the timing harness: `python -m ksearch.selfbench.gpu_selfcheck --out DIR`.

Measures, on the first visible GPU, what the harness promises and writes `DIR/selfcheck.json`
(every figure, every sample) and `DIR/selfcheck.txt` (the summary table, also printed last):

(a) stability: each of three kernels (a Triton rmsnorm, M=N=4096 fp16; torch.matmul bf16
    4096^3; torch.softmax fp16 4096x4096) timed 10 times with `time_gpu`; the CV of the 10 medians
    (goal < 1%). Also each kernel under each L2 flush mode (write+read, write, none), with and
    without the pre-start spin, and by CUPTI device timestamps in the same loop.
(b) agreement: the harness median against Nsight Compute's `gpu__time_duration.sum` of the same
    kernels (goal within 3%) where `ncu` exists, against CUPTI kernel durations taken in the
    harness's own loop, and against `triton.testing.do_bench` (median, its own L2 flush) always.
(c) baselines: eager, torch.compile and vendor for rmsnorm, softmax and matmul (values checked
    against the reference), timed like a candidate; SOL fraction and SOL-ExecBench score.
(d) peaks: measured HBM bandwidth and bf16/fp16 GEMM rates against the target profile's datasheet.

`--ncu-child KERNEL` is the program ncu runs: it warms the kernel up, then brackets `--calls`
calls with `torch.cuda.profiler.start()` / `stop()`.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

KERNELS = ("rmsnorm_triton", "matmul_bf16", "softmax_fp16")
RMSNORM_CANDIDATE = Path("tests/candidates/triton/rmsnorm_rows.py")


@dataclass
class Kernel:
    """One timed kernel: fn(i) runs one call on argument set i % n_sets."""

    name: str
    task: Any
    workload: Any
    dtype: str
    fn: Callable[[int], None]
    n_sets: int
    arg_sets: list[dict[str, Any]]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    label: str = ""


def _load_candidate(path: Path) -> Any:
    from ksearch.paths import repo_root

    full = path if path.is_absolute() else repo_root() / path
    spec = importlib.util.spec_from_file_location("ksearch_selfcheck_rmsnorm_rows", full)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {full}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_kernel(name: str, device: Any, n_sets: int = 4) -> Kernel:
    import torch

    from ksearch.task import WorkloadSpec, load_task

    if name == "rmsnorm_triton":
        task = load_task("rmsnorm")
        wl = task.workload("llama3_8b_prefill_m4096_n4096")
        dtype = "float16"
        sets = [task.make_inputs(wl, seed=s, dtype=dtype, device=device) for s in range(n_sets)]
        outs = [task.allocate_outputs(wl, dtype=dtype, device=device) for _ in range(n_sets)]
        run = _load_candidate(RMSNORM_CANDIDATE).run

        def fn(i: int) -> None:
            k = i % n_sets
            run(sets[k]["x"], sets[k]["weight"], outs[k]["out"])

        return Kernel(
            name,
            task,
            wl,
            dtype,
            fn,
            n_sets,
            sets,
            outs,
            label="Triton rmsnorm (tests/candidates/triton/rmsnorm_rows.py), M=4096 N=4096 fp16",
        )
    if name == "matmul_bf16":
        task = load_task("matmul")
        wl = task.workload(
            WorkloadSpec(name="square_m4096_n4096_k4096", axes={"M": 4096, "N": 4096, "K": 4096})
        )
        dtype = "bfloat16"
        sets = [task.make_inputs(wl, seed=s, dtype=dtype, device=device) for s in range(n_sets)]
        outs = [task.allocate_outputs(wl, dtype=dtype, device=device) for _ in range(n_sets)]

        def fn(i: int) -> None:
            k = i % n_sets
            torch.matmul(sets[k]["a"], sets[k]["b"], out=outs[k]["c"])

        return Kernel(name, task, wl, dtype, fn, n_sets, sets, outs, label="torch.matmul bf16 4096x4096x4096")
    if name == "softmax_fp16":
        task = load_task("softmax")
        wl = task.workload("attn_scores_m4096_n4096")
        dtype = "float16"
        sets = [task.make_inputs(wl, seed=s, dtype=dtype, device=device) for s in range(n_sets)]

        def fn(i: int) -> None:
            torch.softmax(sets[i % n_sets]["x"], dim=-1)

        return Kernel(name, task, wl, dtype, fn, n_sets, sets, label="torch.softmax fp16 4096x4096 (dim=-1)")
    raise typer.BadParameter(f"unknown kernel {name!r}; choose from {', '.join(KERNELS)}")


# ---- the ncu child -------------------------------------------------------------------------------


def ncu_child(kernel: str, calls: int) -> None:
    import torch

    k = make_kernel(kernel, torch.device("cuda", 0))
    for i in range(5):
        k.fn(i)
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    for i in range(calls):
        k.fn(i)
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()


# ---- sections ------------------------------------------------------------------------------------


def _cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def section_env() -> dict[str, Any]:
    import shutil

    import torch
    import triton

    from ksearch.harness.sol import driver_version
    from ksearch.harness.timing import timers_intact
    from ksearch.target import detect_local_device

    props = torch.cuda.get_device_properties(0)
    ncu = shutil.which("ncu")
    ncu_version = None
    if ncu:
        try:
            out = subprocess.run([ncu, "--version"], capture_output=True, text=True, timeout=60)
            ncu_version = (out.stdout.strip().splitlines() or [""])[-1]
        except (OSError, subprocess.TimeoutExpired) as exc:
            ncu_version = f"error: {exc}"
    local = detect_local_device(0)
    return {
        "device": torch.cuda.get_device_name(0),
        "profile": local.profile if local else None,
        "driver": driver_version(),
        "sm_count": props.multi_processor_count,
        "l2_bytes": int(getattr(props, "L2_cache_size", 0) or 0),
        "memory_bytes": int(props.total_memory),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "ncu": ncu,
        "ncu_version": ncu_version,
        "timers_intact": timers_intact(),
    }


def section_stability(kernels: dict[str, Kernel], repeats: int) -> dict[str, Any]:
    import torch

    from ksearch.harness.timing import time_gpu

    dev = torch.device("cuda", 0)
    out: dict[str, Any] = {}
    for name, k in kernels.items():
        runs = [time_gpu(k.fn, k.n_sets, device=dev) for _ in range(repeats)]
        medians = [r.median_us for r in runs]
        out[name] = {
            "label": k.label,
            "medians_us": medians,
            "median_of_medians_us": statistics.median(medians),
            "cv_of_medians": _cv(medians),
            "spread_of_medians": (max(medians) - min(medians)) / statistics.median(medians),
            "n": [r.n for r in runs],
            "converged": [r.converged for r in runs],
            "stop_reasons": [r.stop_reason for r in runs],
            "event_floor_us": [r.event_floor_us for r in runs],
            "within_run_cv": [r.cv for r in runs],
            "elapsed_s": [r.elapsed_s for r in runs],
            "first_run": runs[0].model_dump(),
        }
    return out


def section_modes(kernels: dict[str, Kernel]) -> dict[str, Any]:
    """Each kernel under each flush mode, with and without the pre-start spin, by events and by CUPTI."""
    import torch

    from ksearch.harness.profilers import cupti_kernel_us
    from ksearch.harness.timing import time_gpu

    dev = torch.device("cuda", 0)
    out: dict[str, Any] = {}
    for name, k in kernels.items():
        rows: dict[str, Any] = {}
        for label, kwargs in (
            ("write_read", {"flush": "write_read"}),
            ("write_read_raw", {"correct_floor": False}),
            ("write", {"flush": "write"}),
            ("none", {"l2_flush_bytes": 0}),
            ("write_read_nolead_raw", {"lead": False, "correct_floor": False}),
            ("none_nolead_raw", {"l2_flush_bytes": 0, "lead": False, "correct_floor": False}),
        ):
            t = time_gpu(k.fn, k.n_sets, device=dev, **kwargs)
            rows[label] = {
                "median_us": t.median_us,
                "iqr_us": t.iqr_us,
                "n": t.n,
                "converged": t.converged,
                "host_us": t.host_us,
                "lead_us": t.lead_us,
                "event_floor_us": t.event_floor_us,
            }
        for label, kwargs in (
            ("cupti_write_read", {"flush": "write_read"}),
            ("cupti_write", {"flush": "write"}),
            ("cupti_none", {"l2_flush_bytes": 0}),
        ):
            c = cupti_kernel_us(k.fn, k.n_sets, device=dev, reps=50, **kwargs)
            rows[label] = c.model_dump(exclude={"per_call_us", "span_us"}) | {
                "span_median_us": statistics.median(c.span_us) if c.span_us else None
            }
        out[name] = rows
    # The floor of the event method: nothing between the two events.
    empty = time_gpu(lambda i: None, 1, device=dev, correct_floor=False)
    out["empty_call"] = {"write_read": {"median_us": empty.median_us, "n": empty.n, "lead_us": empty.lead_us}}
    return out


def section_agreement(kernels: dict[str, Kernel], stability: dict[str, Any], calls: int) -> dict[str, Any]:
    import torch
    import triton.testing

    from ksearch.harness.profilers import cupti_kernel_us, ncu_duration_us

    out: dict[str, Any] = {}
    for name, k in kernels.items():
        harness = stability[name]["median_of_medians_us"]
        fn0 = k.fn
        # do_bench: fixed args (set 0), its own L2 flush (a 256 MB write), median in ms.
        do_bench_ms = triton.testing.do_bench(
            lambda fn0=fn0: fn0(0), warmup=25, rep=200, return_mode="median"
        )
        do_bench_us = float(do_bench_ms) * 1000.0
        torch.cuda.synchronize()
        ncu = ncu_duration_us(
            [
                sys.executable,
                "-m",
                "ksearch.selfbench.gpu_selfcheck",
                "--ncu-child",
                name,
                "--calls",
                str(calls),
            ],
            calls=calls,
            timeout_s=240,
        )
        cupti = cupti_kernel_us(k.fn, k.n_sets, device=torch.device("cuda", 0), reps=100)
        row: dict[str, Any] = {
            "harness_median_us": harness,
            "cupti_in_situ_median_us": cupti.median_us,
            "cupti_kernels": cupti.kernel_names,
            "cupti_reason": cupti.reason,
            "do_bench_median_us": do_bench_us,
            "harness_vs_do_bench": harness / do_bench_us - 1.0,
            "ncu": ncu.model_dump(exclude={"command"}),
        }
        if ncu.available and ncu.median_us:
            row["ncu_median_us"] = ncu.median_us
            row["harness_vs_ncu"] = harness / ncu.median_us - 1.0
        out[name] = row
    return out


def section_baselines(kernels: dict[str, Kernel], peaks: Any) -> dict[str, Any]:
    import torch

    from ksearch.harness.baselines import build_baselines, time_baselines
    from ksearch.harness.sol import sol_fraction, sol_score, task_roofline
    from ksearch.harness.timing import time_gpu
    from ksearch.target import load_target

    dev = torch.device("cuda", 0)
    out: dict[str, Any] = {}
    profile = load_target(peaks.profile) if peaks is not None and peaks.profile else None
    for name, k in kernels.items():
        t0 = time.perf_counter()
        built = build_baselines(k.task, k.workload, k.arg_sets)
        build_s = time.perf_counter() - t0
        checks: dict[str, Any] = {}
        for bname, b in built.items():
            if not b.available or b.compute is None:
                continue
            ref = k.task.run_reference(k.arg_sets[1], workload=k.workload)
            got = b.compute(1)
            per_out = {}
            for oname, rv in ref.items():
                tol = k.task.tolerance(str(rv.dtype).removeprefix("torch."))
                err = (got[oname].double() - rv.double()).abs()
                ok = err <= tol.atol + tol.rtol * rv.double().abs()
                per_out[oname] = {
                    "max_abs_err": float(err.max()),
                    "matched_ratio": float(ok.double().mean()),
                    "passes": bool(
                        float(ok.double().mean()) >= tol.matched_ratio
                        and float(err.max()) <= tol.max_error_cap
                    ),
                }
            checks[bname] = per_out
        timed = time_baselines(built, device=dev)
        candidate = None
        if name == "rmsnorm_triton":
            candidate = time_gpu(k.fn, k.n_sets, device=dev)
        row: dict[str, Any] = {
            "label": k.label,
            "workload": k.workload.name,
            "dtype": k.dtype,
            "build_s": build_s,
            "checks": checks,
            "baselines": {key: v.model_dump(exclude={"timing": {"samples_us"}}) for key, v in timed.items()},
            "candidate": candidate.model_dump(exclude={"samples_us"}) if candidate else None,
        }
        if profile is not None:
            sheet = task_roofline(
                k.task, k.workload, k.dtype, profile=profile, peaks=peaks, basis="datasheet"
            )
            meas = task_roofline(k.task, k.workload, k.dtype, profile=profile, peaks=peaks, basis="measured")
            row["roofline_datasheet"] = sheet.model_dump()
            row["roofline_measured"] = meas.model_dump()
            eager = timed.get("torch_eager")
            t_b = eager.timing.median_us if eager and eager.timing else None
            sol_rows = {}
            entries: dict[str, float] = {key: v.timing.median_us for key, v in timed.items() if v.timing}
            if candidate:
                entries["candidate"] = candidate.median_us
            for key, t_k in entries.items():
                sol_rows[key] = {
                    "median_us": t_k,
                    "sol_fraction_datasheet": sol_fraction(sheet.sol_us, t_k),
                    "sol_fraction_measured": sol_fraction(meas.sol_us, t_k),
                    "sol_score_vs_eager": sol_score(t_k, t_b, sheet.sol_us).model_dump() if t_b else None,
                }
            row["sol"] = sol_rows
        out[name] = row
    return out


def section_peaks(out_dir: Path) -> Any:
    from ksearch.harness.sol import measure_device_peaks

    cache = out_dir / "peaks_cache"
    t0 = time.perf_counter()
    measured = measure_device_peaks(cache_dir=cache, refresh=True)
    measure_s = time.perf_counter() - t0
    again = measure_device_peaks(cache_dir=cache)
    return measured, {
        "measured": measured.model_dump(),
        "measure_s": measure_s,
        "second_call_source": again.source,
    }


def section_overhead(kernels: dict[str, Kernel]) -> dict[str, Any]:
    import torch

    from ksearch.harness.timing import time_cpu

    k = kernels["rmsnorm_triton"]
    t = time_cpu(k.fn, k.n_sets, max_reps=400, budget_s=0.5)
    torch.cuda.synchronize()
    return {"rmsnorm_triton_host_launch": t.model_dump(exclude={"samples_us"})}


# ---- report ----------------------------------------------------------------------------------------


def _fmt(x: Any, spec: str = ".1f") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def render_table(report: dict[str, Any]) -> str:
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(record=True, file=io.StringIO(), width=150, force_terminal=False, color_system=None)

    def Table(title: str) -> RichTable:  # noqa: N802 - compact ASCII tables for logs
        return RichTable(title=title, box=box.ASCII2)

    env = report.get("env", {})
    console.print(
        f"device: {env.get('device')}  driver: {env.get('driver')}  torch {env.get('torch')}  "
        f"triton {env.get('triton')}  L2 {env.get('l2_bytes')} B  ncu: {env.get('ncu') or 'absent'}  "
        f"timers_intact: {env.get('timers_intact')}"
    )
    if "stability" in report:
        t = Table(title="(a) stability: 10 x time_gpu, median of each")
        for col in (
            "kernel",
            "median of medians us",
            "CV of medians",
            "max-min / median",
            "n per run",
            "converged",
        ):
            t.add_column(col)
        for name, row in report["stability"].items():
            t.add_row(
                name,
                _fmt(row["median_of_medians_us"], ".2f"),
                f"{row['cv_of_medians']:.3%}",
                f"{row['spread_of_medians']:.3%}",
                f"{min(row['n'])}-{max(row['n'])}",
                f"{sum(row['converged'])}/{len(row['converged'])}",
            )
        console.print(t)
    if "modes" in report:
        t = Table(title="flush modes and pre-start spin (median us; events unless marked cupti)")
        cols = (
            "write_read",
            "write_read_raw",
            "write",
            "none",
            "write_read_nolead_raw",
            "none_nolead_raw",
            "cupti_write_read",
            "cupti_write",
            "cupti_none",
        )
        for col in ("kernel", *cols, "floor us", "host us"):
            t.add_column(col)
        for name, row in report["modes"].items():
            if name == "empty_call":
                continue
            t.add_row(
                name,
                *(_fmt((row.get(c) or {}).get("median_us"), ".2f") for c in cols),
                _fmt(row["write_read"].get("event_floor_us"), ".2f"),
                _fmt(row["write_read"].get("host_us"), ".1f"),
            )
        console.print(t)
        if "empty_call" in report["modes"]:
            console.print(
                f"empty call between the events (write_read flush, spin, raw): "
                f"{report['modes']['empty_call']['write_read']['median_us']:.2f} us"
            )
    if "agreement" in report:
        t = Table(title="(b) harness median vs ncu gpu__time_duration.sum and vs triton do_bench (median)")
        for col in (
            "kernel",
            "harness us",
            "ncu us",
            "harness/ncu - 1",
            "cupti in situ us",
            "cupti/ncu - 1",
            "do_bench us",
            "harness/do_bench - 1",
        ):
            t.add_column(col)
        for name, row in report["agreement"].items():
            ncu_us = row.get("ncu_median_us")
            cupti_us = row.get("cupti_in_situ_median_us")
            t.add_row(
                name,
                _fmt(row["harness_median_us"], ".2f"),
                _fmt(ncu_us, ".2f") if ncu_us else f"n/a ({(row['ncu'].get('reason') or '')[:40]})",
                f"{row['harness_vs_ncu']:+.2%}" if "harness_vs_ncu" in row else "-",
                _fmt(cupti_us, ".2f"),
                f"{cupti_us / ncu_us - 1:+.2%}" if cupti_us and ncu_us else "-",
                _fmt(row["do_bench_median_us"], ".2f"),
                f"{row['harness_vs_do_bench']:+.2%}",
            )
        console.print(t)
    if "baselines" in report:
        t = Table(
            title="(c) baselines (median us; SOL fraction on datasheet / measured peaks; score vs eager)"
        )
        for col in (
            "kernel",
            "entry",
            "median us",
            "ok",
            "SOL frac sheet",
            "SOL frac meas",
            "SOL score",
            "note",
        ):
            t.add_column(col)
        for name, row in report["baselines"].items():
            sol = row.get("sol", {})
            for key in ("torch_eager", "torch_compile", "vendor", "candidate"):
                b = row["baselines"].get(key)
                if key == "candidate":
                    if not row.get("candidate"):
                        continue
                    med, note, ok = row["candidate"]["median_us"], "Triton candidate", "-"
                else:
                    if b is None:
                        continue
                    med = b["timing"]["median_us"] if b.get("timing") else None
                    note = b.get("reason") or b.get("description", "")
                    chk = row["checks"].get(key)
                    ok = "-" if chk is None else ("yes" if all(v["passes"] for v in chk.values()) else "NO")
                s = sol.get(key, {})
                score = (s.get("sol_score_vs_eager") or {}).get("score") if s else None
                t.add_row(
                    name,
                    key,
                    _fmt(med, ".2f"),
                    ok,
                    _fmt(s.get("sol_fraction_datasheet"), ".3f"),
                    _fmt(s.get("sol_fraction_measured"), ".3f"),
                    _fmt(score, ".3f"),
                    note[:60],
                )
        console.print(t)
    if "peaks" in report:
        p = report["peaks"]["measured"]
        t = Table(title="(d) peaks: measured vs datasheet")
        for col in ("quantity", "measured", "datasheet", "measured / datasheet"):
            t.add_column(col)
        for label, m, d in (
            ("HBM TB/s (copy, read+write)", p["hbm_bandwidth_tbs"], p["datasheet_bandwidth_tbs"]),
            ("bf16 GEMM TFLOP/s (8192^3)", p["bf16_tflops"], p["datasheet_bf16_tflops"]),
            ("fp16 GEMM TFLOP/s (8192^3)", p["fp16_tflops"], p["datasheet_fp16_tflops"]),
        ):
            t.add_row(label, _fmt(m, ".2f"), _fmt(d, ".2f"), f"{m / d:.1%}" if m and d else "-")
        console.print(t)
        console.print(f"peaks cache: second call source = {report['peaks']['second_call_source']}")
    if "overhead" in report:
        o = report["overhead"]["rmsnorm_triton_host_launch"]
        console.print(
            f"host launch time of the Triton rmsnorm (time_cpu): median {o['median_us']:.2f} us, n={o['n']}"
        )
    if report.get("errors"):
        console.print(f"ERRORS in sections: {', '.join(report['errors'])}")
    return console.export_text()


def main(
    out: Path = typer.Option(
        Path("selfcheck_out"), "--out", help="directory for selfcheck.json and selfcheck.txt"
    ),
    repeats: int = typer.Option(10, help="time_gpu runs per kernel for the stability check"),
    calls: int = typer.Option(20, help="calls profiled by ncu per kernel"),
    skip: str = typer.Option(
        "", help="comma-separated sections to skip: stability,modes,agreement,baselines,peaks"
    ),
    ncu_child_kernel: str = typer.Option("", "--ncu-child", help="internal: the program ncu profiles"),
) -> None:
    """Measure the timing harness on this machine's GPU; see the module docstring."""
    if ncu_child_kernel:
        ncu_child(ncu_child_kernel, calls)
        return
    import torch

    if not torch.cuda.is_available():
        typer.echo("no GPU visible to torch: the self-check needs one", err=True)
        raise typer.Exit(2)
    out.mkdir(parents=True, exist_ok=True)
    skipped = {s.strip() for s in skip.split(",") if s.strip()}
    report: dict[str, Any] = {"errors": [], "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    durations: dict[str, float] = {}

    def run(section: str, fn: Callable[[], Any]) -> Any:
        if section in skipped:
            return None
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - a self-check reports every section it can
            report["errors"].append(section)
            report[f"{section}_error"] = "".join(traceback.format_exception(exc))[-4000:]
            typer.echo(f"[{section}] FAILED: {type(exc).__name__}: {exc}", err=True)
            value = None
        durations[section] = time.perf_counter() - t0
        typer.echo(f"[{section}] {durations[section]:.1f} s", err=True)
        _write(out, report)
        return value

    report["env"] = run("env", section_env)
    dev = torch.device("cuda", 0)
    kernels = run("setup", lambda: {n: make_kernel(n, dev) for n in KERNELS}) or {}
    peaks_result = run("peaks", lambda: section_peaks(out))
    peaks = None
    if peaks_result:
        peaks, report["peaks"] = peaks_result
    if kernels:
        report["stability"] = run("stability", lambda: section_stability(kernels, repeats))
        report["modes"] = run("modes", lambda: section_modes(kernels))
        if report.get("stability"):
            report["agreement"] = run(
                "agreement", lambda: section_agreement(kernels, report["stability"], calls)
            )
        report["overhead"] = run("overhead", lambda: section_overhead(kernels))
        report["baselines"] = run("baselines", lambda: section_baselines(kernels, peaks))
    report["durations_s"] = durations
    report = {k: v for k, v in report.items() if v is not None}
    _write(out, report)
    table = render_table(report)
    (out / "selfcheck.txt").write_text(table, encoding="utf-8")
    sys.stdout.write(table)
    sys.stdout.flush()


def _write(out: Path, report: dict[str, Any]) -> None:
    from ksearch.paths import write_atomic

    write_atomic(out / "selfcheck.json", json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    typer.run(main)
