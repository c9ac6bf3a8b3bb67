"""The program Nsight Compute profiles for `ksearch eval --ncu`: the judge's replay of one verified
workload's launch trace, with profiling switched on only around the measured calls.

Run as `python -m ksearch.harness.ncu_probe JOB_JSON` under `ncu --profile-from-start off` (see
profilers.ncu_duration_us). Like the judge, it never imports the candidate: it builds the kernels alone
from the source (`judge.Replayer`) and replays the trace on the benchmark's rotating input sets, so
ncu times exactly the launches the harness timed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

WARMUP = 3


def main() -> None:
    job = json.loads(sys.argv[1])
    import torch

    from ksearch.harness.judge import Replayer
    from ksearch.harness.trace import Trace
    from ksearch.task import load_task

    task = load_task(job["task"])
    wl = task.workload(job["workload"])
    # the benchmark's rotating input sets, drawn from the same seeds
    sets = [
        list(task.make_inputs(wl, "normal", seed, dtype=job["dtype"], device="cuda").values())
        + list(task.allocate_outputs(wl, dtype=job["dtype"], device="cuda").values())
        for seed in job["seeds"]
    ]
    replayer = Replayer(Path(job["candidate"]).read_text(), job["candidate"], "cuda")
    trace = Trace.model_validate(job["trace"])
    # the autotune configs the judge chose and timed, by step index
    replayer.choices.update({(wl.name, int(step)): alt for step, alt in job.get("choices", {}).items()})
    plans = [replayer.plan(trace, tensors, wl.name) for tensors in sets]
    for i in range(WARMUP):
        replayer.run(plans[i % len(plans)])
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    for i in range(job["calls"]):
        replayer.run(plans[i % len(plans)], poison_scratch=False)
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()


if __name__ == "__main__":
    main()
