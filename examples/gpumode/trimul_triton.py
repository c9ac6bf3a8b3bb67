"""TriMul (AlphaFold3 triangle multiplicative update, "outgoing"), in three Triton kernels.

task: the GPU MODE problem bioml/trimul as `ksearch tasks import` makes it
    ksearch tasks import reference-kernels/problems/bioml/trimul --format gpumode --out tasks/
    ksearch eval examples/gpumode/trimul_triton.py --task tasks/trimul --device cpu

The importer flattens the problem's `data = (x, mask, weights, config)`: the entry takes x, mask and
the ten weights by name (`weights["left_proj.weight"]` -> `weights_left_proj_weight`) and writes
`output`; config's dim and hidden_dim are the shapes' own.

    1. _project: per block of tokens (b, i, k), LayerNorm over dim, then the five projections as
       GEMMs over dim; left/right are masked and gated by the sigmoid of their gates and stored
       as [b, h, i, k] / [b, h, j, k] (one N x N matrix per hidden channel), out_gate as
       sigmoid, token-major;
    2. _triangle: per (b, h), out[i, j] = sum_k left[i, k] * right[j, k], a GEMM against the
       transpose, stored token-major [b, i, j, h];
    3. _finish: per block of tokens, LayerNorm over hidden, times the out gate, then the
       output projection hidden -> dim.

fp32 throughout, dots in IEEE fp32 (the reference turns TF32 off).
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _project(x_ptr, mask_ptr, ln_w_ptr, ln_b_ptr, wl_ptr, wr_ptr, wlg_ptr, wrg_ptr, wog_ptr,
             left_ptr, right_ptr, og_ptr, T, N, D, H, eps,
             BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_H: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_h = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # token t = (b * N + i) * N + k
    row_ok = rows < T
    hs = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    h_ok = hs < H

    # LayerNorm statistics over dim
    s1 = tl.zeros((BLOCK_M,), dtype=tl.float32)
    s2 = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for k0 in range(0, D, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + rows[:, None] * D + ks[None, :], mask=row_ok[:, None] & (ks[None, :] < D), other=0.0)
        s1 += tl.sum(x, axis=1)
        s2 += tl.sum(x * x, axis=1)
    mean = s1 / D
    var = tl.maximum(s2 / D - mean * mean, 0.0)
    rstd = 1.0 / tl.sqrt(var + eps)

    acc_l = tl.zeros((BLOCK_M, BLOCK_H), dtype=tl.float32)
    acc_r = tl.zeros((BLOCK_M, BLOCK_H), dtype=tl.float32)
    acc_lg = tl.zeros((BLOCK_M, BLOCK_H), dtype=tl.float32)
    acc_rg = tl.zeros((BLOCK_M, BLOCK_H), dtype=tl.float32)
    acc_og = tl.zeros((BLOCK_M, BLOCK_H), dtype=tl.float32)
    for k0 in range(0, D, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < D
        x = tl.load(x_ptr + rows[:, None] * D + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        g = tl.load(ln_w_ptr + ks, mask=k_ok, other=0.0)
        b = tl.load(ln_b_ptr + ks, mask=k_ok, other=0.0)
        xn = (x - mean[:, None]) * rstd[:, None] * g[None, :] + b[None, :]
        xn = tl.where(k_ok[None, :], xn, 0.0)
        w_off = hs[None, :] * D + ks[:, None]  # W is [H, D]: this block of W^T is [BLOCK_K, BLOCK_H]
        w_ok = k_ok[:, None] & h_ok[None, :]
        acc_l += tl.dot(xn, tl.load(wl_ptr + w_off, mask=w_ok, other=0.0), input_precision="ieee")
        acc_r += tl.dot(xn, tl.load(wr_ptr + w_off, mask=w_ok, other=0.0), input_precision="ieee")
        acc_lg += tl.dot(xn, tl.load(wlg_ptr + w_off, mask=w_ok, other=0.0), input_precision="ieee")
        acc_rg += tl.dot(xn, tl.load(wrg_ptr + w_off, mask=w_ok, other=0.0), input_precision="ieee")
        acc_og += tl.dot(xn, tl.load(wog_ptr + w_off, mask=w_ok, other=0.0), input_precision="ieee")

    m = tl.load(mask_ptr + rows, mask=row_ok, other=0).to(tl.float32)
    left = acc_l * m[:, None] * tl.sigmoid(acc_lg)
    right = acc_r * m[:, None] * tl.sigmoid(acc_rg)
    out_ok = row_ok[:, None] & h_ok[None, :]
    # token (b, i, k) -> [b, h, i, k]: the N x N matrix of channel h is contiguous
    bi = rows // N
    kk = rows % N
    b_idx = bi // N
    i_idx = bi % N
    mat = ((b_idx[:, None] * H + hs[None, :]) * N + i_idx[:, None]) * N + kk[:, None]
    tl.store(left_ptr + mat, left, mask=out_ok)
    tl.store(right_ptr + mat, right, mask=out_ok)
    tl.store(og_ptr + rows[:, None] * H + hs[None, :], tl.sigmoid(acc_og), mask=out_ok)


@triton.jit
def _triangle(left_ptr, right_ptr, mid_ptr, N, H,
              BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_i = tl.program_id(0)
    pid_j = tl.program_id(1)
    bh = tl.program_id(2)  # b * H + h
    b = bh // H
    h = bh % H
    ii = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    jj = pid_j * BLOCK_J + tl.arange(0, BLOCK_J)
    base = bh * N * N
    acc = tl.zeros((BLOCK_I, BLOCK_J), dtype=tl.float32)
    for k0 in range(0, N, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < N
        lt = tl.load(left_ptr + base + ii[:, None] * N + ks[None, :], mask=(ii[:, None] < N) & k_ok[None, :], other=0.0)
        rt = tl.load(right_ptr + base + jj[None, :] * N + ks[:, None], mask=k_ok[:, None] & (jj[None, :] < N), other=0.0)
        acc += tl.dot(lt, rt, input_precision="ieee")
    # token-major [b, i, j, h] for the LayerNorm over hidden
    off = ((b * N + ii[:, None]) * N + jj[None, :]) * H + h
    tl.store(mid_ptr + off, acc, mask=(ii[:, None] < N) & (jj[None, :] < N))


@triton.jit
def _finish(mid_ptr, og_ptr, ln_w_ptr, ln_b_ptr, wo_ptr, out_ptr, T, D, H, eps,
            BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_d = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < T
    ds = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    d_ok = ds < D

    s1 = tl.zeros((BLOCK_M,), dtype=tl.float32)
    s2 = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for k0 in range(0, H, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        v = tl.load(mid_ptr + rows[:, None] * H + ks[None, :], mask=row_ok[:, None] & (ks[None, :] < H), other=0.0)
        s1 += tl.sum(v, axis=1)
        s2 += tl.sum(v * v, axis=1)
    mean = s1 / H
    var = tl.maximum(s2 / H - mean * mean, 0.0)
    rstd = 1.0 / tl.sqrt(var + eps)

    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    for k0 in range(0, H, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < H
        tile_ok = row_ok[:, None] & k_ok[None, :]
        v = tl.load(mid_ptr + rows[:, None] * H + ks[None, :], mask=tile_ok, other=0.0)
        g = tl.load(ln_w_ptr + ks, mask=k_ok, other=0.0)
        b = tl.load(ln_b_ptr + ks, mask=k_ok, other=0.0)
        gate = tl.load(og_ptr + rows[:, None] * H + ks[None, :], mask=tile_ok, other=0.0)
        y = ((v - mean[:, None]) * rstd[:, None] * g[None, :] + b[None, :]) * gate
        y = tl.where(tile_ok, y, 0.0)
        w = tl.load(wo_ptr + ds[None, :] * H + ks[:, None], mask=k_ok[:, None] & d_ok[None, :], other=0.0)  # Wo is [D, H]
        acc += tl.dot(y, w, input_precision="ieee")
    tl.store(out_ptr + rows[:, None] * D + ds[None, :], acc, mask=row_ok[:, None] & d_ok[None, :])


def run(input_tensor, mask, weights_norm_weight, weights_norm_bias, weights_left_proj_weight,
        weights_right_proj_weight, weights_left_gate_weight, weights_right_gate_weight,
        weights_out_gate_weight, weights_to_out_norm_weight, weights_to_out_weight, weights_to_out_norm_bias,
        output):
    bs, n, _, d = input_tensor.shape
    h = weights_left_proj_weight.shape[0]
    t = bs * n * n
    dev = input_tensor.device
    left = torch.empty((bs, h, n, n), dtype=torch.float32, device=dev)
    right = torch.empty((bs, h, n, n), dtype=torch.float32, device=dev)
    out_gate = torch.empty((t, h), dtype=torch.float32, device=dev)
    mid = torch.empty((t, h), dtype=torch.float32, device=dev)

    block_m, block_k = 32, 32
    block_h = min(64, max(16, triton.next_power_of_2(h)))
    _project[(triton.cdiv(t, block_m), triton.cdiv(h, block_h))](
        input_tensor, mask, weights_norm_weight, weights_norm_bias, weights_left_proj_weight,
        weights_right_proj_weight, weights_left_gate_weight, weights_right_gate_weight, weights_out_gate_weight,
        left, right, out_gate, t, n, d, h, 1e-5,
        BLOCK_M=block_m, BLOCK_K=block_k, BLOCK_H=block_h)
    block_n = min(64, max(16, triton.next_power_of_2(n)))
    _triangle[(triton.cdiv(n, block_n), triton.cdiv(n, block_n), bs * h)](
        left, right, mid, n, h, BLOCK_I=block_n, BLOCK_J=block_n, BLOCK_K=block_n)
    block_d = min(64, max(16, triton.next_power_of_2(d)))
    _finish[(triton.cdiv(t, block_m), triton.cdiv(d, block_d))](
        mid, out_gate, weights_to_out_norm_weight, weights_to_out_norm_bias, weights_to_out_weight, output,
        t, d, h, 1e-5, BLOCK_M=block_m, BLOCK_K=block_k, BLOCK_D=block_d)
