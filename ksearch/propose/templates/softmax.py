"""Row softmax (task `softmax`, run(x, out)): whole-row blocks, online and three-loop streaming.

fp32 math throughout; the max shift is always applied (heavy-tailed and outlier rows overflow exp
without it).
"""

from __future__ import annotations

from collections.abc import Callable

from ksearch.propose.templates.base import AUTO_WARPS, family

TASKS = ("softmax",)

_template = family("softmax", TASKS)


def whole_rows(limit: int, speedup: float) -> Callable[[list[dict[str, int]]], float]:
    """The shape prior of a template that holds a whole row of up to `limit` elements: `speedup`
    where every row fits, nothing where one does not (it spills, or leaves the row's tail unwritten)."""

    def on(axes: list[dict[str, int]]) -> float:
        return speedup if all(a["N"] <= limit for a in axes) else 0.0

    return on


# the chunk width and warps of the streaming templates (online, three-loop)
CHUNK_KNOBS = {"BLOCK_N": (2048, 1024, 4096, 8192, 512), "num_warps": (8, 4, 16, 2)}


# ---- whole rows in one block, ROWS rows per program ----------------------------------------------------


ROW_BLOCK = _template(
    "row_block",
    decision="row mapping",
    title="whole row in registers, ROWS rows per program",
    description="""
        Grid of cdiv(M, ROWS) programs; each loads ROWS whole rows (next power of two of N, -inf padding) as
        one tile, takes the row max, exponentiates, sums and scales, all in registers: one read and one write
        per element. ROWS is lowered for wide rows (tile within 16K elements) and an explicit num_warps raised
        to at most 256 elements per thread (up to 16 warps).
    """,
    rationale="""
        The traffic minimum for rows up to a few thousand elements (attention-score rows); several rows per
        program fill the warps for short rows. For vocabulary rows (N = 128K-201K) the block is 128K-256K
        elements: it spills heavily and compiles slowly, so the streaming templates win there.
    """,
    difficulty=1,
    expected_speedup=2.0,
    speedup_on=whole_rows(16384, 2.0),  # a row alone fills rows_per_program's 16K-element tile
    knobs={"ROWS": (1, 2, 4, 8, 16), "num_warps": AUTO_WARPS},
)


# ---- online softmax: one pass for max and sum, one pass to write ------------------------------------------


ONLINE = _template(
    "online",
    decision="reduction order",
    title="online softmax: running max and sum in one pass, then a normalize pass",
    description="""
        One program per row streams it in BLOCK_N chunks keeping a running max and a running sum rescaled by
        exp(m_old - m_new); a second pass recomputes exp(x - max) / sum and stores. STATS picks block-wide
        scalars (one max and one sum reduction per chunk) or per-lane running stats (no cross-warp reduction
        inside the loop, one at the end, two exps per element).
    """,
    rationale="""
        Two reads and one write per element with registers bounded by BLOCK_N, so vocabulary-sized rows
        (128K-201K) run at high occupancy with no spills; the second read usually hits L2. For short rows the
        whole-row block saves the second pass.
    """,
    difficulty=2,
    expected_speedup=1.8,
    knobs={**CHUNK_KNOBS, "STATS": ("block", "lane")},
)


# ---- three loops: max, sum, write ------------------------------------------------------------------------------


THREE_LOOP = _template(
    "three_loop",
    decision="reduction order",
    title="three passes over the row: max, sum of exp, normalize and write",
    description="""
        One program per row, three BLOCK_N-chunked loops: per-lane max then one reduction; per-lane sum of
        exp(x - max) then one reduction; then exp(x - max) * (1/sum) stored.
    """,
    rationale="""
        The simplest streaming form: no rescaling, one exp per element per pass. Three reads instead of two,
        but the row stays in L2 between passes, so for very long rows it is close to the online form and
        sometimes faster (fewer exps in the stats pass).
    """,
    difficulty=1,
    expected_speedup=1.5,
    knobs=CHUNK_KNOBS,
)


# ---- risky: fixed block, no loop ------------------------------------------------------------------------------

FIXED_BLOCK_KNOBS = {"BLOCK_N": (1024, 2048, 4096, 256), "num_warps": (4, 8, 16)}


FIXED_BLOCK = _template(
    "fixed_block",
    decision="row mapping",
    title="whole row in one fixed-size block, no loop",
    description="""
        One program per row with a compile-time BLOCK_N chosen ahead of time (not from N): a single
        specialization for every row length, no loop.
    """,
    rationale="""
        One binary, no loop overhead. Fails when N > BLOCK_N: the tail of the row is never written and is
        missing from the max and the sum (the default 1024 passes the CPU subset, N <= 1000, but fails the
        4096-wide and vocabulary rows; BLOCK_N=256 fails the N=1000 CPU workload).
    """,
    difficulty=1,
    expected_speedup=2.0,
    speedup_on=whole_rows(max(FIXED_BLOCK_KNOBS["BLOCK_N"]), 2.0),
    knobs=FIXED_BLOCK_KNOBS,
)


TEMPLATES = (ROW_BLOCK, ONLINE, THREE_LOOP, FIXED_BLOCK)
