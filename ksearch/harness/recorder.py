"""Worker side of the launch trace: record what a candidate's call launches and moves, run nothing.

`CallRecorder` turns one call of the candidate's entry into a `ksearch.harness.trace.Trace`:
Triton's launch path (`JITFunction.run`, `Autotuner.run`) is patched so a launch is recorded and
never compiled or executed, and a torch dispatch mode sees the host's allocations, constant fills
and copies. The worker is untrusted and so is all of this: it only decides what the judge is asked
to replay, and the judge checks and runs nothing but the candidate's own compiled kernels.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ksearch.harness.trace import (
    Alloc,
    Choose,
    Copy,
    DescriptorArg,
    DtypeArg,
    Fill,
    JitArg,
    Launch,
    ScalarArg,
    TensorArg,
    Trace,
    View,
)

# Factory ops and the constant they fill with (None: uninitialised), with where the fill value sits.
_FACTORIES: dict[str, tuple[Any, int | None]] = {
    "empty": (None, None),
    "empty_like": (None, None),
    "empty_strided": (None, None),
    "new_empty": (None, None),
    "new_empty_strided": (None, None),
    "zeros": (0, None),
    "zeros_like": (0, None),
    "new_zeros": (0, None),
    "ones": (1, None),
    "ones_like": (1, None),
    "new_ones": (1, None),
    "full": (None, 1),
    "full_like": (None, 1),
    "new_full": (None, 2),
}
_COPIES = {"clone", "_to_copy"}  # a new tensor holding the values of its first argument
# Ops that compute nothing: views, metadata, and the dispatcher's own bookkeeping.
_QUIET = {
    "view",
    "_unsafe_view",
    "_reshape_alias",
    "as_strided",
    "t",
    "transpose",
    "permute",
    "expand",
    "slice",
    "select",
    "split",
    "split_with_sizes",
    "unsqueeze",
    "squeeze",
    "detach",
    "alias",
    "lift_fresh",
    "unbind",
    "narrow",
    "view_as_real",
    "view_as_complex",
    "is_same_size",
    "stride",
    "sym_size",
    "sym_stride",
    "sym_numel",
    "sym_storage_offset",
    "size",
    "numel",
    "dim",
    "_has_compatible_shallow_copy_type",
    "unfold",
    "diagonal",
    "movedim",
    "flatten",
    "unflatten",
    "contiguous",
    "reshape",
    "chunk",
}


class CallRecorder:
    """Records one call at a time; `begin` with the call's tensors, `end` for its trace."""

    def __init__(self) -> None:
        self.active = False
        self.choosing: list[Launch] | None = None  # alternatives of the autotuned launch being recorded
        self._reset([])
        self.foreign: set[int] = set()  # storages a launch may not name as scratch (the lent arena)

    def _reset(self, tensors: list[Any]) -> None:
        self.steps: list[Any] = []
        self.sizes: list[int] = []
        self.job: list[tuple[int, int]] = []
        self.by_storage: dict[int, int] = {}
        self.host_ops: set[str] = set()
        for t in tensors:
            start = t.data_ptr()
            nbytes = t.numel() * t.element_size()
            self.job.append((start, start + nbytes))
            self.sizes.append(nbytes)

    def begin(self, tensors: list[Any]) -> None:
        self._reset(tensors)
        self.active = True

    def end(self) -> Trace:
        self.active = False
        return Trace(
            n_job=len(self.job), steps=_live(self.steps, len(self.job)), host_ops=sorted(self.host_ops)
        )

    # ------------------------------------------------------------------ memory

    def _new_buffer(self, nbytes: int, fill: Any = None, dtype: str = "uint8") -> int:
        buffer = len(self.sizes)
        self.sizes.append(nbytes)
        self.steps.append(Alloc(buffer=buffer, nbytes=nbytes, fill=fill, dtype=dtype))
        return buffer

    def view(self, t: Any) -> View:
        """Which buffer `t` is a view of: a call tensor by address, else scratch by storage (memory
        this call never allocated is scratch of unknown content)."""
        ptr = t.data_ptr()
        dtype = str(t.dtype).removeprefix("torch.")
        shape, stride = tuple(t.shape), tuple(t.stride())
        if t.numel() == 0:  # addresses nothing (and its pointer may lie anywhere): any buffer will do
            return View(buffer=0, offset=0, shape=shape, stride=stride, dtype=dtype)
        for i, (start, end) in enumerate(self.job):
            if start <= ptr < end or (ptr == start == end):
                return View(buffer=i, offset=ptr - start, shape=shape, stride=stride, dtype=dtype)
        storage = t.untyped_storage()
        base = storage.data_ptr()
        if base in self.foreign:  # a pointer into harness memory outside the call's tensors: fresh poison
            lo, hi = View(buffer=0, offset=0, shape=shape, stride=stride, dtype=dtype).span(t.element_size())
            buffer = self._new_buffer(hi - lo)
            return View(buffer=buffer, offset=-lo, shape=shape, stride=stride, dtype=dtype)
        if base not in self.by_storage:
            self.by_storage[base] = self._new_buffer(storage.nbytes())
        return View(buffer=self.by_storage[base], offset=ptr - base, shape=shape, stride=stride, dtype=dtype)

    def allocated(self, t: Any, fill: Any) -> None:
        storage = t.untyped_storage()
        fill = fill if isinstance(fill, (bool, int, float)) else None
        # The dtype only says how to write the fill: memory of unknown content is bytes, however it was
        # made (so a pool allocated in an earlier call looks the same as one allocated now).
        dtype = str(t.dtype).removeprefix("torch.") if fill is not None else "uint8"
        self.by_storage[storage.data_ptr()] = self._new_buffer(storage.nbytes(), fill, dtype)

    def on_op(self, name: str, args: tuple, kwargs: dict, out: Any) -> None:
        """A torch op the host ran, seen by the dispatch mode."""
        import torch

        if name in _FACTORIES:
            fill, where = _FACTORIES[name]
            if where is not None:
                fill = kwargs.get("fill_value", args[where] if len(args) > where else None)
            if isinstance(out, torch.Tensor):
                self.allocated(out, fill)
        elif (
            name in ("fill_", "zero_", "copy_") and isinstance(args[0], torch.Tensor) and args[0].numel() == 0
        ):
            return  # writes nothing
        elif name in ("fill_", "zero_") and isinstance(args[0], torch.Tensor):
            value = 0 if name == "zero_" else args[1]
            if isinstance(value, (bool, int, float)):
                self.steps.append(Fill(dst=self.view(args[0]), value=value))
            else:
                self.host_ops.add(name)
        elif name == "copy_":
            self.steps.append(Copy(dst=self.view(args[0]), src=self.view(args[1])))
        elif name in _COPIES and isinstance(out, torch.Tensor):
            source = self.view(args[0])
            self.allocated(out, None)
            self.steps.append(Copy(dst=self.view(out), src=source))
        elif name not in _QUIET:
            self.host_ops.add(name)

    # ------------------------------------------------------------------ launches

    def launch(self, fn: Any, args: tuple, kwargs: dict, grid: Any) -> None:
        """`fn[grid](*args, **kwargs)`, recorded."""
        names = [p.name for p in fn.params]
        params = {k: v for k, v in kwargs.items() if k in names}
        options = {k: v for k, v in kwargs.items() if k not in names and k not in ("warmup",)}
        bound = fn.signature.bind(*args, **params)
        bound.apply_defaults()
        if callable(grid):
            grid = grid(dict(bound.arguments))
        dims = tuple(int(g) for g in tuple(grid))
        if not 1 <= len(dims) <= 3:
            raise TypeError(f"{fn.__name__}: a grid has 1 to 3 dimensions, got {dims}")
        encoded = {name: self._arg(fn.__name__, name, value) for name, value in bound.arguments.items()}
        opts: dict[str, bool | int | float | str | None] = {}
        for k, v in options.items():
            if v is None:
                continue
            if not isinstance(v, (bool, int, float, str)):
                raise TypeError(f"{fn.__name__}: launch option {k}={v!r} is not a plain value")
            opts[k] = v
        x, y, z = (*dims, 1, 1)[:3]
        launch = Launch(kernel=fn.__name__, grid=(x, y, z), args=encoded, options=opts)
        if self.choosing is not None:
            self.choosing.append(launch)
        else:
            self.steps.append(launch)

    def _arg(self, kernel: str, name: str, value: Any) -> Any:
        import torch
        import triton.language as tl

        if isinstance(value, tl.constexpr):
            value = value.value
        if isinstance(value, torch.Tensor):
            return TensorArg(view=self.view(value))
        if type(value).__name__ == "TensorDescriptor" and isinstance(
            getattr(value, "base", None), torch.Tensor
        ):
            return DescriptorArg(
                view=self.view(value.base),
                shape=tuple(int(n) for n in value.shape),
                strides=tuple(int(n) for n in value.strides),
                block_shape=tuple(int(n) for n in value.block_shape),
                padding=str(getattr(value, "padding", "zero")),
            )
        if isinstance(value, (bool, int, float, str)) or value is None:
            return ScalarArg(value=value)
        if isinstance(value, tl.dtype):
            return DtypeArg(tl_dtype=str(value))
        if hasattr(value, "params") and hasattr(value, "__name__"):
            return JitArg(jit=value.__name__)
        raise TypeError(
            f"argument {name} of {kernel} is a {type(value).__name__}: a launch may pass tensors, "
            "numbers, strings, None, triton dtypes, TensorDescriptors and jit functions"
        )

    def choose(self, kernel: str, launch_each: Any) -> None:
        """An autotuned launch: `launch_each()` launches once per config; one Choose step results."""
        self.choosing = []
        try:
            launch_each()
            alternatives = self.choosing
        finally:
            self.choosing = None
        self.steps.append(Choose(kernel=kernel, alternatives=alternatives))


def _launches(step: Any) -> list[Launch]:
    return step.alternatives if isinstance(step, Choose) else [step] if isinstance(step, Launch) else []


def _live(steps: list[Any], n_job: int) -> list[Any]:
    """The steps that can reach a call tensor, buffers renumbered: memory only the host used (a model's
    own parameters made on its first call, say) leaves no step, so one workload's calls trace alike."""
    used = set(range(n_job))
    for step in steps:
        for launch in _launches(step):
            used.update(
                a.view.buffer for a in launch.args.values() if isinstance(a, (TensorArg, DescriptorArg))
            )
    for step in reversed(steps):  # a copy into something used makes its source used
        if isinstance(step, Copy) and step.dst.buffer in used:
            used.add(step.src.buffer)
    number = {b: i for i, b in enumerate(sorted(used))}

    def view(v: View) -> View:
        return v.model_copy(update={"buffer": number[v.buffer]})

    def renumbered(step: Launch) -> Launch:
        return step.model_copy(
            update={
                "args": {
                    k: a.model_copy(update={"view": view(a.view)})
                    if isinstance(a, (TensorArg, DescriptorArg))
                    else a
                    for k, a in step.args.items()
                }
            }
        )

    live: list[Any] = []
    for step in steps:
        if isinstance(step, Alloc):
            if step.buffer in used:
                live.append(step.model_copy(update={"buffer": number[step.buffer]}))
        elif isinstance(step, Fill):
            if step.dst.buffer in used:
                live.append(step.model_copy(update={"dst": view(step.dst)}))
        elif isinstance(step, Copy):
            if step.dst.buffer in used:
                live.append(step.model_copy(update={"dst": view(step.dst), "src": view(step.src)}))
        elif isinstance(step, Choose):
            live.append(step.model_copy(update={"alternatives": [renumbered(a) for a in step.alternatives]}))
        else:
            live.append(renumbered(step))
    return live


@contextmanager
def recording(recorder: CallRecorder) -> Iterator[Any]:
    """Patch Triton's launch path while open and yield the dispatch mode to enter around each call.
    Nothing is compiled or run: a launch returns None. (The worker keeps it open for its life.)"""
    from torch.utils._python_dispatch import TorchDispatchMode
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    def jit_run(self: Any, *args: Any, grid: Any, warmup: bool = False, **kwargs: Any) -> None:
        if recorder.active:
            recorder.launch(self, args, kwargs, grid)

    def tune_run(self: Any, *args: Any, **kwargs: Any) -> None:
        def each() -> None:
            for config in self.configs:
                self.fn.run(*args, **kwargs, **config.all_kwargs())

        name = getattr(self, "base_fn", self.fn).__name__
        recorder.choose(name, each)
        self.best_config = self.configs[0]

    originals = JITFunction.run, Autotuner.run
    JITFunction.run = jit_run
    Autotuner.run = tune_run

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if recorder.active:
                recorder.on_op(func.overloadpacket.__name__, args, kwargs, out)
            return out

    try:
        yield Watch()
    finally:
        JITFunction.run, Autotuner.run = originals
