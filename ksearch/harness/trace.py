"""The launch trace: what a candidate's call did, as far as the judge is concerned.

The worker runs the candidate's host code with every Triton launch recorded instead of executed,
and a torch dispatch mode watching what the host does to memory. One call gives one `Trace`: the
buffers it touched and the steps, in order, that the trusted replay (`ksearch.harness.judge`)
repeats with the compiled kernels alone:

  - `Alloc`: scratch memory the host allocated (with its constant fill, if any); any other memory
    a launch points into (a module-level pool, a tensor torch computed) is scratch of unknown
    content: the judge allocates it fresh and poisons it.
  - `Fill`: a constant written into a view (`zero_`, `fill_`, `torch.zeros`).
  - `Copy`: data moved between views of known buffers (`copy_`, `clone`, `.contiguous()`, `.to()`).
  - `Launch`: a jit function of the candidate's module, by name, with its grid, its scalar
    arguments, the view each pointer argument is, and its launch options; `Choose` holds one
    launch per autotune config, of which the judge picks one itself.

Buffers 0..n-1 are the call's own tensors (inputs, then outputs); scratch follows. Everything else
the host does (torch compute, Python on `.tolist()` values, threads, hooks) leaves no step, so it
produces nothing the judge sees. The worker is untrusted and so is its trace: the judge validates
every view against its buffer and every argument's type before anything runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Launch options a trace may set (Triton's names); anything else, hooks included, is refused.
LAUNCH_OPTIONS = {
    "num_warps",
    "num_stages",
    "num_ctas",
    "maxnreg",
    "enable_fp_fusion",
    "num_buffers_warp_spec",
    "num_consumer_groups",
    "reg_dec_producer",
    "reg_inc_consumer",
    "waves_per_eu",
    "matrix_instr_nonkdim",
    "kpack",
}
MAX_STEPS = 10_000  # per call: a launcher does not need more, and the judge replays every one


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class View(_Row):
    """A tensor as a view of a buffer: byte offset into it, shape, strides (elements), dtype."""

    buffer: int
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str

    def span(self, itemsize: int) -> tuple[int, int]:
        """Lowest and one-past-highest byte the view can address (an empty view addresses none)."""
        if any(n == 0 for n in self.shape):
            return self.offset, self.offset
        lo = self.offset + itemsize * sum((n - 1) * s for n, s in zip(self.shape, self.stride) if s < 0)
        hi = self.offset + itemsize * (1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride) if s > 0))
        return lo, hi


class TensorArg(_Row):
    view: View


class ScalarArg(_Row):
    value: bool | int | float | str | None


class DtypeArg(_Row):
    tl_dtype: str  # a triton.language dtype by name, e.g. "fp16"


class DescriptorArg(_Row):
    """A host-built TMA descriptor (triton.tools.tensor_descriptor.TensorDescriptor) over a view."""

    view: View
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    block_shape: tuple[int, ...]
    padding: str = "zero"


class JitArg(_Row):
    jit: str  # a jit function of the candidate's module, passed as a constexpr


Arg = TensorArg | DescriptorArg | ScalarArg | DtypeArg | JitArg


class Alloc(_Row):
    op: Literal["alloc"] = "alloc"
    buffer: int
    nbytes: int
    fill: bool | int | float | None = None  # None: unknown content, poisoned by the judge
    dtype: str = "uint8"  # the dtype the fill is written in


class Fill(_Row):
    op: Literal["fill"] = "fill"
    dst: View
    value: bool | int | float


class Copy(_Row):
    op: Literal["copy"] = "copy"
    dst: View
    src: View


class Launch(_Row):
    op: Literal["launch"] = "launch"
    kernel: str
    grid: tuple[int, int, int]
    args: dict[str, Arg]
    options: dict[str, bool | int | float | str | None] = Field(default_factory=dict)


class Choose(_Row):
    """An autotuned launch: one alternative per config; the judge picks (on a GPU by its own timing,
    on the CPU the first)."""

    op: Literal["choose"] = "choose"
    kernel: str
    alternatives: list[Launch]


Step = Annotated[Alloc | Fill | Copy | Launch | Choose, Field(discriminator="op")]


class Trace(_Row):
    """One call of the candidate's entry, as the judge replays it."""

    n_job: int  # buffers 0..n_job-1 are the call's inputs then outputs
    steps: list[Step]
    host_ops: list[str] = Field(default_factory=list)  # torch compute the host did (never replayed)


class TraceError(ValueError):
    """A trace the judge will not replay: it names what is wrong."""


def check_trace(trace: Trace, job_nbytes: list[int], dtype_size: Any, max_scratch_bytes: int) -> None:
    """Refuse a trace that reaches outside its buffers, uses a buffer before declaring it, or asks for
    more scratch than `max_scratch_bytes`. `dtype_size(name)` gives a dtype's item size (and raises
    TraceError for a dtype that is not one)."""
    if len(job_nbytes) != trace.n_job:
        raise TraceError(f"the trace names {trace.n_job} call tensors; the call has {len(job_nbytes)}")
    if len(trace.steps) > MAX_STEPS:
        raise TraceError(f"{len(trace.steps)} steps in one call (at most {MAX_STEPS})")
    sizes = dict(enumerate(job_nbytes))
    scratch = 0

    def within(view: View, what: str) -> None:
        if view.buffer not in sizes:
            raise TraceError(f"{what} names buffer {view.buffer}, which the trace never allocated")
        if len(view.shape) != len(view.stride) or any(n < 0 for n in view.shape):
            raise TraceError(f"{what}: malformed shape {view.shape} / strides {view.stride}")
        lo, hi = view.span(dtype_size(view.dtype))
        if view.offset % dtype_size(view.dtype) or lo < 0 or hi > sizes[view.buffer]:
            raise TraceError(
                f"{what} reaches bytes [{lo}, {hi}) of buffer {view.buffer}, which has {sizes[view.buffer]}"
            )

    def check_launch(launch: Launch) -> None:
        bad = set(launch.options) - LAUNCH_OPTIONS
        if bad:
            raise TraceError(f"launch of {launch.kernel} sets {', '.join(sorted(bad))}: not a launch option")
        if any(g < 0 for g in launch.grid):
            raise TraceError(f"launch of {launch.kernel} has a negative grid {launch.grid}")
        for name, arg in launch.args.items():
            if isinstance(arg, (TensorArg, DescriptorArg)):
                within(arg.view, f"argument {name} of {launch.kernel}")

    for step in trace.steps:
        if isinstance(step, Alloc):
            if step.buffer in sizes:
                raise TraceError(f"buffer {step.buffer} allocated twice")
            if step.buffer != len(sizes):
                raise TraceError(f"buffer {step.buffer} allocated out of order")
            scratch += step.nbytes
            if step.nbytes < 0 or scratch > max_scratch_bytes:
                raise TraceError(f"scratch past {max_scratch_bytes} bytes in one call")
            dtype_size(step.dtype)
            sizes[step.buffer] = step.nbytes
        elif isinstance(step, Fill):
            within(step.dst, "a fill")
        elif isinstance(step, Copy):
            within(step.dst, "a copy's destination")
            within(step.src, "a copy's source")
        elif isinstance(step, Launch):
            check_launch(step)
        else:
            if not step.alternatives:
                raise TraceError(f"autotuned launch of {step.kernel} with no config")
            for alt in step.alternatives:
                check_launch(alt)
