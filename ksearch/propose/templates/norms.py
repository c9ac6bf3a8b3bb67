"""RMSNorm and fused residual-add + RMSNorm: row mappings for a memory-bound row reduction.

Every template here implements both tasks: `rmsnorm` (run(x, weight, out)) and `fused_add_rmsnorm`
(run(x, residual, weight, out, residual_out)), where the residual sum is stored in the output dtype
and the rounded sum is what gets normalized, as the unfused add-then-norm would. Accumulation is
always fp32.
"""

from __future__ import annotations

from ksearch.propose.templates.base import AUTO_WARPS, EVICT, family

TASKS = ("rmsnorm", "fused_add_rmsnorm")

_template = family("rmsnorm", TASKS, decision="row mapping", params={"eps": 1e-6})


# ---- one row per program, whole row in one block -------------------------------------------------


ROW_BLOCK = _template(
    "row_block",
    title="one row per program, whole row in registers",
    description="""
        Grid of M programs; each loads its whole row in one power-of-two block (masked tail), reduces the sum
        of squares in fp32, scales by rsqrt and the weight, and stores. One read and one write of the row: the
        traffic minimum.
    """,
    rationale="""
        Memory-bound op: a single pass over each row is the byte minimum, and with hidden sizes up to 8192 the
        row fits in registers (16 fp32 per thread at the auto warp count). Best for large M; for M=1 decode it
        uses one SM only, where the persistent or multi-row variants do no better.
    """,
    difficulty=1,
    expected_speedup=2.5,
    knobs={"num_warps": AUTO_WARPS, "EVICT": EVICT},
)


# ---- one row per program, the row in chunks, two passes ---------------------------------------------


CHUNKED = _template(
    "chunked",
    title="one row per program, row streamed in fixed chunks, two passes",
    description="""
        Grid of M programs; the first loop accumulates the sum of squares over BLOCK_N-wide chunks (fused:
        also stores residual_out), the second re-reads each chunk (from L2 for these row sizes) and writes the
        normalized values. Block size independent of N: any hidden size.
    """,
    rationale="""
        Bounded registers whatever N is, so occupancy stays high and very wide rows cannot spill; the second
        read usually hits L2 (a 16 KiB row). Costs a second pass, so it beats the whole-row block only when
        that block spills or runs at low occupancy.
    """,
    difficulty=2,
    expected_speedup=2.0,
    knobs={
        "BLOCK_N": (1024, 2048, 4096, 512, 256),
        "num_warps": (4, 8, 2, 16, 1),
        "EVICT": EVICT,
    },
)


# ---- several rows per program ----------------------------------------------------------------------------


MULTI_ROW = _template(
    "multi_row",
    title="ROWS rows per program as a [ROWS, BLOCK_N] tile",
    description="""
        Grid of cdiv(M, ROWS) programs; each normalizes ROWS whole rows held as one 2-D tile, reducing along
        the row axis; the weight is loaded once per program and reused ROWS times. ROWS is lowered for wide
        rows so a tile stays within 16K elements.
    """,
    rationale="""
        For short rows (QK-norm over head_dim 128, hidden sizes under ~1024) one row per program leaves most
        lanes idle and the launch is dominated by per-program overhead; packing rows fills the warps and
        amortizes the weight load. For wide rows ROWS x BLOCK_N explodes register use: keep ROWS small.
    """,
    difficulty=2,
    expected_speedup=2.0,
    knobs={"ROWS": (4, 2, 8, 16, 32), "num_warps": AUTO_WARPS, "EVICT": EVICT},
)


# ---- persistent grid --------------------------------------------------------------------------------------


PERSISTENT = _template(
    "persistent",
    title="persistent grid: SMs x k programs loop over rows, weight kept in registers",
    description="""
        Grid of min(M, SM count x PROGRAMS_PER_SM) programs; each loads the weight once and then strides over
        rows (row = pid, pid + grid, ...), normalizing each whole row in one block.
    """,
    rationale="""
        Removes per-row program launch and weight reload costs, which matter for large M (prefill) with short
        rows; with fewer resident programs than the one-row grid it may hide less latency, so PROGRAMS_PER_SM
        trades occupancy against the loop's savings.
    """,
    difficulty=3,
    expected_speedup=2.5,
    knobs={
        "PROGRAMS_PER_SM": (2, 1, 4, 8),
        "num_warps": AUTO_WARPS,
        "EVICT": EVICT,
    },
)


# ---- risky: fixed block, no loop -----------------------------------------------------------------------------


FIXED_BLOCK = _template(
    "fixed_block",
    title="whole row in registers with a fixed BLOCK_N, no loop",
    description="""
        Like the whole-row block, but BLOCK_N is a compile-time constant chosen ahead of time instead of
        next_power_of_2(N): one specialization for every hidden size, no tail loop.
    """,
    rationale="""
        One binary for all shapes and no loop overhead. Fails when N > BLOCK_N: the columns past BLOCK_N are
        never written and the sum of squares misses them (the default 4096 passes the CPU subset but fails the
        N=7168 and N=8192 workloads; BLOCK_N=1024 fails on the CPU subset already).
    """,
    difficulty=1,
    expected_speedup=2.5,
    knobs={"BLOCK_N": (4096, 8192, 2048, 1024), "num_warps": (8, 4, 16)},
)


TEMPLATES = (ROW_BLOCK, CHUNKED, MULTI_ROW, PERSISTENT, FIXED_BLOCK)
