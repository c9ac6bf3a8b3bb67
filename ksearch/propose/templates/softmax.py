"""Row softmax (task `softmax`, run(x, out)): whole-row blocks, online and three-loop streaming.

fp32 math throughout; the max shift is always applied (heavy-tailed and outlier rows overflow exp
without it).
"""

from __future__ import annotations

from ksearch.propose.templates.base import Template, module, rows_expr, warps_expr

TASKS = ("softmax",)
RUN_SIG = "def run(x: torch.Tensor, out: torch.Tensor) -> None:\n"


# ---- whole rows in one block, ROWS rows per program ----------------------------------------------------


def _gen_row_block(task_name: str, k: dict) -> str:
    kernel = (
        "@triton.jit\n"
        "def softmax_rows_kernel(x_ptr, out_ptr, M, N, stride_x, stride_o, ROWS: tl.constexpr, BLOCK_N: tl.constexpr):\n"
        "    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)\n"
        "    cols = tl.arange(0, BLOCK_N)\n"
        "    row_ok = rows < M\n"
        "    mask = row_ok[:, None] & (cols[None, :] < N)\n"
        '    x = tl.load(x_ptr + rows[:, None] * stride_x + cols[None, :], mask=mask, other=-float("inf"))\n'
        "    x = x.to(tl.float32)\n"
        "    # rows past M are all -inf: shift them by 0 and divide by 1 so they stay finite (never stored)\n"
        "    mx = tl.where(row_ok, tl.max(x, axis=1), 0.0)\n"
        "    e = tl.exp(x - mx[:, None])\n"
        "    den = tl.where(row_ok, tl.sum(e, axis=1), 1.0)\n"
        "    y = e * (1.0 / den)[:, None]\n"
        "    tl.store(out_ptr + rows[:, None] * stride_o + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)\n"
    )
    run = (
        "    M, N = x.shape\n"
        "    BLOCK_N = triton.next_power_of_2(N)\n"
        f"    ROWS = {rows_expr(k['ROWS'], 'BLOCK_N')}\n"
        "    softmax_rows_kernel[(triton.cdiv(M, ROWS),)](x, out, M, N, x.stride(0), out.stride(0),\n"
        "                                                ROWS=ROWS, BLOCK_N=BLOCK_N,\n"
        f"                                                num_warps={warps_expr(k['num_warps'], 'ROWS * BLOCK_N')})\n"
    )
    return module(ROW_BLOCK, task_name, kernel, RUN_SIG + run)


ROW_BLOCK = Template(
    id="softmax/row_block",
    tasks=TASKS,
    decision="row mapping",
    title="whole row in registers, ROWS rows per program",
    description=(
        "Grid of cdiv(M, ROWS) programs; each loads ROWS whole rows (next power of two of N, -inf "
        "padding) as one tile, takes the row max, exponentiates, sums and scales, all in registers: "
        "one read and one write per element. ROWS is lowered for wide rows (tile within 16K elements) "
        "and an explicit num_warps raised to at most 256 elements per thread (up to 16 warps)."
    ),
    rationale=(
        "The traffic minimum for rows up to a few thousand elements (attention-score rows); several rows "
        "per program fill the warps for short rows. For vocabulary rows (N = 128K-201K) the block is 128K-256K "
        "elements: it spills heavily and compiles slowly, so the streaming templates win there."
    ),
    difficulty=1,
    expected_speedup=2.0,
    knobs={"ROWS": (1, 2, 4, 8, 16), "num_warps": ("auto", 1, 2, 4, 8, 16)},
    generate=_gen_row_block,
)


def _streaming(name: str, stats: str, k: dict) -> tuple[str, str]:
    """(kernel, run) of a one-row-per-program softmax that streams the row in BLOCK_N chunks: `stats`
    binds `row_max` and `inv` (1 / sum of exp) from `src`; then one pass writes exp(x - max) * inv."""
    kernel = (
        "@triton.jit\n"
        f"def {name}(x_ptr, out_ptr, N, stride_x, stride_o, BLOCK_N: tl.constexpr):\n"
        "    row = tl.program_id(0).to(tl.int64)\n"
        "    src = x_ptr + row * stride_x\n"
        "    dst = out_ptr + row * stride_o\n" + stats + "    for start in range(0, N, BLOCK_N):\n"
        "        cols = start + tl.arange(0, BLOCK_N)\n"
        "        mask = cols < N\n"
        '        v = tl.load(src + cols, mask=mask, other=-float("inf")).to(tl.float32)\n'
        "        tl.store(dst + cols, (tl.exp(v - row_max) * inv).to(out_ptr.dtype.element_ty), mask=mask)\n"
    )
    pad = " " * (len(name) + 11)  # under the first launch argument
    run = (
        RUN_SIG + "    M, N = x.shape\n"
        f"    BLOCK_N = min({k['BLOCK_N']}, triton.next_power_of_2(N))\n"
        f"    {name}[(M,)](x, out, N, x.stride(0), out.stride(0),\n"
        f"{pad}BLOCK_N=BLOCK_N, num_warps={k['num_warps']})\n"
    )
    return kernel, run


# ---- online softmax: one pass for max and sum, one pass to write ------------------------------------------


def _gen_online(task_name: str, k: dict) -> str:
    if k["STATS"] == "block":
        stats = (
            '    m_i = -float("inf")\n'
            "    l_i = 0.0\n"
            "    for start in range(0, N, BLOCK_N):\n"
            "        cols = start + tl.arange(0, BLOCK_N)\n"
            '        v = tl.load(src + cols, mask=cols < N, other=-float("inf")).to(tl.float32)\n'
            "        # every chunk holds at least one real element, so m_new is finite\n"
            "        m_new = tl.maximum(m_i, tl.max(v, axis=0))\n"
            "        l_i = l_i * tl.exp(m_i - m_new) + tl.sum(tl.exp(v - m_new), axis=0)\n"
            "        m_i = m_new\n"
            "    row_max = m_i\n"
            "    inv = 1.0 / l_i\n"
        )
    else:
        stats = (
            '    m_i = tl.full([BLOCK_N], -float("inf"), dtype=tl.float32)\n'
            "    l_i = tl.zeros([BLOCK_N], dtype=tl.float32)\n"
            "    for start in range(0, N, BLOCK_N):\n"
            "        cols = start + tl.arange(0, BLOCK_N)\n"
            '        v = tl.load(src + cols, mask=cols < N, other=-float("inf")).to(tl.float32)\n'
            "        m_new = tl.maximum(m_i, v)\n"
            "        # lanes that have only seen padding keep -inf: guard the rescale against inf - inf\n"
            '        seen = m_new > -float("inf")\n'
            "        alpha = tl.where(seen, tl.exp(m_i - m_new), 0.0)\n"
            "        p = tl.where(seen, tl.exp(v - m_new), 0.0)\n"
            "        l_i = l_i * alpha + p\n"
            "        m_i = m_new\n"
            "    row_max = tl.max(m_i, axis=0)\n"
            '    scale = tl.where(m_i > -float("inf"), tl.exp(m_i - row_max), 0.0)\n'
            "    inv = 1.0 / tl.sum(l_i * scale, axis=0)\n"
        )
    return module(ONLINE, task_name, *_streaming("softmax_online_kernel", stats, k))


ONLINE = Template(
    id="softmax/online",
    tasks=TASKS,
    decision="reduction order",
    title="online softmax: running max and sum in one pass, then a normalize pass",
    description=(
        "One program per row streams it in BLOCK_N chunks keeping a running max and a running sum "
        "rescaled by exp(m_old - m_new); a second pass recomputes exp(x - max) / sum and stores. STATS "
        "picks block-wide scalars (one max and one sum reduction per chunk) or per-lane running stats "
        "(no cross-warp reduction inside the loop, one at the end, two exps per element)."
    ),
    rationale=(
        "Two reads and one write per element with registers bounded by BLOCK_N, so vocabulary-sized rows "
        "(128K-201K) run at high occupancy with no spills; the second read usually hits L2. For short rows "
        "the whole-row block saves the second pass."
    ),
    difficulty=2,
    expected_speedup=1.8,
    knobs={"BLOCK_N": (2048, 1024, 4096, 8192, 512), "num_warps": (8, 4, 16, 2), "STATS": ("block", "lane")},
    generate=_gen_online,
)


# ---- three loops: max, sum, write ------------------------------------------------------------------------------


def _gen_three_loop(task_name: str, k: dict) -> str:
    stats = (
        '    mx = tl.full([BLOCK_N], -float("inf"), dtype=tl.float32)\n'
        "    for start in range(0, N, BLOCK_N):\n"
        "        cols = start + tl.arange(0, BLOCK_N)\n"
        '        mx = tl.maximum(mx, tl.load(src + cols, mask=cols < N, other=-float("inf")).to(tl.float32))\n'
        "    row_max = tl.max(mx, axis=0)\n"
        "    acc = tl.zeros([BLOCK_N], dtype=tl.float32)\n"
        "    for start in range(0, N, BLOCK_N):\n"
        "        cols = start + tl.arange(0, BLOCK_N)\n"
        '        v = tl.load(src + cols, mask=cols < N, other=-float("inf")).to(tl.float32)\n'
        "        acc += tl.exp(v - row_max)\n"
        "    inv = 1.0 / tl.sum(acc, axis=0)\n"
    )
    return module(THREE_LOOP, task_name, *_streaming("softmax_three_loop_kernel", stats, k))


THREE_LOOP = Template(
    id="softmax/three_loop",
    tasks=TASKS,
    decision="reduction order",
    title="three passes over the row: max, sum of exp, normalize and write",
    description=(
        "One program per row, three BLOCK_N-chunked loops: per-lane max then one reduction; per-lane "
        "sum of exp(x - max) then one reduction; then exp(x - max) * (1/sum) stored."
    ),
    rationale=(
        "The simplest streaming form: no rescaling, one exp per element per pass. Three reads instead of "
        "two, but the row stays in L2 between passes, so for very long rows it is close to the online form "
        "and sometimes faster (fewer exps in the stats pass)."
    ),
    difficulty=1,
    expected_speedup=1.5,
    knobs={"BLOCK_N": (2048, 1024, 4096, 8192, 512), "num_warps": (8, 4, 16, 2)},
    generate=_gen_three_loop,
)


# ---- risky: fixed block, no loop ------------------------------------------------------------------------------


def _gen_fixed_block(task_name: str, k: dict) -> str:
    kernel = (
        "@triton.jit\n"
        "def softmax_fixed_kernel(x_ptr, out_ptr, N, stride_x, stride_o, BLOCK_N: tl.constexpr):\n"
        "    row = tl.program_id(0).to(tl.int64)\n"
        "    cols = tl.arange(0, BLOCK_N)\n"
        "    mask = cols < N\n"
        '    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=-float("inf")).to(tl.float32)\n'
        "    e = tl.exp(x - tl.max(x, axis=0))\n"
        "    y = e / tl.sum(e, axis=0)\n"
        "    tl.store(out_ptr + row * stride_o + cols, y.to(out_ptr.dtype.element_ty), mask=mask)\n"
    )
    run = (
        "    M, N = x.shape\n"
        "    softmax_fixed_kernel[(M,)](x, out, N, x.stride(0), out.stride(0),\n"
        f"                               BLOCK_N={k['BLOCK_N']}, num_warps={k['num_warps']})\n"
    )
    return module(FIXED_BLOCK, task_name, kernel, RUN_SIG + run)


FIXED_BLOCK = Template(
    id="softmax/fixed_block",
    tasks=TASKS,
    decision="row mapping",
    title="whole row in one fixed-size block, no loop",
    description=(
        "One program per row with a compile-time BLOCK_N chosen ahead of time (not from N): a single "
        "specialization for every row length, no loop."
    ),
    rationale=(
        "One binary, no loop overhead. Fails when N > BLOCK_N: the tail of the row is never written and "
        "is missing from the max and the sum (the default 1024 passes the CPU subset, N <= 1000, but fails "
        "the 4096-wide and vocabulary rows; BLOCK_N=256 fails the N=1000 CPU workload)."
    ),
    difficulty=1,
    expected_speedup=2.0,
    knobs={"BLOCK_N": (1024, 2048, 4096, 256), "num_warps": (4, 8, 16)},
    generate=_gen_fixed_block,
)


TEMPLATES = (ROW_BLOCK, ONLINE, THREE_LOOP, FIXED_BLOCK)
