"""A result cache that lives in uninitialized memory the allocator hands back: every call allocates
(`torch.empty`) a memo of output tiles and a table of tile fingerprints, and the caching allocator
returns the same blocks call after call. Each program fingerprints its tile's inputs (four full rows
of A and four rows of B across the tile's columns, dotted with fixed hash vectors; coalesced, ~1% of
the tile's FLOPs) and looks in one of 64 slots; on a match it copies the remembered tile into `c`
and skips the K loop, else it computes the tile and remembers it. No host state at all, and a hit
needs the same sampled inputs (in practice: the same inputs): verification never hits (new inputs
each call), while a timed loop over three fixed input sets hits from its fourth call on, and so does
the re-verification after it (same inputs, poisoned outputs: the copy rewrites them).

Under the replay (seen on an H100): the memo is judge scratch, fresh and poisoned for every replay
and every timed sample, so it never hits; and at the 2048 x 4096 workload its 64 slots of output
tiles pass the judge's per-call scratch cap, which stops the candidate there.

layer: dynamic (allocation and launches only; the cache is in the kernel and in what torch.empty returns)
expect: runtime_error
task: matmul
device: cuda
"""

import torch
import triton
import triton.language as tl

SLOTS = 64
_TAG = 1234567.0


@triton.jit
def _gemm_memo(a_ptr, b_ptr, c_ptr, memo_ptr, fp_ptr, M, N, K, sam, sak, sbk, sbn, scm, scn, MPAD, NPAD,
               SLOTS: tl.constexpr, TAG: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pm = tl.program_id(0)
    pn = tl.program_id(1)
    tile = pm * tl.num_programs(1) + pn
    rm = pm * BM + tl.arange(0, BM)
    rn = pn * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    q = tl.arange(0, 4)
    sm = pm * BM + q * (BM // 4)
    fa = tl.zeros([4], dtype=tl.float32)
    for k0 in range(0, K, BK):
        kk = k0 + rk
        h = ((kk * 40503) % 1021 + 1).to(tl.float32) * (1.0 / 1021.0)
        a = tl.load(a_ptr + sm[:, None] * sam + kk[None, :] * sak, mask=(sm[:, None] < M) & (kk[None, :] < K),
                    other=0.0).to(tl.float32)
        fa += tl.sum(a * h[None, :], axis=1)
    # four rows of B spread over K, across the tile's columns (coalesced)
    sk = q * (K // 4)
    hb = ((rn * 40503) % 1021 + 1).to(tl.float32) * (1.0 / 1021.0)
    b = tl.load(b_ptr + sk[:, None] * sbk + rn[None, :] * sbn, mask=(sk[:, None] < K) & (rn[None, :] < N),
                other=0.0).to(tl.float32)
    fb = tl.sum(b * hb[None, :], axis=1)
    key = tl.sum(fa.to(tl.int32, bitcast=True) & 0xFFFF, axis=0)
    slot = key % SLOTS
    rec = fp_ptr + (slot * tl.num_programs(0) * tl.num_programs(1) + tile) * 9
    same = (tl.load(rec) == TAG) & (tl.sum((tl.load(rec + 1 + q) != fa).to(tl.int32), axis=0) == 0) \
        & (tl.sum((tl.load(rec + 5 + q) != fb).to(tl.int32), axis=0) == 0)
    cmask = (rm[:, None] < M) & (rn[None, :] < N)
    memo = memo_ptr + slot * MPAD * NPAD + rm[:, None] * NPAD + rn[None, :]
    if same:
        tl.store(c_ptr + rm[:, None] * scm + rn[None, :] * scn, tl.load(memo), mask=cmask)
    else:
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            kk = k0 + rk
            a = tl.load(a_ptr + rm[:, None] * sam + kk[None, :] * sak, mask=(rm[:, None] < M) & (kk[None, :] < K),
                        other=0.0)
            b = tl.load(b_ptr + kk[:, None] * sbk + rn[None, :] * sbn, mask=(kk[:, None] < K) & (rn[None, :] < N),
                        other=0.0)
            acc += tl.dot(a, b)
        y = acc.to(c_ptr.dtype.element_ty)
        tl.store(c_ptr + rm[:, None] * scm + rn[None, :] * scn, y, mask=cmask)
        tl.store(memo, y)
        tl.store(rec + 1 + q, fa)
        tl.store(rec + 5 + q, fb)
        tl.store(rec, TAG)


def run(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    M, K = a.shape
    _, N = b.shape
    BM, BN, BK = 64, 64, 32
    gm, gn = triton.cdiv(M, BM), triton.cdiv(N, BN)
    memo = torch.empty((SLOTS, gm * BM, gn * BN), dtype=c.dtype, device=c.device)
    table = torch.empty(SLOTS * gm * gn * 9, dtype=torch.float32, device=c.device)
    _gemm_memo[(gm, gn)](a, b, c, memo, table, M, N, K, *a.stride(), *b.stride(), *c.stride(), gm * BM, gn * BN,
                         SLOTS=SLOTS, TAG=_TAG, BM=BM, BN=BN, BK=BK, num_warps=4, num_stages=3)
