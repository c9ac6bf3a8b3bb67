"""GPU MODE: a problem directory (`reference.py` with `ref_kernel(data)`, `generate_input(**spec)`,
`check_implementation(data, output)`, plus `task.yml` whose `tests:` and `benchmarks:` list the specs)
becomes a ksearch task; a submission with `custom_kernel(data)` becomes a candidate.

How it maps onto the task contract:
  - every int field of the specs but `seed` is a var axis; each spec is a workload (tests first,
    benchmarks not already among them after), and CPU-sized workloads are derived by scaling the var
    axes down when none fits (`common.cpu_suite`), each checked by running `ref_kernel` on it;
  - `generate_input` runs on the CPU (string literals "cuda" read as "cpu") at the smallest spec and at
    that spec with each axis doubled: the tensors of `data` (one tensor, or a tuple/list of them) are
    the inputs, what `ref_kernel` returns the outputs, and each dim becomes the axis (or multiple of
    it) that moves it; names come from `ref_kernel`'s unpacking of `data` where it has one;
  - a tensor of `data` that `ref_kernel` writes and returns is an output buffer: an output here, the
    candidate's output tensor put in its slot of `data`;
  - each input's distribution is read off the sample (`infer_generator`); `check_implementation` is
    not used: ksearch compares with the task's tolerances.

Public API beyond `detect`/`build`:
    submission_to_candidate(submission, task, out) -> Path   a custom_kernel submission as a candidate
    load_problem(reference, *, cpu=False) -> module          the problem's reference module, with its task/utils
    problem_reference(task_dir) -> callable                  what an imported task's reference.py calls
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ksearch.errors import TaskError
from ksearch.task.importers.common import (
    Built, finish_spec, infer_generator, is_float, load_module, main_dtype, shapes_at, task_name,
)
from ksearch.task.inputs import dtype_name, torch_dtype

if TYPE_CHECKING:
    from ksearch.task import Task

LAYOUT_FILE = "gpumode.json"
SAMPLE_ELEMENTS = (4096, 1 << 24)  # a spec this big (product of its axes) gives the values' distribution
_FAMILY_WORDS = (("matmul", "gemm"), ("gemm", "gemm"), ("mm", "gemm"), ("attention", "attention"), ("mla", "attention"),
                 ("norm", "norm"), ("softmax", "reduction"), ("sum", "reduction"), ("scan", "reduction"),
                 ("prefix", "reduction"), ("histogram", "reduction"), ("moe", "moe"))


# ---------------------------------------------------------------------------------------------
# Loading the problem's Python


def _task_file(folder: Path) -> Path | None:
    """The problem's task.yml (or task.yaml)."""
    return next((p for p in (folder / "task.yml", folder / "task.yaml") if p.is_file()), None)


def _problem_dir(path: Path) -> Path | None:
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not (folder / "reference.py").is_file() or _task_file(folder) is None:
        return None
    if path.is_file() and path.name not in ("reference.py", "task.yml", "task.yaml"):
        return None
    return folder


def detect(path: Path) -> bool:
    """A directory (or its reference.py / task.yml) holding reference.py with ref_kernel and generate_input, and task.yml."""
    folder = _problem_dir(Path(path))
    if folder is None:
        return False
    text = (folder / "reference.py").read_text(errors="replace")
    return "def ref_kernel" in text and "def generate_input" in text


def _shim_utils() -> types.ModuleType:
    import torch

    utils = types.ModuleType("utils")

    def make_match_reference(ref, rtol: float = 1e-5, atol: float = 1e-8, **_: Any):
        def check(data, output):
            expected = ref(data)
            ok = torch.allclose(output.float(), expected.float(), rtol=rtol, atol=atol)
            return ok, "" if ok else "mismatch"
        return check

    utils.make_match_reference = make_match_reference
    utils.set_seed = lambda seed=42: torch.manual_seed(seed)
    return utils


def _shim_task() -> types.ModuleType:
    task = types.ModuleType("task")
    task.input_t = task.output_t = object
    return task


def _companions(reference: Path) -> dict[str, Path | None]:
    folder = reference.parent
    found: dict[str, Path | None] = {}
    for mod in ("task", "utils"):
        local = [folder / f"gpumode_{mod}.py", folder / f"{mod}.py", folder.parent / f"{mod}.py"]
        found[mod] = next((p for p in local if p.is_file()), None)
    return found


def load_problem(reference: Path, *, cpu: bool = False) -> types.ModuleType:
    """The problem's reference module, its `task` and `utils` imports served from the task.py and
    utils.py beside it (or one folder up, as in reference-kernels), else from small stand-ins.
    `cpu`: the string literals "cuda"/"cuda:N" in those files read as "cpu" (generate_input on a host)."""
    reference = Path(reference)
    saved = {m: sys.modules.get(m) for m in ("task", "utils")}
    try:  # `from task import ...` and `from utils import ...` find these while the reference runs
        for mod, file in _companions(reference).items():
            sys.modules[mod] = (load_module(mod, file, cpu=cpu) if file is not None
                                else (_shim_task() if mod == "task" else _shim_utils()))
        module = load_module("gpumode_reference", reference, cpu=cpu)
    finally:
        for mod, old in saved.items():
            if old is None:
                sys.modules.pop(mod, None)
            else:
                sys.modules[mod] = old
    for fn in ("ref_kernel", "generate_input"):
        if not callable(getattr(module, fn, None)):
            raise TaskError(f"{reference} defines no {fn}(); a GPU MODE reference needs ref_kernel(data) and generate_input(**spec)")
    return module


# ---------------------------------------------------------------------------------------------
# data <-> tensors


def _tensors_of(data: Any, what: str) -> tuple[str, list]:
    import torch

    if isinstance(data, torch.Tensor):
        return "tensor", [data]
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
        return type(data).__name__, list(data)
    kinds = [type(t).__name__ for t in data] if isinstance(data, (tuple, list)) else [type(data).__name__]
    raise TaskError(f"{what} is {kinds}; only a tensor or a tuple/list of tensors can become task tensors")


def make_data(kind: str, slots: list[list], inputs: dict[str, Any], outputs: dict[str, Any]) -> Any:
    """`data` for ref_kernel/custom_kernel: each slot ["input", name] or ["output", name]."""
    items = [inputs[n] if role == "input" else outputs[n] for role, n in slots]
    if kind == "tensor":
        return items[0]
    return items if kind == "list" else tuple(items)


def problem_reference(task_dir: Path) -> Callable[..., Any]:
    """The callable an imported task's reference.py exposes: inputs in task order -> outputs, through
    the problem's ref_kernel (the output buffers of `data` freshly allocated, shaped as task.yaml says)."""
    import torch

    from ksearch.task import load_task

    task_dir = Path(task_dir)
    task = load_task(task_dir)
    layout = json.loads((task_dir / LAYOUT_FILE).read_text())
    ref_kernel = load_problem(task_dir / "gpumode_reference.py").ref_kernel
    buffers = [n for role, n in layout["slots"] if role == "output"]

    def reference(*args: torch.Tensor) -> Any:
        inputs = dict(zip(task.input_names, args, strict=True))
        axes = task.axes_from_inputs(inputs, partial=True)
        made = {n: torch.empty(task.spec.resolve_shape(n, axes), dtype=torch_dtype(task.spec.outputs[n].dtype),
                               device=args[0].device) for n in buffers}
        result = ref_kernel(make_data(layout["kind"], layout["slots"], inputs, made))
        result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
        return result[0] if len(result) == 1 else result

    return reference


# ---------------------------------------------------------------------------------------------
# Building the task


def _specs(folder: Path) -> tuple[list[tuple[str, dict]], str]:
    file = _task_file(folder)
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TaskError(f"{file}: invalid YAML ({exc})") from exc
    specs: list[tuple[str, dict]] = []
    for key, prefix in (("tests", "test"), ("benchmarks", "bench")):
        for i, s in enumerate(data.get(key) or []):
            if not isinstance(s, dict):
                raise TaskError(f"{file}: {key}[{i}] is {s!r}, not a mapping like {{m: 128, seed: 42}}")
            specs.append((f"{prefix}{i}", s))
    if not specs:
        raise TaskError(f"{file} lists no tests: or benchmarks: specs; add them")
    return specs, str(data.get("description") or "").strip()


def _unpacked_names(module: types.ModuleType, fn: str, n: int) -> list[str] | None:
    """Names `ref_kernel` unpacks `data` into (`a, b = data`), or None."""
    try:
        tree = ast.parse(inspect.getsource(getattr(module, fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    func = tree.body[0]
    if not isinstance(func, ast.FunctionDef) or not func.args.args:
        return None
    data = func.args.args[0].arg
    for node in ast.walk(func):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id == data
                and isinstance(node.targets[0], (ast.Tuple, ast.List))):
            names = [e.id for e in node.targets[0].elts if isinstance(e, ast.Name)]
            if len(names) == n == len(node.targets[0].elts):
                return names
    return None


def _fit_dim(values: list[int], axes_runs: list[dict[str, int]]) -> int | str | None:
    """A dim as a formula over the axes, from its sizes at the base spec and at each probe."""
    if len(set(values)) == 1 and all(len(set(r[a] for r in axes_runs)) > 1 for a in axes_runs[0]):
        return values[0]
    for a in axes_runs[0]:
        av = [r[a] for r in axes_runs]
        if all(v == x for v, x in zip(values, av)):
            return a
        if all(v % x == 0 for v, x in zip(values, av)) and len({v // x for v, x in zip(values, av)}) == 1:
            return f"{values[0] // av[0]}*{a}"
        if all(x % v == 0 for v, x in zip(values, av)) and len({x // v for v, x in zip(values, av)}) == 1:
            return f"{a}//{av[0] // values[0]}"
    names = list(axes_runs[0])
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            prods = [r[a] * r[b] for r in axes_runs]
            if all(v == p for v, p in zip(values, prods)):
                return f"{a}*{b}"
    if len(set(values)) == 1:
        return values[0]
    return None


def _generate(module: types.ModuleType, spec: dict) -> Any:
    import torch

    kwargs = dict(spec)
    if "seed" in inspect.signature(module.generate_input).parameters and kwargs.get("seed") is None:
        kwargs["seed"] = 42
    with torch.no_grad():
        return module.generate_input(**kwargs)


def build(path: Path, name: str | None) -> Built:
    import torch

    folder = _problem_dir(Path(path))
    if folder is None:
        raise TaskError(f"{path} is not a GPU MODE problem: a directory with reference.py and task.yml")
    specs, description = _specs(folder)
    module = load_problem(folder / "reference.py", cpu=True)
    inferred = ["generate_input and ref_kernel run on the CPU for inference ('cuda' read as 'cpu')"]

    axis_names = [k for k, v in specs[0][1].items()
                  if k != "seed" and all(isinstance(s.get(k), int) and not isinstance(s.get(k), bool) for _, s in specs)]
    if not axis_names:
        raise TaskError(f"{folder}/task.yml: the specs share no int field besides seed; nothing to make var axes of")
    other = sorted({k for _, s in specs for k in s if k not in axis_names and k != "seed"})
    if other:
        inferred.append(f"spec fields {', '.join(other)} are not int axes: they only steer generate_input and are "
                        "kept in the workload notes, not in the task")

    # the suite: tests, then benchmarks that are not already a test
    workloads, seen = [], {}
    for wname, s in specs:
        axes = {a: int(s[a]) for a in axis_names}
        key = json.dumps(axes, sort_keys=True)
        extra = {k: s[k] for k in other if k in s}
        if key in seen:
            seen[key]["note"] += f"; also {wname}"
            continue
        wl = {"name": wname, "axes": axes, "note": f"task.yml {wname}" + (f" {extra}" if extra else "")}
        seen[key] = wl
        workloads.append(wl)

    base_name, base = min(specs, key=lambda x: math.prod(int(x[1][a]) for a in axis_names))
    base_data = _generate(module, base)
    kind, base_tensors = _tensors_of(base_data, f"generate_input(**{base_name})")
    base_out = module.ref_kernel(base_data)
    _, out_tensors = _tensors_of(base_out, f"ref_kernel's result at {base_name}")
    runs = [({a: int(base[a]) for a in axis_names}, base_tensors, out_tensors)]
    for a in axis_names:
        probe = {**base, a: int(base[a]) * 2}
        try:
            data = _generate(module, probe)
            _, t = _tensors_of(data, f"generate_input at {probe}")
            _, o = _tensors_of(module.ref_kernel(data), "ref_kernel's result")
        except TaskError:
            raise
        except Exception as exc:  # the problem's code refused the probe spec
            raise TaskError(f"generate_input/ref_kernel failed at {probe} (the smallest spec with {a} doubled, to see "
                            f"which dims {a} sets): {type(exc).__name__}: {exc}") from exc
        runs.append(({x: int(probe[x]) for x in axis_names}, t, o))

    # names and roles
    buffers = {i: j for i, t in enumerate(base_tensors) for j, o in enumerate(out_tensors)
               if o.data_ptr() == t.data_ptr() and o.shape == t.shape}
    names = (_unpacked_names(module, "ref_kernel", len(base_tensors))
             or (["data"] if kind == "tensor" else [f"in{i}" for i in range(len(base_tensors))]))
    out_names = []
    for j in range(len(out_tensors)):
        slot = next((i for i, jj in buffers.items() if jj == j), None)
        out_names.append(names[slot] if slot is not None else ("output" if len(out_tensors) == 1 else f"out{j}"))
    in_names = [n for i, n in enumerate(names) if i not in buffers]
    out_names = [f"{n}_out" if n in in_names else n for n in out_names]
    if buffers:
        inferred.append(f"data slot(s) {', '.join(names[i] for i in buffers)} are output buffers ref_kernel writes "
                        "and returns: outputs here")

    def shape(kind_: str, idx: int, tname: str) -> list:
        dims = []
        for d in range(runs[0][1 if kind_ == "in" else 2][idx].dim()):
            values = [int((r[1] if kind_ == "in" else r[2])[idx].shape[d]) for r in runs]
            fit = _fit_dim(values, [r[0] for r in runs])
            if fit is None:
                raise TaskError(f"{tname} dim {d} is {values} at the specs {[r[0] for r in runs]}; it is not an axis, "
                                "a multiple or a product of two: write this task by hand")
            dims.append(fit)
        return dims or [1]

    # values are read off a sample of some thousands of elements where a spec gives one (a tiny sample
    # says little about its distribution), else off the smallest spec
    size = {n: math.prod(int(s[a]) for a in axis_names) for n, s in specs}
    roomy = [n for n, s in specs if SAMPLE_ELEMENTS[0] <= size[n] <= SAMPLE_ELEMENTS[1]]
    sample_name = min(roomy, key=lambda n: size[n]) if roomy else base_name
    sample = base_tensors if sample_name == base_name else _tensors_of(
        _generate(module, dict(specs)[sample_name]), f"generate_input(**{sample_name})")[1]
    inputs: dict[str, dict] = {}
    for i, t in enumerate(base_tensors):
        if i in buffers:
            continue
        inputs[names[i]] = {"dtype": dtype_name(t.dtype), "shape": shape("in", i, names[i]),
                            "distribution": infer_generator(sample[i])}
        inferred.append(f"input {names[i]}: {dtype_name(t.dtype)}{inputs[names[i]]['shape']}, values like "
                        f"{inputs[names[i]]['distribution']} (read off generate_input at {sample_name})")
    outputs = {out_names[j]: {"dtype": dtype_name(o.dtype), "shape": shape("out", j, out_names[j])}
               for j, o in enumerate(out_tensors)}
    slots = [["output", out_names[buffers[i]]] if i in buffers else ["input", names[i]] for i in range(len(base_tensors))]

    pname = task_name(name or folder.name)
    family = next((f for w, f in _FAMILY_WORDS if w in folder.name.lower()), "elementwise")
    inferred.append(f"op_family {family} guessed from the directory name {folder.name}")
    spec: dict[str, Any] = {
        "name": pname,
        "description": (description or f"GPU MODE problem {folder.name}") + f"\nImported from GPU MODE problem {folder.name}.\n",
        "op_family": family,
        "models": f"unknown (GPU MODE problem {folder.name} names none)",
        "axes": {a: {"kind": "var"} for a in axis_names},
        "dtypes": [main_dtype(inputs, outputs)],
        "inputs": inputs, "outputs": outputs,
        "entry": f"run({', '.join([*inputs, *outputs])})",
    }
    layout = {"kind": kind, "slots": slots}  # names, shapes and dtypes are task.yaml's

    def runs_ok(axes: dict[str, int]) -> bool:
        """Whether ref_kernel accepts random data of these shapes (derived workloads must keep its assumptions)."""
        shapes = dict(zip([*inputs, *outputs], shapes_at(spec, axes), strict=True))
        made = {n: (torch.randn(shapes[n]).to(torch_dtype(t["dtype"])) if is_float(t["dtype"])
                    else torch.zeros(shapes[n], dtype=torch_dtype(t["dtype"]))) for n, t in inputs.items()}
        bufs = {n: torch.empty(shapes[n], dtype=torch_dtype(t["dtype"])) for n, t in outputs.items()}
        try:
            res = module.ref_kernel(make_data(kind, slots, made, bufs))
        except Exception:  # the derived shape breaks an assumption of the problem: try another  # noqa: BLE001
            return False
        res = tuple(res) if isinstance(res, (tuple, list)) else (res,)
        return all(tuple(r.shape) == shapes[n] for r, n in zip(res, outputs, strict=False))

    inferred += finish_spec(spec, workloads, allowed=runs_ok)
    inferred.append("check_implementation is not used: outputs are compared with the importer's tolerances for "
                    + ", ".join(spec["tolerances"]))

    files = {"gpumode_reference.py": (folder / "reference.py").read_bytes(), LAYOUT_FILE: json.dumps(layout, indent=1).encode()}
    for mod, file in _companions(folder / "reference.py").items():
        if file is not None:
            files[f"gpumode_{mod}.py"] = file.read_bytes()
    files["gpumode_task.yml"] = _task_file(folder).read_bytes()
    args = ", ".join(inputs)
    reference = f'''"""Reference of GPU MODE problem {folder.name}: its ref_kernel (gpumode_reference.py) on `data` built
from the inputs as generate_input lays it out (gpumode.json)."""

from pathlib import Path

from ksearch.task.importers.gpumode import problem_reference

_REFERENCE = problem_reference(Path(__file__).parent)


def reference({args}):
    return _REFERENCE({args})
'''
    return Built(spec=spec, reference=reference, files=files, inferred=inferred)


# ---------------------------------------------------------------------------------------------
# Submissions as candidates


def submission_to_candidate(submission: str | Path, task: Task | str | Path, out: str | Path) -> Path:
    """Write a GPU MODE submission (a .py defining `custom_kernel(data)`) as a ksearch candidate at
    `out` (a .py file, or a directory for `<submission stem>.py`) and return its path.

    The submission is kept as it is, less its `from task import ...` (type aliases, defined here as
    `object`); a `run(<inputs>, <outputs>)` with the task's entry signature is appended that builds
    `data` as generate_input lays it out (output buffers: the output tensors themselves), calls
    custom_kernel and copies what it returns into any output it did not write in place."""
    from ksearch.task import Task, load_task

    task = task if isinstance(task, Task) else load_task(task)
    layout_file = task.root / LAYOUT_FILE
    if not layout_file.is_file():
        raise TaskError(f"task {task.name} was not imported from GPU MODE (no {LAYOUT_FILE}); import the problem first")
    layout = json.loads(layout_file.read_text())
    submission = Path(submission)
    source = submission.read_text()
    tree = ast.parse(source, str(submission))
    if not any(isinstance(n, ast.FunctionDef) and n.name == "custom_kernel" for n in tree.body):
        raise TaskError(f"{submission} defines no custom_kernel(data); a GPU MODE submission needs one")
    lines = source.splitlines()
    aliases: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module in ("task", "utils"):
            if node.module == "utils":
                raise TaskError(f"{submission} imports {', '.join(a.name for a in node.names)} from utils; a candidate "
                                "is one module: copy what it needs into the submission")
            aliases += [a.asname or a.name for a in node.names]
            for i in range(node.lineno - 1, node.end_lineno):
                lines[i] = "# (ksearch) " + lines[i]
    outs = task.output_names
    items = [n for _, n in layout["slots"]]
    data = (items[0] if layout["kind"] == "tensor"
            else ("[" + ", ".join(items) + "]" if layout["kind"] == "list" else "(" + ", ".join(items) + ",)"))
    body = [f"    _result = custom_kernel({data})",
            "    _result = tuple(_result) if isinstance(_result, (tuple, list)) else (_result,)"]
    for i, o in enumerate(outs):
        body.append(f"    if _result[{i}] is not {o}:\n        {o}.copy_(_result[{i}])")
    header = f'"""GPU MODE submission {submission.name} as a ksearch candidate.\n\ntask: {task.name}\n"""\n\n'
    alias_block = "".join(f"{a} = object  # was imported from GPU MODE's task.py\n" for a in aliases)
    wrapper = (f"\n\n# ---- ksearch entry: data laid out as generate_input makes it, custom_kernel called on it\n"
               f"def {task.entry_name}({', '.join(task.entry_args)}) -> None:\n" + "\n".join(body) + "\n")
    text = "\n".join(lines).rstrip() + "\n"
    if alias_block:
        text = _after_imports(text, alias_block)
    out = Path(out)
    path = out / f"{task_name(submission.stem)}.py" if out.is_dir() or not out.suffix else out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + text + wrapper)
    return path


def _after_imports(text: str, block: str) -> str:
    tree = ast.parse(text)
    last = max((n.end_lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))), default=0)
    lines = text.splitlines()
    return "\n".join([*lines[:last], "", block.rstrip(), *lines[last:]]) + "\n"
