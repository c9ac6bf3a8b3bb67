"""Hand-picked template settings evaluated on this GPU (device runs only, not part of the package).
usage: python sweep.py TASK DTYPE WORKLOADS OUTDIR 'template:{"knob": v}' ..."""
import json, sys, time
from pathlib import Path
from ksearch.harness.evaluate import Evaluator
from ksearch.propose.adapt import TaskTemplates
from ksearch.target import load_target
from ksearch.task import load_task

task_name, dtype, workloads, out = sys.argv[1], sys.argv[2], sys.argv[3].split(","), Path(sys.argv[4])
out.mkdir(parents=True, exist_ok=True)
task = load_task(task_name)
tt = TaskTemplates(task, load_target("h100").triton.backend)
by_id = {t.id.split("/")[-1]: t for t in tt.templates}
rows = []
import os
with Evaluator(os.environ.get("DEVICE", "cuda"), timeout_s=300, bench_budget_s=1.0) as ev:
    for i, spec in enumerate(sys.argv[5:]):
        name, _, knobs = spec.partition(":")
        t = by_id[name]
        k = {**t.default_knobs(), **json.loads(knobs or "{}")}
        src = out / f"{i:02d}_{name}.py"
        src.write_text(tt.render(t, k))
        t0 = time.time()
        p = ev.evaluate(src, task, target="h100", dtype=dtype, seeds=(0,), workloads=workloads)
        (out / f"{i:02d}_{name}.packet.json").write_text(p.model_dump_json(indent=1))
        perf = p.performance
        for w in (perf.workloads if perf else []):
            rows.append((i, name, knobs, w.workload, w.median_us, w.baseline_median_us, w.speedup, w.cv))
        if not perf:
            rows.append((i, name, knobs, "-", None, None, None, f"{p.status} {p.failure_class} {p.message[:80]}"))
        print(rows[-1], f"{time.time()-t0:.1f}s", flush=True)
print("\n| # | template | knobs | workload | us | baseline us | speedup | cv |")
for r in rows:
    print("| " + " | ".join("-" if x is None else (f"{x:.2f}" if isinstance(x, float) else str(x)) for x in r) + " |")
