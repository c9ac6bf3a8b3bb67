"""Dense GEMM (task `matmul`, run(a, b, c), a [M, K] and b [K, N] row-major): tiling, program
order, split-K and persistent tile loops, all with tl.dot and an fp32 accumulator. Kernels:
`kernels/matmul_*.py` (the boundary handling they share: `matmul_parts.py`).
"""

from __future__ import annotations

from ksearch.propose.templates.base import family

TASKS = ("matmul",)
SMEM_LIMIT = 228 * 1024  # bytes of shared memory per SM on H100 and B200 (MI355X LDS: 160 KiB)
ACC_REGS_LIMIT = 128  # fp32 accumulator registers per thread (32-wide warps) beyond which the tile spills


def smem_bytes(k: dict, itemsize: int = 2) -> int:
    """Shared memory of the software pipeline: A and B tiles per stage (fp16/bf16 operands)."""
    return (k["BLOCK_M"] * k["BLOCK_K"] + k["BLOCK_K"] * k["BLOCK_N"]) * itemsize * k["num_stages"]


def acc_regs(k: dict, lanes: int = 32) -> int:
    """fp32 accumulator registers per thread with `lanes`-wide warps (AMD's waves: 64)."""
    return k["BLOCK_M"] * k["BLOCK_N"] // (lanes * k["num_warps"])


def tile_fits(k: dict) -> bool:
    return smem_bytes(k) <= SMEM_LIMIT and acc_regs(k) <= ACC_REGS_LIMIT


_template = family("matmul", TASKS, constraint=tile_fits)


_COMMON_RATIONALE = """
    fp32 accumulator in registers, operands staged through shared memory by the num_stages software
    pipeline (wgmma on sm_90a, tcgen05 on sm_100a, MFMA on gfx950).
"""
# the tile knobs of the tiled GEMMs (TMA too): 128x256x64, GROUP_M 8, 3 stages, 8 warps by default
TILE_KNOBS = {
    "BLOCK_M": (128, 64, 256, 32, 16),
    "BLOCK_N": (256, 128, 64, 32),
    "BLOCK_K": (64, 32, 128),
    "GROUP_M": (8, 1, 4, 16),
    "num_stages": (3, 4, 2, 5),
    "num_warps": (8, 4),
}


# ---- tiled, grouped program order ---------------------------------------------------------------------------


TILED = _template(
    "tiled",
    decision="tiling",
    title="one BLOCK_M x BLOCK_N tile per program, grouped (L2-swizzled) order",
    description="""
        1-D grid over output tiles, remapped so GROUP_M consecutive programs walk down a column band of tiles
        (they share B tiles and a few A row panels in L2); each program loops over K in BLOCK_K steps with
        tl.dot into an fp32 accumulator.
    """,
    rationale=f"""
        The standard high-performance Triton GEMM: {_COMMON_RATIONALE} 128x256x64 with 8 warps, 3 stages, GROUP_M 8, and 128x128x64 with 4 warps, 4 stages, are near
        cuBLAS on H100 for fp16 4096^3. Big tiles waste work on decode shapes (M=1..16): there BLOCK_M 16-64
        or split-K win.
    """,
    difficulty=2,
    expected_speedup=0.9,
    knobs=TILE_KNOBS,
)


# ---- tiled for AMD's matrix cores ---------------------------------------------------------------------------------


LDS_LIMIT = 160 * 1024  # bytes of LDS per CU on MI355X (gfx950)


def lds_fits(k: dict) -> bool:
    """The pipeline's tiles fit the LDS, and the fp32 accumulator leaves room in the VGPRs of 64-wide
    waves (256x256 over 8 waves, 128 a lane, spills on gfx950)."""
    return smem_bytes(k) <= LDS_LIMIT and acc_regs(k, lanes=64) <= 64


TILED_MFMA = _template(
    "tiled_mfma",
    source="matmul_tiled.py",
    backends=("hip",),
    constraint=lds_fits,
    decision="tiling",
    title="tiled GEMM with the AMD matrix-core launch options (MFMA shape, waves per EU)",
    description="""
        The grouped tiled GEMM launched with the options of Triton's AMD backend: matrix_instr_nonkdim picks
        the MFMA instruction (16: v_mfma_f32_16x16x32_f16 on gfx950, 32: v_mfma_f32_32x32x16_f16),
        waves_per_eu asks the compiler to fit that many waves per SIMD ("amdgpu-waves-per-eu"; 0: its own
        choice). kpack is not a knob: Triton resets it to 1 from gfx950 on.
    """,
    rationale=f"""
        {_COMMON_RATIONALE} On gfx950 a 256x128x64 tile with 8 waves and 2 stages compiles without spills
        (256x256 spills); 16x16 MFMAs suit most shapes, 32x32 ones large square tiles; waves_per_eu 1-2
        trades registers for occupancy. Searched only for AMD targets: the CUDA compiler refuses these options.
    """,
    difficulty=2,
    expected_speedup=0.9,
    knobs={
        "BLOCK_M": (256, 128, 64),
        "BLOCK_N": (128, 256, 64),
        "BLOCK_K": (64, 32),
        "GROUP_M": (8, 4),
        "num_stages": (2, 1, 3),
        "num_warps": (8, 4),
        "matrix_instr_nonkdim": (16, 32),
        "waves_per_eu": (0, 1, 2),
    },
)


# ---- split-K ------------------------------------------------------------------------------------------------------


FEW_SMS = 132  # an H100 SXM's SMs, the fewest of the CUDA targets (B200: 148)


DEEP_K = 1024  # K from which a 2-way split still leaves each slice 8+ steps of a 64-deep K tile


def split_k_share(axes: list[dict[str, int]]) -> float:
    """The share of workloads split-K is for: 128 x 128 output tiles too few to fill the GPU's SMs
    once, and K deep enough to split (a 96 x 80 x 72 GEMM has one tile and nothing to split)."""
    few = [a for a in axes if -(-a["M"] // 128) * -(-a["N"] // 128) < FEW_SMS and a["K"] >= DEEP_K]
    return len(few) / len(axes)


def split_k_speedup(axes: list[dict[str, int]]) -> float:
    """2.4x on shapes that leave SMs idle over a deep K (decode), 0.6x on the rest (prefill, tiny)."""
    return 0.6 + 1.8 * split_k_share(axes)


# the split-K tile knobs, both templates'
SPLIT_K_KNOBS = {
    "BLOCK_M": (64, 16, 32, 128),
    "BLOCK_N": (128, 64, 256, 32),
    "BLOCK_K": (64, 128, 32),
    # "sms": as many slices as fill the SMs in whole waves (k_splits in kernels/launch.py)
    "SPLIT_K": (4, 2, 8, 16, "sms"),
}


SPLIT_K = _template(
    "split_k",
    decision="parallelization over K",
    title="split-K: SPLIT_K programs per output tile, fp32 partials reduced in a second pass",
    description="""
        3-D grid (M tiles, N tiles, SPLIT_K); each program reduces one K slice of its tile with tl.dot and
        writes the fp32 partial to a per-split workspace (REDUCE=workspace, deterministic) or atomically adds
        it into a zeroed fp32 scratch (REDUCE=atomic); a second kernel sums the partials, casts and writes c.
    """,
    rationale="""
        Decode and small-M shapes (M=1..128 with K=4096..8192) have too few output tiles to fill 132+ SMs;
        splitting K multiplies the programs by SPLIT_K at the cost of an fp32 round trip of M x N x SPLIT_K,
        which is small when M is small. Useless for the compute-bound prefill shapes.
    """,
    difficulty=3,
    expected_speedup=1.2,
    speedup_on=split_k_speedup,
    knobs={
        **SPLIT_K_KNOBS,
        "REDUCE": ("workspace", "atomic"),
        "num_stages": (3, 4, 2, 5),
        "num_warps": (4, 8),
    },
)


# ---- split-K in one launch ------------------------------------------------------------------------------------------


SPLIT_K_FIXUP = _template(
    "split_k_fixup",
    decision="parallelization over K",
    title="split-K in one launch: the last program of a tile to finish sums its partials and writes c",
    description="""
        3-D grid (M tiles, N tiles, SPLIT_K); each program stores the fp32 partial of one K slice in its
        tile's workspace slot, then raises the tile's counter (an acq_rel atomic at GPU scope); the program
        that arrives last sums the SPLIT_K partials in split order (deterministic) and writes c.
    """,
    rationale="""
        Split-K for decode and small-M shapes without the second launch that sums the partials: the reduction
        runs inside the last program of each tile, on partials still in L2, so the op is one GEMM launch (and a
        zero-fill of one counter per tile). Rows past M are neither stored nor summed. Useless for the
        compute-bound prefill shapes, like split-K.
    """,
    difficulty=4,
    expected_speedup=1.2,
    speedup_on=split_k_speedup,
    knobs={
        **SPLIT_K_KNOBS,
        "num_stages": (3, 4, 2, 5),
        # 8 warps by default: the partial and the sum of the partials are both live in the last program
        "num_warps": (8, 4),
    },
)


# ---- persistent tile loop ------------------------------------------------------------------------------------------


PERSISTENT = _template(
    "persistent",
    decision="tile scheduling",
    title="persistent grid: SM count x k programs loop over output tiles in grouped order",
    description="""
        Grid of min(tiles, SMs x PROGRAMS_PER_SM); each program walks tiles pid, pid + grid, ... in the
        GROUP_M-swizzled order, running the full K loop for each and storing the tile.
    """,
    rationale=f"""
        {_COMMON_RATIONALE} A persistent grid removes the tail wave of the one-program-per-tile launch and
        keeps concurrently running tiles close in the swizzled order (better L2 reuse); it pays when the tile
        count is a few waves (256 x 8192, 2048 x 4096). Without epilogue/mainloop overlap it is rarely much
        faster than the plain tiled kernel.
    """,
    difficulty=3,
    expected_speedup=0.95,
    # the 128x128 tile with 4 stages by default; one or two programs per SM
    knobs={
        **TILE_KNOBS,
        "BLOCK_N": (128, 256, 64, 32),
        "num_stages": (4, 3, 2, 5),
        "PROGRAMS_PER_SM": (1, 2),
    },
)


# ---- tiled with TMA tensor descriptors -------------------------------------------------------------------------


TMA = _template(
    "tma",
    decision="operand staging",
    title="tiled GEMM fed by TMA tensor descriptors (hardware bounds handling)",
    description="""
        The grouped tiled GEMM with A, B and C accessed through host-side tensor descriptors: each K step is
        one bulk tensor copy per operand into shared memory (zero-filled past the edges), the epilogue one
        clipped bulk store. No pointer arithmetic, masks or modulo in the kernel.
    """,
    rationale="""
        On sm_90a/sm_100a TMA is the operand path the fast GEMMs use: one thread issues the copy, the pipeline
        needs no address registers, and wgmma/tcgen05 read the swizzled tiles directly (the audit expects
        cp.async.bulk.tensor there). On gfx950 Triton lowers descriptors to ordinary loads. Requires 16-byte
        aligned row strides (every suite shape qualifies; an odd K or N would assert in run).
    """,
    difficulty=3,
    expected_speedup=1.0,
    knobs=TILE_KNOBS,
)


# ---- persistent with TMA, optionally warp-specialised -----------------------------------------------------------


PERSISTENT_TMA = _template(
    "persistent_tma",
    decision="tile scheduling",
    title="persistent grid over output tiles, each fed by TMA descriptors, optionally warp-specialised",
    description="""
        Grid of min(tiles, SMs x PROGRAMS_PER_SM); each program walks tiles pid, pid + grid, ... in the GROUP_M
        order and runs the TMA K loop of the tma template for each. WARP_SPECIALIZE=True asks Triton to split
        the tile loop into producer warps issuing the bulk copies and consumer warps issuing the MMAs;
        FLATTEN=True to flatten the tile and K loops into one software-pipelined loop.
    """,
    rationale="""
        The TMA operand path without the tail wave of one program per tile, and with the next tile's loads able
        to overlap the current tile's epilogue (FLATTEN pipelines across the tile boundary); with warp specialisation copies and MMAs run in separate warps
        so neither waits on the other, which is how the fastest Hopper/Blackwell GEMMs are built. Warp
        specialisation needs a recent Triton and may not compile for every target or tile: those settings fail
        with compile_error and the search learns it.
    """,
    difficulty=4,
    expected_speedup=1.05,
    knobs={
        **TILE_KNOBS,
        "PROGRAMS_PER_SM": (1, 2),
        "WARP_SPECIALIZE": (False, True),
        "FLATTEN": (False, True),
    },
)


# ---- risky: K wrapped instead of masked ------------------------------------------------------------------------


K_UNMASKED_KNOBS = {
    "BLOCK_M": (64, 128, 256),
    "BLOCK_N": (128, 64, 256),
    "BLOCK_K": (64, 32, 128),
    "GROUP_M": (8, 1, 4),
    "num_stages": (3, 4, 2),
    "num_warps": (4, 8),
}


def k_unmasked_speedup(axes: list[dict[str, int]]) -> float:
    """0.9x where every K is a multiple of the smallest K step; nothing where one is not: the wrapped K
    tail gives wrong sums there for every setting."""
    step = min(K_UNMASKED_KNOBS["BLOCK_K"])
    return 0.9 if all(a["K"] % step == 0 for a in axes) else 0.0


K_UNMASKED = _template(
    "k_unmasked",
    decision="boundary handling",
    title="K offsets wrapped modulo K instead of masked (no K mask at all)",
    description="""
        The tiled kernel with the K tail handled like the M/N edges: offsets taken modulo K so every load is
        in bounds and unmasked. Identical to the tiled kernel when K is a multiple of BLOCK_K.
    """,
    rationale="""
        Saves the K mask in the hot loop for every shape, not only aligned ones. Fails when K % BLOCK_K != 0:
        the wrapped tail re-adds the first K columns (numerical mismatch). Every LLM shape of the suite has K
        a multiple of 128 and passes, but the ragged_m96_n80_k72 CPU workload fails for every BLOCK_K.
    """,
    difficulty=2,
    expected_speedup=0.9,
    speedup_on=k_unmasked_speedup,
    knobs=K_UNMASKED_KNOBS,
)


TEMPLATES = (TILED, TMA, SPLIT_K, SPLIT_K_FIXUP, PERSISTENT, PERSISTENT_TMA, K_UNMASKED, TILED_MFMA)
