"""What every importer shares: running a problem's Python, reading a sample tensor's distribution,
writing the task directory, estimating its FLOPs and refusing problems that cannot be searched honestly.

An importer turns a foreign problem into a task dict (the fields of `task.yaml`), the source of a
`reference.py` that defines `reference(*inputs, **params)`, and any files the reference needs
(the original problem file, say). `write_task` writes them, loads the result with the normal task
loader (so an import is valid by the same rules as a hand-written task), counts its FLOPs if the
importer left them to it, and checks it with `honesty_flags`: a problem whose output does not depend
on its inputs, whose reference is not deterministic within the tolerances, or whose inputs are all
one value would reward a kernel for nothing, so it is refused unless the user forces it (and then
the flags go into its description).
"""

from __future__ import annotations

import ast
import contextlib
import math
import re
import shutil
import signal
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml

from ksearch.errors import TaskError
from ksearch.task.formula import evaluate_formula
from ksearch.task.spec import DTYPE_VARIANT, FLOAT_DTYPES, LANGUAGES

if TYPE_CHECKING:
    from ksearch.task import Task, WorkloadSpec

# Tolerances per dtype for imported tasks, which may sum long rows or K dims in any order: looser than
# most built-in tasks (whose float32 atol is 1e-5), since nothing is known of an imported op's depth.
TOLERANCES = {
    # float64: far above the ~1e-15 relative difference of a sum taken in another order (exact
    # tolerances would reject every honest kernel that does not reproduce the reference's order)
    "float64": {"atol": 1.0e-6, "rtol": 1.0e-6, "matched_ratio": 0.999, "max_error_cap": 1.0e-4},
    "float32": {"atol": 1.0e-4, "rtol": 1.0e-4, "matched_ratio": 0.999, "max_error_cap": 1.0e-2},
    "float16": {"atol": 1.0e-2, "rtol": 1.0e-2, "matched_ratio": 0.999, "max_error_cap": 1.0e-1},
    "bfloat16": {"atol": 2.0e-2, "rtol": 2.0e-2, "matched_ratio": 0.999, "max_error_cap": 2.0e-1},
}


@dataclass
class Built:
    """What a format module makes of a problem, before anything is written."""

    spec: dict  # the task.yaml fields
    reference: str  # reference.py source
    files: dict[str, bytes] = field(default_factory=dict)  # more files for the task directory
    inferred: list[str] = field(default_factory=list)  # what was inferred rather than read, for the user


@dataclass
class Imported:
    """An imported task: where it was written and what the importer had to infer or flag."""

    name: str
    directory: Path
    inferred: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def task_name(text: str) -> str:
    """A valid task name from a file or problem name: lowercase, [a-z0-9_.-], starting alphanumeric."""
    name = re.sub(r"[^a-z0-9_.-]+", "_", text.lower()).strip("_.-")
    if not name:
        raise TaskError(f"cannot make a task name from {text!r}; pass --name")
    return name


class _CudaToCpu(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str) and (node.value == "cuda" or node.value.startswith("cuda:")):
            return ast.copy_location(ast.Constant("cpu"), node)
        return node


def load_module(
    name: str, filename: str | Path, source: str | None = None, *, cpu: bool = False
) -> types.ModuleType:
    """Run a problem's Python (the file `filename`, or `source` shown under that name) as a fresh module
    `name`. It is not put in sys.modules, so loading a problem again (at another size, for another task)
    leaves no trace. `cpu`: the string literals "cuda"/"cuda:N" in it read as "cpu", for problem code
    that makes its tensors on a GPU. Any failure, syntax included, is a TaskError naming the file."""
    filename = str(filename)
    try:
        tree = ast.parse(Path(filename).read_bytes() if source is None else source, filename)
        if cpu:
            tree = ast.fix_missing_locations(_CudaToCpu().visit(tree))
        module = types.ModuleType(name)
        module.__file__ = filename
        # the problem's own code, run as its benchmark runs it (trusted as much as the user who imports it)
        exec(compile(tree, filename, "exec"), module.__dict__)  # noqa: S102
    except Exception as exc:  # the problem's code, not ours, failed: say where
        raise TaskError(
            f"running {filename} failed with {type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from exc
    return module


def infer_generator(t: torch.Tensor) -> dict:
    """A generator spec that draws values like the sample `t` (from the problem's own input code):
    integers as randint over the sample's range, [0, 1)-like floats as uniform over the sample's
    range, everything else as a normal with the sample's mean and std; a one-valued sample as that
    constant (which `honesty_flags` then reports)."""
    if t.dtype == torch.bool:
        return {"kind": "bernoulli", "p": round(float(t.float().mean()), 4)}
    if not t.dtype.is_floating_point:
        low, high = int(t.min()), int(t.max())
        return {"kind": "randint", "low": low, "high": high + 1}
    x = t.detach().double()
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        return {"kind": "constant", "value": lo}
    mean, std = float(x.mean()), float(x.std()) if x.numel() > 1 else 0.0
    # a uniform sample has std (hi - lo) / sqrt(12) and its mean mid-range; a normal one is far wider
    span = hi - lo
    # (a normal sample of a few hundred values has std about span / 5: apart from span / sqrt(12) by 0.1 span)
    if (
        x.numel() >= 64
        and abs(std - span / 12**0.5) < 0.04 * span
        and abs(mean - (lo + hi) / 2) < 0.05 * span
    ):
        gap = span / (x.numel() - 1)  # the sample's extremes fall short of the bounds by this, on average
        return {"kind": "uniform", "low": round(lo - gap, 6), "high": round(hi + gap, 6)}
    return {"kind": "normal", "mean": round(mean, 6), "std": round(max(std, 1e-6), 6)}


def write_task(
    directory: Path,
    spec: dict,
    reference: str,
    files: dict[str, bytes] | None = None,
    *,
    force: bool = False,
    inferred: list[str] | None = None,
) -> Imported:
    """Write a task directory (refusing to overwrite one), validate it with the task loader and check
    it with `honesty_flags`. A flagged task is refused (nothing is written) unless `force`. A spec whose
    `flops` is None gets them from `estimate_flops`, run on this staged task (so the reference is
    staged, imported and run in one place)."""
    from ksearch.task import load_task, load_task_spec

    directory = Path(directory)
    if directory.exists():
        raise TaskError(f"{directory} already exists; pass --name for another name or remove it")
    inferred = list(inferred or [])
    with tempfile.TemporaryDirectory(prefix="ksearch-import-") as tmp:
        staged = Path(tmp) / directory.name
        staged.mkdir()
        for rel, data in (files or {}).items():
            (staged / rel).write_bytes(data)
        (staged / "reference.py").write_text(reference)
        _write_spec(staged, {**spec, "flops": 0} if spec["flops"] is None else spec)
        task = load_task(staged / "task.yaml")
        # a target-only task's reference cannot run here (spec.target_only says why): nothing to check
        flags = [] if task.spec.target_only is not None else honesty_flags(task)
        if flags and not force:
            raise TaskError(
                f"{spec['name']} cannot be searched honestly: {'; '.join(flags)}. Nothing was "
                "written; fix the problem, or pass --force to import it anyway with these flags"
            )
        final = dict(spec)
        if spec["flops"] is None:
            final["flops"], note = estimate_flops(task)
            inferred.append(note)
        if flags:
            final["description"] = spec["description"].rstrip() + "\nFLAGGED AT IMPORT: " + "; ".join(flags)
        if final != spec:
            _write_spec(staged, final)
            load_task_spec(staged / "task.yaml")  # an estimated formula is validated like a hand-written one
        directory.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, directory)
    return Imported(spec["name"], directory, inferred, flags)


def _write_spec(root: Path, spec: dict) -> None:
    (root / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, width=100))


def _smallest_cpu_workload(task: Task) -> WorkloadSpec:
    """The CPU workload that moves the fewest bytes: where the import-time checks run the reference."""
    return min(task.workloads(cpu_only=True), key=lambda w: task.bytes(w, task.default_dtype) or 0)


def honesty_flags(task: Task, seeds: tuple[int, int] = (0, 1)) -> list[str]:
    """Why a kernel could score on this task without doing its work, on its smallest CPU workload:
    an output that is the same for different inputs (or identically zero), a reference that gives
    different results for the same inputs, inputs whose values are all equal."""
    wl = _smallest_cpu_workload(task)
    dtype = task.default_dtype
    flags: list[str] = []
    first = task.make_inputs(wl, "normal", seeds[0], dtype=dtype)
    for name, t in first.items():
        if t.numel() > 1 and bool((t == t.reshape(-1)[0]).all()):
            flags.append(f"input {name} holds one value everywhere")
    outs = [
        task.run_reference(first, workload=wl, dtype=dtype),
        task.run_reference(task.make_inputs(wl, "normal", seeds[1], dtype=dtype), workload=wl, dtype=dtype),
    ]
    again = task.run_reference(first, workload=wl, dtype=dtype)
    tolerances = task.output_tolerances(dtype)
    for name in outs[0]:
        a, b, c = outs[0][name], outs[1][name], again[name]
        if a.numel() and not bool(a.ne(0).any()) and not bool(b.ne(0).any()):
            flags.append(f"output {name} is identically zero")
        elif torch.equal(a, b):
            flags.append(
                f"output {name} does not depend on the inputs (the same for seeds {seeds[0]} and {seeds[1]})"
            )
        tol = tolerances[name]
        if a.dtype.is_floating_point and not torch.allclose(
            a.double(), c.double(), atol=tol.atol, rtol=tol.rtol, equal_nan=True
        ):
            flags.append(f"output {name} differs between two runs of the reference on the same inputs")
    return flags


CPU_ELEMENTS = 6000  # elements over all tensors of one workload that the CPU Triton interpreter runs quickly
# Where the const dims alone pass CPU_ELEMENTS (a 4096 x 4096 weight), the budget bounds what can shrink:
# the var axes go no higher than CPU_FEW, the const dims stay as they are, up to CPU_CONST_ELEMENTS in all
CPU_FEW = 8
CPU_CONST_ELEMENTS = (
    1 << 27
)  # 134M elements: a 4096 x 28672 weight (117M) passes, a MoE's expert stack does not
_EXACT = {"atol": 0.0, "rtol": 0.0, "matched_ratio": 1.0, "max_error_cap": 0.0}


# ---------------------------------------------------------------------------------------------
# The task-dict pieces every imported problem needs


def _is_pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def shapes_at(spec: dict, axes: dict[str, int]) -> list[tuple[int, ...]]:
    """Every tensor's concrete shape in a task dict at these var-axis values."""
    consts = {n: a["value"] for n, a in spec["axes"].items() if a["kind"] == "const"}
    values = {**consts, **axes}
    return [
        tuple(int(evaluate_formula(d, values, f"shape of {name}")) for d in t["shape"])
        for name, t in {**spec["inputs"], **spec["outputs"]}.items()
    ]


def elements(spec: dict, axes: dict[str, int]) -> int:
    return sum(math.prod(s) for s in shapes_at(spec, axes))


def _has_non_pow2(spec: dict, axes: dict[str, int]) -> bool:
    return any(not _is_pow2(d) for s in shapes_at(spec, axes) for d in s)


def fixed_elements(spec: dict) -> int:
    """The elements of a workload with every var axis at 1: what no scaling down removes (0 where the
    shapes are not defined there)."""
    try:
        return elements(spec, {n: 1 for n, a in spec["axes"].items() if a["kind"] == "var"})
    except (TaskError, ArithmeticError, ValueError):
        return 0


def cpu_sized(spec: dict, axes: dict[str, int], budget: int = CPU_ELEMENTS) -> bool:
    """Small enough for the CPU interpreter: the workload's elements fit `budget`; or, where the const
    dims alone pass it (`fixed_elements`), every var axis is at most CPU_FEW and the whole holds at
    most CPU_CONST_ELEMENTS (a 4096 x 4096 weight with a few rows runs on a CPU; the budget bounds what
    can shrink, not what cannot)."""
    n = elements(spec, axes)
    if n <= budget:
        return True
    return (
        n <= CPU_CONST_ELEMENTS and all(v <= CPU_FEW for v in axes.values()) and fixed_elements(spec) > budget
    )


def _scaled(spec: dict, axes: dict[str, int], budget: int, odd: bool) -> dict[str, int]:
    """Halve the largest var axis until the workload is `cpu_sized` for `budget`; with `odd`, then make
    one var axis a non-power-of-two (8 -> 7) if no dim is one yet."""
    axes = dict(axes)
    while not cpu_sized(spec, axes, budget) and any(v > 1 for v in axes.values()):
        big = max(axes, key=lambda a: axes[a])
        axes[big] = max(1, axes[big] // 2)
    if odd and not _has_non_pow2(spec, axes):
        for axis in sorted(axes, key=lambda a: -axes[a]):
            if axes[axis] >= 3:
                axes[axis] -= 1
                break
            if axes[axis] == 2 and cpu_sized(spec, {**axes, axis: 3}, budget):
                axes[axis] = 3
                break
    return axes


def cpu_suite(
    spec: dict,
    workloads: list[dict],
    *,
    allowed: Callable[[dict[str, int]], bool] | None = None,
    budget: int = CPU_ELEMENTS,
) -> tuple[list[dict], list[str]]:
    """Mark workloads (the problem's own: at least one) small enough for the CPU interpreter (`cpu_sized`)
    `cpu: true`; when there are fewer than 4 workloads, or no CPU one with a non-power-of-two dim, add
    CPU workloads derived from the smallest one by scaling its var axes down (each `allowed` by the
    problem's constraints); const dims stay as they are. Returns the workloads and one line per derived
    workload saying what was scaled."""
    allowed = allowed or (lambda axes: True)
    out = [{**wl, "cpu": cpu_sized(spec, wl["axes"], budget)} for wl in workloads]
    notes: list[str] = []
    var = [n for n, a in spec["axes"].items() if a["kind"] == "var"]

    def done() -> bool:
        cpu = [wl for wl in out if wl["cpu"]]
        return len(out) >= 4 and any(_has_non_pow2(spec, wl["axes"]) for wl in cpu)

    if done():
        return out, notes
    if not var:
        raise TaskError(
            f"{spec['name']}: no var axis to scale down and only {len(out)} workload(s) "
            f"({sum(wl['cpu'] for wl in out)} CPU-sized with a non-power-of-two dim); add workloads"
        )
    base = min(workloads, key=lambda wl: elements(spec, wl["axes"]))
    start = dict(base["axes"])
    consts = {n: a["value"] for n, a in spec["axes"].items() if a["kind"] == "const"}
    fixed = fixed_elements(spec)
    kept = f", const dims as they are ({_show(consts)})" if fixed > budget and consts else ""
    tries = [
        _scaled(spec, start, budget, True),
        _scaled(spec, start, budget // 4, True),
        _scaled(spec, start, budget // 16, True),
        _scaled(spec, start, budget, False),
        {a: 1 for a in var},
        {a: 3 for a in var},
        {a: 5 for a in var},
    ]
    seen = [wl["axes"] for wl in out]
    for axes in tries:
        if done():
            break
        if axes in seen or not cpu_sized(spec, axes, budget) or not allowed(axes):
            continue
        seen.append(axes)
        name = "cpu_" + "_".join(f"{a}{v}" for a, v in axes.items())
        out.append(
            {"name": name, "axes": axes, "cpu": True, "note": "derived: var axes scaled down for the CPU"}
        )
        notes.append(
            f"workload {name}: var axes {_show(axes)} scaled down from workload {base['name']} "
            f"({_show(base['axes'])}){kept} so the CPU interpreter can verify candidates"
        )
    if not done():
        if fixed > CPU_CONST_ELEMENTS:
            raise TaskError(
                f"{spec['name']}: its const axes ({_show(consts)}) make every workload hold at least "
                f"{fixed:,} elements, over the {CPU_CONST_ELEMENTS:,} of a CPU workload; it can be "
                "verified only on a GPU"
            )
        raise TaskError(
            f"{spec['name']}: cannot derive CPU-sized workloads with a non-power-of-two dim within "
            f"{budget} elements (or, where const dims alone pass that, var axes up to {CPU_FEW} and "
            f"{CPU_CONST_ELEMENTS:,} elements) that satisfy the problem's constraints; add a small "
            "workload by hand"
        )
    return out, notes


def _show(axes: dict[str, int]) -> str:
    return ", ".join(f"{a}={v}" for a, v in axes.items())


def is_float(dtype: str) -> bool:
    """A task dtype name (or the `$dtype` variant, which every importer makes a floating one) that is floating-point."""
    return dtype == DTYPE_VARIANT or dtype in FLOAT_DTYPES


def main_dtype(inputs: dict, outputs: dict) -> str:
    """The task's one dtype variant: the first floating-point dtype among the outputs, then the
    inputs; else the first output's dtype."""
    floats = [t["dtype"] for t in [*outputs.values(), *inputs.values()] if is_float(t["dtype"])]
    return floats[0] if floats else next(iter(outputs.values()))["dtype"]


def finish_spec(
    spec: dict, workloads: list[dict], *, allowed: Callable[[dict[str, int]], bool] | None = None
) -> list[str]:
    """Fill in the task fields an importer with a workload list derives the same way whatever the
    format: the workloads with CPU-sized ones marked or derived (`cpu_suite`), the `normal` and
    `heavy_tailed` distributions, the importer tolerances per output dtype, bytes (every tensor
    once), every language, and flops left to `write_task` to estimate. Returns `cpu_suite`'s notes."""
    spec["workloads"], notes = cpu_suite(spec, workloads, allowed=allowed)
    spec["distributions"] = distributions_for(spec)
    spec["tolerances"] = tolerances_for({t["dtype"] for t in spec["outputs"].values()})
    spec["flops"] = None  # estimated by write_task, once the reference can run
    spec["bytes"] = bytes_formula(spec)
    spec["languages"] = list(LANGUAGES)
    return notes


def tolerances_for(dtypes: Iterable[str]) -> dict[str, dict]:
    """The importer tolerances for each output dtype: floats from TOLERANCES (float8 as bfloat16), exact otherwise."""
    out: dict[str, dict] = {}
    for d in dtypes:
        out[d] = dict(TOLERANCES.get(d) or (TOLERANCES["bfloat16"] if d.startswith("float8") else _EXACT))
    return out


def distributions_for(spec: dict, stressed: Iterable[str] | None = None) -> dict:
    """`normal` (every input as its own generator draws it) and `heavy_tailed`: the `stressed` inputs
    (default: every floating one; an importer that knows which are data rather than weights names
    those) from a student-t with 3 degrees of freedom, at the scale of their generator when known."""
    names = list(stressed) if stressed is not None else list(spec["inputs"])
    heavy = {}
    for name in names:
        t = spec["inputs"][name]
        if not is_float(t["dtype"]):
            continue
        gen = t.get("distribution") or {}
        scale = gen.get("std") or (
            (gen["high"] - gen["low"]) / 12**0.5 if gen.get("kind") == "uniform" else 1.0
        )
        heavy[name] = {"kind": "student_t", "df": 3, "scale": round(max(scale, 1e-6), 6), "clip": 100.0}
    if heavy:
        return {"normal": {}, "heavy_tailed": heavy}
    # integer inputs only (histogram values, sort keys): the stress case is skewed draws, a zipf over
    # the range [0, high) of each input's randint generator (a few hot values: atomic contention)
    skewed = {
        name: {"kind": "zipf", "high": gen["high"]}
        for name in names
        for t in [spec["inputs"][name]]
        for gen in [t.get("distribution") or {}]
        if not is_float(t["dtype"])
        and t["dtype"] != "bool"
        and gen.get("kind") == "randint"
        and gen.get("low", 0) == 0
    }
    if not skewed:
        raise TaskError(
            f"{spec['name']}: no floating-point input and no integer one drawn from [0, high); the task "
            "contract needs a heavy-tailed (or, for integers, zipf) distribution over one, so this problem "
            "cannot be imported as is"
        )
    return {"normal": {}, "skewed": skewed}


def bytes_formula(spec: dict) -> str:
    """Every input read once and every output written once."""
    terms = []
    for name, t in {**spec["inputs"], **spec["outputs"]}.items():
        dims = "*".join(
            f"({d})" if isinstance(d, str) and not d.isidentifier() else str(d) for d in t["shape"]
        )
        terms.append(f"{dims}*itemsize_{name}")
    return " + ".join(terms)


def estimate_flops(task: Task) -> tuple[str, str]:
    """A FLOP formula from torch's FLOP counter on the reference at the smallest CPU workload:
    counted FLOPs per element of the first output times its element count (right when the reduction
    axes are const), or one per output element when the counter sees no matmul/convolution. Returns
    the formula and a line saying how it was made."""
    from torch.utils.flop_counter import FlopCounterMode

    out_name, out = next(iter(task.spec.outputs.items()))
    wl = _smallest_cpu_workload(task)
    counter = FlopCounterMode(display=False)
    with counter:  # (run_reference runs under no_grad)
        task.run_reference(task.make_inputs(wl, "normal", 0), workload=wl)
    counted = counter.get_total_flops()
    if counted <= 0:
        total = " + ".join("*".join(f"({d})" for d in t.shape) for t in task.spec.outputs.values())
        return total, (
            "flops: estimated as one per output element (torch's FLOP counter saw no matmul or "
            "convolution in the reference)"
        )
    per = counted / math.prod(task.spec.resolve_shape(out_name, task.axes_for(wl)))
    per_text = str(int(per)) if float(per).is_integer() else f"{per:.6g}"
    per_out = "*".join(f"({d})" for d in out.shape)
    return f"{per_text}*{per_out}", (
        f"flops: estimated from torch's FLOP counter on workload {wl.name} as {per_text} "
        f"per element of output {out_name}; exact only if the reduction axes are const"
    )


class OutOfTime(BaseException):
    """A block under `time_limit` went past it. A BaseException, so that neither a problem's own
    `except Exception` nor a loader wrapping every failure into a TaskError swallows it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise OutOfTime in the block after `seconds` (SIGALRM, so only in the main thread: elsewhere no
    limit), re-arming any timer that was running outside it."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    if seconds <= 0:
        raise OutOfTime("no time left")

    def ring(signum, frame):
        raise OutOfTime(f"took over {seconds:g} s")

    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, ring)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 0.001))
