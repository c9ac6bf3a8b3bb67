"""Which strategy templates can search a task, and how their candidates take its signature.

A built-in task has its own templates. An imported task (KernelBench, GPU MODE, FlashInfer-Bench)
borrows those of a built-in op family when its contract fits: on its smallest CPU workload, its
reference must give what the family's reference gives on the same tensors arranged the family's
way (rows of the last dim, a transposed operand, the operands swapped). The template's source is
then kept whole, its `run` renamed, and an entry with the task's own signature calls it with those
arrangements (views only: the outputs are written in place).

Families fitted: softmax over the last dim, RMSNorm over the last dim (with the family's eps), GEMM
with either operand transposed or the operands swapped, SiLU-and-mul. Anything else needs a
proposer that writes kernels (an LLM); `no_templates_message` says which.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ksearch.errors import ConfigError
from ksearch.propose.templates import Template, templates_for
from ksearch.task import Task, load_task

FAMILIES = ("softmax", "rmsnorm", "matmul", "silu_and_mul")


@dataclass(frozen=True)
class Fit:
    family: str  # the built-in task whose templates apply
    call: str  # the arguments of the template's run, as source over the task's entry arguments
    why: str


def _rows(name: str) -> str:
    return f"{name}.reshape(-1, {name}.shape[-1])"


def _close(got: torch.Tensor, want: torch.Tensor, tol) -> bool:
    return (
        got.shape == want.shape
        and got.dtype == want.dtype
        and torch.allclose(got.float(), want.float(), atol=tol.atol, rtol=tol.rtol, equal_nan=True)
    )


def _family_out(family: str, *args: torch.Tensor) -> torch.Tensor:
    task = load_task(family)
    return task.reference(*args, **task.spec.params)


def _fit_softmax(ins, outs, names, tol) -> Fit | None:
    if len(ins) != 1 or len(outs) != 1 or ins[0].dim() < 1 or outs[0].shape != ins[0].shape:
        return None
    x = ins[0]
    if not _close(outs[0], _family_out("softmax", x.reshape(-1, x.shape[-1])).reshape(x.shape), tol):
        return None
    return Fit("softmax", f"{_rows(names[0])}, {_rows(names[1])}", "softmax over the last dim")


def _fit_rmsnorm(ins, outs, names, tol) -> Fit | None:
    if len(ins) != 2 or len(outs) != 1 or ins[1].dim() != 1 or outs[0].shape != ins[0].shape:
        return None
    x, w = ins
    if x.shape[-1] != w.shape[0]:
        return None
    if not _close(outs[0], _family_out("rmsnorm", x.reshape(-1, x.shape[-1]), w).reshape(x.shape), tol):
        return None
    return Fit("rmsnorm", f"{_rows(names[0])}, {names[1]}, {_rows(names[2])}", "RMSNorm over the last dim")


def _fit_matmul(ins, outs, names, tol) -> Fit | None:
    if len(ins) != 2 or len(outs) != 1 or any(t.dim() != 2 for t in (*ins, *outs)):
        return None
    for (i, j), ta, tb in itertools.product(((0, 1), (1, 0)), (False, True), (False, True)):
        a = ins[i].t() if ta else ins[i]
        b = ins[j].t() if tb else ins[j]
        if a.shape[1] != b.shape[0] or outs[0].shape != (a.shape[0], b.shape[1]):
            continue
        if _close(outs[0], _family_out("matmul", a, b), tol):
            arg_a, arg_b = names[i] + (".t()" if ta else ""), names[j] + (".t()" if tb else "")
            return Fit("matmul", f"{arg_a}, {arg_b}, {names[2]}", f"GEMM {arg_a} @ {arg_b}")
    return None


def _fit_silu_and_mul(ins, outs, names, tol) -> Fit | None:
    if len(ins) != 1 or len(outs) != 1 or ins[0].dim() < 1 or ins[0].shape[-1] % 2:
        return None
    x = ins[0]
    if outs[0].shape != (*x.shape[:-1], x.shape[-1] // 2):
        return None
    if not _close(
        outs[0], _family_out("silu_and_mul", x.reshape(-1, x.shape[-1])).reshape(outs[0].shape), tol
    ):
        return None
    return Fit("silu_and_mul", f"{_rows(names[0])}, {_rows(names[1])}", "SiLU(first half) * second half")


_PROBES: tuple[Callable, ...] = (_fit_softmax, _fit_rmsnorm, _fit_matmul, _fit_silu_and_mul)


def fit(task: Task) -> Fit | None:
    """The built-in family whose templates compute `task`, seen on its smallest CPU workload; None
    when no family's reference agrees with the task's."""
    if task.name in FAMILIES or len(task.entry_args) != len(task.input_names) + len(task.output_names):
        return None
    cpu = task.workloads(cpu_only=True) or task.workloads()
    if not cpu:
        return None
    wl = min(cpu, key=lambda w: task.bytes(w, task.default_dtype) or 0)
    dtype = task.default_dtype
    try:
        inputs = task.make_inputs(wl, "normal", 0, dtype=dtype)
        refs = task.run_reference({k: v.clone() for k, v in inputs.items()}, workload=wl, dtype=dtype)
    except Exception:  # noqa: BLE001  a reference that does not run here fits nothing
        return None
    ins, outs = list(inputs.values()), [refs[n] for n in task.output_names]
    if not all(t.is_floating_point() for t in (*ins, *outs)):
        return None
    tol = task.output_tolerances(dtype)[task.output_names[0]]
    names = list(task.entry_args)
    for probe in _PROBES:
        try:
            found = probe(ins, outs, names, tol)
        except (RuntimeError, ValueError, TypeError):
            found = None
        if found is not None:
            return found
    return None


def no_templates_message(task_name: str) -> str:
    return (
        f"the offline proposer has no strategy templates for task {task_name!r}: its contract fits none of "
        "softmax or RMSNorm over the last dim, GEMM (any operand layout) or SiLU-and-mul. Search it with "
        "a proposer that writes kernels: --proposer openai-compatible:MODEL@URL (a local server), "
        "openai:MODEL, anthropic:MODEL or dspy:PROVIDER/MODEL"
    )


class TaskTemplates:
    """The templates that can search a task and the candidate source of one of their settings."""

    def __init__(self, task: Task, backend: str | None = None):
        """`backend`: the Triton backend of the run's primary target (cuda, hip); None: every template."""
        self.task = task
        self.fit = fit(task) if not templates_for(task.name) else None
        self.family = self.fit.family if self.fit else task.name
        self.templates: list[Template] = templates_for(self.family, backend)
        if not self.templates:
            raise ConfigError(no_templates_message(task.name))

    def render(self, t: Template, knobs: dict) -> str:
        source = t.render(self.family, knobs)
        if self.fit is None:
            return source
        # The template's entry keeps its body under another name; the task's entry calls it.
        source, n = re.subn(r"^def run\(", "def _family_run(", source, count=1, flags=re.MULTILINE)
        if n != 1:
            raise ValueError(f"template {t.id} has no `def run(` to adapt")
        source = source.replace(f"# task: {self.family}\n", f"# task: {self.task.name}\n", 1)
        note = f"# adapted: task {self.task.name} fits {self.family} ({self.fit.why})\n"
        entry = f"def {self.task.entry_name}({', '.join(self.task.entry_args)}) -> None:\n"
        return note + source.rstrip("\n") + f"\n\n\n{entry}    _family_run({self.fit.call})\n"
