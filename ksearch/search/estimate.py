"""A static performance estimate, for ranking candidates where nothing can be timed (no GPU).

It is a model, never a measurement: attempts scored with it say `score_basis: static-estimate:<target>`
and their packets stay `unmeasured`. Per workload, each kernel's launch is judged from what the
compiler reported and the grid the candidate chose:
  - waves: programs over resident slots (SMs x programs per SM from the audit's occupancy); a last
    partial wave wastes its share of the machine;
  - latency hiding: resident warps per SM over LATENCY_WARPS (a memory-bound kernel needs many
    loads in flight to reach HBM bandwidth);
  - spills cost SPILL_FACTOR; every launch costs LAUNCH_US.
estimated time = roofline floor / (waves efficiency x latency hiding) + launches x LAUNCH_US, and the
score is the geometric mean over workloads of floor / estimate, in (0, 1] like a SOL fraction.
"""

from __future__ import annotations

import math

from ksearch.audit import occupancy
from ksearch.compile.result import CompileResult
from ksearch.harness.sol import geomean, task_roofline
from ksearch.target.profile import TargetProfile
from ksearch.task import Task

LATENCY_WARPS = 16  # resident warps per SM at which a streaming kernel is assumed to reach peak bandwidth
LAUNCH_US = 2.0
SPILL_FACTOR = 0.7


def static_score(task: Task, dtype: str, result: CompileResult, profile: TargetProfile) -> float | None:
    """The modelled SOL fraction of a compiled candidate on `profile`; None when nothing can be judged."""
    fractions = [floor / est for floor, est in static_estimates(task, dtype, result, profile).values()]
    return geomean(fractions) if fractions else None


def static_estimates(
    task: Task, dtype: str, result: CompileResult, profile: TargetProfile
) -> dict[str, tuple[float, float]]:
    """Per workload the candidate launched on: (roofline floor, estimated time), in microseconds."""
    if not result.ok or not result.kernels:
        return {}
    estimates = {}
    for wl in task.workloads():
        floor = task_roofline(task, wl, dtype, profile=profile).sol_us
        launches = [(k, k.specialization.get("grids", {}).get(wl.name)) for k in result.kernels]
        launches = [(k, g) for k, g in launches if g]
        if not launches or not floor:
            continue
        eff = min(_efficiency(k, grid, profile) for k, grid in launches)
        estimates[wl.name] = (floor, floor / max(eff, 1e-6) + LAUNCH_US * len(launches))
    return estimates


def _efficiency(kernel, grid: list[int], profile: TargetProfile) -> float:
    programs = math.prod(grid)
    warps = kernel.num_warps or max(1, (kernel.threads_per_block or profile.warp_size) // profile.warp_size)
    occ = occupancy(kernel, profile) or 0.0
    per_sm = max(1, int(occ * profile.residency.max_warps_per_sm) // warps)
    slots = profile.sm_count * per_sm
    waves = math.ceil(programs / slots)
    wave_eff = programs / (waves * slots)
    resident_warps = min(programs, slots) * warps / profile.sm_count
    hiding = min(1.0, resident_warps / LATENCY_WARPS)
    spill = SPILL_FACTOR if (kernel.spill_stores or 0) > 0 else 1.0
    return wave_eff * hiding * spill
