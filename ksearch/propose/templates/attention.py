"""GQA decode attention (task `gqa_decode_attention`, run(q, k_cache, v_cache, o)): one query token per
sequence against a dense KV cache; query head h reads KV head h // (Hq / Hkv).

All templates use the online softmax in the exp2 domain (scores scaled by scale * log2(e)), fp32
statistics and accumulators. Decode attention is bandwidth-bound on the KV cache: the strategies
differ in how often each KV byte is read and in how many programs share the work.
"""

from __future__ import annotations

from ksearch.propose.templates.base import NUM_SMS_HELPER, Template, module

TASKS = ("gqa_decode_attention",)
RUN_SIG = "def run(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, o: torch.Tensor) -> None:\n"
LOG2E = 1.4426950408889634

_RUN_HEAD = (
    "    B, Hq, D = q.shape\n"
    "    Hkv, L = k_cache.shape[1], k_cache.shape[2]\n"
    "    GROUP = Hq // Hkv\n"
    f"    qk_scale = D ** -0.5 * {LOG2E!r}  # softmax scale in the exp2 domain\n"
)
_STRIDES = (
    "q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),\n"
    "{pad}v_cache.stride(0), v_cache.stride(1), v_cache.stride(2)"
)
_STRIDE_PARAMS = "sq_b, sq_h, sk_b, sk_h, sk_l, sv_b, sv_h, sv_l"


def _block_g(k: dict) -> str:
    """Python source for the query-group block: the group padded to 16 rows (mma.sync / MFMA) or 64 rows
    (the warpgroup MMA minimum: wgmma on sm_90a, tcgen05 on sm_100a) for tl.dot; the next power of two
    for the fma path."""
    qk = k.get("QK", "dot64")
    if qk == "fma":
        return "triton.next_power_of_2(GROUP)"
    return f"max({64 if qk == 'dot64' else 16}, triton.next_power_of_2(GROUP))"


def fma_fits(k: dict) -> bool:
    """The fma path holds a [G, BLOCK_N, D] product (G up to 8, D = 128) in registers: keep it near 256
    elements per thread, or the compile spills hundreds of KB and takes minutes."""
    return k["QK"] != "fma" or k["BLOCK_N"] <= 8 * k["num_warps"]


# The body shared by the grouped and split kernels: q tile, then the KV loop over [lo, hi).
def _group_prologue(i: str) -> str:
    return (
        f"{i}g = tl.arange(0, BLOCK_G)\n"
        f"{i}d = tl.arange(0, D)\n"
        f"{i}gmask = g < GROUP\n"
        f"{i}heads = kvh * GROUP + g\n"
        f"{i}q = tl.load(q_ptr + b * sq_b + heads[:, None] * sq_h + d[None, :], mask=gmask[:, None], other=0.0)\n"
        f"{i}k_base = k_ptr + b * sk_b + kvh * sk_h\n"
        f"{i}v_base = v_ptr + b * sv_b + kvh * sv_h\n"
        f'{i}m_i = tl.full([BLOCK_G], -float("inf"), dtype=tl.float32)\n'
        f"{i}l_i = tl.zeros([BLOCK_G], dtype=tl.float32)\n"
        f"{i}acc = tl.zeros([BLOCK_G, D], dtype=tl.float32)\n"
    )


def _group_loop(i: str, qk: str, lo: str, hi: str) -> str:
    if qk != "fma":
        scores = f"{i}    s = tl.dot(q, tl.trans(k)) * qk_scale\n"
        pv = f"{i}    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)\n"
    else:
        scores = f"{i}    s = tl.sum(q.to(tl.float32)[:, None, :] * k.to(tl.float32)[None, :, :], axis=2) * qk_scale\n"
        pv = f"{i}    acc = acc * alpha[:, None] + tl.sum(p[:, :, None] * v.to(tl.float32)[None, :, :], axis=1)\n"
    return (
        f"{i}for start in range({lo}, {hi}, BLOCK_N):\n"
        f"{i}    ls = start + tl.arange(0, BLOCK_N)\n"
        f"{i}    lmask = ls < {hi}\n"
        f"{i}    k = tl.load(k_base + ls[:, None] * sk_l + d[None, :], mask=lmask[:, None], other=0.0)\n"
        + scores
        + f'{i}    s = tl.where(lmask[None, :], s, -float("inf"))\n'
        f"{i}    # the first block always holds a real key, so m_new is finite from then on\n"
        f"{i}    m_new = tl.maximum(m_i, tl.max(s, axis=1))\n"
        f"{i}    alpha = tl.exp2(m_i - m_new)\n"
        f"{i}    p = tl.exp2(s - m_new[:, None])\n"
        f"{i}    l_i = l_i * alpha + tl.sum(p, axis=1)\n"
        f"{i}    v = tl.load(v_base + ls[:, None] * sv_l + d[None, :], mask=lmask[:, None], other=0.0)\n"
        + pv
        + f"{i}    m_i = m_new\n"
    )


# ---- one program per query head ----------------------------------------------------------------------------------


def _gen_per_head(task_name: str, k: dict) -> str:
    kernel = (
        "@triton.jit\n"
        f"def gqa_per_head_kernel(q_ptr, k_ptr, v_ptr, o_ptr, L, GROUP, qk_scale, {_STRIDE_PARAMS}, so_b, so_h,\n"
        "                        D: tl.constexpr, BLOCK_N: tl.constexpr):\n"
        "    b = tl.program_id(0)\n"
        "    h = tl.program_id(1)\n"
        "    kvh = h // GROUP\n"
        "    d = tl.arange(0, D)\n"
        "    q = tl.load(q_ptr + b * sq_b + h * sq_h + d).to(tl.float32) * qk_scale\n"
        "    k_base = k_ptr + b * sk_b + kvh * sk_h\n"
        "    v_base = v_ptr + b * sv_b + kvh * sv_h\n"
        '    m_i = -float("inf")\n'
        "    l_i = 0.0\n"
        "    acc = tl.zeros([D], dtype=tl.float32)\n"
        "    for start in range(0, L, BLOCK_N):\n"
        "        ls = start + tl.arange(0, BLOCK_N)\n"
        "        lmask = ls < L\n"
        "        k = tl.load(k_base + ls[:, None] * sk_l + d[None, :], mask=lmask[:, None], other=0.0).to(tl.float32)\n"
        '        s = tl.where(lmask, tl.sum(k * q[None, :], axis=1), -float("inf"))\n'
        "        m_new = tl.maximum(m_i, tl.max(s, axis=0))\n"
        "        alpha = tl.exp2(m_i - m_new)\n"
        "        p = tl.exp2(s - m_new)\n"
        "        v = tl.load(v_base + ls[:, None] * sv_l + d[None, :], mask=lmask[:, None], other=0.0).to(tl.float32)\n"
        "        acc = acc * alpha + tl.sum(p[:, None] * v, axis=0)\n"
        "        l_i = l_i * alpha + tl.sum(p, axis=0)\n"
        "        m_i = m_new\n"
        "    tl.store(o_ptr + b * so_b + h * so_h + d, (acc / l_i).to(o_ptr.dtype.element_ty))\n"
    )
    run = (
        _RUN_HEAD + f"    BLOCK_N = min({k['BLOCK_N']}, triton.next_power_of_2(L))\n"
        "    gqa_per_head_kernel[(B, Hq)](q, k_cache, v_cache, o, L, GROUP, qk_scale,\n"
        "                                 " + _STRIDES.format(pad=" " * 33) + ", o.stride(0), o.stride(1),\n"
        f"                                 D=D, BLOCK_N=BLOCK_N, num_warps={k['num_warps']})\n"
    )
    return module(PER_HEAD, task_name, kernel, RUN_SIG + run)


PER_HEAD = Template(
    id="gqa_decode_attention/per_head",
    tasks=TASKS,
    decision="work mapping",
    title="one program per (batch, query head), online softmax over KV blocks",
    description=(
        "Grid (B, Hq); each program streams its KV head's cache in BLOCK_N rows, scores with a "
        "broadcast multiply-and-sum (no tensor cores), keeps running max/sum and an fp32 accumulator."
    ),
    rationale=(
        "Simplest mapping with Hq-way parallelism per sequence; each KV head is read once per query head of "
        "its group (G = 4..8 times, mostly from L2). Good baseline; loses to the grouped mapping when the "
        "cache does not fit L2 and to split-KV when B * Hq is below the SM count."
    ),
    difficulty=1,
    expected_speedup=1.5,
    knobs={"BLOCK_N": (64, 32, 128, 16, 256), "num_warps": (4, 2, 8, 1)},
    generate=_gen_per_head,
)


# ---- one program per (batch, KV head) with the whole query group -------------------------------------------------


def _gen_grouped(task_name: str, k: dict) -> str:
    kernel = (
        "@triton.jit\n"
        f"def gqa_grouped_kernel(q_ptr, k_ptr, v_ptr, o_ptr, L, GROUP, Hkv, qk_scale, {_STRIDE_PARAMS}, so_b, so_h,\n"
        "                       D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr):\n"
        "    pid = tl.program_id(0)\n"
        "    b = pid // Hkv\n"
        "    kvh = pid % Hkv\n"
        + _group_prologue("    ")
        + _group_loop("    ", k["QK"], "0", "L")
        + "    out = acc / l_i[:, None]\n"
        "    tl.store(o_ptr + b * so_b + heads[:, None] * so_h + d[None, :], out.to(o_ptr.dtype.element_ty),\n"
        "             mask=gmask[:, None])\n"
    )
    run = (
        _RUN_HEAD + f"    BLOCK_G = {_block_g(k)}\n"
        f"    BLOCK_N = min({k['BLOCK_N']}, max(16, triton.next_power_of_2(L)))\n"
        "    gqa_grouped_kernel[(B * Hkv,)](q, k_cache, v_cache, o, L, GROUP, Hkv, qk_scale,\n"
        "                                   "
        + _STRIDES.format(pad=" " * 35)
        + ", o.stride(0), o.stride(1),\n"
        "                                   D=D, BLOCK_G=BLOCK_G, BLOCK_N=BLOCK_N,\n"
        f"                                   num_warps={k['num_warps']}, num_stages={k['num_stages']})\n"
    )
    return module(GROUPED, task_name, kernel, RUN_SIG + run)


GROUPED = Template(
    id="gqa_decode_attention/grouped",
    tasks=TASKS,
    decision="work mapping",
    title="one program per (batch, KV head) computing all G query heads of the group",
    description=(
        "Grid (B * Hkv); the program loads the G query heads of its group as a [BLOCK_G, D] tile and "
        "streams the KV head once: scores [BLOCK_G, BLOCK_N] and P @ V with tl.dot, P rounded to the input "
        "dtype (QK=dot64: group padded to 64 rows, the warpgroup-MMA minimum, so wgmma/tcgen05 are used; "
        "QK=dot: padded to 16 rows, mma.sync/MFMA) or broadcast multiply-and-sum in fp32 (QK=fma, "
        "which spills unless BLOCK_N is small: valid() allows BLOCK_N <= 8 x num_warps)."
    ),
    rationale=(
        "Every KV byte is read exactly once (the byte minimum) and the G heads share it through registers "
        "and tensor cores. Parallelism is only B * Hkv programs: ideal for large batches (B=16, Hkv=1 still "
        "only 16 programs: split-KV wins there), poor for B=1. The padded MMA rows are free in a "
        "bandwidth-bound kernel; dot (16 rows) needs fewer registers but emits no wgmma/tcgen05, which the "
        "sm_90a/sm_100a attention audit reports as a missing tensor-core path."
    ),
    difficulty=3,
    expected_speedup=2.5,
    knobs={
        "BLOCK_N": (64, 32, 128, 16),
        "QK": ("dot64", "dot", "fma"),
        "num_warps": (4, 8, 2),
        "num_stages": (2, 1, 3, 4),
    },
    generate=_gen_grouped,
    constraint=fma_fits,
)


# ---- split-KV (flash-decoding) -----------------------------------------------------------------------------------


def _gen_split_kv(task_name: str, k: dict) -> str:
    kernels = (
        "@triton.jit\n"
        f"def gqa_split_kernel(q_ptr, k_ptr, v_ptr, ws_acc, ws_m, ws_l, L, GROUP, Hkv, Hq, CHUNK, NUM_SPLITS, qk_scale,\n"
        f"                     {_STRIDE_PARAMS},\n"
        "                     D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr):\n"
        "    pid = tl.program_id(0)\n"
        "    split = tl.program_id(1)\n"
        "    b = pid // Hkv\n"
        "    kvh = pid % Hkv\n"
        "    lo = split * CHUNK\n"
        "    hi = tl.minimum(lo + CHUNK, L)\n"
        + _group_prologue("    ")
        + _group_loop("    ", k["QK"], "lo", "hi")
        + "    # unnormalized partials; an empty split leaves m=-inf, l=0, acc=0 and weighs 0 in the combine\n"
        "    part = (b * Hq + heads) * NUM_SPLITS + split\n"
        "    tl.store(ws_acc + part[:, None] * D + d[None, :], acc, mask=gmask[:, None])\n"
        "    tl.store(ws_m + part, m_i, mask=gmask)\n"
        "    tl.store(ws_l + part, l_i, mask=gmask)\n"
        "\n\n"
        "@triton.jit\n"
        "def gqa_combine_kernel(ws_acc, ws_m, ws_l, o_ptr, Hq, NUM_SPLITS, so_b, so_h,\n"
        "                       D: tl.constexpr, BLOCK_S: tl.constexpr):\n"
        "    row = tl.program_id(0)\n"
        "    s = tl.arange(0, BLOCK_S)\n"
        "    d = tl.arange(0, D)\n"
        "    smask = s < NUM_SPLITS\n"
        '    m = tl.load(ws_m + row * NUM_SPLITS + s, mask=smask, other=-float("inf"))\n'
        "    lsum = tl.load(ws_l + row * NUM_SPLITS + s, mask=smask, other=0.0)\n"
        "    w = tl.exp2(m - tl.max(m, axis=0))\n"
        "    acc = tl.load(ws_acc + (row * NUM_SPLITS + s[:, None]) * D + d[None, :], mask=smask[:, None], other=0.0)\n"
        "    out = tl.sum(acc * w[:, None], axis=0) / tl.sum(lsum * w, axis=0)\n"
        "    b = row // Hq\n"
        "    h = row % Hq\n"
        "    tl.store(o_ptr + b * so_b + h * so_h + d, out.to(o_ptr.dtype.element_ty))\n"
    )
    if k["NUM_SPLITS"] == "auto":
        splits = (
            "    splits = max(1, min(n_blocks, triton.cdiv(2 * _num_sms(q), B * Hkv)))  # about two waves\n"
        )
    else:
        splits = f"    splits = min({k['NUM_SPLITS']}, n_blocks)\n"
    run = (
        _RUN_HEAD + f"    BLOCK_G = {_block_g(k)}\n"
        f"    BLOCK_N = min({k['BLOCK_N']}, max(16, triton.next_power_of_2(L)))\n"
        "    n_blocks = triton.cdiv(L, BLOCK_N)\n"
        + splits
        + "    chunk = triton.cdiv(n_blocks, splits) * BLOCK_N\n"
        "    splits = triton.cdiv(L, chunk)  # no empty split\n"
        "    ws_acc = torch.empty((B * Hq * splits, D), dtype=torch.float32, device=q.device)\n"
        "    ws_m = torch.empty((B * Hq * splits,), dtype=torch.float32, device=q.device)\n"
        "    ws_l = torch.empty((B * Hq * splits,), dtype=torch.float32, device=q.device)\n"
        "    gqa_split_kernel[(B * Hkv, splits)](q, k_cache, v_cache, ws_acc, ws_m, ws_l, L, GROUP, Hkv, Hq, chunk, splits,\n"
        "                                       qk_scale, " + _STRIDES.format(pad=" " * 39) + ",\n"
        "                                       D=D, BLOCK_G=BLOCK_G, BLOCK_N=BLOCK_N,\n"
        f"                                       num_warps={k['num_warps']}, num_stages={k['num_stages']})\n"
        "    gqa_combine_kernel[(B * Hq,)](ws_acc, ws_m, ws_l, o, Hq, splits, o.stride(0), o.stride(1),\n"
        "                                  D=D, BLOCK_S=triton.next_power_of_2(splits), num_warps=4)\n"
    )
    extra = NUM_SMS_HELPER if k["NUM_SPLITS"] == "auto" else ""
    return module(SPLIT_KV, task_name, kernels, RUN_SIG + run, extra=extra)


SPLIT_KV = Template(
    id="gqa_decode_attention/split_kv",
    tasks=TASKS,
    decision="parallelization over the context",
    title="split-KV (flash-decoding): NUM_SPLITS programs per (batch, KV head), then a combine kernel",
    description=(
        "Grid (B * Hkv, splits); each program runs the grouped online softmax over one contiguous chunk "
        "of the context and writes unnormalized partials (acc, running max, running sum) to an fp32 "
        "workspace; a combine kernel per (batch, query head) rescales the partials by exp2(m_s - max) and "
        "normalizes. NUM_SPLITS=auto aims at about two waves of programs."
    ),
    rationale=(
        "Decode batches expose only B * Hkv programs (1..64 here) against 132-256 SMs; splitting the context "
        "fills the machine and is the only way to reach HBM bandwidth for long single sequences "
        "(B=1, L=4096). Costs a small fp32 round trip and a second launch: for short contexts use 1-2 splits."
    ),
    difficulty=4,
    expected_speedup=3.0,
    knobs={
        "NUM_SPLITS": ("auto", 4, 8, 16, 32, 2),
        "BLOCK_N": (64, 32, 128, 16),
        "QK": ("dot64", "dot", "fma"),
        "num_warps": (4, 8, 2),
        "num_stages": (2, 1, 3, 4),
    },
    generate=_gen_split_kv,
    constraint=fma_fits,
)


# ---- risky: the whole context in one block ---------------------------------------------------------------------


def _gen_single_block(task_name: str, k: dict) -> str:
    kernel = (
        "@triton.jit\n"
        f"def gqa_single_block_kernel(q_ptr, k_ptr, v_ptr, o_ptr, L, GROUP, Hkv, qk_scale, {_STRIDE_PARAMS}, so_b, so_h,\n"
        "                            D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_L: tl.constexpr):\n"
        "    pid = tl.program_id(0)\n"
        "    b = pid // Hkv\n"
        "    kvh = pid % Hkv\n"
        "    g = tl.arange(0, BLOCK_G)\n"
        "    d = tl.arange(0, D)\n"
        "    gmask = g < GROUP\n"
        "    heads = kvh * GROUP + g\n"
        "    q = tl.load(q_ptr + b * sq_b + heads[:, None] * sq_h + d[None, :], mask=gmask[:, None], other=0.0)\n"
        "    ls = tl.arange(0, BLOCK_L)\n"
        "    lmask = ls < L\n"
        "    k = tl.load(k_ptr + b * sk_b + kvh * sk_h + ls[:, None] * sk_l + d[None, :], mask=lmask[:, None], other=0.0)\n"
        '    s = tl.where(lmask[None, :], tl.dot(q, tl.trans(k)) * qk_scale, -float("inf"))\n'
        "    p = tl.exp2(s - tl.max(s, axis=1)[:, None])\n"
        "    v = tl.load(v_ptr + b * sv_b + kvh * sv_h + ls[:, None] * sv_l + d[None, :], mask=lmask[:, None], other=0.0)\n"
        "    out = tl.dot(p.to(v.dtype), v) / tl.sum(p, axis=1)[:, None]\n"
        "    tl.store(o_ptr + b * so_b + heads[:, None] * so_h + d[None, :], out.to(o_ptr.dtype.element_ty),\n"
        "             mask=gmask[:, None])\n"
    )
    run = (
        _RUN_HEAD + "    BLOCK_G = max(64, triton.next_power_of_2(GROUP))  # warpgroup-MMA eligible\n"
        "    gqa_single_block_kernel[(B * Hkv,)](q, k_cache, v_cache, o, L, GROUP, Hkv, qk_scale,\n"
        "                                        "
        + _STRIDES.format(pad=" " * 40)
        + ", o.stride(0), o.stride(1),\n"
        f"                                        D=D, BLOCK_G=BLOCK_G, BLOCK_L={k['BLOCK_L']},\n"
        f"                                        num_warps={k['num_warps']})\n"
    )
    return module(SINGLE_BLOCK, task_name, kernel, RUN_SIG + run)


SINGLE_BLOCK = Template(
    id="gqa_decode_attention/single_block",
    tasks=TASKS,
    decision="reduction order",
    title="whole context in one fixed BLOCK_L block: plain softmax, no KV loop",
    description=(
        "The grouped mapping without the online softmax: one [BLOCK_G, BLOCK_L] score tile, an exact "
        "max and sum, one P @ V; BLOCK_L is fixed ahead of time."
    ),
    rationale=(
        "No rescaling and no loop-carried state: the fastest form for short contexts. Fails when "
        "L > BLOCK_L: keys past BLOCK_L are ignored (numerical mismatch). The default 128 passes the CPU "
        "subset (L <= 100) but fails L = 1000..4096; BLOCK_L=64 fails the L=100 CPU workload."
    ),
    difficulty=2,
    expected_speedup=2.0,
    knobs={"BLOCK_L": (128, 256, 512, 64), "num_warps": (4, 8)},
    generate=_gen_single_block,
)


TEMPLATES = (PER_HEAD, GROUPED, SPLIT_KV, SINGLE_BLOCK)
