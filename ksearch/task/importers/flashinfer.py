"""FlashInfer-Bench: a Definition JSON plus its workload JSONL become a ksearch task; a Solution
becomes a candidate; an EvidencePacket becomes FlashInfer-Bench Traces.

Format (FlashInfer Trace schema): a Definition has `name`, `op_type`, `axes` (`{"type": "const",
"value": N}` or `{"type": "var"}`), `inputs`/`outputs` (`shape`: a list of axis names, `null` for a
Python scalar, `[]` for a 0-D tensor; `dtype`), `reference` (Python source defining `run(*inputs)`
that returns the outputs) and optional `constraints` (expressions over the axes; read by
`parse_constraint`, never `eval`ed, since a definition is downloaded text). Each line of
a workload JSONL is a Workload (`uuid`, `axes`: the var axes' values, `inputs`: per input
`{"type": "random"}`, `{"type": "scalar", "value": v}` or `{"type": "safetensors", "path", "tensor_key"}`),
or a Trace wrapping one under `workload`.

How it maps onto the task contract:
  - axes, tensor names, dtypes and shapes are kept as they are; a 0-D tensor becomes shape [1];
  - a scalar input with one value in every workload becomes a task param (a candidate receives only
    tensors, so its value is fixed); one that varies is refused;
  - the workload JSONL is found next to the definition or, in a FlashInfer Trace dataset
    (definitions/<op_type>/<name>.json), at workloads/<op_type>/<name>.jsonl;
  - a scalar written at two precisions (1/sqrt(128) as float32 in one workload, float64 in another) is one value;
  - the workloads keep their var-axis values (named from them, the uuid in the note); small ones are
    marked `cpu: true`; CPU-sized workloads are derived by scaling var axes down when none fits
    (`common.cpu_suite`, shared by every importer); const axes stay as they are (a GEMM with
    N = K = 4096 gets CPU workloads with M at a few and the whole 4096 x 4096 weight);
  - safetensors inputs, when the file is there, give that input's distribution (`infer_generator`);
  - bytes is exact (every tensor once); flops is an estimate from torch's FLOP counter on the reference.

Public API beyond `detect`/`build`:
    parse_constraint(expr, axes) -> predicate               a constraint string as a check of axis values
    solution_to_candidate(solution, task, out) -> Path      a Solution JSON as a candidate module
    packet_to_traces(packet, task, *, solution, ...) -> list[dict]   one Trace per workload
    write_traces(packet, task, out, *, solution, ...) -> Path        the same as a .jsonl file
"""

from __future__ import annotations

import ast
import json
import math
import operator
import struct
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ksearch.errors import TaskError
from ksearch.task.formula import parse_formula
from ksearch.task.importers.common import Built, finish_spec, infer_generator, is_float, main_dtype, task_name

if TYPE_CHECKING:
    from ksearch.evidence import EvidencePacket
    from ksearch.task import Task

_DTYPES = {
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "float8_e4m3fn": "float8_e4m3fn",
    "float8_e4m3": "float8_e4m3fn",
    "float8_e5m2": "float8_e5m2",
    "int64": "int64",
    "int32": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}
_FAMILIES = {
    "gemm": "gemm",
    "grouped_gemm": "gemm",
    "moe": "moe",
    "rmsnorm": "norm",
    "fused_add_rmsnorm": "norm",
    "layernorm": "norm",
    "sampling": "reduction",
    "softmax": "reduction",
    "rope": "elementwise",
}
_ATTENTION = ("gqa", "mla", "dsa", "nsa", "mha", "attention")


# ---------------------------------------------------------------------------------------------
# Reading the definition and its workloads


def _definition_file(path: Path) -> Path | None:
    path = Path(path)
    if path.is_file():
        return path if path.suffix == ".json" and _looks_like_definition(path) else None
    if path.is_dir():
        found = [p for p in sorted(path.glob("*.json")) if _looks_like_definition(p)]
        return found[0] if len(found) == 1 else None
    return None


def _looks_like_definition(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and {"axes", "inputs", "outputs", "reference"} <= data.keys()


def detect(path: Path) -> bool:
    """A FlashInfer-Bench definition (.json with axes, inputs, outputs, reference), or a directory holding one."""
    return _definition_file(Path(path)) is not None


def _dataset_workloads(definition: Path, name: str) -> list[Path]:
    """In a FlashInfer Trace dataset (definitions/<op_type>/<name>.json), the workload files its
    layout puts at workloads/<op_type>/<name>.jsonl, then any workloads/**/<name>.jsonl."""
    for up in definition.parents:
        if up.name == "definitions":
            workloads = up.parent / "workloads"
            inner = definition.parent.relative_to(up)
            found = [workloads / inner / f"{definition.stem}.jsonl", workloads / inner / f"{name}.jsonl"]
            return found + (sorted(workloads.rglob(f"{name}.jsonl")) if workloads.is_dir() else [])
    return []


def _workloads_file(path: Path, definition: Path, name: str) -> Path:
    folder = path if path.is_dir() else definition.parent
    candidates = [
        folder / f"{definition.stem}.jsonl",
        folder / f"{name}.jsonl",
        folder / "workloads" / f"{name}.jsonl",
        folder.parent / "workloads" / f"{name}.jsonl",
    ]
    candidates += _dataset_workloads(definition, name)
    candidates += sorted(folder.glob("*.jsonl"))
    for c in candidates:
        if c.is_file():
            return c
    names = f"{name}.jsonl" if definition.stem == name else f"{definition.stem}.jsonl or {name}.jsonl"
    raise TaskError(
        f"definition {name}: no workload file next to the definition, in workloads/ or, in a dataset, "
        f"in workloads/<op_type>/ (looked for {names}); put the workload JSONL there"
    )


def _read_workloads(path: Path) -> list[dict]:
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise TaskError(
                f"{path}:{lineno}: not JSON ({exc}); each line must be one Workload object"
            ) from exc
        row = row.get("workload", row) if isinstance(row, dict) else row
        if not isinstance(row, dict) or "axes" not in row:
            raise TaskError(
                f"{path}:{lineno}: a workload needs 'axes' (and 'inputs', 'uuid'); got {str(row)[:80]}"
            )
        rows.append(row)
    if not rows:
        raise TaskError(f"{path} holds no workloads; add one JSON object per line")
    return rows


def _dtype(name: str, where: str) -> str:
    if name not in _DTYPES:
        raise TaskError(f"{where}: dtype {name!r} has no ksearch equivalent; supported: {', '.join(_DTYPES)}")
    return _DTYPES[name]


def _family(op_type: str) -> str:
    if op_type in _FAMILIES:
        return _FAMILIES[op_type]
    return "attention" if op_type.startswith(_ATTENTION) else op_type


_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_Predicate = Callable[[Mapping[str, int]], Any]


def parse_constraint(expr: str, axes: Iterable[str]) -> _Predicate:
    """A definition's constraint as a check of axis values (its result is truthy where they are allowed).

    A definition is downloaded text and `eval` is no sandbox, builtins emptied or not (an escape through
    `().__class__.__bases__[0].__subclasses__()`, a hang in `9**9**9**9`), so nothing is `eval`ed: the
    tree is walked, and it may hold only comparisons (chained too) and and/or/not over arithmetic terms,
    each term a task formula (numbers, these axes, + - * / // % **, min/max/...: `ksearch.task.formula`,
    which caps exponents). Anything else (an attribute, a call, a subscript, a string) is a TaskError
    here, before anything runs."""
    where = f"constraint {expr!r}"
    try:
        tree = ast.parse(str(expr).strip(), mode="eval")
    except SyntaxError as exc:
        raise TaskError(
            f"{where} is not an expression ({exc.msg}); write a comparison such as 'N >= 4'"
        ) from exc
    names = set(axes)

    def walk(node: ast.AST) -> _Predicate:
        if isinstance(node, ast.BoolOp):
            parts = [walk(v) for v in node.values]
            combine = all if isinstance(node.op, ast.And) else any
            return lambda values: combine(part(values) for part in parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = walk(node.operand)
            return lambda values: not inner(values)
        if isinstance(node, ast.Compare):
            bad = next((type(op).__name__ for op in node.ops if type(op) not in _COMPARE), None)
            if bad:
                raise TaskError(
                    f"{where} uses the comparison {bad}; constraints compare with == != < <= > >="
                )
            terms = [walk(t) for t in (node.left, *node.comparators)]
            ops = [_COMPARE[type(op)] for op in node.ops]
            return lambda values: all(op(a(values), b(values)) for op, a, b in zip(ops, terms, terms[1:]))
        try:
            formula = parse_formula(ast.unparse(node), "term")
        except TaskError as exc:
            raise TaskError(
                f"{where}: {exc}; terms may be compared (== != < <= > >=, chained) and joined with and/or/not"
            ) from exc
        unknown = sorted(formula.names - names)
        if unknown:
            raise TaskError(f"{where} names {unknown[0]!r}, which is not an axis")
        return lambda values: formula.evaluate(values, where)

    return walk(tree.body)


def _constraints(definition: dict) -> Callable[[dict[str, int]], bool]:
    consts = {n: a["value"] for n, a in definition["axes"].items() if a.get("type") == "const"}
    checks = [parse_constraint(c, definition["axes"]) for c in definition.get("constraints") or []]
    return lambda axes: all(bool(check({**consts, **axes})) for check in checks)


def _one_value(values: list[Any]) -> float | None:
    """Numbers that are one float32 value (a scale such as 1/sqrt(128) written once in float32 and once in
    float64): the most common of them, at the precision it was written in; None for anything else."""
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    try:
        if len({struct.pack("<f", float(v)) for v in values}) != 1:
            return None
    except OverflowError:  # past float32's range: not one float32 value
        return None
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return max(counts, key=lambda v: counts[v])


def _load_safetensors(file: Path, key: str, where: str):
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise TaskError(
            f"{where}: reading {file} needs the safetensors package; pip install safetensors"
        ) from exc
    tensors = load_file(str(file))
    if key not in tensors:
        raise TaskError(f"{where}: {file} has no tensor {key!r} (it holds: {', '.join(sorted(tensors))})")
    return tensors[key]


def build(path: Path, name: str | None) -> Built:
    path = Path(path)
    file = _definition_file(path)
    if file is None:
        raise TaskError(
            f"{path} is not a FlashInfer-Bench definition: a .json with axes, inputs, outputs and "
            "reference (or a directory holding exactly one)"
        )
    definition = json.loads(file.read_text())
    fi_name = str(definition.get("name") or file.stem)
    wl_file = _workloads_file(path, file, fi_name)
    rows = _read_workloads(wl_file)
    where = f"definition {fi_name}"
    inferred: list[str] = [f"workloads from {wl_file.name} ({len(rows)} line(s))"]

    axes: dict[str, dict] = {}
    for axis, a in definition["axes"].items():
        kind = a.get("type")
        if kind == "const":
            axes[axis] = {"kind": "const", "value": int(a["value"])}
        elif kind == "var":
            axes[axis] = {"kind": "var"}
        else:
            raise TaskError(f"{where}: axis {axis!r} has type {kind!r}; use const or var")
        if a.get("description"):
            axes[axis]["description"] = str(a["description"])

    # scalar inputs -> params (one value across the suite)
    params: dict[str, Any] = {}
    scalars = [n for n, t in definition["inputs"].items() if t.get("shape") is None]
    for s in scalars:
        raw = [r.get("inputs", {}).get(s, {}).get("value") for r in rows]
        values = {json.dumps(v) for v in raw}
        one = _one_value(raw)
        if len(values) == 1 and values != {"null"}:
            params[s] = raw[0]
        elif one is not None:
            params[s] = one
            inferred.append(
                f"scalar input {s}: {', '.join(sorted(values))} across the workloads differ only in "
                f"float32 rounding (one value written at two precisions): taken as {one!r}"
            )
        else:
            raise TaskError(
                f"{where}: scalar input {s!r} is {'missing from' if values == {'null'} else 'not the same in'} "
                f"every workload ({', '.join(sorted(values))}); a ksearch candidate receives only tensors, "
                "so a scalar must be one fixed value: split the workloads by its value and import each"
            )
        inferred.append(
            f"scalar input {s} = {params[s]!r} in every workload: a task param, passed to the reference"
        )

    def tensor(t: dict, tname: str) -> dict:
        shape = list(t["shape"]) or [1]
        if not t["shape"]:
            inferred.append(
                f"{tname} is 0-D in the definition: shape [1] here (a 0-D view is passed to the reference)"
            )
        out = {"dtype": _dtype(t["dtype"], f"{where} tensor {tname}"), "shape": shape}
        if t.get("description"):
            out["description"] = str(t["description"])
        return out

    inputs = {n: tensor(t, n) for n, t in definition["inputs"].items() if n not in scalars}
    outputs = {}
    for n, t in definition["outputs"].items():
        if t.get("shape") is None:
            raise TaskError(
                f"{where}: output {n!r} is a Python scalar; ksearch outputs are tensors written in place"
            )
        outputs[n] = tensor(t, n)
    for n, t in inputs.items():
        if not is_float(t["dtype"]):
            t["distribution"] = (
                {"kind": "bernoulli", "p": 0.5}
                if t["dtype"] == "bool"
                else {"kind": "randint", "low": 0, "high": 8}
            )
            inferred.append(
                f"input {n} ({t['dtype']}): random values drawn as {t['distribution']} "
                "(FlashInfer-Bench's own random generator is not specified)"
            )

    # safetensors inputs: their values give the input's distribution
    for r in rows:
        for n, desc in (r.get("inputs") or {}).items():
            if not isinstance(desc, dict) or desc.get("type") != "safetensors" or n not in inputs:
                continue
            ref = Path(desc["path"])
            # a dataset's blob paths are relative to its root (the folder of definitions/ and workloads/)
            roots = [
                up.parent
                for up in (*file.parents, *wl_file.parents)
                if up.name in ("definitions", "workloads")
            ]
            found = next(
                (
                    p
                    for p in (ref, wl_file.parent / ref, file.parent / ref, *(r / ref for r in roots))
                    if p.is_file()
                ),
                None,
            )
            if found is None:
                raise TaskError(
                    f"{where}: safetensors file missing for input {n!r}: workload {r.get('uuid', '?')} "
                    f"reads it from {desc['path']} (key {desc.get('tensor_key')!r}), which is not there; "
                    f"put it next to {wl_file.name} or make that input random"
                )
            sample = _load_safetensors(found, str(desc.get("tensor_key")), f"{where} input {n}")
            if "distribution" not in inputs[n]:
                inputs[n]["distribution"] = infer_generator(sample)
                inferred.append(
                    f"input {n}: distribution {inputs[n]['distribution']} read off {found.name}"
                    f"[{desc.get('tensor_key')}]"
                )

    var_axes = [a for a, s in axes.items() if s["kind"] == "var"]
    workloads: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in rows:
        axis_values = {a: int(v) for a, v in (r.get("axes") or {}).items() if a in var_axes}
        missing = [a for a in var_axes if a not in axis_values]
        if missing:
            raise TaskError(
                f"{where}: workload {r.get('uuid', '?')} gives no value for var axis {missing[0]!r}"
            )
        wname = "_".join(f"{a}{v}" for a, v in axis_values.items()) or "w"
        if wname in seen:
            wname = f"{wname}_{str(r.get('uuid', len(workloads)))[:8]}"
        seen.add(wname)
        workloads.append(
            {
                "name": task_name(wname) if not wname[0].isalnum() else wname,
                "axes": axis_values,
                "note": f"flashinfer uuid {r.get('uuid', '')}".strip(),
            }
        )

    main = main_dtype(inputs, outputs)
    tags = [str(t) for t in definition.get("tags") or []]
    models = ", ".join(t.split(":", 1)[1] for t in tags if t.startswith("model:"))
    spec: dict[str, Any] = {
        "name": task_name(name or fi_name),
        "description": (
            str(definition.get("description") or f"FlashInfer-Bench definition {fi_name}").rstrip()
            + f"\nImported from FlashInfer-Bench definition {fi_name} (op_type {definition.get('op_type')}).\n"
        ),
        "op_family": _family(str(definition.get("op_type") or definition.get("type") or "unknown")),
        "models": models or f"unknown (FlashInfer-Bench definition {fi_name} names none)",
        "axes": axes,
    }
    if params:
        spec["params"] = params
    spec.update(
        {
            "dtypes": [main],
            "inputs": inputs,
            "outputs": outputs,
            "entry": f"run({', '.join([*inputs, *outputs])})",
        }
    )
    if main == "bfloat16":
        inferred.append(
            "dtype bfloat16: the CPU Triton interpreter cannot verify it; candidates are verified on a GPU"
        )
    inferred += finish_spec(spec, workloads, allowed=_constraints(definition))
    inferred.append(f"tolerances per output dtype: the importer defaults for {', '.join(spec['tolerances'])}")

    reference = _reference_source(definition, list(inputs), list(outputs), scalars)
    files = {"definition.json": file.read_bytes(), "workloads.jsonl": wl_file.read_bytes()}
    return Built(spec=spec, reference=reference, files=files, inferred=inferred)


def _reference_source(definition: dict, inputs: list[str], outputs: list[str], scalars: list[str]) -> str:
    zero_d = [n for n, t in {**definition["inputs"], **definition["outputs"]}.items() if t.get("shape") == []]
    order = list(definition["inputs"])
    sig = ", ".join(inputs) + (", *, " + ", ".join(scalars) if scalars else "")
    args = ", ".join(f"{n}.reshape(())" if n in zero_d else n for n in order)
    return f'''"""Reference of FlashInfer-Bench definition {definition.get("name")}: its own `run` (in definition.json),
called with the inputs in definition order; outputs returned in the task's output order."""

import json
from pathlib import Path

import torch

from ksearch.task.importers.common import load_module

_DEFINITION = json.loads((Path(__file__).parent / "definition.json").read_text())
_PROBLEM = load_module("flashinfer_reference", "definition.json:reference", _DEFINITION["reference"])
_OUTPUTS = {outputs!r}


def reference({sig}):
    result = _PROBLEM.run({args})
    if isinstance(result, dict):
        result = tuple(result[n] for n in _OUTPUTS)
    elif not isinstance(result, (tuple, list)):
        result = (result,)
    result = tuple(r.reshape(1) if isinstance(r, torch.Tensor) and r.dim() == 0 else r for r in result)
    return result[0] if len(result) == 1 else result
'''


# ---------------------------------------------------------------------------------------------
# Solutions as candidates


def _load_json(obj: dict | str | Path, what: str) -> dict:
    if isinstance(obj, dict):
        return obj
    try:
        return json.loads(Path(obj).read_text())
    except (OSError, ValueError) as exc:
        raise TaskError(f"cannot read the {what} {obj}: {exc}") from exc


def _task(task: Task | str | Path) -> Task:
    from ksearch.task import Task, load_task

    return task if isinstance(task, Task) else load_task(task)


def solution_to_candidate(solution: dict | str | Path, task: Task | str | Path, out: str | Path) -> Path:
    """Write a FlashInfer-Bench Solution (a dict or its JSON file) as a ksearch candidate module at
    `out` (a .py file, or a directory to write `<solution name>.py` into) and return its path.

    The Solution's entry file is kept as it is; a `run(<inputs>, <outputs>)` with the task's entry
    signature is appended that calls the Solution's entry point with the inputs in definition order
    (scalars as the task's param values) and, in destination-passing style (the default), the outputs;
    in value-returning style (`spec.destination_passing_style: false`) it copies what the entry returns
    into the outputs. Only single-file Python/Triton Solutions can become one module."""
    sol = _load_json(solution, "FlashInfer-Bench solution")
    task = _task(task)
    sname = str(sol.get("name") or "solution")
    build_spec = sol.get("spec") or {}
    language = str(build_spec.get("language", "")).lower()
    if language not in ("triton", "python", "tilelang"):
        raise TaskError(
            f"solution {sname} is written in {build_spec.get('language')!r}; ksearch evaluates "
            "Triton or TileLang Python modules (CUDA solutions: port them to HIP or Triton)"
        )
    entry = str(build_spec.get("entry_point", ""))
    if "::" not in entry:
        raise TaskError(f"solution {sname}: entry_point {entry!r} is not '<file.py>::<function>'")
    entry_file, entry_fn = entry.split("::", 1)
    sources = {s["path"]: s["content"] for s in sol.get("sources") or []}
    if entry_file not in sources:
        raise TaskError(
            f"solution {sname}: entry file {entry_file} is not among its sources ({', '.join(sources)})"
        )
    others = [p for p in sources if p.endswith(".py") and p != entry_file]
    if others:
        raise TaskError(
            f"solution {sname} has more Python files than its entry ({', '.join(others)}); a ksearch "
            "candidate is one module: merge them into the entry file"
        )
    dps = bool(build_spec.get("destination_passing_style", True))
    definition_inputs = _definition_inputs(task)
    params = task.spec.params
    outs = task.output_names
    call_args = []
    for n in definition_inputs:
        call_args.append(repr(params[n]) if n in params else n)
    if dps:
        call_args += outs
    body = [f"    _result = _fib_entry({', '.join(call_args)})"]
    if not dps:
        body.append(
            "    _result = tuple(_result[n] for n in " + repr(tuple(outs)) + ") if isinstance(_result, dict) "
            "else (_result if isinstance(_result, (tuple, list)) else (_result,))"
        )
        for i, o in enumerate(outs):
            body.append(f"    {o}.copy_(_result[{i}].reshape({o}.shape))")
    wrapper = (
        f"\n\n# ---- ksearch entry: FlashInfer-Bench solution {sname}, {entry_fn} in "
        f"{'destination-passing' if dps else 'value-returning'} style\n"
        f"_fib_entry = {entry_fn}\n\n\n"
        f"def {task.entry_name}({', '.join(task.entry_args)}) -> None:\n" + "\n".join(body) + "\n"
    )
    header = f'"""FlashInfer-Bench solution {sname} by {sol.get("author", "?")} as a ksearch candidate.\n\ntask: {task.name}\n"""\n\n'
    out = Path(out)
    path = out / f"{task_name(sname)}.py" if out.is_dir() or not out.suffix else out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + sources[entry_file].rstrip() + "\n" + wrapper)
    return path


def _definition_inputs(task: Task) -> list[str]:
    """The input order of the definition the task came from (scalars included), else the task's."""
    file = task.root / "definition.json"
    if file.is_file():
        return list(json.loads(file.read_text())["inputs"])
    return task.input_names


# ---------------------------------------------------------------------------------------------
# Packets as traces


def _workload_entry(task: Task, wl, params: dict) -> dict:
    note = wl.note or ""
    fid = note.split("flashinfer uuid", 1)[1].strip() if "flashinfer uuid" in note else ""
    fid = fid or str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"ksearch:{task.name}:{wl.name}"))
    inputs: dict[str, dict] = {n: {"type": "random"} for n in task.input_names}
    for n, v in params.items():
        inputs[n] = {"type": "scalar", "value": v}
    return {"uuid": fid, "axes": dict(wl.axes), "inputs": inputs}


def _status(packet: EvidencePacket) -> str:
    from ksearch.evidence import FailureClass as F
    from ksearch.evidence import Status

    if packet.status is Status.PASS:
        return "PASSED"
    fc = packet.failure_class
    if fc in (F.NUMERICAL_MISMATCH, F.NONFINITE, F.CONSTANT_OUTPUT, F.OUTPUT_NOT_WRITTEN):
        return "INCORRECT_NUMERICAL"
    if fc is F.SHAPE_MISMATCH:
        return "INCORRECT_SHAPE"
    if fc in (F.COMPILE_ERROR, F.COMPILE_TIMEOUT, F.IMPORT_ERROR, F.ENTRY_SIGNATURE):
        return "COMPILE_ERROR"
    if fc is F.TIMEOUT:
        return "TIMEOUT"
    return "RUNTIME_ERROR"


def _num(x: float | None) -> float | str:
    return "NaN" if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def packet_to_traces(
    packet: EvidencePacket,
    task: Task | str | Path,
    *,
    solution: str,
    definition: str | None = None,
    allow_unmeasured: bool = False,
) -> list[dict]:
    """FlashInfer-Bench Traces (one per workload the packet covers) for an EvidencePacket.

    Status: pass -> PASSED; numerical mismatch, non-finite, constant or unwritten output ->
    INCORRECT_NUMERICAL (with the workload's largest errors); shape -> INCORRECT_SHAPE; compile,
    import or signature errors -> COMPILE_ERROR; timeout -> TIMEOUT; everything else (reward hacks
    included, named in `log`) -> RUNTIME_ERROR. A PASSED trace needs a latency: a packet that
    passed without being timed (CPU) is refused unless `allow_unmeasured`, which writes
    `performance: null` and the reason in `log` (FlashInfer-Bench's own validator rejects such a trace).
    A skipped packet evaluated nothing and is refused."""
    from ksearch.evidence import Status

    task = _task(task)
    if packet.status is Status.SKIPPED:
        raise TaskError(
            f"packet {packet.packet_id} was skipped ({packet.message}); nothing to write as a Trace"
        )
    status = _status(packet)
    if status == "PASSED" and packet.performance is None and not allow_unmeasured:
        reason = packet.unmeasured.reason.value if packet.unmeasured else "no timing"
        raise TaskError(
            f"packet {packet.packet_id} passed but was not timed ({reason}); a PASSED FlashInfer-Bench "
            "Trace needs a latency: evaluate on a GPU, or pass allow_unmeasured to write it without one"
        )
    env = packet.environment
    hardware = (
        env.gpu_name or f"CPU ({packet.validation.backend if packet.validation else 'no device'})"
    ).replace(" ", "_")
    libs = {k: str(v) for k, v in env.toolchain.items() if v}
    timings = {t.workload: t for t in (packet.performance.workloads if packet.performance else [])}
    checks = packet.validation.outputs if packet.validation else []
    log = packet.message
    if status == "PASSED" and packet.performance is None:
        log = (
            log + "; " if log else ""
        ) + f"not timed: {packet.unmeasured.reason.value if packet.unmeasured else '?'}"
    elif status == "RUNTIME_ERROR" and packet.failure_class is not None:
        log = f"{packet.failure_class.value}: {log}"
    definition = definition or _definition_name(task)
    traces = []
    for wname in packet.candidate.shape_suite:
        wl = task.workload(wname)
        mine = [c for c in checks if c.workload == wname]
        correctness = None
        if status in ("PASSED", "INCORRECT_NUMERICAL"):
            abs_err = [c.max_abs_err for c in mine if c.max_abs_err is not None]
            rel_err = [c.max_rel_err for c in mine if c.max_rel_err is not None]
            correctness = {
                "max_relative_error": _num(max(rel_err) if rel_err else None),
                "max_absolute_error": _num(max(abs_err) if abs_err else None),
            }
        performance = None
        if status == "PASSED" and wname in timings:
            t = timings[wname]
            ref = t.baseline_median_us
            performance = {
                "latency_ms": t.median_us / 1000.0,
                "reference_latency_ms": (ref or 0.0) / 1000.0,
                "speedup_factor": t.speedup or 0.0,
            }
        traces.append(
            {
                "definition": definition,
                "workload": _workload_entry(task, wl, task.params_for(wl)),
                "solution": solution,
                "evaluation": {
                    "status": status,
                    "environment": {"hardware": hardware, "libs": libs},
                    "timestamp": packet.created_at,
                    "log": log,
                    "correctness": correctness,
                    "performance": performance,
                },
            }
        )
    return traces


def _definition_name(task: Task) -> str:
    file = task.root / "definition.json"
    return str(json.loads(file.read_text()).get("name")) if file.is_file() else task.name


def write_traces(
    packet: EvidencePacket,
    task: Task | str | Path,
    out: str | Path,
    *,
    solution: str,
    definition: str | None = None,
    allow_unmeasured: bool = False,
) -> Path:
    """`packet_to_traces` appended to a JSONL file (FlashInfer-Bench's traces/<...>.jsonl layout)."""
    traces = packet_to_traces(
        packet, task, solution=solution, definition=definition, allow_unmeasured=allow_unmeasured
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as fh:
        for t in traces:
            fh.write(json.dumps(t) + "\n")
    return out
