"""Baselines a candidate is compared with, timed by the same `time_gpu` in the same session.

For one task, workload and list of prepared argument sets (input dicts, as `Task.make_inputs`
makes them, already on the device), `build_baselines` returns up to three callables with the
candidate's protocol, `fn(i)` runs one call on argument set `i % len(arg_sets)`:

* `torch_eager`: the task's reference, as written.
* `torch_compile`: `torch.compile` of the reference (dynamic=False). A compile failure makes the
  baseline unavailable with the reason; it never raises.
* `vendor`: the library op in the native dtype, where one exists: gemm `torch.matmul(a, b, out=c)`
  (cuBLAS), softmax `torch.softmax`, rmsnorm `F.rms_norm`, fused add + rmsnorm `torch.add` then
  `F.rms_norm`, GQA decode `F.scaled_dot_product_attention` (enable_gqa, else expanded KV heads),
  SwiGLU `F.silu(x[:, :I]) * x[:, I:]`, MoE routing `torch.topk` + `torch.softmax`.

Eager and vendor also run on CPU tensors, so their values can be checked against the reference
anywhere. `Baseline.compute(i)` returns the outputs by name; `Baseline(i)` only runs the call.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ksearch.errors import KsearchError
from ksearch.harness.timing import Timing

if TYPE_CHECKING:
    import torch

    from ksearch.task import Task, WorkloadSpec

BaselineName = Literal["torch_eager", "torch_compile", "vendor"]
ALL_BASELINES: tuple[BaselineName, ...] = ("torch_eager", "torch_compile", "vendor")

Outputs = dict[str, "torch.Tensor"]
ArgSet = Mapping[str, "torch.Tensor"]


class BaselineError(KsearchError):
    """Baselines cannot be built from the arguments given."""


class Baseline(BaseModel):
    """One baseline for one workload: its callable, or why it is unavailable."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    name: BaselineName
    available: bool
    reason: str | None = Field(default=None, description="why unavailable")
    description: str = ""
    n_arg_sets: int
    compute: Callable[[int], dict[str, Any]] | None = Field(default=None, exclude=True, repr=False)

    def __call__(self, i: int) -> None:
        if self.compute is None:
            raise BaselineError(f"baseline {self.name} is unavailable: {self.reason}")
        self.compute(i)


class BaselineTiming(BaseModel):
    """A baseline's timing, or why it has none (serializable, for packets and reports)."""

    model_config = ConfigDict(extra="forbid")

    name: BaselineName
    available: bool
    reason: str | None = None
    description: str = ""
    timing: Timing | None = None


def _outputs(task: Task, result: Any) -> Outputs:
    values = result if isinstance(result, (tuple, list)) else (result,)
    return dict(zip(task.output_names, values, strict=True))


def _one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:limit]


# ---- eager and compiled reference -----------------------------------------------------------------


def _reference_caller(
    task: Task, params: Mapping[str, Any], fn: Callable[..., Any]
) -> Callable[[ArgSet], Outputs]:
    names = task.input_names

    def call(args: ArgSet) -> Outputs:
        return _outputs(task, fn(*[args[n] for n in names], **params))

    return call


def _fresh_function(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
    """A copy of `fn` (same globals, defaults, closure) with its own code object.

    torch.compile keeps its cache (and its recompile limit) per code object; a fresh one per
    build keeps the workloads of one task from sharing, and exhausting, one cache. The copy is
    compiled directly, so that it is the traced root frame: dynamo then reads the reference's
    globals from the frame instead of importing its module by name (the task loader does not
    register reference modules in sys.modules).
    """
    code = fn.__code__.replace(co_name=f"{fn.__code__.co_name}_{label}")
    fresh = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
    fresh.__kwdefaults__ = fn.__kwdefaults__
    return fresh


def _compiled_caller(
    task: Task, params: Mapping[str, Any], mode: str | None, label: str
) -> Callable[[ArgSet], Outputs]:
    import torch

    names = task.input_names
    frozen = dict(params)
    compiled = torch.compile(_fresh_function(task.reference, label), dynamic=False, mode=mode)

    def call(args: ArgSet) -> Outputs:
        return _outputs(task, compiled(*[args[n] for n in names], **frozen))

    return call


# ---- vendor ops --------------------------------------------------------------------------------------


def _vendor_caller(
    task: Task, axes: Mapping[str, int], params: Mapping[str, Any], arg_sets: Sequence[ArgSet]
) -> tuple[Callable[[int], Outputs], str] | str:
    """(compute(i), description) for the task's vendor op, or the reason there is none."""
    import torch
    import torch.nn.functional as F

    name = task.name
    n = len(arg_sets)

    def need(inputs: tuple[str, ...], outputs: tuple[str, ...]) -> str | None:
        if tuple(task.input_names) != inputs or tuple(task.output_names) != outputs:
            return (
                f"task {name} has inputs {task.input_names} and outputs {task.output_names}; the vendor op "
                f"expects {list(inputs)} -> {list(outputs)}"
            )
        return None

    if name == "matmul":
        if (bad := need(("a", "b"), ("c",))) is not None:
            return bad
        outs = [
            torch.empty(int(axes["M"]), int(axes["N"]), dtype=s["a"].dtype, device=s["a"].device)
            for s in arg_sets
        ]

        def gemm(i: int) -> Outputs:
            s = arg_sets[i % n]
            c = outs[i % n]
            torch.matmul(s["a"], s["b"], out=c)
            return {"c": c}

        return gemm, "torch.matmul(a, b, out=c) in the native dtype (cuBLAS on CUDA)"

    if name == "softmax":
        if (bad := need(("x",), ("out",))) is not None:
            return bad
        return (
            lambda i: {"out": torch.softmax(arg_sets[i % n]["x"], dim=-1)},
            "torch.softmax(x, dim=-1) in the native dtype",
        )

    if name == "rmsnorm":
        if (bad := need(("x", "weight"), ("out",))) is not None:
            return bad
        if not hasattr(F, "rms_norm"):
            return f"torch {torch.__version__} has no torch.nn.functional.rms_norm"
        eps = float(params["eps"])
        shape = (int(axes["N"]),)

        def rms(i: int) -> Outputs:
            s = arg_sets[i % n]
            return {"out": F.rms_norm(s["x"], shape, s["weight"], eps)}

        return rms, "torch.nn.functional.rms_norm(x, (N,), weight, eps) in the native dtype"

    if name == "fused_add_rmsnorm":
        if (bad := need(("x", "residual", "weight"), ("out", "residual_out"))) is not None:
            return bad
        if not hasattr(F, "rms_norm"):
            return f"torch {torch.__version__} has no torch.nn.functional.rms_norm"
        eps = float(params["eps"])
        shape = (int(axes["N"]),)

        def add_rms(i: int) -> Outputs:
            s = arg_sets[i % n]
            r = torch.add(s["x"], s["residual"])
            return {"out": F.rms_norm(r, shape, s["weight"], eps), "residual_out": r}

        return add_rms, "torch.add(x, residual) then F.rms_norm (two library kernels; no fused vendor op)"

    if name == "gqa_decode_attention":
        if (bad := need(("q", "k_cache", "v_cache"), ("o",))) is not None:
            return bad
        scale = float(params["scale"])
        group = int(axes["Hq"]) // int(axes["Hkv"])

        def sdpa_gqa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=True)

        def sdpa_expand(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
            return F.scaled_dot_product_attention(q, k, v, scale=scale)

        s0 = arg_sets[0]
        try:
            sdpa_gqa(s0["q"][:, :, None, :], s0["k_cache"], s0["v_cache"])
            sdpa, how = sdpa_gqa, "enable_gqa=True"
        except (TypeError, RuntimeError):
            sdpa, how = sdpa_expand, "KV heads expanded with repeat_interleave"

        def attn(i: int) -> Outputs:
            s = arg_sets[i % n]
            return {"o": sdpa(s["q"][:, :, None, :], s["k_cache"], s["v_cache"]).squeeze(2)}

        return attn, f"F.scaled_dot_product_attention over one query token per head ({how}), native dtype"

    if name == "silu_and_mul":
        if (bad := need(("x",), ("out",))) is not None:
            return bad
        inter = int(axes["I"])

        def swiglu(i: int) -> Outputs:
            x = arg_sets[i % n]["x"]
            return {"out": F.silu(x[:, :inter]) * x[:, inter:]}

        return swiglu, "F.silu(x[:, :I]) * x[:, I:] in the native dtype"

    if name == "moe_topk_routing":
        if (bad := need(("logits",), ("topk_weights", "topk_ids"))) is not None:
            return bad
        k = int(params["top_k"])

        def route(i: int) -> Outputs:
            values, ids = torch.topk(arg_sets[i % n]["logits"], k, dim=-1, largest=True, sorted=True)
            return {"topk_weights": torch.softmax(values, dim=-1), "topk_ids": ids.to(torch.int32)}

        return route, "torch.topk(logits, K) then torch.softmax over the K values"

    return f"no vendor op is registered for task {name} (op family {task.spec.op_family})"


# ---- building and timing -----------------------------------------------------------------------------


def build_baselines(
    task: Task,
    workload: str | WorkloadSpec,
    arg_sets: Sequence[ArgSet],
    *,
    which: Sequence[BaselineName] = ALL_BASELINES,
    compile_mode: str | None = None,
    check_compile: bool = True,
) -> dict[BaselineName, Baseline]:
    """The baselines in `which` for one workload over the prepared `arg_sets`.

    `torch_compile` is compiled here, by one trial call on argument set 0 (`check_compile`), so
    that a compile failure is reported as unavailable instead of surfacing while timed.
    """
    if not arg_sets:
        raise BaselineError("build_baselines needs at least one argument set")
    missing = [n for n in task.input_names if n not in arg_sets[0]]
    if missing:
        raise BaselineError(
            f"argument sets lack inputs {missing} of task {task.name}; build them with make_inputs"
        )
    unknown = [w for w in which if w not in ALL_BASELINES]
    if unknown:
        raise BaselineError(f"unknown baselines {unknown}; choose from {list(ALL_BASELINES)}")
    wl = task.workload(workload)
    params = task.params_for(wl)
    axes = task.axes_for(wl)
    n = len(arg_sets)
    out: dict[BaselineName, Baseline] = {}

    if "torch_eager" in which:
        eager = _reference_caller(task, params, task.reference)

        def eager_compute(i: int) -> Outputs:
            import torch

            with torch.no_grad():
                return eager(arg_sets[i % n])

        out["torch_eager"] = Baseline(
            name="torch_eager",
            available=True,
            n_arg_sets=n,
            compute=eager_compute,
            description=f"task {task.name} reference as written (eager PyTorch)",
        )

    if "torch_compile" in which:
        label = f"{task.name}_{wl.name}".replace("-", "_").replace(".", "_")
        try:
            compiled = _compiled_caller(task, params, compile_mode, label)

            def compiled_compute(i: int) -> Outputs:
                import torch

                with torch.no_grad():
                    return compiled(arg_sets[i % n])

            if check_compile:
                compiled_compute(0)
            out["torch_compile"] = Baseline(
                name="torch_compile",
                available=True,
                n_arg_sets=n,
                compute=compiled_compute,
                description=f"torch.compile(reference, dynamic=False, mode={compile_mode!r})",
            )
        except Exception as exc:  # noqa: BLE001 - any compile/trace failure makes the baseline unavailable
            out["torch_compile"] = Baseline(
                name="torch_compile",
                available=False,
                n_arg_sets=n,
                reason=f"torch.compile failed: {_one_line(exc)}",
                description="torch.compile(reference)",
            )

    if "vendor" in which:
        try:
            made = _vendor_caller(task, axes, params, arg_sets)
        except Exception as exc:  # noqa: BLE001 - a vendor op that cannot run here is unavailable, not fatal
            made = f"vendor op failed to set up: {_one_line(exc)}"
        if isinstance(made, str):
            out["vendor"] = Baseline(name="vendor", available=False, n_arg_sets=n, reason=made)
        else:
            compute, description = made

            def vendor_compute(i: int, compute: Callable[[int], Outputs] = compute) -> Outputs:
                import torch

                with torch.no_grad():
                    return compute(i)

            out["vendor"] = Baseline(
                name="vendor", available=True, n_arg_sets=n, compute=vendor_compute, description=description
            )
    return out


def time_baselines(
    baselines: Mapping[BaselineName, Baseline],
    *,
    device: Any,
    **timing_kwargs: Any,
) -> dict[BaselineName, BaselineTiming]:
    """Time each available baseline with `time_gpu` (same flush, statistics and stopping rule as the
    candidate; pass the candidate's timing kwargs). A baseline that raises while timed is reported
    unavailable with the error."""
    from ksearch.harness.timing import time_gpu

    results: dict[BaselineName, BaselineTiming] = {}
    for key, b in baselines.items():
        if not b.available or b.compute is None:
            results[key] = BaselineTiming(
                name=b.name, available=False, reason=b.reason, description=b.description
            )
            continue
        try:
            timing = time_gpu(b, b.n_arg_sets, device=device, **timing_kwargs)
        except Exception as exc:  # noqa: BLE001 - a failing baseline is reported, the candidate still counts
            results[key] = BaselineTiming(
                name=b.name,
                available=False,
                description=b.description,
                reason=f"failed while timed: {_one_line(exc)}",
            )
            continue
        results[key] = BaselineTiming(name=b.name, available=True, description=b.description, timing=timing)
    return results
