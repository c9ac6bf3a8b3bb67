"""The program Nsight Compute profiles for `ksearch eval --ncu`: a verified candidate's calls on one
workload, with profiling switched on only around the measured calls.

Run as `python -m ksearch.harness.ncu_probe JOB_JSON` under `ncu --profile-from-start off` (see
timing.ncu_duration_us). It imports the candidate under the same guard as the sandbox worker, in a
temporary directory that is its only writable place; the inputs are the benchmark's rotating sets.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

WARMUP = 3


def main() -> None:
    job = json.loads(sys.argv[1])
    import torch

    from ksearch.compile.capture import candidate_module
    from ksearch.harness.guard import install_guard
    from ksearch.harness.worker import candidate_entry
    from ksearch.task import load_task

    task = load_task(job["task"])
    wl = task.workload(job["workload"])
    # the benchmark's rotating input sets, drawn from the same seeds
    sets = [list(task.make_inputs(wl, "normal", seed, dtype=job["dtype"], device="cuda").values())
            for seed in job["seeds"]]
    outs = [list(task.allocate_outputs(wl, dtype=job["dtype"], device="cuda").values()) for _ in sets]
    path = job["candidate"]
    with tempfile.TemporaryDirectory(prefix="ksearch-ncu-") as tmp:
        violations: list[str] = []
        install_guard(path, tmp, violations)
        source = Path(path).read_text()
        with candidate_module(source, Path(path)) as module:
            entry = candidate_entry(module, source, job["entry"], job["task"])
            for i in range(WARMUP):
                entry(*sets[i % len(sets)], *outs[i % len(sets)])
            torch.cuda.synchronize()
            torch.cuda.profiler.start()
            for i in range(job["calls"]):
                entry(*sets[i % len(sets)], *outs[i % len(sets)])
            torch.cuda.synchronize()
            torch.cuda.profiler.stop()


if __name__ == "__main__":
    main()
