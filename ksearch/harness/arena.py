"""Memory the evaluator owns and lends to its workers: a job's inputs and outputs never cross the
process boundary by value.

On a GPU the evaluator keeps one arena, a single CUDA allocation shared once by IPC handle, and lays
each job's tensors out in it: inputs copied from the evaluator's cache, outputs left for the worker
to poison. The worker maps the arena, the candidate writes its outputs there, and the evaluator
judges them in place after the reply, so a 4096 x 4096 output costs no copy, no pickling and no
socket transfer. The arena lives as long as the evaluator: a worker killed at a limit never releases
its IPC reference, so freeing it would only park the memory in torch's IPC limbo. Keeping the same
arena also hands every candidate the same physical buffers, which takes the allocation layout out
of the spread between the timings of different workers.

On the CPU (the Triton interpreter) tensors travel by value in the job and come back in the reply.
"""

from __future__ import annotations

import torch

ALIGN = 512  # bytes: every tensor starts on this boundary, whatever its dtype
GROWTH = 1.25  # a bigger job grows the arena with headroom, so a suite does not regrow it per workload


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"not a torch dtype: {name!r}")
    return dtype


def _view(base: torch.Tensor, ref: dict) -> torch.Tensor:
    """The tensor `ref` describes, as a view of the arena's bytes."""
    dtype = _dtype(ref["dtype"])
    numel = 1
    for n in ref["shape"]:
        numel *= n
    nbytes = numel * dtype.itemsize
    return base[ref["offset"] : ref["offset"] + nbytes].view(dtype).view(ref["shape"])


class Arena:
    """Lends tensors to one worker job at a time (the evaluator runs jobs one after another)."""

    def __init__(self, device: str):
        self.device = device
        self._base: torch.Tensor | None = None
        self._handle: tuple | None = None

    @property
    def capacity(self) -> int:
        return 0 if self._base is None else self._base.numel()

    def lend(self, tensors: list[torch.Tensor]) -> tuple[dict, list[torch.Tensor]]:
        """Place one job's tensors: a real tensor is an input (its values are copied), a meta tensor an
        output (only its shape and dtype count). Returns the job's `buffers` message and the views
        the evaluator reads after the reply (on the CPU, replace them with `returned`)."""
        if self.device == "cpu":
            copies = [
                torch.empty(t.shape, dtype=t.dtype) if t.is_meta else t.detach().clone() for t in tensors
            ]
            return {"tensors": copies}, copies
        refs, offset = [], 0
        for t in tensors:
            refs.append(
                {"offset": offset, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
            )
            offset += -(-t.numel() * t.element_size() // ALIGN) * ALIGN
        base = self._reserve(offset)
        views = [_view(base, r) for r in refs]
        with torch.no_grad():
            for t, v in zip(tensors, views):
                if not t.is_meta:
                    v.copy_(t)
        torch.cuda.synchronize()  # the worker reads these bytes from another process
        return {"arena": self._handle, "refs": refs}, views

    def _reserve(self, nbytes: int) -> torch.Tensor:
        """The arena's base tensor, grown to hold at least `nbytes`."""
        if self._base is not None and nbytes <= self._base.numel():
            return self._base
        size = max(int(nbytes * GROWTH), 1 << 20)
        self._base = torch.empty(size, dtype=torch.uint8, device=self.device)
        self._handle = tuple(self._base.untyped_storage()._share_cuda_())
        return self._base


def returned(message: dict, reply: dict, views: list[torch.Tensor]) -> list[torch.Tensor]:
    """The tensors to judge after a job: the reply's copies when they travelled by value (CPU),
    otherwise the evaluator's own views of the arena."""
    if "tensors" in message:
        back = reply.get("buffers")
        if not isinstance(back, list) or len(back) != len(views):
            raise ValueError("the worker did not return the job's buffers")
        return back
    return views


def open_buffers(message: dict) -> list[torch.Tensor]:
    """Worker side: the job's tensors, mapped from the evaluator's arena or received by value."""
    return open_job(message)[0]


def open_job(message: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The job's tensors, and the arena's bytes that belong to none of them (alignment gaps and the
    tail) as uint8 views, empty on the CPU (no shared arena). The judge fills those bytes before a
    job and checks them after: a kernel storing there wrote out of bounds, and could keep results
    there between timed calls."""
    if "tensors" in message:
        return list(message["tensors"]), []
    storage = torch.UntypedStorage._new_shared_cuda(*message["arena"])
    base = torch.empty(0, dtype=torch.uint8, device="cuda").set_(storage)
    views = [_view(base, r) for r in message["refs"]]
    return views, outside(base, message["refs"])


def outside(base: torch.Tensor, refs: list[dict]) -> list[torch.Tensor]:
    """The spans of `base` (uint8) that no tensor described in `refs` covers."""
    spans, at = [], 0
    for ref in sorted(refs, key=lambda r: r["offset"]):
        if ref["offset"] > at:
            spans.append(base[at : ref["offset"]])
        at = max(at, ref["offset"] + _view(base, ref).nbytes)
    if at < base.numel():
        spans.append(base[at:])
    return spans
