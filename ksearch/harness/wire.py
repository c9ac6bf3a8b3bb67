"""The messages between the evaluator and its worker and judge processes, as bytes.

A reply comes from a process that may have run a candidate's code, so reading it must never run
code. Plain data (dicts, lists, strings, numbers: every message on a GPU, where tensors stay in the
arena) is pickled and read by an unpickler that resolves no global at all, so no constructor or
function can be named, let alone called; that read is C speed. A message holding tensors (the CPU
path, where they travel by value) goes through `torch.save` and is read with `weights_only=True`,
which is safe too but pure Python, about 15 ms a reply of traces (measured on an H100 host).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

_PLAIN, _TORCH = b"P", b"T"


class _NotPlain(Exception):
    pass


class _PlainPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        # Called for everything but the builtin containers and scalars: a tensor, a dtype, a model.
        raise _NotPlain


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a message may not name {module}.{name}")


def encode(obj: dict) -> bytes:
    buf = io.BytesIO()
    try:
        buf.write(_PLAIN)
        _PlainPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    except _NotPlain:
        import torch

        buf = io.BytesIO()
        buf.write(_TORCH)
        torch.save(obj, buf)
    return buf.getvalue()


def decode(data: bytes) -> dict:
    """A message; raises on anything but a dict of plain data (or of tensors, by the torch path)."""
    if data[:1] == _PLAIN:
        obj = _PlainUnpickler(io.BytesIO(data[1:])).load()
    elif data[:1] == _TORCH:
        import torch

        obj = torch.load(io.BytesIO(data[1:]), weights_only=True)
    else:
        raise ValueError("not a harness message")
    if not isinstance(obj, dict):
        raise ValueError("a message must be a dict")
    return obj
