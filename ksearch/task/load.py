"""Finding and loading task definitions; every failure becomes a one-line `TaskError`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ksearch.errors import TaskError, describe_validation_error
from ksearch.evidence import BUILTIN_LANGUAGES
from ksearch.paths import configs_dir, read_text
from ksearch.task.contract import Task
from ksearch.task.spec import TaskSpec

TASK_FILE = "task.yaml"
REFERENCE_FILE = "reference.py"

# What to tell the user when a top-level field is missing or malformed.
_FIELD_HINTS: Mapping[str, str] = {
    "name": "every task needs name: <lowercase-name>",
    "description": "every task needs description: <what it computes, in math>",
    "op_family": "every task needs op_family: gemm | attention | moe | norm | reduction | elementwise | ...",
    "models": "every task needs models: <which real models the shapes come from>",
    "axes": "every task needs axes: {M: var, D: {kind: const, value: 128}}",
    "params": "params is a mapping name -> number or formula, e.g. params: {eps: 1.0e-6}",
    "dtypes": "every task needs dtypes: [float16, bfloat16] (the first is the default)",
    "inputs": "every task needs inputs: {name: {dtype, shape}}",
    "outputs": "every task needs outputs: {name: {dtype, shape}}",
    "entry": "every task needs entry: run(<inputs>, <outputs>)",
    "workloads": "every task needs workloads: [{name, axes: {...}, cpu: true|false}, ...] (at least 4)",
    "distributions": "every task needs distributions: {normal: {}, heavy_tailed: {x: {kind: student_t, df: 3}}}",
    "tolerances": "every task needs tolerances: {float16: {atol, rtol, matched_ratio, max_error_cap}}",
    "flops": "every task needs flops: <formula over the axes>, e.g. '2*M*N*K'",
    "bytes": "every task needs bytes: <formula over the axes and itemsize_<tensor>>",
    "languages": f"every task needs languages: [{', '.join(BUILTIN_LANGUAGES)}] (any subset)",
}


def list_tasks() -> list[str]:
    """Names of the built-in tasks: directories under `<configs>/tasks` holding a task.yaml."""
    root = configs_dir() / "tasks"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / TASK_FILE).is_file())


def resolve_task_file(name_or_path: str | Path) -> tuple[Path, bool]:
    """(task.yaml path, whether it was found as a built-in name)."""
    text = str(name_or_path)
    looks_like_path = (
        isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.endswith((".yaml", ".yml"))
    )
    if not looks_like_path:
        candidate = configs_dir() / "tasks" / text / TASK_FILE
        if candidate.is_file():
            return candidate, True
        if not Path(text).exists():
            builtins = ", ".join(list_tasks()) or "(none found)"
            raise TaskError(
                f"unknown task '{text}'; built-in tasks: {builtins}; or pass a path to a task directory or task.yaml"
            )
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / TASK_FILE
    if not path.is_file():
        raise TaskError(
            f"task file {path} does not exist; pass a built-in task name or a directory holding {TASK_FILE}"
        )
    return path, False


def load_task_spec(path: Path) -> TaskSpec:
    """Parse and validate one task.yaml."""
    try:
        text = read_text(path)
    except OSError as exc:
        raise TaskError(
            f"task file {path}: cannot be read ({exc.strerror}); check the path and permissions"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaskError(f"task file {path}: invalid YAML ({_yaml_problem(exc)}); fix the syntax") from exc
    if not isinstance(data, dict):
        raise TaskError(
            f"task file {path}: the top level is a {type(data).__name__}, not a mapping; "
            "write fields such as name:, inputs:, outputs:, workloads:"
        )
    return parse_task_spec(data, str(path))


def parse_task_spec(data: Mapping[str, Any], source: str = "<task>") -> TaskSpec:
    """Validate a task mapping (from YAML or an importer); `source` names it in errors."""
    try:
        return TaskSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise TaskError(
            f"task file {source}: {describe_validation_error(exc, _FIELD_HINTS, limit=1)}"
        ) from exc
    except TaskError as exc:
        raise TaskError(f"task file {source}: {exc}") from exc


def load_task(name_or_path: str | Path) -> Task:
    """Load a built-in task by name, or a task directory / task.yaml by path.

    The reference module is not imported here; `Task.reference` imports it on first use.
    """
    path, builtin = resolve_task_file(name_or_path)
    spec = load_task_spec(path)
    if builtin and spec.name != path.parent.name:
        raise TaskError(
            f"task file {path}: name '{spec.name}' differs from its directory '{path.parent.name}'; make them equal"
        )
    reference = path.parent / REFERENCE_FILE
    if not reference.is_file():
        raise TaskError(
            f"task {spec.name}: {reference} does not exist; add it with def reference(*inputs, **params)"
        )
    return Task(spec=spec, root=path.parent, reference_path=reference)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}".split())
