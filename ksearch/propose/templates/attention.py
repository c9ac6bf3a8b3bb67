"""GQA decode attention (task `gqa_decode_attention`, run(q, k_cache, v_cache, o)): one query token per
sequence against a dense KV cache; query head h reads KV head h // (Hq / Hkv).

All templates use the online softmax in the exp2 domain (scores scaled by scale * log2(e)), fp32
statistics and accumulators. Decode attention is bandwidth-bound on the KV cache: the strategies
differ in how often each KV byte is read and in how many programs share the work.
"""

from __future__ import annotations

from ksearch.propose.templates.base import family

TASKS = ("gqa_decode_attention",)


def fma_fits(k: dict) -> bool:
    """The fma path holds a [G, BLOCK_N, D] product (G up to 8, D = 128) in registers: keep it near 256
    elements per thread, or the compile spills hundreds of KB and takes minutes."""
    return k["QK"] != "fma" or k["BLOCK_N"] <= 8 * k["num_warps"]


_template = family("gqa_decode_attention", TASKS)
# the KV block, score path, warps and stages of the grouped templates (grouped, split-KV)
GROUP_KNOBS = {
    "BLOCK_N": (64, 32, 128, 16),
    "QK": ("dot64", "dot", "fma"),
    "num_warps": (4, 8, 2),
    "num_stages": (2, 1, 3, 4),
}


# ---- one program per query head ----------------------------------------------------------------------------------


PER_HEAD = _template(
    "per_head",
    decision="work mapping",
    title="one program per (batch, query head), online softmax over KV blocks",
    description="""
        Grid (B, Hq); each program streams its KV head's cache in BLOCK_N rows, scores with a broadcast
        multiply-and-sum (no tensor cores), keeps running max/sum and an fp32 accumulator.
    """,
    rationale="""
        Simplest mapping with Hq-way parallelism per sequence; each KV head is read once per query head of its
        group (G = 4..8 times, mostly from L2). Good baseline; loses to the grouped mapping when the cache
        does not fit L2 and to split-KV when B * Hq is below the SM count.
    """,
    difficulty=1,
    expected_speedup=1.5,
    knobs={"BLOCK_N": (64, 32, 128, 16, 256), "num_warps": (4, 2, 8, 1)},
)


# ---- one program per (batch, KV head) with the whole query group -------------------------------------------------


GROUPED = _template(
    "grouped",
    decision="work mapping",
    title="one program per (batch, KV head) computing all G query heads of the group",
    description="""
        Grid (B * Hkv); the program loads the G query heads of its group as a [BLOCK_G, D] tile and streams
        the KV head once: scores [BLOCK_G, BLOCK_N] and P @ V with tl.dot, P rounded to the input dtype
        (QK=dot64: group padded to 64 rows, the warpgroup-MMA minimum, so wgmma/tcgen05 are used; QK=dot:
        padded to 16 rows, mma.sync/MFMA) or broadcast multiply-and-sum in fp32 (QK=fma, which spills unless
        BLOCK_N is small: valid() allows BLOCK_N <= 8 x num_warps).
    """,
    rationale="""
        Every KV byte is read exactly once (the byte minimum) and the G heads share it through registers and
        tensor cores. Parallelism is only B * Hkv programs: ideal for large batches (B=16, Hkv=1 still only 16
        programs: split-KV wins there), poor for B=1. The padded MMA rows are free in a bandwidth-bound
        kernel; dot (16 rows) needs fewer registers but emits no wgmma/tcgen05, which the sm_90a/sm_100a
        attention audit reports as a missing tensor-core path.
    """,
    difficulty=3,
    expected_speedup=2.5,
    knobs=GROUP_KNOBS,
    constraint=fma_fits,
)


# ---- split-KV (flash-decoding) -----------------------------------------------------------------------------------


SPLIT_KV = _template(
    "split_kv",
    decision="parallelization over the context",
    title="split-KV (flash-decoding): NUM_SPLITS programs per (batch, KV head), then a combine kernel",
    description="""
        Grid (B * Hkv, splits); each program runs the grouped online softmax over one contiguous chunk of the
        context and writes unnormalized partials (acc, running max, running sum) to an fp32 workspace; a
        combine kernel per (batch, query head) rescales the partials by exp2(m_s - max) and normalizes.
        NUM_SPLITS=auto aims at about two waves of programs.
    """,
    rationale="""
        Decode batches expose only B * Hkv programs (1..64 here) against 132-256 SMs; splitting the context
        fills the machine and is the only way to reach HBM bandwidth for long single sequences (B=1, L=4096).
        Costs a small fp32 round trip and a second launch: for short contexts use 1-2 splits.
    """,
    difficulty=4,
    expected_speedup=3.0,
    knobs={"NUM_SPLITS": ("auto", 4, 8, 16, 32, 2), **GROUP_KNOBS},
    constraint=fma_fits,
)


# ---- risky: the whole context in one block ---------------------------------------------------------------------


SINGLE_BLOCK = _template(
    "single_block",
    decision="reduction order",
    title="whole context in one fixed BLOCK_L block: plain softmax, no KV loop",
    description="""
        The grouped mapping without the online softmax: one [BLOCK_G, BLOCK_L] score tile, an exact max and
        sum, one P @ V; BLOCK_L is fixed ahead of time.
    """,
    rationale="""
        No rescaling and no loop-carried state: the fastest form for short contexts. Fails when L > BLOCK_L:
        keys past BLOCK_L are ignored (numerical mismatch). The default 128 passes the CPU subset (L <= 100)
        but fails L = 1000..4096; BLOCK_L=64 fails the L=100 CPU workload.
    """,
    difficulty=2,
    expected_speedup=2.0,
    knobs={"BLOCK_L": (128, 256, 512, 64), "num_warps": (4, 8)},
)


TEMPLATES = (PER_HEAD, GROUPED, SPLIT_KV, SINGLE_BLOCK)
