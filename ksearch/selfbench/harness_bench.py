"""`ksearch bench harness`: how far this machine's measurements can be trusted and what they cost.

- stability: one kernel evaluated `repeats` times in one session; the CV of its medians;
- ncu: harness medians against Nsight Compute's gpu__time_duration for a few kernels;
- overhead: a warm re-evaluation split into timed calls and everything else, on the full suite
  and on the largest workload alone;
- corpora: every honest kernel must pass, every cheat must be rejected with its named class.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from ksearch.errors import KsearchError
from ksearch.harness.evaluate import Evaluator
from ksearch.task import Task, load_task

TWIN_FLOOR = 0.8  # a timing cheat's median over its honest twin's: below this its trick paid off


def header(path: Path, key: str) -> str | None:
    """A `key: value` line of a corpus file's docstring (task:, expect:)."""
    m = re.search(rf"^\s*{key}:\s*(\S+)", path.read_text(), re.MULTILINE)
    return m.group(1) if m else None


def expected_verdict(path: Path) -> str:
    """What the whole harness must say of a corpus file: its `verdict:` (a timing cheat the judge
    times honestly: pass), else its `allowlist:` class where the static allowlist now stops a cheat
    written for a later layer, else its `expect:` class, else pass."""
    return header(path, "verdict") or header(path, "allowlist") or header(path, "expect") or "pass"


def _task_of(path: Path) -> Task:
    """The task a corpus file's `task:` line names."""
    name = header(path, "task")
    if name is None:
        raise KsearchError(f"{path} has no `task:` line in its docstring; add one naming its task")
    return load_task(name)


def largest_workload(task: Task) -> str:
    return max(task.workloads(), key=lambda w: task.bytes(w, task.default_dtype) or 0).name


def _median_of(packet, workload: str) -> float | None:
    if packet.performance is None:
        return None
    return next((t.median_us for t in packet.performance.workloads if t.workload == workload), None)


def stability(ev: Evaluator, path: Path, repeats: int) -> dict:
    task = _task_of(path)
    wl = largest_workload(task)
    medians = [_median_of(ev.evaluate(path, task, workloads=[wl], seeds=(0,)), wl) for _ in range(repeats)]
    got = [m for m in medians if m is not None]
    cv = statistics.stdev(got) / statistics.mean(got) if len(got) > 1 else None
    return {
        "kernel": path.name,
        "workload": wl,
        "medians_us": got,
        "cv_of_medians": cv,
        "failed_runs": repeats - len(got),
    }


def ncu_agreement(device: str, paths: list[Path]) -> list[dict]:
    rows = []
    with Evaluator(device, ncu=True) as ev:
        for path in paths:
            task = _task_of(path)
            wl = largest_workload(task)
            packet = ev.evaluate(path, task, workloads=[wl], seeds=(0,))
            timing = packet.performance.workloads[0] if packet.performance else None
            ncu_us = timing.ncu_median_us if timing else None
            rows.append(
                {
                    "kernel": path.name,
                    "workload": wl,
                    "harness_us": timing.median_us if timing else None,
                    "ncu_us": ncu_us,
                    "status": packet.status.value,
                    "message": packet.message,
                    "notes": [d.message for d in packet.diagnostics if d.severity == "note"],
                    "diff": (timing.median_us / ncu_us - 1) if timing and ncu_us else None,
                }
            )
    return rows


def overhead(ev: Evaluator, path: Path) -> dict:
    task = _task_of(path)
    wl = largest_workload(task)
    result = {}
    plans: list[tuple[str, dict[str, Any]]] = [("full_suite", {})]
    if ev.device != "cpu":  # the interpreter runs a GPU-sized workload for minutes: CPU keeps its subset
        plans.append(("largest_workload", {"workloads": [wl], "seeds": (0,)}))
    for label, kwargs in plans:
        # warm: worker spawned, Triton cache filled, baselines timed, the comparison compiled on a GPU
        first = ev.evaluate(path, task, **kwargs)
        hits, misses = ev.data.hits, ev.data.misses
        packet = ev.evaluate(path, task, **kwargs)
        result[label] = {
            "status": packet.status.value,
            **packet.durations_s,
            "first_evaluation": {
                k: first.durations_s.get(k)
                for k in ("total", "compare", "baselines", "replay", "replay_first")
            },
            # input sets the warm evaluation found cached, and drew again
            "input_sets_cached": ev.data.hits - hits,
            "input_sets_drawn": ev.data.misses - misses,
        }
    return result


def corpora(ev: Evaluator, honest: list[Path], cheats: list[Path], on_row=None) -> list[dict]:
    """Each corpus kernel's verdict against the one its header expects; `on_row` sees each row as
    it is made (a long corpus on a GPU shows progress, and a cut-off run keeps what it got). A
    cheat with a `timing_twin:` line (an honest kernel doing the same work) must also time no
    faster than TWIN_FLOOR of its twin on every workload: its trick only ever bought speed."""
    rows, medians = [], {}
    for path in honest + cheats:
        if ev.device == "cpu" and header(path, "device") == "cuda":
            continue  # its trick needs a GPU
        expected = expected_verdict(path)
        packet = ev.evaluate(path, _task_of(path))
        got = packet.failure_class.value if packet.failure_class else "pass"
        medians[path.name] = (
            {t.workload: t.median_us for t in packet.performance.workloads} if packet.performance else {}
        )
        row = {
            "kernel": path.name,
            "expected": expected,
            "got": got,
            "ok": got == expected,
            "seconds": packet.durations_s.get("total"),
            "message": packet.message[:200],
        }
        twin = header(path, "timing_twin")
        if twin and ev.device != "cpu" and got == "pass":
            ratios = {
                w: m / medians.get(twin, {}).get(w, float("nan")) for w, m in medians[path.name].items()
            }
            row["vs_twin"] = {w: round(r, 3) for w, r in ratios.items()}
            row["ok"] = row["ok"] and bool(ratios) and all(r >= TWIN_FLOOR for r in ratios.values())
        rows.append(row)
        if on_row is not None:
            on_row(rows[-1])
    return rows
