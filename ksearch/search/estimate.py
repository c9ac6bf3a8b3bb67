"""A static performance estimate, for ranking candidates where nothing can be timed (no GPU).

It is a model, never a measurement: attempts scored with it say `score_basis: static-estimate:<target>`
and their packets stay `unmeasured`. Per workload, each kernel's launch is judged from what the
compiler reported and the grid the candidate chose:
  - waves: programs over resident slots (SMs x programs per SM from the audit's occupancy); a wave
    that leaves SMs idle runs at their share of the machine;
  - latency hiding, for memory-bound launches: resident warps per busy SM against the warps Little's
    law asks for (the bytes HBM must have in flight over one latency, over the bytes a warp keeps in
    flight, which grow with the registers a lane holds);
  - MMA steps, for compute-bound launches: the work as steps of the kernel's largest tt.dot (from its
    Triton IR), each as long as the longest of its MMA time, the L2 time of its operand tiles and the
    load latency its pipeline stages hide, programs resident on one SM sharing it, wave after wave
    (small tiles make a GEMM bound by operand traffic, 2 stages or a thin K step by latency);
    without IR, operand re-reads: a program computing a tile of `a` outputs reads about
    flops x itemsize / sqrt(a) bytes in all, served by L2;
  - passes, for memory-bound launches: a kernel that loads one pointer argument in k places (a
    two-pass norm reads its row for the statistics, then again to scale it) reads that argument's
    tensor k - 1 more times (the largest input's size where the capture recorded none), served by
    L2; and a program that loads its share one tile at a time waits a DRAM latency per round
    (DRAM_LATENCY_US), which no other work of its own hides;
  - spills cost SPILL_FACTOR; every launch costs LAUNCH_US.
estimated time = max(max(roofline floor / efficiency, MMA-step time) + pass time, rounds time)
+ launches x LAUNCH_US, and the score is the geometric mean over workloads of floor / estimate, in (0, 1] like a SOL fraction.
How well it ranks measured kernels: `ksearch bench static-model RUN_DIR...` (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
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
    loads = [ir_loads(k) for k in result.kernels]  # read once: the IR is the same for every workload
    for wl in task.workloads():
        roof = task_roofline(task, wl, dtype, profile=profile)
        launches = [
            (k, grid, ir)
            for k, ir in zip(result.kernels, loads)
            if (grid := k.specialization.get("grids", {}).get(wl.name))
        ]
        if not launches or not roof.sol_us:
            continue
        memory = roof.bound == "memory"
        # a memory-bound op's bytes are moved by the launch that loads the most per round (split-K's
        # main kernel, not the reduction summing its small workspace); without IR, by every launch
        main = max(launches, key=lambda launch: math.prod(launch[1]) * launch[2].tile)
        judged = [main] if memory and main[2].tile else launches
        eff = min(_efficiency(k, grid, profile, memory) for k, grid, _ in judged)
        estimate = roof.sol_us / max(eff, 1e-6)
        if roof.bound == "compute" and roof.flops:
            itemsize = max(DTYPE_ITEMSIZE.get(i.dtype, 4) for i in task.input_specs(wl, dtype))
            steps = [
                _mma_steps_us(roof, k, grid, ir.dot, itemsize, profile) for k, grid, ir in launches if ir.dot
            ]
            if steps:
                estimate = max(estimate, *steps)
            else:  # no IR to read the MMA tile from: the tile of the launch with the most programs
                most = max(math.prod(grid) for _, grid, _ in launches)
                estimate = max(estimate, _reread_us(task, wl, dtype, roof, most, profile))
        if memory:
            largest = max(task.input_specs(wl, dtype), key=lambda i: i.nbytes)
            estimate = math.hypot(
                estimate + _passes_us(wl.name, largest.nbytes, judged, profile),
                _rounds_us(wl.name, largest, judged, profile),
            )
        estimates[wl.name] = (roof.sol_us, estimate + LAUNCH_US * len(launches))
    return estimates


_SSA = re.compile(r"%[\w.$#-]+")
_DOT = re.compile(r"tt\.dot .*: tensor<(\d+)x(\d+)x\w+> \* tensor<(\d+)x(\d+)x\w+>")


@dataclass(frozen=True)
class IrLoads:
    """What a kernel's Triton IR says about its global loads."""

    extra_passes: int  # loads through its busiest pointer argument, beyond the first
    tile: int  # elements of its largest load (one program, one round)
    dot: tuple[int, int, int] | None = None  # (M, N, K) of its largest tt.dot: one MMA step's tile
    streamed: bool = False  # its busiest pointer is loaded evict_first: passes again come from HBM
    busiest: str = ""  # the name of that pointer argument, as the IR gives it ("" when unnamed)


def ir_loads(kernel) -> IrLoads:
    """Each `tt.load` traced back through the values its pointer is computed from to the function's
    arguments (loop-carried ones included; masks, which derive from sizes, are not followed), and
    its tile's element count. Nothing known (0, 0) without IR."""
    path = kernel.artifacts.get("ttir")
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace") if path else ""
    except OSError:
        text = ""
    args: set[str] = set()
    uses: dict[str, set[str]] = {}
    loads: list[str] = []
    tile = 0
    dot: tuple[int, int, int] | None = None
    evict_first: set[str] = set()
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
        mma = _DOT.search(rhs)
        if mma:
            m, k, _, n = (int(d) for d in mma.groups())
            dot = max(dot or (0, 0, 0), (m, n, k), key=math.prod)
        load = re.search(r"tt\.load (%[\w.$#-]+).*: tensor<([\dx]+)x!tt\.ptr", rhs)
        if load:
            loads.append(load.group(1))
            if "evict_first" in rhs:
                evict_first.add(load.group(1))
            tile = max(tile, math.prod(int(d) for d in load.group(2).split("x")))
    counts: dict[str, int] = {}
    streamed: set[str] = set()  # the arguments some evict_first load reads
    for pointer in loads:
        roots, todo, seen = set(), [pointer], set()
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
            if pointer in evict_first:
                streamed.add(r)
    busiest = max(counts, key=counts.__getitem__, default=None)
    name = busiest[1:] if busiest and not re.fullmatch(r"%arg\d+", busiest) else ""
    return IrLoads(max(counts.values(), default=1) - 1, tile, dot, busiest in streamed, name)


def _pass_bytes(kernel, ir: IrLoads, workload: str, largest_bytes: int) -> int:
    """The bytes one more pass through the kernel's busiest pointer reads: its tensor's, where the launch
    capture recorded them (split-K's fixup re-reads its small workspace, not the weight), else the largest
    input's (a two-pass norm re-reads its rows)."""
    return kernel.specialization.get("arg_bytes", {}).get(workload, {}).get(ir.busiest, largest_bytes)


def _passes_us(workload: str, largest_bytes: int, launches: list, profile: TargetProfile) -> float:
    """Extra passes through the busiest pointer, served by L2 (by HBM where the loads evict it first)."""
    seconds = sum(
        ir.extra_passes
        * _pass_bytes(kernel, ir, workload, largest_bytes)
        / ((1 if ir.streamed else L2_OVER_HBM) * profile.memory.bandwidth_tbs * 1e12)
        for kernel, _, ir in launches
    )
    return seconds * 1e6


def _rounds_us(workload: str, largest, launches: list, profile: TargetProfile) -> float:
    """The serial floor: a program loads its share of the largest input one tile at a time, and
    each round waits one DRAM latency (a persistent norm walking 16 rows, a two-pass norm in
    256-wide chunks); resident programs run theirs side by side, wave after wave."""
    itemsize = DTYPE_ITEMSIZE.get(largest.dtype, 4)
    floor = 0.0
    for kernel, grid, ir in launches:
        if not ir.tile:
            continue
        programs = math.prod(grid)
        loaded = largest.nbytes + ir.extra_passes * _pass_bytes(kernel, ir, workload, largest.nbytes)
        rounds = math.ceil(loaded / programs / (ir.tile * itemsize))
        waves = math.ceil(programs / (profile.sm_count * _per_sm(kernel, profile)))
        floor = max(floor, waves * rounds * DRAM_LATENCY_US)
    return floor


def _mma_steps_us(
    roof, kernel, grid: list[int], dot: tuple[int, int, int], itemsize: int, profile: TargetProfile
) -> float:
    """A contraction as MMA steps: the work is flops / (2 m n k) steps of the kernel's largest tt.dot,
    shared by its programs (a persistent grid loops over several tiles, split-K shortens each one),
    programs running wave after wave, the programs resident on one SM sharing its tensor cores and
    its share of L2 bandwidth. One step takes the longest of its MMA time, the L2 time of its two
    operand tiles, and the load latency its software pipeline hides (DRAM_LATENCY_US over the
    num_stages - 1 loads in flight); a 2-stage or a thin-K pipeline waits on its loads."""
    m, n, k = dot
    programs = math.prod(grid)
    sms = profile.sm_count
    per_sm = min(_per_sm(kernel, profile), math.ceil(programs / sms))
    waves = math.ceil(programs / (sms * per_sm))
    steps = math.ceil(roof.flops / (2 * m * n * k) / programs)
    peak_per_sm = roof.flops / (roof.sol_us * 1e-6) / sms
    mma = 2 * m * n * k * per_sm / peak_per_sm
    operands = (m + n) * k * itemsize * per_sm / (L2_OVER_HBM * profile.memory.bandwidth_tbs * 1e12 / sms)
    latency = DRAM_LATENCY_US * 1e-6 / max(1, (kernel.num_stages or 1) - 1)
    return waves * steps * max(mma, operands, latency) * 1e6


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


def _warps(kernel, profile: TargetProfile) -> int:
    return kernel.num_warps or max(1, (kernel.threads_per_block or profile.warp_size) // profile.warp_size)


def _per_sm(kernel, profile: TargetProfile) -> int:
    """Programs of this kernel resident on one SM at once (from the audit's occupancy)."""
    occ = occupancy(kernel, profile) or 0.0
    return max(1, int(occ * profile.residency.max_warps_per_sm) // _warps(kernel, profile))


def _efficiency(kernel, grid: list[int], profile: TargetProfile, memory_bound: bool) -> float:
    """The fraction of the roofline rate a launch reaches: wave by wave, the share of SMs that have
    work, and for a memory-bound launch how well its resident warps hide HBM latency."""
    programs = math.prod(grid)
    warps = _warps(kernel, profile)
    sms, slots = profile.sm_count, profile.sm_count * _per_sm(kernel, profile)
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
