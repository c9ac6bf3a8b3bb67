"""A static performance estimate, for ranking candidates where nothing can be timed (no GPU).

It is a model, never a measurement: attempts scored with it say `score_basis: static-estimate:<target>`
and their packets stay `unmeasured`. Per workload, each kernel's launch is judged from what the
compiler reported and the grid the candidate chose:
  - waves: programs over resident slots (SMs x programs per SM from the audit's occupancy); a wave
    that leaves SMs idle runs at their share of the machine;
  - latency hiding, for memory-bound launches: resident warps per busy SM against the warps Little's
    law asks for (the bytes HBM must have in flight over one latency, over the bytes a warp keeps in
    flight, which grow with the registers a lane holds);
  - operand re-reads, for compute-bound launches: a program computing a tile of `a` outputs reads
    about flops x itemsize / sqrt(a) bytes in all, served by L2 (small tiles make a GEMM bound by
    them);
  - passes, for memory-bound launches: a kernel that loads one pointer argument in k places (a
    two-pass norm reads its row for the statistics, then again to scale it) reads the largest input
    k - 1 more times, served by L2;
  - spills cost SPILL_FACTOR; every launch costs LAUNCH_US.
estimated time = max(roofline floor / efficiency, re-read time) + pass time + launches x LAUNCH_US, and the
score is the geometric mean over workloads of floor / estimate, in (0, 1] like a SOL fraction.
How well it ranks measured kernels: `ksearch bench static-model RUN_DIR...` (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ksearch.audit import occupancy
from ksearch.compile.result import CompileResult
from ksearch.harness.sol import geomean, task_roofline
from ksearch.target.profile import TargetProfile
from ksearch.task import Task
from ksearch.task.spec import DTYPE_ITEMSIZE

LAUNCH_US = 2.0
SPILL_FACTOR = 0.7
DRAM_LATENCY_US = 1.0  # a load's round trip to HBM under load (unloaded: 0.5-0.8 us in microbenchmarks)
BYTES_PER_LANE = 16  # one 128-bit load in flight per lane, at least
REGISTER_BYTES_IN_FLIGHT = 2  # bytes in flight per register a lane holds (half of its 4 bytes)
L2_OVER_HBM = 2.3  # L2 serves operand re-reads at this multiple of HBM bandwidth (fitted: H100 GEMM timings)


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
        roof = task_roofline(task, wl, dtype, profile=profile)
        launches = [(k, k.specialization.get("grids", {}).get(wl.name)) for k in result.kernels]
        launches = [(k, g) for k, g in launches if g]
        if not launches or not roof.sol_us:
            continue
        eff = min(_efficiency(k, grid, profile, roof.bound == "memory") for k, grid in launches)
        most = max(math.prod(grid) for _, grid in launches)  # the most programs: the smallest tiles
        estimate = max(roof.sol_us / max(eff, 1e-6), _reread_us(task, wl, dtype, roof, most, profile))
        if roof.bound == "memory":
            largest = max(i.nbytes for i in task.input_specs(wl, dtype))
            again = sum(extra_passes(k) for k, _ in launches) * largest
            estimate += again / (L2_OVER_HBM * profile.memory.bandwidth_tbs * 1e12) * 1e6
        estimates[wl.name] = (roof.sol_us, estimate + LAUNCH_US * len(launches))
    return estimates


_SSA = re.compile(r"%[\w.$#-]+")


def extra_passes(kernel) -> int:
    """How many more times than once the kernel loads through its busiest pointer argument, counted
    on its Triton IR (each `tt.load` traced back through the values it is computed from to the
    function's arguments); 0 without IR."""
    path = kernel.artifacts.get("ttir")
    if not path:
        return 0
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0
    args: set[str] = set()
    uses: dict[str, set[str]] = {}
    loads: list[set[str]] = []
    for line in text.splitlines():
        if "tt.func" in line:
            args |= set(re.findall(r"(%[\w.$#-]+): !tt\.ptr", line))
            continue
        lhs, eq, rhs = line.split(" loc(", 1)[0].partition(" = ")
        if not eq:
            continue
        operands = set(_SSA.findall(rhs.split(" : ", 1)[0]))
        for name in _SSA.findall(lhs):
            uses[name] = operands
        for name, init in re.findall(r"(%[\w.$#-]+) = (%[\w.$#-]+)", rhs):  # loop-carried iter_args
            uses[name] = {init}
        load = re.search(r"tt\.load (%[\w.$#-]+)", rhs)
        if load:
            loads.append({load.group(1)})  # the pointer, not the mask (masks derive from sizes too)
    counts: dict[str, int] = {}
    for operands in loads:
        roots, todo, seen = set(), list(operands), set()
        while todo:
            v = todo.pop()
            if v in seen:
                continue
            seen.add(v)
            if v in args:
                roots.add(v)
            todo.extend(uses.get(v, ()))
        for r in roots:
            counts[r] = counts.get(r, 0) + 1
    return max(counts.values(), default=1) - 1


def _reread_us(task: Task, wl, dtype: str, roof, programs: int, profile: TargetProfile) -> float:
    """The operand traffic of a contraction, served by L2: a program computing `a` outputs over a
    reduction of depth K reads about 2 sqrt(a) K operand elements (two edges of a square tile), so all
    programs read flops x itemsize / sqrt(a) bytes. Small tiles make a compute-bound op bandwidth-bound."""
    if roof.bound != "compute" or not roof.flops or programs < 1:
        return 0.0
    outputs = sum(math.prod(o.shape) for o in task.output_specs(wl, dtype))
    per_program = outputs / programs
    if per_program < 1:
        return 0.0
    itemsize = max(DTYPE_ITEMSIZE.get(i.dtype, 4) for i in task.input_specs(wl, dtype))
    nbytes = roof.flops * itemsize / math.sqrt(per_program)
    return nbytes / (L2_OVER_HBM * profile.memory.bandwidth_tbs * 1e12) * 1e6


def _latency_warps(profile: TargetProfile, kernel) -> float:
    """Resident warps per SM that keep HBM busy (Little's law): the bytes in flight the bandwidth
    needs over one latency, per SM, over what one warp keeps in flight. A lane keeps at least one
    128-bit load in flight, and a kernel that loads a whole tile at once as many as half its
    registers hold (loads land in registers)."""
    need = profile.memory.bandwidth_tbs * 1e12 * DRAM_LATENCY_US * 1e-6 / profile.sm_count
    per_lane = max(BYTES_PER_LANE, REGISTER_BYTES_IN_FLIGHT * (kernel.registers or 0))
    return need / (profile.warp_size * per_lane)


def _efficiency(kernel, grid: list[int], profile: TargetProfile, memory_bound: bool) -> float:
    """The fraction of the roofline rate a launch reaches: wave by wave, the share of SMs that have
    work, and for a memory-bound launch how well its resident warps hide HBM latency."""
    programs = math.prod(grid)
    warps = kernel.num_warps or max(1, (kernel.threads_per_block or profile.warp_size) // profile.warp_size)
    occ = occupancy(kernel, profile) or 0.0
    per_sm = max(1, int(occ * profile.residency.max_warps_per_sm) // warps)
    sms, slots = profile.sm_count, profile.sm_count * per_sm
    full, last = divmod(programs, slots)

    def wave_time(size: int) -> float:
        """One wave of `size` programs, in units of the roofline time of all of them."""
        busy = min(sms, size)
        hiding = 1.0
        if memory_bound:
            hiding = min(1.0, math.ceil(size / sms) * warps / _latency_warps(profile, kernel))
        return (size / programs) / (busy / sms * hiding)

    time = full * wave_time(slots) + (wave_time(last) if last else 0.0)
    spill = SPILL_FACTOR if (kernel.spill_stores or 0) > 0 else 1.0
    return spill / time
