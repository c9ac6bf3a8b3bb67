"""RMSNorm and fused residual-add + RMSNorm: row mappings for a memory-bound row reduction.

Every template here implements both tasks: `rmsnorm` (run(x, weight, out)) and `fused_add_rmsnorm`
(run(x, residual, weight, out, residual_out)), where the residual sum is stored in the output dtype
and the rounded sum is what gets normalized, as the unfused add-then-norm would. Accumulation is
always fp32.
"""

from __future__ import annotations

from ksearch.propose.templates.base import (
    EVICT_HINTS,
    NUM_SMS_HELPER,
    Template,
    module,
    rows_expr,
    task_param,
    warps_expr,
)

TASKS = ("rmsnorm", "fused_add_rmsnorm")


class _Io:
    """The task-dependent parts of a norm kernel: parameters, pointers, the launch arguments."""

    def __init__(self, task_name: str):
        self.fused = task_name == "fused_add_rmsnorm"
        self.eps = task_param(task_name, "eps", 1e-6)

    @property
    def kernel_params(self) -> str:
        if self.fused:
            return (
                "x_ptr, r_ptr, w_ptr, out_ptr, rout_ptr, M, N, stride_x, stride_r, stride_o, stride_ro, eps"
            )
        return "x_ptr, w_ptr, out_ptr, M, N, stride_x, stride_o, eps"

    @property
    def run_def(self) -> str:
        if self.fused:
            return (
                "def run(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, out: torch.Tensor, "
                "residual_out: torch.Tensor) -> None:\n"
            )
        return "def run(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:\n"

    @property
    def launch_args(self) -> str:
        if self.fused:
            return (
                "x, residual, weight, out, residual_out, M, N, x.stride(0), residual.stride(0), out.stride(0), "
                f"residual_out.stride(0), {self.eps!r}"
            )
        return f"x, weight, out, M, N, x.stride(0), out.stride(0), {self.eps!r}"

    def load_row(
        self, ind: str, row: str, cols: str, mask: str, hint: str, store_residual: bool = True
    ) -> str:
        """Lines binding `x` (fp32) to the row values to normalize: x, or the stored x + residual."""
        if not self.fused:
            return f"{ind}x = tl.load(x_ptr + {row} * stride_x + {cols}, mask={mask}, other=0.0{hint}).to(tl.float32)\n"
        lines = (
            f"{ind}xa = tl.load(x_ptr + {row} * stride_x + {cols}, mask={mask}, other=0.0{hint}).to(tl.float32)\n"
            f"{ind}xr = tl.load(r_ptr + {row} * stride_r + {cols}, mask={mask}, other=0.0{hint}).to(tl.float32)\n"
            f"{ind}h = (xa + xr).to(rout_ptr.dtype.element_ty)\n"
        )
        if store_residual:
            lines += f"{ind}tl.store(rout_ptr + {row} * stride_ro + {cols}, h, mask={mask})\n"
        return lines + f"{ind}x = h.to(tl.float32)\n"

    def reload_row(self, ind: str, row: str, cols: str, mask: str, hint: str) -> str:
        """Second-pass reload: x again, or the residual_out this program stored in its first pass."""
        if not self.fused:
            return f"{ind}x = tl.load(x_ptr + {row} * stride_x + {cols}, mask={mask}, other=0.0{hint}).to(tl.float32)\n"
        return f"{ind}x = tl.load(rout_ptr + {row} * stride_ro + {cols}, mask={mask}, other=0.0).to(tl.float32)\n"


# ---- one row per program, whole row in one block -------------------------------------------------


def _whole_row_kernel(io: _Io, name: str, stream: str = "", keep: str = "") -> str:
    """One row per program, all of it in one BLOCK_N block: the row-block and fixed-block templates
    differ only in how `run` picks BLOCK_N."""
    return (
        "@triton.jit\n"
        f"def {name}({io.kernel_params}, BLOCK_N: tl.constexpr):\n"
        "    row = tl.program_id(0).to(tl.int64)\n"
        "    cols = tl.arange(0, BLOCK_N)\n"
        "    mask = cols < N\n"
        + io.load_row("    ", "row", "cols", "mask", stream)
        + "    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / N + eps)\n"
        f"    w = tl.load(w_ptr + cols, mask=mask, other=0.0{keep}).to(tl.float32)\n"
        "    tl.store(out_ptr + row * stride_o + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)\n"
    )


def _gen_row_block(task_name: str, k: dict) -> str:
    io = _Io(task_name)
    kernel = _whole_row_kernel(io, "rmsnorm_row_kernel", *EVICT_HINTS[k["EVICT"]])
    run = (
        "    M, N = x.shape\n"
        "    BLOCK_N = triton.next_power_of_2(N)\n"
        f"    rmsnorm_row_kernel[(M,)]({io.launch_args},\n"
        f"                             BLOCK_N=BLOCK_N, num_warps={warps_expr(k['num_warps'], 'BLOCK_N')})\n"
    )
    return module(ROW_BLOCK, task_name, kernel, io.run_def + run)


ROW_BLOCK = Template(
    id="rmsnorm/row_block",
    tasks=TASKS,
    decision="row mapping",
    title="one row per program, whole row in registers",
    description=(
        "Grid of M programs; each loads its whole row in one power-of-two block (masked tail), "
        "reduces the sum of squares in fp32, scales by rsqrt and the weight, and stores. One read "
        "and one write of the row: the traffic minimum."
    ),
    rationale=(
        "Memory-bound op: a single pass over each row is the byte minimum, and with hidden sizes up to "
        "8192 the row fits in registers (16 fp32 per thread at the auto warp count). Best for large M; "
        "for M=1 decode it uses one SM only, where the persistent or multi-row variants do no better."
    ),
    difficulty=1,
    expected_speedup=2.5,
    knobs={"num_warps": ("auto", 1, 2, 4, 8, 16), "EVICT": ("none", "stream")},
    generate=_gen_row_block,
)


# ---- one row per program, the row in chunks, two passes ---------------------------------------------


def _gen_chunked(task_name: str, k: dict) -> str:
    io = _Io(task_name)
    stream, keep = EVICT_HINTS[k["EVICT"]]
    sync = (
        "    tl.debug_barrier()  # the second pass reads residual_out written by other threads\n"
        if io.fused
        else ""
    )
    kernel = (
        "@triton.jit\n"
        f"def rmsnorm_chunked_kernel({io.kernel_params}, BLOCK_N: tl.constexpr):\n"
        "    row = tl.program_id(0).to(tl.int64)\n"
        "    acc = tl.zeros([BLOCK_N], dtype=tl.float32)\n"
        "    for start in range(0, N, BLOCK_N):\n"
        "        cols = start + tl.arange(0, BLOCK_N)\n"
        "        mask = cols < N\n"
        + io.load_row("        ", "row", "cols", "mask", stream)
        + "        acc += x * x\n"
        "    rstd = tl.rsqrt(tl.sum(acc, axis=0) / N + eps)\n"
        + sync
        + "    for start in range(0, N, BLOCK_N):\n"
        "        cols = start + tl.arange(0, BLOCK_N)\n"
        "        mask = cols < N\n"
        + io.reload_row("        ", "row", "cols", "mask", "")
        + f"        w = tl.load(w_ptr + cols, mask=mask, other=0.0{keep}).to(tl.float32)\n"
        "        tl.store(out_ptr + row * stride_o + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)\n"
    )
    run = (
        "    M, N = x.shape\n"
        f"    BLOCK_N = min({k['BLOCK_N']}, triton.next_power_of_2(N))\n"
        f"    rmsnorm_chunked_kernel[(M,)]({io.launch_args},\n"
        f"                                 BLOCK_N=BLOCK_N, num_warps={k['num_warps']})\n"
    )
    return module(CHUNKED, task_name, kernel, io.run_def + run)


CHUNKED = Template(
    id="rmsnorm/chunked",
    tasks=TASKS,
    decision="row mapping",
    title="one row per program, row streamed in fixed chunks, two passes",
    description=(
        "Grid of M programs; the first loop accumulates the sum of squares over BLOCK_N-wide chunks "
        "(fused: also stores residual_out), the second re-reads each chunk (from L2 for these row "
        "sizes) and writes the normalized values. Block size independent of N: any hidden size."
    ),
    rationale=(
        "Bounded registers whatever N is, so occupancy stays high and very wide rows cannot spill; the "
        "second read usually hits L2 (a 16 KiB row). Costs a second pass, so it beats the whole-row "
        "block only when that block spills or runs at low occupancy."
    ),
    difficulty=2,
    expected_speedup=2.0,
    knobs={
        "BLOCK_N": (1024, 2048, 4096, 512, 256),
        "num_warps": (4, 8, 2, 16, 1),
        "EVICT": ("none", "stream"),
    },
    generate=_gen_chunked,
)


# ---- several rows per program ----------------------------------------------------------------------------


def _gen_multi_row(task_name: str, k: dict) -> str:
    io = _Io(task_name)
    stream, keep = EVICT_HINTS[k["EVICT"]]
    kernel = (
        "@triton.jit\n"
        f"def rmsnorm_rows_kernel({io.kernel_params}, ROWS: tl.constexpr, BLOCK_N: tl.constexpr):\n"
        "    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)\n"
        "    cols = tl.arange(0, BLOCK_N)\n"
        "    col_mask = cols < N\n"
        "    mask = (rows[:, None] < M) & col_mask[None, :]\n"
        + io.load_row("    ", "rows[:, None]", "cols[None, :]", "mask", stream)
        + "    rstd = tl.rsqrt(tl.sum(x * x, axis=1) / N + eps)\n"
        f"    w = tl.load(w_ptr + cols, mask=col_mask, other=0.0{keep}).to(tl.float32)\n"
        "    y = x * rstd[:, None] * w[None, :]\n"
        "    tl.store(out_ptr + rows[:, None] * stride_o + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)\n"
    )
    run = (
        "    M, N = x.shape\n"
        "    BLOCK_N = triton.next_power_of_2(N)\n"
        f"    ROWS = {rows_expr(k['ROWS'], 'BLOCK_N')}\n"
        f"    rmsnorm_rows_kernel[(triton.cdiv(M, ROWS),)]({io.launch_args},\n"
        f"                                                ROWS=ROWS, BLOCK_N=BLOCK_N,\n"
        f"                                                num_warps={warps_expr(k['num_warps'], 'ROWS * BLOCK_N')})\n"
    )
    return module(MULTI_ROW, task_name, kernel, io.run_def + run)


MULTI_ROW = Template(
    id="rmsnorm/multi_row",
    tasks=TASKS,
    decision="row mapping",
    title="ROWS rows per program as a [ROWS, BLOCK_N] tile",
    description=(
        "Grid of cdiv(M, ROWS) programs; each normalizes ROWS whole rows held as one 2-D tile, "
        "reducing along the row axis; the weight is loaded once per program and reused ROWS times. ROWS "
        "is lowered for wide rows so a tile stays within 16K elements."
    ),
    rationale=(
        "For short rows (QK-norm over head_dim 128, hidden sizes under ~1024) one row per program leaves "
        "most lanes idle and the launch is dominated by per-program overhead; packing rows fills the warps "
        "and amortizes the weight load. For wide rows ROWS x BLOCK_N explodes register use: keep ROWS small."
    ),
    difficulty=2,
    expected_speedup=2.0,
    knobs={"ROWS": (4, 2, 8, 16, 32), "num_warps": ("auto", 1, 2, 4, 8, 16), "EVICT": ("none", "stream")},
    generate=_gen_multi_row,
)


# ---- persistent grid --------------------------------------------------------------------------------------


def _gen_persistent(task_name: str, k: dict) -> str:
    io = _Io(task_name)
    stream, keep = EVICT_HINTS[k["EVICT"]]
    kernel = (
        "@triton.jit\n"
        f"def rmsnorm_persistent_kernel({io.kernel_params}, BLOCK_N: tl.constexpr):\n"
        "    cols = tl.arange(0, BLOCK_N)\n"
        "    mask = cols < N\n"
        f"    w = tl.load(w_ptr + cols, mask=mask, other=0.0{keep}).to(tl.float32)\n"
        "    for r in range(tl.program_id(0), M, tl.num_programs(0)):\n"
        "        row = tl.cast(r, tl.int64)\n"
        + io.load_row("        ", "row", "cols", "mask", stream)
        + "        rstd = tl.rsqrt(tl.sum(x * x, axis=0) / N + eps)\n"
        "        tl.store(out_ptr + row * stride_o + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)\n"
    )
    run = (
        "    M, N = x.shape\n"
        "    BLOCK_N = triton.next_power_of_2(N)\n"
        f"    grid = (max(1, min(M, _num_sms(x) * {k['PROGRAMS_PER_SM']})),)\n"
        f"    rmsnorm_persistent_kernel[grid]({io.launch_args},\n"
        f"                                    BLOCK_N=BLOCK_N, num_warps={warps_expr(k['num_warps'], 'BLOCK_N')})\n"
    )
    return module(PERSISTENT, task_name, kernel, io.run_def + run, extra=NUM_SMS_HELPER)


PERSISTENT = Template(
    id="rmsnorm/persistent",
    tasks=TASKS,
    decision="row mapping",
    title="persistent grid: SMs x k programs loop over rows, weight kept in registers",
    description=(
        "Grid of min(M, SM count x PROGRAMS_PER_SM) programs; each loads the weight once and then "
        "strides over rows (row = pid, pid + grid, ...), normalizing each whole row in one block."
    ),
    rationale=(
        "Removes per-row program launch and weight reload costs, which matter for large M (prefill) with "
        "short rows; with fewer resident programs than the one-row grid it may hide less latency, so "
        "PROGRAMS_PER_SM trades occupancy against the loop's savings."
    ),
    difficulty=3,
    expected_speedup=2.5,
    knobs={
        "PROGRAMS_PER_SM": (2, 1, 4, 8),
        "num_warps": ("auto", 1, 2, 4, 8, 16),
        "EVICT": ("none", "stream"),
    },
    generate=_gen_persistent,
)


# ---- risky: fixed block, no loop -----------------------------------------------------------------------------


def _gen_fixed_block(task_name: str, k: dict) -> str:
    io = _Io(task_name)
    kernel = _whole_row_kernel(io, "rmsnorm_fixed_kernel")
    run = (
        "    M, N = x.shape\n"
        f"    rmsnorm_fixed_kernel[(M,)]({io.launch_args},\n"
        f"                               BLOCK_N={k['BLOCK_N']}, num_warps={k['num_warps']})\n"
    )
    return module(FIXED_BLOCK, task_name, kernel, io.run_def + run)


FIXED_BLOCK = Template(
    id="rmsnorm/fixed_block",
    tasks=TASKS,
    decision="row mapping",
    title="whole row in registers with a fixed BLOCK_N, no loop",
    description=(
        "Like the whole-row block, but BLOCK_N is a compile-time constant chosen ahead of time instead "
        "of next_power_of_2(N): one specialization for every hidden size, no tail loop."
    ),
    rationale=(
        "One binary for all shapes and no loop overhead. Fails when N > BLOCK_N: the columns past BLOCK_N "
        "are never written and the sum of squares misses them (the default 4096 passes the CPU subset but "
        "fails the N=7168 and N=8192 workloads; BLOCK_N=1024 fails on the CPU subset already)."
    ),
    difficulty=1,
    expected_speedup=2.5,
    knobs={"BLOCK_N": (4096, 8192, 2048, 1024), "num_warps": (8, 4, 16)},
    generate=_gen_fixed_block,
)


TEMPLATES = (ROW_BLOCK, CHUNKED, MULTI_ROW, PERSISTENT, FIXED_BLOCK)
