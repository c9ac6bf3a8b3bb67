"""Why the harness and `PKG.bench` disagree on torch.compile at small shapes (issue 19; device runs only).

For each workload: torch.compile of the reference built the harness's way (`build_baselines`) and the
bench's way (`torch.compile(reference)`), each timed the harness's way (`time_gpu`, spin lead, rotating
sets) and the bench's way (event pairs after a 512 MB flush), idle and with every core but two busy;
then the median the Evaluator itself records, at its first evaluation (spare workers still starting)
and again once they are warm; last, with a busy Python thread in the timing process. usage: python tc_check.py [rmsnorm:WORKLOAD softmax:WORKLOAD ...]
"""

import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from ksearch.harness.baselines import _fresh_function, build_baselines
from ksearch.harness.evaluate import TIMED_SEEDS, Evaluator
from ksearch.harness.timing import time_gpu
from ksearch.propose.adapt import TaskTemplates
from ksearch.registry.pkg_bench import FLUSH_BYTES, event_times_us, time_us
from ksearch.target import load_target
from ksearch.task import load_task

CASES = sys.argv[1:] or [
    "rmsnorm:deepseek_v3_decode_m64_n7168",
    "softmax:scores_m17_n1000",
]
DTYPE, BUDGET = "float16", 0.3


def spin_forever() -> None:
    while True:
        pass


def standalone(label: str) -> None:
    flush = torch.empty(FLUSH_BYTES, dtype=torch.int8, device="cuda")
    floor = statistics.median(event_times_us(lambda: None, flush))
    for case in CASES:
        tname, wname = case.split(":")
        task = load_task(tname)
        wl = task.workload(wname)
        params = task.params_for(wl)
        sets = [task.make_inputs(wl, "normal", s, dtype=DTYPE, device="cuda") for s in TIMED_SEEDS]
        n = len(sets)
        torch.compiler.reset()
        harness_built = build_baselines(task, wl, sets)["torch_compile"].compute
        bench_built = torch.compile(_fresh_function(task.reference, "bench"), dynamic=False)

        def by_bench(i, fn=bench_built, sets=sets, names=task.input_names, params=params):
            return fn(*[sets[i % len(sets)][k] for k in names], **params)

        row = []
        for built, fn in (("harness-built", harness_built), ("bench-built", by_bench)):
            t = time_gpu(fn, n, device="cuda", budget_s=BUDGET, rel_ci=0.01)
            b = time_us(lambda fn=fn: fn(0), [], {}, flush, floor)
            floors = sorted(t.event_floor_samples_us or [0.0])
            deciles = " ".join(f"{floors[len(floors) * q // 10]:.2f}" for q in range(0, 10, 2))
            row.append(
                f"{built}: time_gpu {t.median_us:.2f} us (host {t.host_us:.1f}, lead {t.lead_us:.1f}, "
                f"floor {t.event_floor_us:.2f}, its 0/20/40/60/80% {deciles}, n {t.n}) | bench-timed {b:.2f} us"
            )
        print(f"[{label}] {case}\n  " + "\n  ".join(row), flush=True)


def in_evaluator() -> None:
    """The baselines the Evaluator records: at its first evaluation, then recomputed once warm."""
    for case in CASES:
        tname, wname = case.split(":")
        task = load_task(tname)
        tt = TaskTemplates(task, load_target("h100").triton.backend)
        t = tt.templates[0]
        with (
            tempfile.TemporaryDirectory() as d,
            Evaluator("cuda", timeout_s=300, bench_budget_s=BUDGET) as ev,
        ):
            src = Path(d) / "k.py"
            src.write_text(tt.render(t, t.default_knobs()))
            for when in ("first evaluation", "warm, recomputed", "warm, recomputed again"):
                ev._baselines.clear()
                time.sleep(0 if when.startswith("first") else 3)
                p = ev.evaluate(src, task, target="h100", dtype=DTYPE, seeds=(0,), workloads=[wname])
                w = p.performance.workloads[0] if p.performance else None
                print(
                    f"[evaluator] {case} {when}: kernel {w.median_us if w else None} us, baselines "
                    f"{w.baselines_us if w else p.message[:200]}",
                    flush=True,
                )


if __name__ == "__main__":
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    standalone("idle")
    busy = [mp.Process(target=spin_forever, daemon=True) for _ in range(max((os.cpu_count() or 4) - 2, 1))]
    for p in busy:
        p.start()
    standalone(f"{len(busy)} cores busy")
    for p in busy:
        p.terminate()
    # a Python thread of this process wanting the GIL, as the run's compile thread does while the
    # evaluator times its baselines
    stop = threading.Event()
    thread = threading.Thread(target=lambda: [sum(range(1000)) for _ in iter(stop.is_set, True)], daemon=True)
    thread.start()
    standalone("a busy thread in-process")
    default = sys.getswitchinterval()
    sys.setswitchinterval(0.05)  # the thread may take the GIL only every 50 ms, not every 5 ms
    standalone("a busy thread, GIL switch interval 50 ms")
    sys.setswitchinterval(default)
    stop.set()
    in_evaluator()
