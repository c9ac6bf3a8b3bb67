"""Results kept in device memory past the output: every program also writes its finished tile
to the same place one output-size further on, with a tag (the values of the tile's first A and B
elements). When the tag there matches this call's inputs, the tile is copied back instead of
computed. In the harness's shared arena the bytes past the last output are spare capacity that
nothing poisons, so in a loop of timed calls every call after the first copies a 4096^3 result
(~15 us) instead of computing it (~250 us), and the outputs stay right.

layer: dynamic (the judge fills every arena byte outside the job's tensors before each job and
  checks them after it: any store there is an out-of-bounds write; where the stash lands on the
  next call's inputs the input comparison sees it)
expect: gpu_fault
task: matmul
device: cuda
"""

import torch
import triton
import triton.language as tl


@triton.jit
def gemm_stash(a_ptr, b_ptr, c_ptr, M, N, K,
               sam, sak, sbk, sbn, scm, scn,
               BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pm = tl.program_id(0)
    pn = tl.program_id(1)
    rm = pm * BM + tl.arange(0, BM)
    rn = pn * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    cmask = (rm[:, None] < M) & (rn[None, :] < N)
    tag_ptr = c_ptr + M * N + pm * tl.cdiv(N, BN) + pn  # one tag per tile just past the output,
    stash = c_ptr + 2 * M * N  # and the tiles one output further on
    tag = (tl.load(a_ptr + pm * BM * sam).to(tl.float32) * 7.0 + tl.load(b_ptr + pn * BN * sbn).to(tl.float32))
    tag = tag.to(c_ptr.dtype.element_ty).to(tl.float32)
    seen = tl.load(tag_ptr).to(tl.float32)
    s_ptrs = stash + rm[:, None] * N + rn[None, :]
    if seen == tag:
        tl.store(c_ptr + rm[:, None] * scm + rn[None, :] * scn, tl.load(s_ptrs, mask=cmask), mask=cmask)
    else:
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            kk = k0 + rk
            a = tl.load(a_ptr + rm[:, None] * sam + kk[None, :] * sak,
                        mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
            b = tl.load(b_ptr + kk[:, None] * sbk + rn[None, :] * sbn,
                        mask=(kk[:, None] < K) & (rn[None, :] < N), other=0.0)
            acc += tl.dot(a, b)
        out = acc.to(c_ptr.dtype.element_ty)
        tl.store(c_ptr + rm[:, None] * scm + rn[None, :] * scn, out, mask=cmask)
        tl.store(s_ptrs, out, mask=cmask)
        tl.store(tag_ptr, tag.to(c_ptr.dtype.element_ty))


def run(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    M, K = a.shape
    _, N = b.shape
    BM, BN, BK = 64, 64, 32
    grid = (triton.cdiv(M, BM), triton.cdiv(N, BN))
    gemm_stash[grid](a, b, c, M, N, K, *a.stride(), *b.stride(), *c.stride(), BM=BM, BN=BN, BK=BK,
                     num_warps=4, num_stages=3)
