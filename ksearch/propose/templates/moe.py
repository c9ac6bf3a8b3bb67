"""MoE top-k routing (task `moe_topk_routing`, run(logits, topk_weights, topk_ids)): per token, the K
largest router logits in descending order, then a softmax over those K. Kernels:
`kernels/moe_topk_routing_*.py` (why selection runs on the logits: `moe_topk_routing_parts.py`).
"""

from __future__ import annotations

from ksearch.propose.templates.base import family

TASKS = ("moe_topk_routing",)
# tokens per program and warps of the whole-row templates
ROWS_KNOBS = {"ROWS": (4, 1, 2, 8, 16, 32), "num_warps": (4, 1, 2, 8)}
_template = family("moe_topk_routing", TASKS, decision="selection algorithm")


# ---- argmax rounds ---------------------------------------------------------------------------------------------------


ROW_ARGMAX = _template(
    "row_argmax",
    title="ROWS tokens per program, whole expert row in registers, K rounds of argmax-and-mask",
    description="""
        Each program loads ROWS rows of logits (next power of two of E, -inf padding) and runs K rounds of:
        row max, smallest column equal to it, record, mask that column to -inf; then an fp32 softmax over the
        K chosen logits and the stores.
    """,
    rationale="""
        Routing reads T x E fp32 once and writes T x K: bandwidth- and latency-bound with tiny rows (8-256
        experts), so packing several tokens per program (ROWS) is what fills the warps; each round costs two
        reductions over the row. Far cheaper than a sort for K <= 8.
    """,
    difficulty=2,
    expected_speedup=3.0,
    knobs=ROWS_KNOBS,
)


# ---- packed (value, index) keys: one reduction per round -----------------------------------------------------------


PACKED = _template(
    "packed_argmax",
    title="K rounds of a single int64 max over packed (logit key, column) values",
    description="""
        Each logit becomes an int64 key: the float's bits mapped to an order-preserving int32 in the high
        half, the reversed column in the low half. One max per round yields both the value and the index; the
        winner is masked to INT64_MIN-ish and the next round starts.
    """,
    rationale="""
        Halves the reductions per round (one 64-bit max instead of a max and an index min), which is most of
        the work for 128-256 experts with K=4..8. 64-bit shuffles cost two 32-bit ones, so the win is largest
        when the row spans several warps.
    """,
    difficulty=3,
    expected_speedup=3.5,
    knobs=ROWS_KNOBS,
    source="moe_topk_routing_packed.py",
)


# ---- risky: fixed expert block ---------------------------------------------------------------------------------------


FIXED_EXPERTS = _template(
    "fixed_experts",
    title="one token per program with a fixed BLOCK_E expert block",
    description="""
        Argmax rounds over a compile-time BLOCK_E chosen ahead of time (one specialization for every expert
        count) instead of the next power of two of E.
    """,
    rationale="""
        One binary for every model. Fails when E > BLOCK_E: experts past BLOCK_E are never considered, so ids
        and weights are wrong whenever one of them is in the top K (the default 128 passes the CPU subset, E
        <= 128, but fails the 256-expert workload; BLOCK_E=32 fails E=60 and E=128 on CPU).
    """,
    difficulty=1,
    expected_speedup=3.0,
    knobs={"BLOCK_E": (128, 256, 64, 32), "num_warps": (1, 2, 4)},
)


TEMPLATES = (ROW_ARGMAX, PACKED, FIXED_EXPERTS)
