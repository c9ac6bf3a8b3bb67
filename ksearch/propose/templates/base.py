"""The strategy-template contract: one op family strategy as a Triton source file over a knob space.

A `Template` is one answer to one strategy decision of an op family ("row mapping: one row per
program, whole row in registers"). Its kernel lives in `kernels/<source>`: a real Triton module
(lintable, importable, opened in an editor) whose knobs are module constants (`BLOCK_N = 4096`) and
whose entry for each task is a function named after the task. Rendering a setting is a small
substitution (`render_source`): the knob and task-parameter constants get their values, the task's
entry is renamed `run` (the other tasks' entries are dropped), and what the file imports from
sibling `kernels` modules (shared jit and launch helpers, with the imports they need) is copied in, so
every candidate is one self-contained destination-passing module. Where several files share their
entries, a sibling module holds them in an entry factory (`rmsnorm_entries`) and the renderer copies
the task's one in as `run`. The knob space is explicit: each knob lists its allowed
values, the first being the default, so a search can enumerate, sample and mutate settings without
knowing anything about the kernel.
"""

from __future__ import annotations

import ast
import functools
import itertools
import json
import random
from collections.abc import Callable, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KERNEL_DIR = Path(__file__).with_name("kernels")
KERNEL_PACKAGE = "ksearch.propose.templates.kernels"


@dataclass(frozen=True)
class Template:
    """One strategy of one op family: a Triton source file in `kernels/` over an explicit knob space.

    `params` names the task parameters the source reads as constants (eps), with their defaults;
    `backends` the Triton backends whose targets it is searched for (launch options of one vendor
    are refused by the other's compiler)."""

    id: str
    tasks: tuple[str, ...]
    decision: str
    title: str
    description: str
    rationale: str
    difficulty: int
    expected_speedup: float
    knobs: dict[str, tuple]
    source: str
    constraint: Callable[[dict], bool] | None = field(default=None, repr=False, compare=False)
    params: dict[str, float] = field(default_factory=dict)
    backends: tuple[str, ...] = ("cuda", "hip")
    # the expected speedup on a run's workload axes, where the strategy pays only for some shapes
    # (split-K: few output tiles); None: `expected_speedup` for every shape
    speedup_on: Callable[[list[dict[str, int]]], float] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not 1 <= self.difficulty <= 5:
            raise ValueError(f"template {self.id}: difficulty {self.difficulty} is not in 1..5")
        for name, values in self.knobs.items():
            if not isinstance(values, tuple) or not values:
                raise ValueError(f"template {self.id}: knob {name} needs a non-empty tuple of values")
            if len(set(map(_typed, values))) != len(values):
                raise ValueError(f"template {self.id}: knob {name} lists a value twice")

    def __hash__(self) -> int:
        return hash(self.id)

    # ---- the knob space ------------------------------------------------------------------------

    def expected_on(self, axes: list[dict[str, int]]) -> float:
        """The expected speedup on these workloads' axes (a run's own shapes)."""
        return self.speedup_on(axes) if self.speedup_on is not None and axes else self.expected_speedup

    def default_knobs(self) -> dict:
        """Every knob at its first (default) value."""
        return {name: values[0] for name, values in self.knobs.items()}

    def complete(self, knobs: dict | None) -> dict:
        """`knobs` over the defaults, validated: unknown names and values raise ValueError."""
        knobs = dict(knobs or {})
        unknown = sorted(set(knobs) - set(self.knobs))
        if unknown:
            raise ValueError(
                f"template {self.id}: unknown knob(s) {', '.join(unknown)}; "
                f"its knobs are {', '.join(self.knobs) or 'none'}"
            )
        for name, value in knobs.items():
            allowed = self.knobs[name]
            if _typed(value) not in {_typed(v) for v in allowed}:
                raise ValueError(f"template {self.id}: knob {name}={value!r} is not one of {list(allowed)}")
        return {**self.default_knobs(), **knobs}

    def valid(self, knobs: dict) -> bool:
        """Cheap static constraints on a (complete or partial) knob setting; True if there are none.

        Unknown knobs or values are not valid either. `render` does not call this: a search may
        render an invalid setting on purpose, to see it fail."""
        try:
            full = self.complete(knobs)
        except ValueError:
            return False
        return self.constraint(full) if self.constraint is not None else True

    def settings(self) -> list[dict]:
        """Every valid knob setting, in knob order (spaces are small: a few thousand at most)."""
        return _settings(self)[0]

    def untried(self, tried: Set[str]) -> list[dict]:
        """The valid settings whose `knob_key` is not in `tried`, in knob order."""
        settings, keys = _settings(self)
        return [s for s, key in zip(settings, keys) if key not in tried]

    def sample_knobs(self, rng: random.Random, tries: int = 1000) -> dict:
        """A uniformly drawn knob setting that `valid()` accepts (the default if none is found)."""
        for _ in range(tries):
            knobs = {name: rng.choice(values) for name, values in self.knobs.items()}
            if self.valid(knobs):
                return knobs
        return self.default_knobs()

    def neighbours(self, knobs: dict) -> list[dict]:
        """Valid settings one step away (local refinement): one numeric knob moved to the next smaller
        or larger allowed value, or one categorical knob (strings, bools, "auto" mixed with numbers)
        set to any other allowed value."""
        full = self.complete(knobs)
        out = []
        for name, values in self.knobs.items():
            current = full[name]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                ordered = sorted(values)
                i = ordered.index(current)
                steps = [ordered[j] for j in (i - 1, i + 1) if 0 <= j < len(ordered)]
            else:
                steps = [v for v in values if _typed(v) != _typed(current)]
            for value in steps:
                cand = {**full, name: value}
                if self.valid(cand):
                    out.append(cand)
        return out

    # ---- rendering -------------------------------------------------------------------------------

    def render(self, task_name: str, knobs: dict | None = None) -> str:
        """The candidate module for `task_name` with `knobs` (missing knobs take their defaults).

        Raises ValueError for a task this template does not implement or a bad knob name or value.
        The source starts with a comment header naming the template, task and knobs."""
        if task_name not in self.tasks:
            raise ValueError(f"template {self.id} implements {', '.join(self.tasks)}, not {task_name!r}")
        full = self.complete(knobs)
        values = {name: task_param(task_name, name, default) for name, default in self.params.items()}
        body = render_source(self.source, task_name, self.tasks, {**full, **values})
        header = (
            f"# ksearch template: {self.id}\n"
            f"# task: {task_name}\n"
            f"# knobs: {json.dumps(full, sort_keys=True)}\n"
        )
        return header + body.lstrip("\n")


# knob value lists several families share (the first value is the default)
AUTO_WARPS = ("auto", 1, 2, 4, 8, 16)  # `launch_warps`: "auto" sizes the warps to the tile
EVICT = ("none", "stream")  # `eviction_policies`: no hint, or stream the inputs past the cache


def family(prefix: str, tasks: tuple[str, ...], **common: Any) -> Callable[..., Template]:
    """The constructor of one op family's templates: `make(name, **fields)` is the template
    `<prefix>/<name>` of `tasks` with the kernel file `<prefix>_<name>.py` (unless `source` is given),
    the family's `common` fields, and its description and rationale written as indented prose blocks
    (whitespace collapsed to single spaces)."""

    def make(name: str, *, description: str, rationale: str, **fields: Any) -> Template:
        fields = {"source": f"{prefix}_{name}.py", **common, **fields}
        return Template(
            id=f"{prefix}/{name}",
            tasks=tasks,
            description=" ".join(description.split()),
            rationale=" ".join(rationale.split()),
            **fields,
        )

    return make


def knob_key(knobs: dict) -> str:
    """A knob setting's identity: what the search remembers as tried."""
    return ",".join(f"{k}={knobs[k]!r}" for k in sorted(knobs))


@functools.cache
def _settings(t: Template) -> tuple[list[dict], list[str]]:
    """The template's valid settings and their keys, computed once."""
    names = list(t.knobs)
    every = (dict(zip(names, values)) for values in itertools.product(*(t.knobs[n] for n in names)))
    settings = [k for k in every if t.valid(k)]
    return settings, [knob_key(k) for k in settings]


def _typed(value: object) -> tuple[str, object]:
    # 1 == True in Python; a knob value must match in type too.
    return (type(value).__name__, value)


@functools.cache  # a render reads it per parameter; the task YAML does not change in a process
def task_param(task_name: str, name: str, default: float) -> float:
    """A numeric parameter of a task (eps), read off its definition; `default` when absent."""
    from ksearch.task import load_task

    value = load_task(task_name).spec.params.get(name, default)
    return float(value) if isinstance(value, (int, float)) else default


def render_source(source: str, task_name: str, entries: tuple[str, ...], values: dict) -> str:
    """The candidate module made of the kernel file `source` for `task_name`: every constant named in
    `values` set to its value, the entry `def <task_name>(` renamed `run` and the other `entries`
    dropped, and each `from ksearch.propose.templates.kernels.<module> import ...` replaced by the
    imported definitions and those they use (each copied once, with the imports they need).

    The entries may also come from a factory of a sibling module, `rmsnorm, fused_add_rmsnorm =
    rmsnorm_entries(launch, eps, EVICT)`: the factory's nested `def <task_name>(` is copied in as
    `run`, its parameters being the names the file passes. ValueError when the file lacks a constant or the
    entry, or sets one twice."""
    text = (KERNEL_DIR / source).read_text()
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text)
    edits: list[tuple[int, int, str]] = []  # (first line, end line, replacement), 0-based, end exclusive
    set_names: list[str] = []
    found_entry = False
    imported = {
        alias.name: _kernel_module(stmt)
        for stmt in tree.body
        if isinstance(stmt, ast.ImportFrom) and _kernel_module(stmt)
        for alias in stmt.names
    }
    factories = {ast.unparse(call.func) for s in tree.body if (call := _factory_call(s, entries, imported))}
    copied: set[tuple[str, str]] = set()  # (module, function) of the definitions copied in
    first_import = -1  # the edit replacing the file's first sibling import
    for stmt in tree.body:
        first, end = _span(stmt)
        module = _kernel_module(stmt) if isinstance(stmt, ast.ImportFrom) else ""
        if isinstance(stmt, ast.ImportFrom) and module:
            names = tuple(a.name for a in stmt.names if a.name not in factories)
            chunks = [c for key, c in _definitions(module, names) if key not in copied]
            copied |= {key for key, _ in _definitions(module, names)}
            first_import = len(edits) if first_import < 0 else first_import
            edits.append((first, end, "\n" + "\n\n".join(chunks) + "\n" if chunks else ""))
        elif isinstance(stmt, ast.FunctionDef) and stmt.name in entries:
            if stmt.name != task_name:
                edits.append((first, end, ""))
                continue
            found_entry = True
            header = lines[stmt.lineno - 1].replace(f"def {task_name}(", "def run(", 1)
            edits.append((stmt.lineno - 1, stmt.lineno, header))
        elif factory := _factory_call(stmt, entries, imported):
            found_entry |= task_name in _targets(stmt)
            entry, used = _factory_entry(imported[ast.unparse(factory.func)], factory, task_name)
            chunks = [c for key, c in used if key not in copied]
            copied |= {key for key, _ in used}
            edits.append((first, end, "".join(c + "\n\n" for c in chunks) + entry))
        elif (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id in values
        ):
            name = stmt.targets[0].id
            set_names.append(name)
            edits.append((first, end, f"{name} = {values[name]!r}\n"))
    # the imports the copied definitions need that the file lacks (a host helper's torch), before its
    # first sibling import
    own = {ast.unparse(s) for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))}
    needed = [i for m in dict.fromkeys(m for m, _ in sorted(copied)) for i in _imports(m) if i not in own]
    if needed:
        first, end, replacement = edits[first_import]
        edits[first_import] = (
            first,
            end,
            "".join(f"{i}\n" for i in dict.fromkeys(needed)) + "\n" + replacement,
        )
    problems = [f"no constant {name}" for name in sorted(set(values) - set(set_names))]
    problems += [f"constant {name} set twice" for name in sorted(set(values)) if set_names.count(name) > 1]
    if not found_entry:
        problems.append(f"no entry `def {task_name}(`")
    if problems:
        raise ValueError(f"kernel file {source}: {'; '.join(problems)}")
    for first, end, replacement in sorted(edits, reverse=True):
        lines[first:end] = [replacement]
    return "".join(lines)


@functools.cache
def _imports(module: str) -> list[str]:
    """The imports of a kernels module other than those of its siblings, as normalized source."""
    tree = ast.parse((KERNEL_DIR / f"{module}.py").read_text())
    return [
        ast.unparse(s)
        for s in tree.body
        if isinstance(s, ast.Import) or (isinstance(s, ast.ImportFrom) and not _kernel_module(s))
    ]


def _kernel_module(stmt: ast.ImportFrom) -> str:
    """The sibling kernels module an import reads from ("" for any other import)."""
    module = stmt.module or ""
    return module.removeprefix(KERNEL_PACKAGE + ".") if module.startswith(KERNEL_PACKAGE + ".") else ""


def _targets(stmt: ast.stmt) -> list[str]:
    """The names a top-level `a, b = ...` or `a = ...` binds (none for any other statement)."""
    if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
        return []
    target = stmt.targets[0]
    elts = target.elts if isinstance(target, ast.Tuple) else [target]
    return [e.id for e in elts if isinstance(e, ast.Name)]


def _factory_call(stmt: ast.stmt, entries: tuple[str, ...], imported: dict[str, str]) -> ast.Call | None:
    """The call of `entry, ... = factory(...)`, a factory imported from a kernels module, binding entries."""
    names = _targets(stmt)
    value = stmt.value if isinstance(stmt, ast.Assign) else None
    if names and set(names) <= set(entries) and isinstance(value, ast.Call):
        if isinstance(value.func, ast.Name) and value.func.id in imported:
            return value
    return None


def _factory_entry(
    module: str, call: ast.Call, task_name: str
) -> tuple[str, list[tuple[tuple[str, str], str]]]:
    """The factory's nested `def <task_name>(` dedented and renamed `run`, and the definitions of its
    module it uses. The file must pass each factory parameter under the parameter's own name."""
    text = (KERNEL_DIR / f"{module}.py").read_text()
    lines = text.splitlines(keepends=True)
    name = ast.unparse(call.func)
    factory = next(s for s in ast.parse(text).body if isinstance(s, ast.FunctionDef) and s.name == name)
    params = [a.arg for a in factory.args.args]
    passed = [a.id if isinstance(a, ast.Name) else None for a in call.args]
    if passed != params or call.keywords:
        raise ValueError(f"entry factory {module}.{name}: pass {', '.join(params)} by those names")
    nested = next(s for s in factory.body if isinstance(s, ast.FunctionDef) and s.name == task_name)
    first, end = _span(nested)
    indent = nested.col_offset
    body = "".join(line[indent:] if line.strip() else line for line in lines[first:end])
    used = {n.id for n in ast.walk(nested) if isinstance(n, ast.Name)} - set(params)
    helpers = tuple(sorted(used & _functions(module)))
    return body.replace(f"def {task_name}(", "def run(", 1), list(_definitions(module, helpers))


@functools.cache
def _functions(module: str) -> frozenset[str]:
    """The top-level function names of a kernels module."""
    tree = ast.parse((KERNEL_DIR / f"{module}.py").read_text())
    return frozenset(s.name for s in tree.body if isinstance(s, ast.FunctionDef))


def _span(stmt: ast.stmt) -> tuple[int, int]:
    """0-based first and end-exclusive lines of a top-level statement, decorators included."""
    decorators = getattr(stmt, "decorator_list", [])
    first = min([stmt.lineno, *(d.lineno for d in decorators)])
    return first - 1, stmt.end_lineno or stmt.lineno


@functools.cache
def _definitions(module: str, names: tuple[str, ...]) -> tuple[tuple[tuple[str, str], str], ...]:
    """((module, name), source) of the functions `names` of the kernels module `module` and of the ones
    they use: of that module (a jit helper calling another), in file order, then those the module
    imports from its siblings (a host helper calling a launch helper)."""
    text = (KERNEL_DIR / f"{module}.py").read_text()
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    defs = {stmt.name: stmt for stmt in tree.body if isinstance(stmt, ast.FunctionDef)}
    imports = {
        alias.name: _kernel_module(stmt)
        for stmt in tree.body
        if isinstance(stmt, ast.ImportFrom) and _kernel_module(stmt)
        for alias in stmt.names
    }
    unknown = sorted(set(names) - set(defs))
    if unknown:
        raise ValueError(f"kernels module {module} defines no function {', '.join(unknown)}")
    wanted, todo, outside = set(names), list(names), set()
    while todo:
        mentioned = {n.id for n in ast.walk(defs[todo.pop()]) if isinstance(n, ast.Name)}
        used = mentioned & set(defs)
        outside |= mentioned & set(imports)
        todo += sorted(used - wanted)
        wanted |= used
    out = [
        ((module, name), "".join(lines[slice(*_span(stmt))])) for name, stmt in defs.items() if name in wanted
    ]
    for other in sorted({imports[n] for n in outside}):
        out += _definitions(other, tuple(sorted(n for n in outside if imports[n] == other)))
    return tuple(out)
