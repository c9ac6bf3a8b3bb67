"""KernelBench problems: `class Model(nn.Module)`, module-level size constants, `get_inputs()` and
`get_init_inputs()` in one .py file.

A problem is never run at its own size. Its full-size shapes, dtypes and FLOPs are read off a run
on the meta device (else under FakeTensorMode, else with the model built for real where its
construction reads values and `forward` on the meta device), where no tensor holds data: the tensors
`get_inputs` returns (the forward's inputs), the model's parameters and buffers (weights, which
become inputs too, so a kernel receives them like any other tensor) and the tensors `forward`
returns (one output each; a 0-d one as one element). KernelBench fixes one size; ksearch wants a
suite with small CPU shapes, so the size constants (module-level int expressions such as
`N = 2048 * 2`, `K = 4 * N // 2`, `kernel_size = (3, 5)`, read by a safe evaluator; constants
computed from others follow them) are scaled down, shape-only first, until a workload fits the CPU,
run for real at that size only, and become var axes. A dim that follows no constant gets an axis of
its own. Where no shape-only run works at full size (data-dependent ops) or it is too slow (long
recurrences), smaller runs are extrapolated along the axes. Scalar `get_inputs()` entries become
params. FLOPs are counted by torch.utils.flop_counter per workload (matmul-like ops only: an
estimate, said so in the task) and kept in a `FLOPS` axis (where it counts none, `write_task`
estimates them); bytes are exact. The reference rebuilds the model from the copied problem file with
the workload's constants and runs `forward` with the given weights (torch.func.functional_call).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import json
import logging
import math
import operator
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ksearch.errors import TaskError
from ksearch.task.importers.common import (
    CPU_ELEMENTS,
    TOLERANCES,
    Built,
    OutOfTime,
    bytes_formula,
    distributions_for,
    elements,
    infer_generator,
    load_module,
    shapes_at,
    task_name,
    time_limit,
    tolerances_for,
)
from ksearch.task.inputs import dtype_name
from ksearch.task.spec import LANGUAGES

PROBLEM_FILE = "problem.py"
META_FILE = "kernelbench.json"  # input, weight and size-constant names, for KernelBench-form candidates
# CPU-sized values a size constant starts from in the derived workloads (non-powers of two first: masking)
CPU_SIZES = ((12, 20), (33, 24), (7, 48), (40, 16))
FLOOR = 2  # no size constant is scaled below this
KEEP_BELOW = (
    8  # constants under this (kernel sizes, strides, ratios) keep their value unless nothing else scales
)
# Where weights fixed by the model's code keep every workload above CPU_ELEMENTS: the most elements
# (inputs, weights, outputs) the smallest workload may have to still run the reference on the CPU.
LARGE_ELEMENTS = 1 << 27  # 134M, the bound the other importers put on const dims (CPU_CONST_ELEMENTS)
PEAK_ELEMENTS = 1 << 26  # the largest tensor one op may make in a real run
SEARCH_S = 25.0  # time for the search of CPU sizes; what was found by then is used
GRACE_S = 15.0  # more of it while fewer than 3 sizes are found
FULL_S = 6.0  # a shape-only run at full size slower than this (long recurrences): extrapolated instead
RUN_S = 4.0  # a shape-only run at a smaller size slower than this counts as failed
REAL_S = 20.0  # the same for a real run at a CPU size


def detect(path: Path) -> bool:
    if path.suffix != ".py" or not path.is_file():
        return False
    text = path.read_text(errors="replace")
    return "class Model" in text and "def get_inputs" in text


# ---------------------------------------------------------------------------------------------
# Size constants: module-level int expressions, read and overridden without running the file


class _NotSize(Exception):
    """An expression that is not int arithmetic over literals and earlier constants."""


_INT_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def _free_like(value: Any, free: bool) -> Any:
    return tuple(free for _ in value) if isinstance(value, (tuple, list)) else free


def _int_expr(node: ast.AST, env: dict[str, Any]) -> tuple[Any, Any]:
    """(value, free): an int or a flat tuple/list of ints, and for each int whether it comes from
    literals only (free to scale) rather than from another constant."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value, True
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id], _free_like(env[node.id], False)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value, free = _int_expr(node.operand, env)
        if isinstance(value, int):
            return (-value if isinstance(node.op, ast.USub) else value), free
    if isinstance(node, (ast.Tuple, ast.List)):
        parts = [_int_expr(e, env) for e in node.elts]
        if all(isinstance(v, int) for v, _ in parts):
            kind = tuple if isinstance(node, ast.Tuple) else list
            return kind(v for v, _ in parts), tuple(f for _, f in parts)
    if isinstance(node, ast.BinOp) and type(node.op) in _INT_OPS:
        (a, fa), (b, fb) = _int_expr(node.left, env), _int_expr(node.right, env)
        if isinstance(a, int) and isinstance(b, int):
            if isinstance(node.op, ast.Pow) and not 0 <= b <= 64:
                raise _NotSize
            try:
                value = _INT_OPS[type(node.op)](a, b)
            except ArithmeticError as exc:
                raise _NotSize from exc
            if abs(value) < 1 << 62:
                return value, fa and fb
        elif (
            isinstance(node.op, ast.Mult) and isinstance(b, int) and 0 <= b <= 256 and not isinstance(a, int)
        ):
            return a * b, fa * b
        elif (
            isinstance(node.op, ast.Mult) and isinstance(a, int) and 0 <= a <= 256 and not isinstance(b, int)
        ):
            return b * a, fb * a
        elif isinstance(node.op, ast.Add) and type(a) is type(b) and not isinstance(a, int):
            return a + b, fa + fb
    raise _NotSize


@dataclass(frozen=True)
class _Const:
    name: str
    span: tuple[int, int, int, int]  # lineno, col, end_lineno, end_col of its expression
    expr: ast.expr


@dataclass(frozen=True)
class _Knob:
    """A free size: a constant, or the equal literal elements of a tuple/list constant."""

    name: str  # the param name: the constant's, or `<constant>_<first index>`
    const: str
    leaves: tuple[int, ...] | None  # indices into a tuple/list constant; None for an int
    value: int


def _consts(text: str) -> list[_Const]:
    """Module-level assignments of int expressions (and `a, b = 224, 224`), in order."""
    out = []
    for node in ast.parse(text).body:
        targets, value = [], None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            targets = [(target.id, value)]
        elif (
            isinstance(target, ast.Tuple)
            and isinstance(value, ast.Tuple)
            and len(target.elts) == len(value.elts)
            and all(isinstance(t, ast.Name) for t in target.elts)
        ):
            targets = [(t.id, v) for t, v in zip(target.elts, value.elts)]  # type: ignore[attr-defined]
        for name, expr in targets:
            out.append(
                _Const(
                    name,
                    (expr.lineno, expr.col_offset, expr.end_lineno or expr.lineno, expr.end_col_offset or 0),
                    expr,
                )
            )
    return out


def _evaluate(
    consts: list[_Const], knobs: dict[str, _Knob] | None = None, overrides: dict[str, int] | None = None
) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    """Every constant's value, in file order, with `overrides` (by knob name) applied where set:
    constants computed from an overridden one follow it. Returns the values by name, their free
    flags, and the value of each assignment (None where it is no size constant)."""
    env: dict[str, Any] = {}
    frees: dict[str, Any] = {}
    per: list[Any] = []
    by_const: dict[str, list[_Knob]] = {}
    for knob in (knobs or {}).values():
        if knob.name in (overrides or {}):
            by_const.setdefault(knob.const, []).append(knob)
    for const in consts:
        try:
            value, free = _int_expr(const.expr, env)
        except _NotSize:
            env.pop(const.name, None)
            frees.pop(const.name, None)
            per.append(None)
            continue
        for knob in by_const.get(const.name, []):
            new = int(overrides[knob.name])  # type: ignore[index]
            if knob.leaves is None:
                value = new
            elif isinstance(value, (tuple, list)) and len(value) > max(knob.leaves):
                items = list(value)
                for i in knob.leaves:
                    items[i] = new
                value = type(value)(items)
        env[const.name], frees[const.name] = value, free
        per.append(value)
    return env, frees, per


def _knobs(text: str) -> dict[str, _Knob]:
    """The free sizes of a problem: each int constant >= FLOOR written over literals only, and in a
    tuple/list constant each group of equal literal elements >= FLOOR (scaled together)."""
    consts = _consts(text)
    values, frees, _ = _evaluate(consts)
    knobs: dict[str, _Knob] = {}
    for name, value in values.items():
        free = frees[name]
        if isinstance(value, int):
            if free and value >= FLOOR:
                knobs[name] = _Knob(name, name, None, value)
            continue
        groups: dict[int, list[int]] = {}
        for i, (v, f) in enumerate(zip(value, free)):
            if f and v >= FLOOR:
                groups.setdefault(v, []).append(i)
        for v, leaves in groups.items():
            knob_name = f"{name}_{leaves[0]}"
            if knob_name not in values and knob_name not in knobs:
                knobs[knob_name] = _Knob(knob_name, name, tuple(leaves), v)
    return knobs


def _overridden(text: str, overrides: dict[str, int]) -> str:
    """The problem's source with the constant expressions that `overrides` change written as literals."""
    consts = _consts(text)
    knobs = _knobs(text)
    unknown = sorted(set(overrides) - set(knobs))
    if unknown:
        raise TaskError(
            f"the problem has no size constant {unknown[0]}; its size constants are "
            f"{', '.join(knobs) or 'none'}"
        )
    _, _, before = _evaluate(consts)
    _, _, after = _evaluate(consts, knobs, overrides)
    data = text.encode()
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    for const, old, new in reversed(list(zip(consts, before, after))):
        if new != old:
            line, col, end_line, end_col = const.span
            start, end = starts[line - 1] + col, starts[end_line - 1] + end_col
            data = data[:start] + b"(" + repr(new).encode() + b")" + data[end:]
    return data.decode()


def _load(path: Path, overrides: dict[str, int] | None = None):
    """The problem's module with its size constants at `overrides` (knob name -> value)."""
    path = Path(path)
    source = _overridden(path.read_text(), overrides) if overrides else None
    module = load_module(f"ksearch_kernelbench_{abs(hash(str(path)))}", path, source)
    for needed in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(module, needed):
            raise TaskError(f"{path}: a KernelBench problem defines {needed}; this file does not")
    return module


# ---------------------------------------------------------------------------------------------
# Runs of the problem: shape-only (meta device, FakeTensorMode) or real (CPU sizes only)


class _TooBig(Exception):
    """A real run would make more than it may."""


class _Watch(TorchDispatchMode):
    """Tracks the largest tensor an op makes; in a real run, refuses a factory call (empty, rand,
    zeros, ...) over `limit` elements, or over `total` elements made by factories, before it allocates."""

    def __init__(self, limit: int | None = None, total: int | None = None):
        super().__init__()
        self.peak = 0
        self.made = 0
        self.limit, self.total = limit, total

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (
            self.limit is not None
            and not any(isinstance(a, torch.Tensor) for a in tree_leaves((args, kwargs)))
            and any(a.name == "device" for a in func._schema.arguments)
            and str(kwargs.get("device", "cpu")) != "meta"
        ):
            probe = func(*args, **{**kwargs, "device": "meta"})
            n = sum(t.numel() for t in tree_leaves(probe) if isinstance(t, torch.Tensor))
            self.made += n
            if n > self.limit or (self.total is not None and self.made > self.total):
                raise _TooBig(f"it makes a tensor of {n} elements ({self.made} in all) even at CPU sizes")
        out = func(*args, **kwargs)
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.peak = max(self.peak, t.numel())
        return out


@dataclass
class _Seen:
    """What one run of the problem showed."""

    args: list  # get_inputs() entries: tensors or Python scalars
    weights: dict[str, torch.Tensor]
    outputs: list[torch.Tensor]
    flops: int
    peak: int  # elements of the largest tensor an op made
    how: str  # meta, fake or real

    def tensors(self) -> list[torch.Tensor]:
        return [*(a for a in self.args if isinstance(a, torch.Tensor)), *self.weights.values(), *self.outputs]

    @property
    def elements(self) -> int:
        return sum(t.numel() for t in self.tensors())

    def structure(self) -> tuple:
        def kind(x):
            return (dtype_name(x.dtype), x.dim()) if isinstance(x, torch.Tensor) else type(x).__name__

        return (
            tuple(kind(a) for a in self.args),
            tuple((k, kind(w)) for k, w in self.weights.items()),
            tuple(kind(o) for o in self.outputs),
        )

    def shapes(self) -> tuple:
        return tuple(
            tuple(t.shape) if isinstance(t, torch.Tensor) else t
            for t in [*self.args, *self.weights.values(), *self.outputs]
        )


def _run(path: Path, overrides: dict[str, int], how: str) -> _Seen:
    """Build the model and run `forward` once: `meta` on the meta device, `fake` under
    FakeTensorMode (neither holds data), `real` on the CPU under a guard against large allocations."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    watch = _Watch(PEAK_ELEMENTS, LARGE_ELEMENTS + PEAK_ELEMENTS) if how in ("real", "built") else _Watch()
    modes: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
        "meta": lambda: torch.device("meta"),
        "fake": lambda: FakeTensorMode(allow_non_fake_inputs=True),
        "real": contextlib.nullcontext,
        "built": contextlib.nullcontext,
    }
    mode = modes[how]()
    with mode, watch:
        module = _load(path, overrides)
        torch.manual_seed(0)
        model = module.Model(*module.get_init_inputs())
    if how == "built":  # built for real (its code reads values), then run on the meta device
        model = model.to("meta")
        mode, watch = torch.device("meta"), _Watch()
    with mode, watch:
        torch.manual_seed(0)
        args = list(module.get_inputs())
        weights = dict(model.state_dict())
        if how == "real":  # as built: forward may update buffers (batch-norm statistics) in place
            weights = {k: w.clone() for k, w in weights.items()}
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            result = model(*args)
    outputs = list(result) if isinstance(result, (tuple, list)) else [result]
    seen = _Seen(args, weights, outputs, int(counter.get_total_flops()), watch.peak, how)
    if how in ("meta", "built") and any(t.device.type != "meta" for t in seen.tensors()):
        raise RuntimeError("the problem makes tensors on a device of its own choosing")
    return seen


def _is_fake(t: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(t, FakeTensor)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


# ---------------------------------------------------------------------------------------------
# The search for CPU sizes


@dataclass
class _Problem:
    path: Path
    knobs: dict[str, _Knob]
    deadline: float
    how: list[str] = field(default_factory=lambda: ["meta", "fake", "built"])  # shape-only modes still in use
    ties: dict[str, list[str]] = field(default_factory=dict)  # constants that only scale with this one
    cache: dict[tuple, _Seen | BaseException] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # why each shape-only mode failed at full size
    full_known: bool = True  # False: the full size is extrapolated from smaller runs
    spent: float = 0.0  # seconds in shape-only runs at smaller sizes, and how many
    runs: int = 0

    def shape(self, values: dict[str, int]) -> _Seen | BaseException:
        """A shape-only run at `values` (cached): meta, else FakeTensorMode; with neither left (the
        problem's ops need data), a guarded real run, so only ever call it at CPU sizes then."""
        values = self.tied(values)
        key = tuple(sorted(values.items()))
        if key not in self.cache:
            start = time.monotonic()
            self.cache[key] = self._shape(values)
            if values:
                self.spent, self.runs = self.spent + time.monotonic() - start, self.runs + 1
        return self.cache[key]

    def _shape(self, values: dict[str, int]) -> _Seen | BaseException:
        error: BaseException | None = None
        for how in list(self.how):
            try:
                with _quiet("torch._subclasses.fake_tensor"), time_limit(RUN_S if values else FULL_S):
                    return _run(self.path, values, how)
            except TaskError:
                raise
            except OutOfTime as exc:
                if values:
                    return exc
                # too slow at full size: keep this mode for smaller sizes and extrapolate the full one
                self.errors[how] = f"a run at full size {exc}"
                self.how, self.full_known = [how], False
                return exc
            except Exception as exc:  # noqa: BLE001  the problem's own code, at this size or in this mode
                error = error or exc
                if not values:  # at full size: this mode cannot run the problem at all
                    self.errors[how] = _why(exc)
                    self.how.remove(how)
        if not values:
            self.full_known = False
        if self.how or not values:  # never a real run at the problem's own size
            return error or RuntimeError("no way to run the problem")
        return self.real(values)

    def real(self, values: dict[str, int]) -> _Seen | BaseException:
        try:
            with time_limit(REAL_S):
                return _run(self.path, self.tied(values), "real")
        except TaskError:
            raise
        except OutOfTime as exc:
            return exc
        except Exception as exc:  # noqa: BLE001  a size this problem refuses, or a run too large or slow
            return exc

    def tied(self, values: dict[str, int]) -> dict[str, int]:
        return {**values, **{m: values[k] for k, mates in self.ties.items() if k in values for m in mates}}

    @property
    def shape_only(self) -> bool:
        return bool(self.how)

    def late(self, needed: bool = False) -> bool:
        """Past the search's time; `needed` (too few sizes found yet to import): past a later one."""
        return time.monotonic() > self.deadline + (GRACE_S if needed else 0)

    def slow(self) -> bool:
        """Shape-only runs take long enough (a tenth of a second) to spend them carefully."""
        return self.spent > 0.1 * max(1, self.runs)


@contextlib.contextmanager
def _quiet(logger: str):
    """FakeTensorMode logs every op it cannot run; here a failure is an answer, not news."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _fits(seen: _Seen | BaseException, budget: int) -> bool:
    return isinstance(seen, _Seen) and seen.elements <= budget and seen.peak <= PEAK_ELEMENTS


def _shrink(
    problem: _Problem, start: dict[str, int], base: _Seen, budget: int, keep: set[str], needed: bool = False
) -> tuple[dict[str, int], _Seen] | None:
    """Halve the largest size constant (but those in `keep`) that still runs with the same inputs and
    outputs, until the workload fits `budget` or none can shrink. None when `start` does not run."""
    seen = problem.shape(start)
    if not isinstance(seen, _Seen) or seen.structure() != base.structure():
        return None
    values = dict(start)
    stuck: set[str] = set(keep)  # constants that would not shrink: tried again only when all are stuck
    retry = True
    while not _fits(seen, budget) and not problem.late(needed=needed):
        moved = False
        for k in sorted(values, key=lambda k: -values[k]):
            if k in stuck:
                continue
            for v in sorted({max(FLOOR, values[k] // d) for d in (2, 3, 4)} - {values[k]}, reverse=True):
                trial = {**values, k: v}
                got = problem.shape(trial)
                if (
                    isinstance(got, _Seen)
                    and got.structure() == base.structure()
                    and (got.elements, got.peak) < (seen.elements, seen.peak)
                ):
                    values, seen, moved = trial, got, True
                    break
            if moved:
                break
            stuck.add(k)
        if moved:
            retry = True
        elif retry and stuck - keep:  # another constant's change may have freed one
            stuck = set(keep)
            retry = False
        else:
            break
    return values, seen


def _variants(
    problem: _Problem, shaping: dict[str, int], base: _Seen, fixed: int
) -> tuple[list[dict[str, int]], int, _Seen | None]:
    """Up to 4 distinct CPU sizes of the shaping constants that run shape-only within budget, and the
    budget: CPU_ELEMENTS, or LARGE_ELEMENTS where tensors no constant sizes (`fixed` elements) exceed it."""
    names = sorted(shaping)
    keep = {k for k, v in shaping.items() if v < KEEP_BELOW}
    starts = [
        {k: min(v, small if i % 2 == 0 else other) for i, (k, v) in enumerate(sorted(shaping.items()))}
        for small, other in CPU_SIZES
    ]
    starts.append(dict(shaping))
    budget = CPU_ELEMENTS if fixed <= CPU_ELEMENTS else LARGE_ELEMENTS
    found: list[dict[str, int]] = []
    best: tuple[dict[str, int], _Seen] | None = None

    def near() -> None:
        """More sizes next to those found: one constant one less, halved or one more (small ones last)."""
        for movable in ([k for k in names if k not in keep], sorted(keep)):
            for values in found:  # (grows as it goes)
                for k in movable:
                    for v in (values[k] - 1, values[k] // 2, values[k] + 1):
                        if len(found) >= 4 or problem.late(needed=len(found) < 3):
                            return
                        trial = {**values, k: v}
                        if v < FLOOR or v > shaping[k] or trial in found or trial == shaping:
                            continue
                        got = problem.shape(trial)
                        if _fits(got, budget) and got.structure() == base.structure():  # type: ignore[union-attr]
                            found.append(trial)

    for start in starts:
        if len(found) >= 4 or problem.late(needed=not found) or (found and budget == LARGE_ELEMENTS):
            break
        if not problem.full_known and start == shaping:
            continue  # a real run at the problem's own size: never (nor a slow shape-only one)
        # as small as it gets, even where weights keep it large
        got = _shrink(problem, start, base, CPU_ELEMENTS, keep, needed=not found)
        if got is not None and not _fits(got[1], budget) and keep and budget == CPU_ELEMENTS:
            smaller = _shrink(
                problem, got[0], base, CPU_ELEMENTS, set()
            )  # the small constants too, if that fits
            got = smaller if smaller is not None and _fits(smaller[1], budget) else got
        if got is None:
            continue
        values, seen = got
        if best is None or seen.elements < best[1].elements:
            best = got
        if _fits(seen, budget) and values not in found and values != shaping:
            found.append(values)
            if problem.slow():  # each run costs: sizes next to this one before other starts
                near()
    if not found and best is not None and budget == CPU_ELEMENTS and _fits(best[1], LARGE_ELEMENTS):
        budget = LARGE_ELEMENTS
        found.append(best[0])
    near()
    return found, budget, best[1] if best is not None else None


# ---------------------------------------------------------------------------------------------
# The task


def _names(module, n_args: int, n_outputs: int) -> tuple[list[str], list[str]]:
    try:
        params = [p for p in inspect.signature(module.Model.forward).parameters if p != "self"]
    except (TypeError, ValueError):
        params = []
    args = (
        params
        if len(params) == n_args and all(p.isidentifier() for p in params)
        else [f"x{i}" for i in range(n_args)]
    )
    outputs = ["out"] if n_outputs == 1 else [f"out{i}" for i in range(n_outputs)]
    return args, outputs


def _weight_name(key: str, taken: set[str]) -> str:
    name = re.sub(r"\W", "_", key)
    while name in taken:
        name += "_"
    return name


def _refuse(path: Path, why: str) -> TaskError:
    return TaskError(f"{path}: {why}")


def _base(problem: _Problem, path: Path) -> tuple[_Seen | None, dict[str, int], _Seen]:
    """The full-size shape-only run (None where it cannot be had: data-dependent ops, too slow), the
    sizes to perturb the constants from, and the run at those sizes: the full size where that runs
    quickly, else CPU-sized (real runs where no shape-only one works)."""
    start_time = time.monotonic()
    full = problem.shape({})
    if isinstance(full, _Seen):
        problem.how = [full.how]  # at other sizes, a failure in this mode is the problem's own
        if time.monotonic() - start_time < 1.0:
            return full, {}, full
    small, other = CPU_SIZES[0]
    knobs = sorted(problem.knobs.items())
    error: BaseException | None = None
    for start in (
        {k: min(kn.value, small if i % 2 == 0 else other) for i, (k, kn) in enumerate(knobs)},
        {k: min(kn.value, FLOOR) for k, kn in knobs},
    ):
        if not start or start == {k: kn.value for k, kn in knobs}:
            break
        seen = problem.shape(start)
        if isinstance(seen, _Seen) and (not isinstance(full, _Seen) or seen.structure() == full.structure()):
            return (full if isinstance(full, _Seen) else None), start, seen
        error = seen if isinstance(seen, BaseException) else error
    if isinstance(full, _Seen):
        return full, {}, full
    modes = "; ".join(f"{how}: {err}" for how, err in problem.errors.items())
    at_cpu = f"; at CPU sizes: {_why(error)}" if error is not None else ""
    raise _refuse(path, f"the problem cannot run ({modes or _why(full)}){at_cpu}")


def build(path: Path, name: str | None) -> Built:
    path = Path(path)
    with torch.device("meta"):  # module-level tensors hold no data
        module = _load(path)  # the file's own errors first, as one line
    problem = _Problem(path, _knobs(path.read_text()), time.monotonic() + SEARCH_S)
    full, base_values, base = _base(problem, path)
    for i, a in enumerate(base.args):
        if not isinstance(a, (torch.Tensor, bool, int, float)):
            raise _refuse(
                path,
                f"get_inputs() entry {i} is a {type(a).__name__}; only tensors and int/float "
                "scalars can be inputs",
            )
    if not base.outputs or not all(isinstance(t, torch.Tensor) for t in base.outputs):
        raise _refuse(path, "forward must return a tensor or a tuple of tensors")
    if not any(isinstance(a, torch.Tensor) for a in base.args):
        raise _refuse(path, "get_inputs() returns no tensor; a kernel needs at least one input tensor")

    # Which constants set sizes: changing one (or one with the constants of its value it must equal)
    # changes some shape and nothing else.
    shaping: dict[str, int] = {}
    perturbed: list[_Seen] = []

    def perturb(group: list[str], v0: int) -> _Seen | None | bool:
        """The run at a nearby size that changes shapes; False where one runs unchanged; None where
        none runs with the same inputs and outputs."""
        for trial in (v0 + 1, 2 * v0, v0 - 1, v0 // 2):
            got = problem.shape({**base_values, **{g: trial for g in group}}) if trial >= FLOOR else None
            if isinstance(got, _Seen) and got.structure() == base.structure():
                return got if got.shapes() != base.shapes() else False
        return None

    for k, knob in problem.knobs.items():
        if any(k in mates for mates in problem.ties.values()):
            continue
        v0 = base_values.get(k, knob.value)
        got = perturb([k], v0)
        mates = [
            j
            for j, other in problem.knobs.items()
            if j != k and j not in shaping and base_values.get(j, other.value) == v0
        ]
        if got is None and mates:
            got = perturb([k, *mates], v0)
            if got:
                problem.ties[k] = mates
        if got:
            shaping[k] = knob.value
            perturbed.append(got)  # type: ignore[arg-type]
    tried = ", ".join(problem.knobs) or "none"
    if not shaping:
        raise _refuse(
            path,
            f"no size constant changes a shape (constants tried: {tried}), so no smaller size "
            "of this problem can run on the CPU; ksearch needs small workloads to verify on the CPU",
        )
    fixed_tensors = [
        (t, i)
        for i, t in enumerate(base.tensors())
        if all(p.tensors()[i].shape == t.shape for p in perturbed)
    ]
    fixed = sum(t.numel() for t, _ in fixed_tensors)
    if fixed > LARGE_ELEMENTS:
        t, i = max(fixed_tensors, key=lambda ti: ti[0].numel())
        raise _refuse(
            path,
            f"{fixed} elements of its inputs, weights and outputs (the largest {tuple(t.shape)}) "
            f"follow no size constant, over the {LARGE_ELEMENTS} a CPU workload may hold; it "
            "cannot be scaled down to run on the CPU",
        )
    found, budget, smallest = _variants(problem, shaping, base, fixed)
    if not found:
        at = (
            (
                f"; the smallest size it runs at holds {smallest.elements} elements, its largest tensor "
                f"{smallest.peak} (at most {PEAK_ELEMENTS})"
            )
            if smallest is not None
            else "; no smaller size runs"
        )
        raise _refuse(
            path,
            f"no smaller size of this problem fits {budget} elements (constants scaled: "
            f"{', '.join(shaping)}){at}; ksearch needs small workloads to verify on the CPU",
        )
    runs: list[tuple[dict[str, int], _Seen]] = []
    failed: list[str] = []
    # each CPU size runs for real once; where weights keep them large, only the smallest that runs
    # does (the others keep their shape-only run)
    real_done = False

    def elements_at(values: dict[str, int]) -> float:
        seen = problem.shape(values)
        return seen.elements if isinstance(seen, _Seen) else math.inf

    for values in sorted(found, key=elements_at) if budget != CPU_ELEMENTS else found:
        if budget == CPU_ELEMENTS or not real_done or not problem.shape_only:
            seen = problem.real(values) if problem.shape_only else problem.shape(values)
        else:
            seen = problem.shape(values)
        if isinstance(seen, _Seen) and seen.structure() == base.structure():
            runs.append((values, seen))
            real_done = real_done or seen.how == "real"
        elif isinstance(seen, BaseException):
            failed.append(_why(seen))
    if not real_done:
        runs = []
    if len(runs) < 3:
        raise _refuse(
            path,
            f"only {len(runs)} smaller sizes of this problem run on the CPU within {budget} elements "
            f"(constants scaled: {', '.join(shaping)}){'; ' + failed[0] if failed else ''}; "
            "ksearch needs 3 to verify on the CPU",
        )
    modes_failed = "; ".join(f"{how}: {err}" for how, err in problem.errors.items())
    full_flops = _full_flops(problem, shaping) if full is None and problem.shape_only else None
    problem.cache.clear()  # the runs at other sizes are no longer needed
    return _spec(path, name, module, shaping, full, runs, budget, modes_failed, problem.ties, full_flops)


def _full_flops(problem: _Problem, shaping: dict[str, int]) -> tuple[int, str] | None:
    """FLOPs at full size where the full-size run was too slow: full size but for one constant, at
    two small values of it, extrapolated along it as a power law (exact where FLOPs grow linearly
    with it, as with a sequence length). Returns the count and the constant, or None."""
    for k in sorted(shaping, key=lambda k: -shaping[k]):
        lo = max(FLOOR, min(shaping[k] // 4, 16))
        if 2 * lo >= shaping[k] or problem.late():
            continue
        a, b = problem.shape({**shaping, k: lo}), problem.shape({**shaping, k: 2 * lo})
        if isinstance(a, _Seen) and isinstance(b, _Seen) and a.flops > 0 and b.flops >= a.flops:
            power = math.log2(b.flops / a.flops)
            return round(b.flops * (shaping[k] / (2 * lo)) ** power), k
    return None


def _spec(
    path: Path,
    name: str | None,
    module,
    shaping: dict[str, int],
    full: _Seen | None,
    runs: list[tuple[dict[str, int], _Seen]],
    budget: int,
    modes_failed: str,
    ties: dict[str, list[str]],
    full_flops: tuple[int, str] | None = None,
) -> Built:
    first = runs[0][1]
    # constants that keep their value in every workload stay as the file has them
    varied = {k: v for k, v in shaping.items() if len({v, *(r[0][k] for r in runs)}) > 1}
    all_runs: list[tuple[dict[str, int], _Seen | None]] = [(dict(shaping), full), *runs]
    arg_names, out_names = _names(module, len(first.args), len(first.outputs))
    tensor_pos = [i for i, a in enumerate(first.args) if isinstance(a, torch.Tensor)]
    in_names = [arg_names[i] for i in tensor_pos]
    taken = set(arg_names) | set(out_names)
    w_names = []
    for key in first.weights:
        w_names.append(_weight_name(key, taken))
        taken.add(w_names[-1])
    sample = full or first
    sample_tensors = [*(sample.args[i] for i in tensor_pos), *sample.weights.values()]
    dtype_counts = Counter(dtype_name(t.dtype) for t in sample_tensors if t.dtype.is_floating_point)
    variant_dtype = dtype_counts.most_common(1)[0][0] if dtype_counts else "float32"
    if variant_dtype not in TOLERANCES:
        raise _refuse(path, f"inputs in {variant_dtype}; importable dtypes are {', '.join(TOLERANCES)}")

    axis = {
        k: k.upper() if k.upper() != k else f"{k}_AXIS" for k in varied
    }  # params keep the constant's name
    axes: dict[str, dict] = {
        axis[k]: {"kind": "var", "description": f"the problem's size constant {k}"} for k in varied
    }

    def seq_of(values_of) -> list:
        return [values_of(values, seen) for values, seen in all_runs]

    def follow(seq: list) -> int | str | None:
        """A dim or scalar along the runs (None where not run): a number, an axis (or a multiple of
        one), or None. Without the full-size run, a size constant is preferred to a number."""
        known = {x for x in seq if x is not None}
        if full is not None and len(known) == 1:
            return known.pop()
        for k in varied:
            ks = [values[k] for values, _ in all_runs]
            for m in range(1, 9):
                if all(x is None or x == m * kv for x, kv in zip(seq, ks)):
                    return axis[k] if m == 1 else f"{m}*{axis[k]}"
        if len(known) == 1:
            return known.pop()
        # (m*K + c) // d: a convolution's or a pooling's output length
        points = [(x, values) for x, (values, _) in zip(seq, all_runs) if x is not None]
        for k in varied:
            for d in range(1, 5):
                for m in range(1, 9):
                    x0, v0 = points[0]
                    for c in range(x0 * d - m * v0[k], x0 * d - m * v0[k] + d):
                        if abs(c) <= 64 and all(x == (m * v[k] + c) // d for x, v in points):
                            text = (
                                (f"{m}*" if m > 1 else "")
                                + axis[k]
                                + (f"+{c}" if c > 0 else f"-{-c}" if c else "")
                            )
                            return f"({text})//{d}" if d > 1 else text
        return None

    def dims_of(tensor_name: str, get) -> list:
        shapes = seq_of(lambda v, s: None if s is None else tuple(get(s).shape) or (1,))
        rank = len(next(s for s in shapes if s is not None))
        out: list = []
        for i in range(rank):
            seq = [None if s is None else s[i] for s in shapes]
            dim = follow(seq)
            if dim is None:
                if full is None:
                    raise _refuse(
                        path,
                        f"no shape-only run at full size ({modes_failed}) and dim {i} of "
                        f"{tensor_name} follows no size constant, so its full size is unknown",
                    )
                dim = f"{tensor_name}_d{i}"
                axes[dim] = {"kind": "var", "description": f"dim {i} of {tensor_name}"}
                own[dim] = seq
            out.append(dim)
        return out

    own: dict[str, list] = {}

    spread: list[str] = []

    def tensor_spec(tensor_name: str, get, samples: list[torch.Tensor] | None, weight: bool = False) -> dict:
        t = get(sample)
        d = dtype_name(t.dtype)
        spec: dict[str, Any] = {
            "dtype": "$dtype" if d == variant_dtype else d,
            "shape": dims_of(tensor_name, get),
        }
        real = [
            (values, s)
            for values, s in zip([v for v, _ in runs], samples or [])
            if s.device.type != "meta" and not _is_fake(s)
        ]
        samples = [s for _, s in real]
        if samples:
            gen = spec["distribution"] = infer_generator(max(samples, key=lambda s: s.numel()))
            if gen["kind"] == "randint":  # indices below a size constant (class ids): bounded by its axis
                tops = [(int(s.max()) + 1, values) for values, s in real]
                bound = next((k for k in varied if all(v[k] // 2 < top <= v[k] for top, v in tops)), None)
                if bound is not None:
                    gen["high"] = axis[bound]
            narrow = gen["kind"] == "uniform" and gen["high"] - gen["low"] < 1e-6
            if (
                weight
                and (gen["kind"] == "constant" or narrow)
                and t.dtype.is_floating_point
                and t.numel() > 1
            ):
                c = gen["value"] if gen["kind"] == "constant" else (gen["low"] + gen["high"]) / 2
                half = max(abs(c) / 2, 0.1)
                spec["distribution"] = {
                    "kind": "uniform",
                    "low": round(c - half, 6),
                    "high": round(c + half, 6),
                }
                spread.append(f"{tensor_name} ({c:g})")
        return spec

    inputs: dict[str, dict] = {}
    for p, n in zip(tensor_pos, in_names):
        inputs[n] = tensor_spec(n, lambda s, p=p: s.args[p], [r.args[p] for _, r in runs])
    for key, n in zip(first.weights, w_names):
        inputs[n] = tensor_spec(
            n, lambda s, key=key: s.weights[key], [r.weights[key] for _, r in runs], weight=True
        )
    outputs = {n: tensor_spec(n, lambda s, i=i: s.outputs[i], None) for i, n in enumerate(out_names)}

    # scalar entries of get_inputs(): fixed values or sizes, as params
    params: dict[str, Any] = {k: axis[k] for k in varied}
    params.update({m: axis[k] for k in varied for m in ties.get(k, ())})
    args_meta: list[dict] = []
    scalar_notes = []
    for i, arg_name in enumerate(arg_names):
        if i in tensor_pos:
            args_meta.append({"tensor": arg_name})
            continue
        seq = seq_of(lambda v, s, i=i: None if s is None else s.args[i])
        value = follow(seq)
        kind = type(first.args[i]).__name__ if isinstance(first.args[i], (bool, int)) else "float"
        if value is None:
            raise _refuse(
                path,
                f"get_inputs() entry {i} ({arg_name}) is a {kind} that changes with the sizes but "
                "follows no size constant",
            )
        if isinstance(value, str) and value in axis.values():  # the size constant itself
            pname = next(k for k in varied if axis[k] == value)
        else:
            pname = arg_name if arg_name not in params and arg_name not in axes else f"{arg_name}_value"
            params[pname] = (
                value if isinstance(value, str) else {"bool": bool, "int": int, "float": float}[kind](value)
            )
        args_meta.append({"param": pname, "type": kind})
        scalar_notes.append(f"{arg_name}={params[pname]}")

    counted = any(seen.flops for _, seen in runs) or bool(full and full.flops)
    if counted:
        axes["FLOPS"] = {
            "kind": "var",
            "description": "FLOPs torch.utils.flop_counter counted for this "
            "workload (matmul-like ops only): an estimate",
        }
    workloads: list[dict[str, Any]] = []
    for j, (values, seen) in enumerate(all_runs):
        wl_axes: dict[str, int] = {axis[k]: values[k] for k in varied}
        for dim_axis, seq in own.items():
            wl_axes[dim_axis] = seq[j]
        if counted:
            wl_axes["FLOPS"] = max(1, seen.flops if seen is not None else 1)
        if j == 0:
            workloads.append(
                {"name": "kernelbench", "axes": wl_axes, "cpu": False, "note": "the problem's own size"}
            )
        else:
            label = "cpu_" + "_".join(f"{k}{values[k]}" for k in varied)
            note = (
                "scaled down to run on the CPU"
                if budget == CPU_ELEMENTS
                else (
                    "the smallest sizes this problem runs at (weights its code fixes keep it above "
                    f"{CPU_ELEMENTS} elements): slow in the CPU interpreter"
                )
            )
            workloads.append({"name": label, "axes": wl_axes, "cpu": True, "note": note})
    spec: dict[str, Any] = {
        "name": task_name(name or path.stem),
        # the class's own docstring: inspect.getdoc would fall back to nn.Module's long one
        "description": (
            inspect.cleandoc(module.Model.__doc__ or "")
            or inspect.getdoc(module)
            or f"KernelBench problem {path.name}"
        )
        + f"\nImported from KernelBench problem {path.name}; weights are inputs.",
        "op_family": "imported",
        "models": f"KernelBench problem {path.name}",
        "axes": axes,
        "params": params,
        "dtypes": [variant_dtype],
        "inputs": inputs,
        "outputs": outputs,
        "entry": f"run({', '.join([*inputs, *outputs])})",
        "workloads": workloads,
    }
    own_size = workloads[0]["axes"]
    workloads[0]["cpu"] = elements(spec, own_size) <= CPU_ELEMENTS
    flops_note = ""
    if counted and full is None and full_flops is not None:
        own_size["FLOPS"] = max(1, full_flops[0])
        flops_note = f"; FLOPs at full size counted with {full_flops[1]} small and extrapolated along it"
    elif counted and full is None:  # FLOPs per element of the first output, from the largest CPU run
        _, big = max(runs, key=lambda r: r[1].outputs[0].numel())
        out_elements = math.prod(shapes_at(spec, own_size)[len(inputs)])
        own_size["FLOPS"] = max(1, round(big.flops / max(1, big.outputs[0].numel()) * out_elements))
        flops_note = "; FLOPs at full size scaled per output element from the largest CPU run"
    spec["distributions"] = distributions_for(spec, stressed=in_names)
    spec["tolerances"] = tolerances_for(
        dict.fromkeys([variant_dtype, *(t["dtype"] for t in outputs.values() if t["dtype"] != "$dtype")])
    )
    spec["flops"] = "FLOPS" if counted else None  # None: write_task's estimate (one per output element)
    spec["bytes"] = bytes_formula(spec)
    spec["languages"] = list(LANGUAGES)
    inferred = [
        f"size constants that became axes: {', '.join(f'{k}={v}' for k, v in varied.items()) or 'none'}"
    ]
    if any(ties.get(k) for k in varied):
        inferred.append(
            "size constants that must stay equal, scaled together: "
            + "; ".join(", ".join([k, *ties[k]]) for k in varied if ties.get(k))
        )
    if full is not None:
        where = {
            "meta": "the meta device",
            "fake": "FakeTensorMode",
            "built": "the meta device (the model built for real: its construction reads values)",
        }[full.how]
        inferred.append(
            f"full-size shapes and FLOPs read off a run on {where} (the problem never ran at its own size)"
        )
    else:
        inferred.append(
            f"full-size shapes extrapolated along the axes from runs at CPU sizes ({modes_failed})"
            + flops_note
        )
    if budget != CPU_ELEMENTS:
        inferred.append(
            f"CPU workloads over {CPU_ELEMENTS} elements: weights the model's code fixes keep every "
            "size above it"
        )
    if spread:
        inferred.append(
            "weights initialised to one value, drawn around it so a kernel must read them: "
            + ", ".join(spread)
        )
    if scalar_notes:
        inferred.append(f"scalar inputs that became params: {', '.join(scalar_notes)}")
    inferred.append(
        "input distributions inferred from one sample: "
        + ", ".join(f"{n} {s['distribution']['kind']}" for n, s in inputs.items())
    )
    if counted:
        inferred.append("FLOPs: torch.utils.flop_counter per workload (an estimate)")
    zero_d = [
        j
        for j, t in enumerate([*(first.args[p] for p in tensor_pos), *first.weights.values()])
        if t.dim() == 0
    ]
    constants = {k: v for k, v in params.items() if k in varied or any(k in ties.get(j, ()) for j in varied)}
    meta = {
        "inputs": in_names,
        "weights": list(first.weights),
        "constants": constants,
        "args": args_meta,
        "zero_d": zero_d,
    }
    return Built(
        spec,
        _REFERENCE,
        {PROBLEM_FILE: path.read_bytes(), META_FILE: json.dumps(meta, indent=1).encode()},
        inferred,
    )


# ---------------------------------------------------------------------------------------------
# The reference and KernelBench-form candidates


def uses_modelnew(source: str, task_root: Path | None) -> bool:
    """A candidate in KernelBench's own form (`class ModelNew`, no `run`) for a task imported from it."""
    return (
        task_root is not None
        and (Path(task_root) / META_FILE).is_file()
        and re.search(r"^class ModelNew\b", source, re.M) is not None
        and re.search(r"^def run\b", source, re.M) is None
    )


def modelnew_entry(module, task_root: Path):
    """The task's entry for a KernelBench-form candidate: build its `ModelNew` with the problem's
    init inputs at the workload's size (the workload whose shapes the tensors have), run `forward`
    with the given weights in place of its own, and copy what it returns into the outputs. Trusted
    harness code: the worker calls it, never the candidate."""
    from ksearch.task import load_task

    task_root = Path(task_root)
    meta = _meta(str(task_root))
    task = load_task(task_root)
    names = [*task.input_names, *task.output_names]
    shapes = [task.spec.tensors[n].shape for n in names]
    by_shape: dict[tuple, dict] = {}
    for wl in task.workloads():
        axes = task.axes_for(wl)
        by_shape.setdefault(tuple(task.spec.resolve_shape(n, axes) for n in names), task.params_for(wl))
    n_args = len(meta["inputs"]) + len(meta["weights"])
    models: dict = {}

    def run(*tensors):
        params = by_shape.get(tuple(tuple(t.shape) for t in tensors))
        if params is None:  # a size no workload has: read the constants off the shapes
            params = {
                const: next(t.shape[dims.index(axis)] for t, dims in zip(tensors, shapes) if axis in dims)
                for const, axis in meta["constants"].items()
            }
            params.update({n: v for n, v in task.spec.params.items() if not isinstance(v, str)})
        result = run_problem_model(task_root, "ModelNew", module, tensors[:n_args], params, models)
        for out, value in zip(tensors[n_args:], result if isinstance(result, tuple) else (result,)):
            out.copy_(value.reshape(out.shape))

    return run


@functools.cache
def _meta(task_root: str) -> dict:
    return json.loads((Path(task_root) / META_FILE).read_text())


def _problem_model(problem, owner, cls: str, weights: set[str], device: torch.device):
    """The problem's `Model` on the meta device where every parameter, buffer and tensor attribute is
    among the weights the reference is given (nothing allocated, nothing initialised); else built on
    the CPU and moved to `device`."""
    if cls == "Model":
        try:
            with torch.device("meta"):
                model = owner.Model(*problem.get_init_inputs())
        except Exception:  # noqa: BLE001  construction that reads values (`.item()`): build it for real
            model = None
        if model is not None:
            owned = {n for n, _ in model.named_parameters(remove_duplicate=False)} | {
                n for n, _ in model.named_buffers(remove_duplicate=False)
            }
            loose = any(isinstance(v, torch.Tensor) for m in model.modules() for v in vars(m).values())
            if owned <= weights and not loose:
                return model
    return getattr(owner, cls)(*problem.get_init_inputs()).to(device)


def run_problem_model(task_root: Path, cls: str, module, tensors, sizes: dict, models: dict | None = None):
    """`cls` (the problem's `Model`, or a candidate's `ModelNew` from `module`) built with the problem's
    init inputs at `sizes` (the task's params: size constants and scalar inputs), then run with the
    task's weights in place of its own: the shared step of the reference and of KernelBench-form
    candidates. `models` is the caller's cache of built models (by sizes and device), so each caller's
    models live exactly as long as it does."""
    meta = _meta(str(task_root))
    device = tensors[0].device
    models = {} if models is None else models
    overrides = {k: int(v) for k, v in sizes.items() if k in meta["constants"]}
    key = (cls, tuple(sorted(overrides.items())), str(device))
    if key not in models:
        problem = _load(Path(task_root) / PROBLEM_FILE, overrides)
        models[key] = _problem_model(problem, module or problem, cls, set(meta["weights"]), device)
    zero_d = set(meta.get("zero_d", ()))
    tensors = [t.reshape(()) if j in zero_d else t for j, t in enumerate(tensors)]
    n_in = len(meta["inputs"])
    given = dict(zip(meta["inputs"], tensors[:n_in]))
    cast = {"bool": bool, "int": int, "float": float}
    args = [
        given[a["tensor"]] if "tensor" in a else cast[a["type"]](sizes[a["param"]])
        for a in meta.get("args") or [{"tensor": n} for n in meta["inputs"]]
    ]
    with torch.no_grad():
        out = torch.func.functional_call(models[key], dict(zip(meta["weights"], tensors[n_in:])), tuple(args))
    outs = tuple(
        o.reshape(1) if o.dim() == 0 else o for o in (out if isinstance(out, (tuple, list)) else (out,))
    )
    return outs if isinstance(out, (tuple, list)) else outs[0]


_REFERENCE = '''"""Reference of an imported KernelBench problem: the problem's own Model.forward at the workload's
size constants and scalar inputs, run with the given weights. Written by `ksearch tasks import`."""

from pathlib import Path

from ksearch.task.importers.kernelbench import run_problem_model


_MODELS = {}  # the problem's Model, built once per size and device


def reference(*tensors, **params):
    return run_problem_model(Path(__file__).parent, "Model", None, tensors, params, _MODELS)
'''
