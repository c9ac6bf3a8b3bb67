"""What every importer shares: reading a sample tensor's distribution, writing the task directory,
and refusing problems that cannot be searched honestly.

An importer turns a foreign problem into a task dict (the fields of `task.yaml`), the source of a
`reference.py` that defines `reference(*inputs, **params)`, and any files the reference needs
(the original problem file, say). `write_task` writes them, loads the result with the normal task
loader (so an import is valid by the same rules as a hand-written task) and checks it with
`honesty_flags`: a problem whose output does not depend on its inputs, whose reference is not
deterministic within the tolerances, or whose inputs are all one value would reward a kernel for
nothing, so it is refused unless the user forces it (and then the flags go into its description).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from ksearch.errors import TaskError

# Tolerances per dtype for imported tasks: the built-in tasks' usual choices for that precision.
TOLERANCES = {
    "float32": {"atol": 1.0e-4, "rtol": 1.0e-4, "matched_ratio": 0.999, "max_error_cap": 1.0e-2},
    "float16": {"atol": 1.0e-2, "rtol": 1.0e-2, "matched_ratio": 0.999, "max_error_cap": 1.0e-1},
    "bfloat16": {"atol": 2.0e-2, "rtol": 2.0e-2, "matched_ratio": 0.999, "max_error_cap": 2.0e-1},
}


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
    return name if name[0].isalnum() else f"t{name}"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def infer_generator(t: torch.Tensor) -> dict:
    """A generator spec that draws values like the sample `t` (from the problem's own input code):
    integers as randint over the sample's range, [0, 1)-like floats as uniform over the sample's
    range, everything else as a normal with the sample's mean and std; a one-valued sample as that
    constant (which `honesty_flags` then reports)."""
    if t.dtype == torch.bool:
        return {"kind": "bernoulli", "p": round(float(t.float().mean()), 4)}
    if not t.dtype.is_floating_point:
        lo, hi = int(t.min()), int(t.max())
        return {"kind": "randint", "low": lo, "high": hi + 1}
    x = t.detach().double()
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        return {"kind": "constant", "value": lo}
    mean, std = float(x.mean()), float(x.std()) if x.numel() > 1 else 0.0
    # a uniform sample has std (hi - lo) / sqrt(12) and its mean mid-range; a normal one is far wider
    span = hi - lo
    if x.numel() >= 16 and abs(std - span / 12 ** 0.5) < 0.1 * span and abs(mean - (lo + hi) / 2) < 0.1 * span:
        return {"kind": "uniform", "low": round(lo, 6), "high": round(hi + 1e-6 * max(1.0, abs(hi)), 6)}
    return {"kind": "normal", "mean": round(mean, 6), "std": round(max(std, 1e-6), 6)}


def default_distributions(inputs: dict[str, dict], stressed: list[str]) -> dict:
    """`normal` (every input as its own generator draws it) and `heavy_tailed` (the `stressed`
    floating inputs, the data rather than weights, from a student-t with 3 degrees of freedom at the
    scale of their sample), the two battery entries the task contract asks of every task."""
    heavy = {}
    for name in stressed:
        gen = inputs[name].get("distribution") or {}
        if gen.get("kind") in ("normal", "uniform"):
            scale = gen.get("std") or (gen.get("high", 1.0) - gen.get("low", 0.0)) / 12 ** 0.5
            heavy[name] = {"kind": "student_t", "df": 3, "scale": round(max(scale, 1e-6), 6), "clip": 100.0}
    if not heavy:
        raise TaskError("no floating-point input to draw heavy-tailed values for; the task contract needs one")
    return {"normal": {}, "heavy_tailed": heavy}


def write_task(directory: Path, spec: dict, reference: str, files: dict[str, bytes] | None = None, *,
               force: bool = False, inferred: list[str] | None = None) -> Imported:
    """Write a task directory (refusing to overwrite one), validate it with the task loader and check
    it with `honesty_flags`. A flagged task is refused (nothing is written) unless `force`."""
    from ksearch.task import load_task

    directory = Path(directory)
    if directory.exists():
        raise TaskError(f"{directory} already exists; pass --name for another name or remove it")
    with tempfile.TemporaryDirectory(prefix="ksearch-import-") as tmp:
        staged = Path(tmp) / directory.name
        staged.mkdir()
        for rel, data in (files or {}).items():
            (staged / rel).write_bytes(data)
        (staged / "reference.py").write_text(reference)
        (staged / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, width=100))
        task = load_task(staged / "task.yaml")
        flags = honesty_flags(task)
        if flags and not force:
            raise TaskError(f"{spec['name']} cannot be searched honestly: {'; '.join(flags)}. Nothing was "
                            "written; fix the problem, or pass --force to import it anyway with these flags")
        if flags:
            spec = {**spec, "description": spec["description"].rstrip() + "\nFLAGGED AT IMPORT: " + "; ".join(flags)}
            (staged / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, width=100))
        directory.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, directory)
    return Imported(spec["name"], directory, list(inferred or []), flags)


def honesty_flags(task, seeds: tuple[int, int] = (0, 1)) -> list[str]:
    """Why a kernel could score on this task without doing its work, on its smallest CPU workload:
    an output that is the same for different inputs (or identically zero), a reference that gives
    different results for the same inputs, inputs whose values are all equal."""
    wl = min(task.workloads(cpu_only=True), key=lambda w: task.bytes(w, task.default_dtype) or 0)
    dtype = task.default_dtype
    flags: list[str] = []
    first = task.make_inputs(wl, "normal", seeds[0], dtype=dtype)
    for name, t in first.items():
        if t.numel() > 1 and bool((t == t.reshape(-1)[0]).all()):
            flags.append(f"input {name} holds one value everywhere")
    outs = [task.run_reference(first, workload=wl, dtype=dtype),
            task.run_reference(task.make_inputs(wl, "normal", seeds[1], dtype=dtype), workload=wl, dtype=dtype)]
    again = task.run_reference(first, workload=wl, dtype=dtype)
    tolerances = task.output_tolerances(dtype)
    for name in outs[0]:
        a, b, c = outs[0][name], outs[1][name], again[name]
        if a.numel() and not bool(a.ne(0).any()) and not bool(b.ne(0).any()):
            flags.append(f"output {name} is identically zero")
        elif torch.equal(a, b):
            flags.append(f"output {name} does not depend on the inputs (the same for seeds {seeds[0]} and {seeds[1]})")
        tol = tolerances[name]
        if a.dtype.is_floating_point and not torch.allclose(a.double(), c.double(), atol=tol.atol, rtol=tol.rtol,
                                                            equal_nan=True):
            flags.append(f"output {name} differs between two runs of the reference on the same inputs")
    return flags
