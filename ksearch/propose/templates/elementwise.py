"""SwiGLU (task `silu_and_mul`, run(x, out), x = [gate | up] of width 2*I): flat and 2-D mappings
of a pure streaming op (two reads, one write per output; fp32 math).
"""

from __future__ import annotations

from ksearch.propose.templates.base import EVICT_HINTS, Template, module, warps_expr

TASKS = ("silu_and_mul",)
RUN_SIG = "def run(x: torch.Tensor, out: torch.Tensor) -> None:\n"


def _silu(k: dict) -> str:
    """The fp32 expression for silu(g) * u."""
    if k.get("SILU", "exp") == "sigmoid":
        return "g * tl.sigmoid(g) * u"
    return "g / (1.0 + tl.exp(-g)) * u"


# ---- flat 1-D over the output --------------------------------------------------------------------------------


def _gen_flat(task_name: str, k: dict) -> str:
    stream, _ = EVICT_HINTS[k["EVICT"]]
    kernel = (
        "@triton.jit\n"
        "def silu_mul_flat_kernel(x_ptr, out_ptr, total, I, stride_x, stride_o, BLOCK: tl.constexpr):\n"
        "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # int32: division by I stays cheap\n"
        "    mask = offs < total\n"
        "    row = offs // I\n"
        "    col = offs % I\n"
        f"    g = tl.load(x_ptr + row * stride_x + col, mask=mask, other=0.0{stream}).to(tl.float32)\n"
        f"    u = tl.load(x_ptr + row * stride_x + I + col, mask=mask, other=0.0{stream}).to(tl.float32)\n"
        f"    y = {_silu(k)}\n"
        "    tl.store(out_ptr + row * stride_o + col, y.to(out_ptr.dtype.element_ty), mask=mask)\n"
    )
    run = (
        "    M = x.shape[0]\n"
        "    I = x.shape[1] // 2\n"
        "    total = M * I\n"
        f"    BLOCK = {k['BLOCK']}\n"
        "    silu_mul_flat_kernel[(triton.cdiv(total, BLOCK),)](x, out, total, I, x.stride(0), out.stride(0),\n"
        f"                                                       BLOCK=BLOCK, num_warps={k['num_warps']})\n"
    )
    return module(FLAT, task_name, kernel, RUN_SIG + run)


FLAT = Template(
    id="silu_and_mul/flat",
    tasks=TASKS,
    decision="work mapping",
    title="flat 1-D grid over the M*I outputs, BLOCK outputs per program",
    description=(
        "One program per BLOCK consecutive outputs of the flattened [M, I] output; the row and column of "
        "each element come from a division by I; gate and up are read from the two halves of x's row."
    ),
    rationale=(
        "Perfectly balanced whatever the shape (decode M=1 with I=14336 and prefill alike) and the launch is "
        "a single 1-D grid; the per-element integer division costs ALU but the op is bandwidth-bound. Large "
        "BLOCK with 8+ warps keeps enough bytes in flight to reach HBM bandwidth."
    ),
    difficulty=1,
    expected_speedup=1.8,
    knobs={
        "BLOCK": (2048, 1024, 4096, 512, 8192),
        "num_warps": (8, 4, 2, 16),
        "EVICT": ("none", "stream"),
        "SILU": ("exp", "sigmoid"),
    },
    generate=_gen_flat,
)


# ---- 2-D: (row block, column block) ------------------------------------------------------------------------------


def _gen_row_col(task_name: str, k: dict) -> str:
    stream, _ = EVICT_HINTS[k["EVICT"]]
    kernel = (
        "@triton.jit\n"
        "def silu_mul_2d_kernel(x_ptr, out_ptr, M, I, stride_x, stride_o, ROWS: tl.constexpr, BLOCK_I: tl.constexpr):\n"
        "    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)\n"
        "    cols = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)\n"
        "    mask = (rows[:, None] < M) & (cols[None, :] < I)\n"
        "    src = x_ptr + rows[:, None] * stride_x + cols[None, :]\n"
        f"    g = tl.load(src, mask=mask, other=0.0{stream}).to(tl.float32)\n"
        f"    u = tl.load(src + I, mask=mask, other=0.0{stream}).to(tl.float32)\n"
        f"    y = {_silu(k)}\n"
        "    tl.store(out_ptr + rows[:, None] * stride_o + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)\n"
    )
    run = (
        "    M = x.shape[0]\n"
        "    I = x.shape[1] // 2\n"
        f"    ROWS, BLOCK_I = {k['ROWS']}, min({k['BLOCK_I']}, triton.next_power_of_2(I))\n"
        "    grid = (triton.cdiv(M, ROWS), triton.cdiv(I, BLOCK_I))\n"
        "    silu_mul_2d_kernel[grid](x, out, M, I, x.stride(0), out.stride(0), ROWS=ROWS, BLOCK_I=BLOCK_I,\n"
        f"                             num_warps={warps_expr(k['num_warps'], 'ROWS * BLOCK_I')})\n"
    )
    return module(ROW_COL, task_name, kernel, RUN_SIG + run)


ROW_COL = Template(
    id="silu_and_mul/row_col",
    tasks=TASKS,
    decision="work mapping",
    title="2-D grid: ROWS rows x BLOCK_I columns per program",
    description=(
        "Grid (cdiv(M, ROWS), cdiv(I, BLOCK_I)); each program handles a [ROWS, BLOCK_I] tile: contiguous, "
        "vectorizable loads of the gate and up halves, no integer division."
    ),
    rationale=(
        "Addresses are affine in the program ids, so loads vectorize to 16 bytes without div/mod; ROWS > 1 "
        "packs short rows (expert intermediates 1408-2048) into one program. The column tail of each row "
        "is masked, which wastes lanes when I is just above a multiple of BLOCK_I."
    ),
    difficulty=1,
    expected_speedup=1.8,
    knobs={
        "BLOCK_I": (1024, 2048, 512, 4096, 256),
        "ROWS": (1, 2, 4, 8),
        "num_warps": (4, 8, 2, 1, 16),
        "EVICT": ("none", "stream"),
        "SILU": ("exp", "sigmoid"),
    },
    generate=_gen_row_col,
)


# ---- risky: one fixed block per row ----------------------------------------------------------------------------------


def _gen_row_fixed(task_name: str, k: dict) -> str:
    kernel = (
        "@triton.jit\n"
        "def silu_mul_row_kernel(x_ptr, out_ptr, I, stride_x, stride_o, BLOCK_I: tl.constexpr):\n"
        "    row = tl.program_id(0).to(tl.int64)\n"
        "    cols = tl.arange(0, BLOCK_I)\n"
        "    mask = cols < I\n"
        "    g = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)\n"
        "    u = tl.load(x_ptr + row * stride_x + I + cols, mask=mask, other=0.0).to(tl.float32)\n"
        "    y = g / (1.0 + tl.exp(-g)) * u\n"
        "    tl.store(out_ptr + row * stride_o + cols, y.to(out_ptr.dtype.element_ty), mask=mask)\n"
    )
    run = (
        "    M = x.shape[0]\n"
        "    I = x.shape[1] // 2\n"
        "    silu_mul_row_kernel[(M,)](x, out, I, x.stride(0), out.stride(0),\n"
        f"                              BLOCK_I={k['BLOCK_I']}, num_warps={k['num_warps']})\n"
    )
    return module(ROW_FIXED, task_name, kernel, RUN_SIG + run)


ROW_FIXED = Template(
    id="silu_and_mul/row_fixed",
    tasks=TASKS,
    decision="work mapping",
    title="one program per row, one fixed BLOCK_I block, no column loop",
    description=(
        "Grid of M programs; each processes columns 0..BLOCK_I-1 of its row in one block, BLOCK_I fixed "
        "ahead of time rather than derived from I."
    ),
    rationale=(
        "Fewest programs and no per-column-block index math. Fails when I > BLOCK_I: columns past BLOCK_I "
        "are never written (the default 2048 passes the CPU subset, I <= 2048, but fails I = 3584, 14336 and "
        "18432; BLOCK_I=1024 fails the CPU subset already)."
    ),
    difficulty=1,
    expected_speedup=1.5,
    knobs={"BLOCK_I": (2048, 4096, 8192, 1024), "num_warps": (8, 4, 16)},
    generate=_gen_row_fixed,
)


TEMPLATES = (FLAT, ROW_COL, ROW_FIXED)
