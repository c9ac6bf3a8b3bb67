"""The harness's poison: what every output holds before the candidate's call.

Floating outputs are filled with a NaN of a distinctive bit pattern (a payload no arithmetic
produces: kernels emit the canonical NaN), so "never written" and "written as NaN" stay apart;
integer outputs with an unlikely sentinel. Shared by the worker (fills) and the parent (reads).
"""

from __future__ import annotations

import torch

INT_POISON = -(2**31) + 7
# float dtype -> (same-width integer dtype, NaN bit pattern with a payload)
NAN_PAYLOADS = {
    torch.float16: (torch.int16, 0x7E5A),
    torch.bfloat16: (torch.int16, 0x7FDA),
    torch.float32: (torch.int32, 0x7FC0DEAD),
    torch.float64: (torch.int64, 0x7FF80000DEADBEEF),
}


def poison(out: torch.Tensor) -> None:
    if out.dtype in NAN_PAYLOADS:
        int_dtype, bits = NAN_PAYLOADS[out.dtype]
        out.view(int_dtype).fill_(bits)
    elif out.dtype.is_floating_point:
        out.fill_(float("nan"))  # fp8 and friends: no room for a payload
    elif out.dtype == torch.bool:
        out.fill_(True)
    else:
        out.fill_(INT_POISON)


def unwritten_mask(out: torch.Tensor) -> torch.Tensor:
    """Elements still holding the poison, bit for bit."""
    if out.dtype in NAN_PAYLOADS:
        int_dtype, bits = NAN_PAYLOADS[out.dtype]
        return out.contiguous().view(int_dtype) == bits
    if out.dtype.is_floating_point:
        return out.isnan()
    if out.dtype == torch.bool:
        return torch.zeros_like(out, dtype=torch.bool)  # booleans cannot be poisoned distinguishably
    return out == INT_POISON
