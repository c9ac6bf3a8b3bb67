"""MoE top-k routing (task `moe_topk_routing`, run(logits, topk_weights, topk_ids)): per token, the K
largest router logits in descending order, then a softmax over those K.

Selection runs on the logits themselves (softmax is monotone, so the chosen set and order are the
same as selecting on probabilities, and exp rounding cannot create ties between distinct logits);
the softmax over the K chosen logits is computed in fp32 afterwards.
"""

from __future__ import annotations

from ksearch.propose.templates.base import Template, module, warps_expr

TASKS = ("moe_topk_routing",)
RUN_SIG = "def run(logits: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor) -> None:\n"

_PARAMS = (
    "logits_ptr, w_ptr, ids_ptr, T, E, stride_l, stride_w, stride_i,\n"
    "{pad}K: tl.constexpr, ROWS: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr"
)

# Softmax over the chosen logits and the stores, shared by every kernel here.
_EPILOGUE = (
    "    first = tl.where(row_ok, tl.max(top_v, axis=1), 0.0)  # the largest chosen logit\n"
    "    p = tl.where(kk[None, :] < K, tl.exp(top_v - first[:, None]), 0.0)\n"
    "    w = p / tl.where(row_ok, tl.sum(p, axis=1), 1.0)[:, None]\n"
    "    out_mask = row_ok[:, None] & (kk[None, :] < K)\n"
    "    tl.store(w_ptr + rows[:, None] * stride_w + kk[None, :], w, mask=out_mask)\n"
    "    tl.store(ids_ptr + rows[:, None] * stride_i + kk[None, :], top_i, mask=out_mask)\n"
)

_PROLOGUE = (
    "    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)\n"
    "    row_ok = rows < T\n"
    "    e = tl.arange(0, BLOCK_E)\n"
    "    kk = tl.arange(0, BLOCK_K)\n"
    "    vals = tl.load(logits_ptr + rows[:, None] * stride_l + e[None, :],\n"
    '                   mask=row_ok[:, None] & (e[None, :] < E), other=-float("inf")).to(tl.float32)\n'
    '    top_v = tl.full([ROWS, BLOCK_K], -float("inf"), dtype=tl.float32)\n'
    "    top_i = tl.zeros([ROWS, BLOCK_K], dtype=tl.int32)\n"
)

_ARGMAX_ROUNDS = (
    "    for j in tl.static_range(K):\n"
    "        best = tl.max(vals, axis=1)\n"
    "        # the smallest column holding the max (rows are tie-free, so the only one)\n"
    "        idx = tl.min(tl.where(vals == best[:, None], e[None, :], BLOCK_E), axis=1)\n"
    "        top_v = tl.where(kk[None, :] == j, best[:, None], top_v)\n"
    "        top_i = tl.where(kk[None, :] == j, idx[:, None], top_i)\n"
    '        vals = tl.where(e[None, :] == idx[:, None], -float("inf"), vals)\n'
)


def _run(kernel_name: str, rows: int, num_warps: int, block_e: str) -> str:
    pad = " " * (len(kernel_name) + 30)
    return (
        "    T, E = logits.shape\n"
        "    K = topk_ids.shape[1]\n"
        f"    ROWS = {rows}\n"
        f"    {kernel_name}[(triton.cdiv(T, ROWS),)](logits, topk_weights, topk_ids, T, E,\n"
        f"{pad}logits.stride(0), topk_weights.stride(0), topk_ids.stride(0),\n"
        f"{pad}K=K, ROWS=ROWS, BLOCK_E={block_e},\n"
        f"{pad}BLOCK_K=triton.next_power_of_2(K), num_warps={warps_expr(num_warps, f'ROWS * {block_e}')})\n"
    )


# ---- argmax rounds ---------------------------------------------------------------------------------------------------


def _gen_row_argmax(task_name: str, k: dict) -> str:
    kernel = (
        "@triton.jit\n"
        f"def topk_argmax_kernel({_PARAMS.format(pad=' ' * 23)}):\n" + _PROLOGUE + _ARGMAX_ROUNDS + _EPILOGUE
    )
    return module(
        ROW_ARGMAX,
        task_name,
        kernel,
        RUN_SIG + _run("topk_argmax_kernel", k["ROWS"], k["num_warps"], "triton.next_power_of_2(E)"),
    )


ROW_ARGMAX = Template(
    id="moe_topk_routing/row_argmax",
    tasks=TASKS,
    decision="selection algorithm",
    title="ROWS tokens per program, whole expert row in registers, K rounds of argmax-and-mask",
    description=(
        "Each program loads ROWS rows of logits (next power of two of E, -inf padding) and runs K rounds "
        "of: row max, smallest column equal to it, record, mask that column to -inf; then an fp32 softmax "
        "over the K chosen logits and the stores."
    ),
    rationale=(
        "Routing reads T x E fp32 once and writes T x K: bandwidth- and latency-bound with tiny rows (8-256 "
        "experts), so packing several tokens per program (ROWS) is what fills the warps; each round costs two "
        "reductions over the row. Far cheaper than a sort for K <= 8."
    ),
    difficulty=2,
    expected_speedup=3.0,
    knobs={"ROWS": (4, 1, 2, 8, 16, 32), "num_warps": (4, 1, 2, 8)},
    generate=_gen_row_argmax,
)


# ---- packed (value, index) keys: one reduction per round -----------------------------------------------------------


def _gen_packed(task_name: str, k: dict) -> str:
    kernel = (
        "@triton.jit\n"
        f"def topk_packed_kernel({_PARAMS.format(pad=' ' * 23)}):\n"
        + _PROLOGUE
        + "    # order-preserving int32 image of the float bits, then (key << 32) | reversed column: one max\n"
        "    # gives the largest logit and, among equals, the smallest column\n"
        "    bits = vals.to(tl.int32, bitcast=True)\n"
        "    key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)\n"
        "    packed = (key.to(tl.int64) << 32) | (BLOCK_E - 1 - e).to(tl.int64)[None, :]\n"
        "    for j in tl.static_range(K):\n"
        "        best = tl.max(packed, axis=1)\n"
        "        bkey = (best >> 32).to(tl.int32)\n"
        "        bval = tl.where(bkey < 0, bkey ^ 0x7FFFFFFF, bkey).to(tl.float32, bitcast=True)\n"
        "        idx = BLOCK_E - 1 - (best & 0x7FFFFFFF).to(tl.int32)\n"
        "        top_v = tl.where(kk[None, :] == j, bval[:, None], top_v)\n"
        "        top_i = tl.where(kk[None, :] == j, idx[:, None], top_i)\n"
        "        packed = tl.where(packed == best[:, None], -9223372036854775807, packed)\n" + _EPILOGUE
    )
    return module(
        PACKED,
        task_name,
        kernel,
        RUN_SIG + _run("topk_packed_kernel", k["ROWS"], k["num_warps"], "triton.next_power_of_2(E)"),
    )


PACKED = Template(
    id="moe_topk_routing/packed_argmax",
    tasks=TASKS,
    decision="selection algorithm",
    title="K rounds of a single int64 max over packed (logit key, column) values",
    description=(
        "Each logit becomes an int64 key: the float's bits mapped to an order-preserving int32 in the high "
        "half, the reversed column in the low half. One max per round yields both the value and the index; "
        "the winner is masked to INT64_MIN-ish and the next round starts."
    ),
    rationale=(
        "Halves the reductions per round (one 64-bit max instead of a max and an index min), which is most "
        "of the work for 128-256 experts with K=4..8. 64-bit shuffles cost two 32-bit ones, so the win is "
        "largest when the row spans several warps."
    ),
    difficulty=3,
    expected_speedup=3.5,
    knobs={"ROWS": (4, 1, 2, 8, 16, 32), "num_warps": (4, 1, 2, 8)},
    generate=_gen_packed,
)


# ---- risky: fixed expert block ---------------------------------------------------------------------------------------


def _gen_fixed_experts(task_name: str, k: dict) -> str:
    kernel = (
        "@triton.jit\n"
        f"def topk_fixed_kernel({_PARAMS.format(pad=' ' * 22)}):\n" + _PROLOGUE + _ARGMAX_ROUNDS + _EPILOGUE
    )
    return module(
        FIXED_EXPERTS,
        task_name,
        kernel,
        RUN_SIG + _run("topk_fixed_kernel", 1, k["num_warps"], str(k["BLOCK_E"])),
    )


FIXED_EXPERTS = Template(
    id="moe_topk_routing/fixed_experts",
    tasks=TASKS,
    decision="selection algorithm",
    title="one token per program with a fixed BLOCK_E expert block",
    description=(
        "Argmax rounds over a compile-time BLOCK_E chosen ahead of time (one specialization for every "
        "expert count) instead of the next power of two of E."
    ),
    rationale=(
        "One binary for every model. Fails when E > BLOCK_E: experts past BLOCK_E are never considered, so "
        "ids and weights are wrong whenever one of them is in the top K (the default 128 passes the CPU "
        "subset, E <= 128, but fails the 256-expert workload; BLOCK_E=32 fails E=60 and E=128 on CPU)."
    ),
    difficulty=1,
    expected_speedup=3.0,
    knobs={"BLOCK_E": (128, 256, 64, 32), "num_warps": (1, 2, 4)},
    generate=_gen_fixed_experts,
)


TEMPLATES = (ROW_ARGMAX, PACKED, FIXED_EXPERTS)
