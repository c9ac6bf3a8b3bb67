"""The static estimate's behaviours, on kernels described as the compiler would report them."""

from ksearch.compile.result import CompileResult, KernelInfo
from ksearch.search.estimate import static_estimates
from ksearch.target import load_target
from ksearch.task import load_task

H100 = load_target("h100")


def _kernel(workload: str, grid: int, warps: int, registers: int = 64, smem: int = 0) -> CompileResult:
    k = KernelInfo(
        name="k",
        num_warps=warps,
        registers=registers,
        smem_bytes=smem,
        spill_stores=0,
        specialization={"grids": {workload: [grid, 1, 1]}},
    )
    return CompileResult(ok=True, language="triton", target="h100", arch="sm_90a", kernels=[k])


def test_small_gemm_tiles_cost_operand_re_reads():
    task, wl = load_task("matmul"), "square_m4096_n4096_k4096"
    big = static_estimates(task, "float16", _kernel(wl, 512, 8, smem=147456), H100)[wl]  # 128 x 256 tiles
    small = static_estimates(task, "float16", _kernel(wl, 8192, 4, smem=18432), H100)[wl]  # 64 x 32 tiles
    assert big[0] == small[0]  # the same roofline floor
    assert small[1] > 3 * big[1]  # 4x the operand traffic: measured 785 against 188 us on an H100


def test_a_memory_bound_launch_needs_enough_warps_in_flight():
    task, wl = load_task("rmsnorm"), "llama3_8b_prefill_m4096_n4096"
    rows = static_estimates(task, "float16", _kernel(wl, 4096, 8, registers=32), H100)[wl]
    one_per_sm = static_estimates(task, "float16", _kernel(wl, 132, 8, registers=32), H100)[wl]
    assert rows[1] < 1.3 * rows[0]  # many resident warps: near the floor
    assert one_per_sm[1] > 1.4 * rows[1]  # 8 warps an SM cannot keep HBM busy


def test_a_lone_program_runs_at_one_sms_share_not_less():
    task, wl = load_task("matmul"), "ragged_m96_n80_k72"
    floor, one = static_estimates(task, "float16", _kernel(wl, 1, 4), H100)[wl]
    assert floor < 0.1 and 2 < one < 10  # launch-bound: 4-10 us measured on an H100, not milliseconds
