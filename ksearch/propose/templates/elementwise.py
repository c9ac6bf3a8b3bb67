"""SwiGLU (task `silu_and_mul`, run(x, out), x = [gate | up] of width 2*I): flat and 2-D mappings
of a pure streaming op (two reads, one write per output; fp32 math).
"""

from __future__ import annotations

from ksearch.propose.templates.base import EVICT, family

TASKS = ("silu_and_mul",)

_template = family("silu_and_mul", TASKS, decision="work mapping")
# the load hint and the SiLU form (the explicit exp, or tl.sigmoid) of the streaming templates
STREAM_KNOBS = {"EVICT": EVICT, "SILU": ("exp", "sigmoid")}


# ---- flat 1-D over the output --------------------------------------------------------------------------------


FLAT = _template(
    "flat",
    title="flat 1-D grid over the M*I outputs, BLOCK outputs per program",
    description="""
        One program per BLOCK consecutive outputs of the flattened [M, I] output; the row and column of each
        element come from a division by I; gate and up are read from the two halves of x's row.
    """,
    rationale="""
        Perfectly balanced whatever the shape (decode M=1 with I=14336 and prefill alike) and the launch is a
        single 1-D grid; the per-element integer division costs ALU but the op is bandwidth-bound. Large BLOCK
        with 8+ warps keeps enough bytes in flight to reach HBM bandwidth.
    """,
    difficulty=1,
    expected_speedup=1.8,
    knobs={
        "BLOCK": (2048, 1024, 4096, 512, 8192),
        "num_warps": (8, 4, 2, 16),
        **STREAM_KNOBS,
    },
)


# ---- 2-D: (row block, column block) ------------------------------------------------------------------------------


ROW_COL = _template(
    "row_col",
    title="2-D grid: ROWS rows x BLOCK_I columns per program",
    description="""
        Grid (cdiv(M, ROWS), cdiv(I, BLOCK_I)); each program handles a [ROWS, BLOCK_I] tile: contiguous,
        vectorizable loads of the gate and up halves, no integer division.
    """,
    rationale="""
        Addresses are affine in the program ids, so loads vectorize to 16 bytes without div/mod; ROWS > 1
        packs short rows (expert intermediates 1408-2048) into one program. The column tail of each row is
        masked, which wastes lanes when I is just above a multiple of BLOCK_I.
    """,
    difficulty=1,
    expected_speedup=1.8,
    knobs={
        "BLOCK_I": (1024, 2048, 512, 4096, 256),
        "ROWS": (1, 2, 4, 8),
        "num_warps": (4, 8, 2, 1, 16),
        **STREAM_KNOBS,
    },
)


# ---- risky: one fixed block per row ----------------------------------------------------------------------------------


ROW_FIXED = _template(
    "row_fixed",
    title="one program per row, one fixed BLOCK_I block, no column loop",
    description="""
        Grid of M programs; each processes columns 0..BLOCK_I-1 of its row in one block, BLOCK_I fixed ahead
        of time rather than derived from I.
    """,
    rationale="""
        Fewest programs and no per-column-block index math. Fails when I > BLOCK_I: columns past BLOCK_I are
        never written (the default 2048 passes the CPU subset, I <= 2048, but fails I = 3584, 14336 and 18432;
        BLOCK_I=1024 fails the CPU subset already).
    """,
    difficulty=1,
    expected_speedup=1.5,
    knobs={"BLOCK_I": (2048, 4096, 8192, 1024), "num_warps": (8, 4, 16)},
)


TEMPLATES = (FLAT, ROW_COL, ROW_FIXED)
