"""Softmax over rows split into BLOCK-wide chunks: a first kernel writes each chunk's max and sum of
exp(x - max) to a float32 workspace, a second rescales the chunks' sums to the row max and
normalizes its chunk. The workspace comes from a module-level pool keyed by (rows, chunks, device):
allocated once per shape with torch.empty and entirely rewritten by the first kernel on every call.

task: softmax
"""

import torch
import triton
import triton.language as tl

MAX_BLOCK = 512
_SCRATCH: dict = {}


def _workspace(rows: int, chunks: int, device: torch.device) -> torch.Tensor:
    """A float32 [2, rows, chunks] workspace (chunk maxima, chunk sums) for this shape and device."""
    key = (rows, chunks, device)
    buf = _SCRATCH.get(key)
    if buf is None:
        buf = torch.empty((2, rows, chunks), dtype=torch.float32, device=device)
        _SCRATCH[key] = buf
    return buf


@triton.jit
def _chunk_stats(x_ptr, ws_ptr, M, N, stride_x, CHUNKS, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    chunk = tl.program_id(1)
    cols = chunk * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * stride_x + cols, mask=cols < N, other=-float("inf")).to(tl.float32)
    m = tl.max(x, axis=0)  # every chunk holds at least one column, so m is finite
    tl.store(ws_ptr + row * CHUNKS + chunk, m)
    tl.store(ws_ptr + (M + row) * CHUNKS + chunk, tl.sum(tl.exp(x - m), axis=0))


@triton.jit
def _normalize(x_ptr, ws_ptr, out_ptr, M, N, stride_x, stride_o, CHUNKS,
               BLOCK: tl.constexpr, CHUNKS_P2: tl.constexpr):
    row = tl.program_id(0)
    chunk = tl.program_id(1)
    c = tl.arange(0, CHUNKS_P2)
    valid = c < CHUNKS
    maxima = tl.load(ws_ptr + row * CHUNKS + c, mask=valid, other=-float("inf"))
    sums = tl.load(ws_ptr + (M + row) * CHUNKS + c, mask=valid, other=0.0)
    m = tl.max(maxima, axis=0)
    denom = tl.sum(tl.where(valid, sums * tl.exp(maxima - m), 0.0), axis=0)
    cols = chunk * BLOCK + tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=-float("inf")).to(tl.float32)
    tl.store(out_ptr + row * stride_o + cols, (tl.exp(x - m) / denom).to(out_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    block = min(triton.next_power_of_2(N), MAX_BLOCK)
    chunks = triton.cdiv(N, block)
    ws = _workspace(M, chunks, x.device)
    _chunk_stats[(M, chunks)](x, ws, M, N, x.stride(0), chunks, BLOCK=block)
    _normalize[(M, chunks)](x, ws, out, M, N, x.stride(0), out.stride(0), chunks,
                            BLOCK=block, CHUNKS_P2=triton.next_power_of_2(chunks))
