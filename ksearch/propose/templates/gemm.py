"""Dense GEMM (task `matmul`, run(a, b, c), a [M, K] and b [K, N] row-major): tiling, program
order, split-K and persistent tile loops, all with tl.dot and an fp32 accumulator.

Loads wrap the M and N offsets modulo M and N (always in bounds, no mask; the store is masked), and
drop the K mask when K is a multiple of the K step (EVEN_K, decided in `run`), so the hot loop of
the aligned LLM shapes has no masks while ragged shapes stay correct.
"""

from __future__ import annotations

from ksearch.propose.templates.base import NUM_SMS_HELPER, Template, module

TASKS = ("matmul",)
RUN_SIG = "def run(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:\n"
SMEM_LIMIT = 228 * 1024  # bytes of shared memory per SM on H100 and B200 (MI355X LDS: 160 KiB)
ACC_REGS_LIMIT = 128  # fp32 accumulator registers per thread (32-wide warps) beyond which the tile spills


def smem_bytes(k: dict, itemsize: int = 2) -> int:
    """Shared memory of the software pipeline: A and B tiles per stage (fp16/bf16 operands)."""
    return (k["BLOCK_M"] * k["BLOCK_K"] + k["BLOCK_K"] * k["BLOCK_N"]) * itemsize * k["num_stages"]


def acc_regs(k: dict) -> int:
    """fp32 accumulator registers per thread with 32-wide warps."""
    return k["BLOCK_M"] * k["BLOCK_N"] // (32 * k["num_warps"])


def tile_fits(k: dict) -> bool:
    return smem_bytes(k) <= SMEM_LIMIT and acc_regs(k) <= ACC_REGS_LIMIT


_GROUPED_PIDS = (
    "{i}width = GROUP_M * num_pid_n\n"
    "{i}group_id = {tile} // width\n"
    "{i}first_m = group_id * GROUP_M\n"
    "{i}group_rows = tl.minimum(num_pid_m - first_m, GROUP_M)\n"
    "{i}pid_m = first_m + ({tile} % width) % group_rows\n"
    "{i}pid_n = ({tile} % width) // group_rows\n"
)

_K_LOOP = (
    "{i}offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)\n"
    "{i}offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)\n"
    "{i}rm = offs_m % M\n"
    "{i}rn = offs_n % N\n"
    "{i}rk = tl.arange(0, BLOCK_K)\n"
    "{i}a_ptrs = a_ptr + rm[:, None] * stride_am + rk[None, :] * stride_ak\n"
    "{i}b_ptrs = b_ptr + rk[:, None] * stride_bk + rn[None, :] * stride_bn\n"
    "{i}acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)\n"
    "{i}# whole K tiles without masks; a ragged K tail (EVEN_K false) gets one masked step after the loop\n"
    "{i}for kt in range(0, K // BLOCK_K):\n"
    "{i}    a = tl.load(a_ptrs)\n"
    "{i}    b = tl.load(b_ptrs)\n"
    "{i}    acc = tl.dot(a, b, acc)\n"
    "{i}    a_ptrs += BLOCK_K * stride_ak\n"
    "{i}    b_ptrs += BLOCK_K * stride_bk\n"
    "{i}if not EVEN_K:\n"
    "{i}    k_left = K % BLOCK_K\n"
    "{i}    a = tl.load(a_ptrs, mask=rk[None, :] < k_left, other=0.0)\n"
    "{i}    b = tl.load(b_ptrs, mask=rk[:, None] < k_left, other=0.0)\n"
    "{i}    acc = tl.dot(a, b, acc)\n"
    "{i}c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn\n"
    "{i}tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))\n"
)

_PARAMS = (
    "a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,\n"
    "{pad}BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,\n"
    "{pad}EVEN_K: tl.constexpr"
)

_RUN_HEAD = (
    "    M, K = a.shape\n"
    "    N = b.shape[1]\n"
    "    BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M = {BLOCK_M}, {BLOCK_N}, {BLOCK_K}, {GROUP_M}\n"
    "    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)\n"
)
_LAUNCH_ARGS = (
    "a, b, c, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),\n"
    "{pad}BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M, EVEN_K=K % BLOCK_K == 0,\n"
    "{pad}num_warps={num_warps}, num_stages={num_stages})\n"
)

_COMMON_RATIONALE = (
    "fp32 accumulator in registers, operands staged through shared memory by the num_stages "
    "software pipeline (wgmma on sm_90a, tcgen05 on sm_100a, MFMA on gfx950). "
)


# ---- tiled, grouped program order ---------------------------------------------------------------------------


def _gen_tiled(task_name: str, k: dict) -> str:
    pad = " " * 18
    kernel = (
        "@triton.jit\n"
        f"def matmul_kernel({_PARAMS.format(pad=pad)}):\n"
        "    pid = tl.program_id(0)\n"
        "    num_pid_m = tl.cdiv(M, BLOCK_M)\n"
        "    num_pid_n = tl.cdiv(N, BLOCK_N)\n"
        + _GROUPED_PIDS.format(i="    ", tile="pid")
        + _K_LOOP.format(i="    ")
    )
    run = _RUN_HEAD.format(**k) + "    matmul_kernel[(num_tiles,)](" + _LAUNCH_ARGS.format(pad=" " * 32, **k)
    return module(TILED, task_name, kernel, RUN_SIG + run)


TILED = Template(
    id="matmul/tiled",
    tasks=TASKS,
    decision="tiling",
    title="one BLOCK_M x BLOCK_N tile per program, grouped (L2-swizzled) order",
    description=(
        "1-D grid over output tiles, remapped so GROUP_M consecutive programs walk down a column band "
        "of tiles (they share B tiles and a few A row panels in L2); each program loops over K in "
        "BLOCK_K steps with tl.dot into an fp32 accumulator."
    ),
    rationale=(
        "The standard high-performance Triton GEMM: "
        + _COMMON_RATIONALE
        + "128x256x64 with 8 warps, 3 stages, "
        "GROUP_M 8, and 128x128x64 with 4 warps, 4 stages, are near cuBLAS on H100 for fp16 4096^3. Big tiles "
        "waste work on decode shapes (M=1..16): there BLOCK_M 16-64 or split-K win."
    ),
    difficulty=2,
    expected_speedup=0.9,
    knobs={
        "BLOCK_M": (128, 64, 256, 32, 16),
        "BLOCK_N": (256, 128, 64, 32),
        "BLOCK_K": (64, 32, 128),
        "GROUP_M": (8, 1, 4, 16),
        "num_stages": (3, 4, 2, 5),
        "num_warps": (8, 4),
    },
    generate=_gen_tiled,
    constraint=tile_fits,
)


# ---- split-K ------------------------------------------------------------------------------------------------------


def _gen_split_k(task_name: str, k: dict) -> str:
    atomic = k["REDUCE"] == "atomic"
    kernels = (
        "@triton.jit\n"
        "def matmul_splitk_kernel(a_ptr, b_ptr, ws_ptr, M, N, K, K_PER_SPLIT, stride_am, stride_ak, stride_bk, stride_bn,\n"
        "                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,\n"
        "                         EVEN_K: tl.constexpr, ATOMIC: tl.constexpr):\n"
        "    pid_m = tl.program_id(0)\n"
        "    pid_n = tl.program_id(1)\n"
        "    split = tl.program_id(2)\n"
        "    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)\n"
        "    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)\n"
        "    rm = offs_m % M\n"
        "    rn = offs_n % N\n"
        "    rk = split * K_PER_SPLIT + tl.arange(0, BLOCK_K)\n"
        "    a_ptrs = a_ptr + rm[:, None] * stride_am + rk[None, :] * stride_ak\n"
        "    b_ptrs = b_ptr + rk[:, None] * stride_bk + rn[None, :] * stride_bn\n"
        "    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)\n"
        "    for k0 in range(0, K_PER_SPLIT, BLOCK_K):\n"
        "        if EVEN_K:\n"
        "            a = tl.load(a_ptrs)\n"
        "            b = tl.load(b_ptrs)\n"
        "        else:\n"
        "            k_ok = rk + k0 < K\n"
        "            a = tl.load(a_ptrs, mask=k_ok[None, :], other=0.0)\n"
        "            b = tl.load(b_ptrs, mask=k_ok[:, None], other=0.0)\n"
        "        acc = tl.dot(a, b, acc)\n"
        "        a_ptrs += BLOCK_K * stride_ak\n"
        "        b_ptrs += BLOCK_K * stride_bk\n"
        "    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)\n"
        "    tile = offs_m[:, None] * N + offs_n[None, :]\n"
        "    if ATOMIC:\n"
        "        tl.atomic_add(ws_ptr + tile, acc, mask=mask)\n"
        "    else:\n"
        "        # every split stores its whole partial tile (zeros past K), so the workspace is fully written\n"
        "        tl.store(ws_ptr + split * M * N + tile, acc, mask=mask)\n"
        "\n\n"
        "@triton.jit\n"
        "def splitk_reduce_kernel(ws_ptr, c_ptr, M, N, stride_cm, stride_cn, PARTS: tl.constexpr, BLOCK: tl.constexpr):\n"
        "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)\n"
        "    mask = offs < M * N\n"
        "    total = tl.zeros((BLOCK,), dtype=tl.float32)\n"
        "    for s in tl.static_range(PARTS):\n"
        "        total += tl.load(ws_ptr + s * M * N + offs, mask=mask, other=0.0)\n"
        "    row = offs // N\n"
        "    col = offs % N\n"
        "    tl.store(c_ptr + row * stride_cm + col * stride_cn, total.to(c_ptr.dtype.element_ty), mask=mask)\n"
    )
    if atomic:
        workspace = (
            "    # fp32 scratch, zeroed: the harness poisons c with NaN, so never accumulate into c itself\n"
            "    ws = torch.zeros((M, N), dtype=torch.float32, device=a.device)\n"
        )
        parts = "1"
    else:
        workspace = "    ws = torch.empty((SPLIT_K, M, N), dtype=torch.float32, device=a.device)\n"
        parts = "SPLIT_K"
    run = (
        "    M, K = a.shape\n"
        "    N = b.shape[1]\n"
        f"    BLOCK_M, BLOCK_N, BLOCK_K, SPLIT_K = {k['BLOCK_M']}, {k['BLOCK_N']}, {k['BLOCK_K']}, {k['SPLIT_K']}\n"
        "    k_per_split = triton.cdiv(triton.cdiv(K, SPLIT_K), BLOCK_K) * BLOCK_K\n"
        + workspace
        + "    grid = (triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N), SPLIT_K)\n"
        "    matmul_splitk_kernel[grid](a, b, ws, M, N, K, k_per_split, a.stride(0), a.stride(1), b.stride(0), b.stride(1),\n"
        "                               BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,\n"
        "                               EVEN_K=K % (BLOCK_K * SPLIT_K) == 0, ATOMIC=" + str(atomic) + ",\n"
        f"                               num_warps={k['num_warps']}, num_stages={k['num_stages']})\n"
        "    BLOCK = 1024\n"
        f"    splitk_reduce_kernel[(triton.cdiv(M * N, BLOCK),)](ws, c, M, N, c.stride(0), c.stride(1), PARTS={parts},\n"
        "                                                       BLOCK=BLOCK, num_warps=4)\n"
    )
    return module(SPLIT_K, task_name, kernels, RUN_SIG + run)


SPLIT_K = Template(
    id="matmul/split_k",
    tasks=TASKS,
    decision="parallelization over K",
    title="split-K: SPLIT_K programs per output tile, fp32 partials reduced in a second pass",
    description=(
        "3-D grid (M tiles, N tiles, SPLIT_K); each program reduces one K slice of its tile with tl.dot "
        "and writes the fp32 partial to a per-split workspace (REDUCE=workspace, deterministic) or "
        "atomically adds it into a zeroed fp32 scratch (REDUCE=atomic); a second kernel sums the "
        "partials, casts and writes c."
    ),
    rationale=(
        "Decode and small-M shapes (M=1..128 with K=4096..8192) have too few output tiles to fill 132+ SMs; "
        "splitting K multiplies the programs by SPLIT_K at the cost of an fp32 round trip of M x N x SPLIT_K, "
        "which is small when M is small. Useless for the compute-bound prefill shapes."
    ),
    difficulty=3,
    expected_speedup=1.2,
    knobs={
        "BLOCK_M": (64, 16, 32, 128),
        "BLOCK_N": (128, 64, 256, 32),
        "BLOCK_K": (64, 128, 32),
        "SPLIT_K": (4, 2, 8, 16),
        "REDUCE": ("workspace", "atomic"),
        "num_stages": (3, 4, 2, 5),
        "num_warps": (4, 8),
    },
    generate=_gen_split_k,
    constraint=tile_fits,
)


# ---- persistent tile loop ------------------------------------------------------------------------------------------


def _gen_persistent(task_name: str, k: dict) -> str:
    pad = " " * 29
    kernel = (
        "@triton.jit\n"
        f"def matmul_persistent_kernel({_PARAMS.format(pad=pad)}):\n"
        "    num_pid_m = tl.cdiv(M, BLOCK_M)\n"
        "    num_pid_n = tl.cdiv(N, BLOCK_N)\n"
        "    num_tiles = num_pid_m * num_pid_n\n"
        "    for tile in range(tl.program_id(0), num_tiles, tl.num_programs(0)):\n"
        + _GROUPED_PIDS.format(i="        ", tile="tile")
        + _K_LOOP.format(i="        ")
    )
    run = (
        _RUN_HEAD.format(**k)
        + f"    grid = (max(1, min(num_tiles, _num_sms(a) * {k['PROGRAMS_PER_SM']})),)\n"
        + "    matmul_persistent_kernel[grid]("
        + _LAUNCH_ARGS.format(pad=" " * 35, **k)
    )
    return module(PERSISTENT, task_name, kernel, RUN_SIG + run, extra=NUM_SMS_HELPER)


PERSISTENT = Template(
    id="matmul/persistent",
    tasks=TASKS,
    decision="tile scheduling",
    title="persistent grid: SM count x k programs loop over output tiles in grouped order",
    description=(
        "Grid of min(tiles, SMs x PROGRAMS_PER_SM); each program walks tiles pid, pid + grid, ... in the "
        "GROUP_M-swizzled order, running the full K loop for each and storing the tile."
    ),
    rationale=(
        _COMMON_RATIONALE + "A persistent grid removes the tail wave of the one-program-per-tile launch and "
        "keeps concurrently running tiles close in the swizzled order (better L2 reuse); it pays when the tile "
        "count is a few waves (256 x 8192, 2048 x 4096). Without epilogue/mainloop overlap it is rarely much "
        "faster than the plain tiled kernel."
    ),
    difficulty=3,
    expected_speedup=0.95,
    knobs={
        "BLOCK_M": (128, 64, 256, 32, 16),
        "BLOCK_N": (128, 256, 64, 32),
        "BLOCK_K": (64, 32, 128),
        "GROUP_M": (8, 1, 4, 16),
        "num_stages": (4, 3, 2, 5),
        "num_warps": (8, 4),
        "PROGRAMS_PER_SM": (1, 2),
    },
    generate=_gen_persistent,
    constraint=tile_fits,
)


# ---- tiled with TMA tensor descriptors -------------------------------------------------------------------------


def _gen_tma(task_name: str, k: dict) -> str:
    kernel = (
        "@triton.jit\n"
        "def matmul_tma_kernel(a_desc, b_desc, c_desc, M, N, K,\n"
        "                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):\n"
        "    pid = tl.program_id(0)\n"
        "    num_pid_m = tl.cdiv(M, BLOCK_M)\n"
        "    num_pid_n = tl.cdiv(N, BLOCK_N)\n"
        + _GROUPED_PIDS.format(i="    ", tile="pid")
        + "    off_m = pid_m * BLOCK_M\n"
        "    off_n = pid_n * BLOCK_N\n"
        "    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)\n"
        "    # the descriptors zero-fill out-of-bounds rows and columns (the ragged K tail included)\n"
        "    for kt in range(0, tl.cdiv(K, BLOCK_K)):\n"
        "        a = a_desc.load([off_m, kt * BLOCK_K])\n"
        "        b = b_desc.load([kt * BLOCK_K, off_n])\n"
        "        acc = tl.dot(a, b, acc)\n"
        "    # and clip the store to the tensor's bounds\n"
        "    c_desc.store([off_m, off_n], acc.to(c_desc.dtype))\n"
    )
    run = (
        _RUN_HEAD.format(**k)
        + "    # host-side TMA descriptors: row strides must be multiples of 16 bytes (true for every suite shape)\n"
        "    a_desc = TensorDescriptor.from_tensor(a, [BLOCK_M, BLOCK_K])\n"
        "    b_desc = TensorDescriptor.from_tensor(b, [BLOCK_K, BLOCK_N])\n"
        "    c_desc = TensorDescriptor.from_tensor(c, [BLOCK_M, BLOCK_N])\n"
        "    matmul_tma_kernel[(num_tiles,)](a_desc, b_desc, c_desc, M, N, K,\n"
        "                                    BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,\n"
        f"                                    num_warps={k['num_warps']}, num_stages={k['num_stages']})\n"
    )
    return module(
        TMA,
        task_name,
        kernel,
        RUN_SIG + run,
        extra="from triton.tools.tensor_descriptor import TensorDescriptor\n",
    )


TMA = Template(
    id="matmul/tma",
    tasks=TASKS,
    decision="operand staging",
    title="tiled GEMM fed by TMA tensor descriptors (hardware bounds handling)",
    description=(
        "The grouped tiled GEMM with A, B and C accessed through host-side tensor descriptors: each K step "
        "is one bulk tensor copy per operand into shared memory (zero-filled past the edges), the "
        "epilogue one clipped bulk store. No pointer arithmetic, masks or modulo in the kernel."
    ),
    rationale=(
        "On sm_90a/sm_100a TMA is the operand path the fast GEMMs use: one thread issues the copy, the "
        "pipeline needs no address registers, and wgmma/tcgen05 read the swizzled tiles directly (the audit "
        "expects cp.async.bulk.tensor there). On gfx950 Triton lowers descriptors to ordinary loads. Requires "
        "16-byte aligned row strides (every suite shape qualifies; an odd K or N would assert in run)."
    ),
    difficulty=3,
    expected_speedup=1.0,
    knobs={
        "BLOCK_M": (128, 64, 256, 32, 16),
        "BLOCK_N": (256, 128, 64, 32),
        "BLOCK_K": (64, 32, 128),
        "GROUP_M": (8, 1, 4, 16),
        "num_stages": (3, 4, 2, 5),
        "num_warps": (8, 4),
    },
    generate=_gen_tma,
    constraint=tile_fits,
)


# ---- risky: K wrapped instead of masked ------------------------------------------------------------------------


def _gen_k_unmasked(task_name: str, k: dict) -> str:
    pad = " " * 27
    kernel = (
        "@triton.jit\n"
        f"def matmul_k_wrap_kernel({_PARAMS.format(pad=pad)}):\n"
        "    pid = tl.program_id(0)\n"
        "    num_pid_m = tl.cdiv(M, BLOCK_M)\n"
        "    num_pid_n = tl.cdiv(N, BLOCK_N)\n"
        + _GROUPED_PIDS.format(i="    ", tile="pid")
        + "    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)\n"
        "    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)\n"
        "    rm = offs_m % M\n"
        "    rn = offs_n % N\n"
        "    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)\n"
        "    for k0 in range(0, K, BLOCK_K):\n"
        "        # the modulo trick of the M/N offsets applied to K too: in bounds, no mask\n"
        "        rk = (k0 + tl.arange(0, BLOCK_K)) % K\n"
        "        a = tl.load(a_ptr + rm[:, None] * stride_am + rk[None, :] * stride_ak)\n"
        "        b = tl.load(b_ptr + rk[:, None] * stride_bk + rn[None, :] * stride_bn)\n"
        "        acc = tl.dot(a, b, acc)\n"
        "    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn\n"
        "    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))\n"
    )
    run = (
        _RUN_HEAD.format(**k)
        + "    matmul_k_wrap_kernel[(num_tiles,)]("
        + _LAUNCH_ARGS.format(pad=" " * 39, **k)
    )
    return module(K_UNMASKED, task_name, kernel, RUN_SIG + run)


K_UNMASKED = Template(
    id="matmul/k_unmasked",
    tasks=TASKS,
    decision="boundary handling",
    title="K offsets wrapped modulo K instead of masked (no K mask at all)",
    description=(
        "The tiled kernel with the K tail handled like the M/N edges: offsets taken modulo K so every "
        "load is in bounds and unmasked. Identical to the tiled kernel when K is a multiple of BLOCK_K."
    ),
    rationale=(
        "Saves the K mask in the hot loop for every shape, not only aligned ones. Fails when K % BLOCK_K != 0: "
        "the wrapped tail re-adds the first K columns (numerical mismatch). Every LLM shape of the suite has "
        "K a multiple of 128 and passes, but the ragged_m96_n80_k72 CPU workload fails for every BLOCK_K."
    ),
    difficulty=2,
    expected_speedup=0.9,
    knobs={
        "BLOCK_M": (64, 128, 256),
        "BLOCK_N": (128, 64, 256),
        "BLOCK_K": (64, 32, 128),
        "GROUP_M": (8, 1, 4),
        "num_stages": (3, 4, 2),
        "num_warps": (4, 8),
    },
    generate=_gen_k_unmasked,
    constraint=tile_fits,
)


TEMPLATES = (TILED, TMA, SPLIT_K, PERSISTENT, K_UNMASKED)
