"""KernelBench problems: `class Model(nn.Module)`, module-level size constants, `get_inputs()` and
`get_init_inputs()` in one .py file.

The problem is run on the CPU to see what it takes and gives: the tensors `get_inputs` returns (the
forward's inputs), the model's parameters and buffers (weights, which become inputs too, so a
kernel receives them like any other tensor) and the tensors `forward` returns (one output each).
KernelBench fixes one size; ksearch wants a suite with small CPU shapes, so the integer constants
that set sizes are scaled down (each variant is run to check it still works) and become var axes;
a dim that follows no constant gets an axis of its own. FLOPs are counted by
torch.utils.flop_counter per workload (matmul-like ops only: an estimate, said so in the task) and
kept in a `FLOPS` axis (where it counts none, `write_task` estimates them); bytes are exact. The reference rebuilds the model from the copied problem
file with the workload's constants and runs `forward` with the given weights (torch.func.functional_call).
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import re
from collections import Counter
from pathlib import Path

import torch

from ksearch.errors import TaskError
from ksearch.task.importers.common import (
    CPU_ELEMENTS, TOLERANCES, Built, bytes_formula, distributions_for, infer_generator, load_module, task_name,
    tolerances_for,
)
from ksearch.task.inputs import dtype_name
from ksearch.task.spec import LANGUAGES

PROBLEM_FILE = "problem.py"
META_FILE = "kernelbench.json"  # input, weight and size-constant names, for KernelBench-form candidates
# CPU-sized values a size constant takes in the derived workloads (non-powers of two first: masking)
CPU_SIZES = ((12, 20), (33, 24), (7, 48), (40, 16))


def detect(path: Path) -> bool:
    if path.suffix != ".py" or not path.is_file():
        return False
    text = path.read_text(errors="replace")
    return "class Model" in text and "def get_inputs" in text


def _load(path: Path, overrides: dict[str, int] | None = None):
    module = load_module(f"ksearch_kernelbench_{abs(hash(str(path)))}", path)
    for k, v in (overrides or {}).items():
        setattr(module, k, v)
    for needed in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(module, needed):
            raise TaskError(f"{path}: a KernelBench problem defines {needed}; this file does not")
    return module


def _size_constants(path: Path) -> dict[str, int]:
    """Module-level `NAME = <int>` assignments: the sizes a problem is written in."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value
            if isinstance(value, ast.Constant) and type(value.value) is int and value.value >= 2:
                out[node.targets[0].id] = value.value
    return out


def _run(path: Path, overrides: dict[str, int]) -> dict:
    """Everything one size of the problem shows: its module, inputs, weights, outputs, FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    module = _load(path, overrides)
    torch.manual_seed(0)
    model = module.Model(*module.get_init_inputs())
    torch.manual_seed(0)
    inputs = list(module.get_inputs())
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise TaskError(f"{path}: get_inputs() must return a list of tensors (scalars are not supported yet)")
    weights = dict(model.state_dict())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        result = model(*inputs)
    outputs = list(result) if isinstance(result, (tuple, list)) else [result]
    if not all(isinstance(t, torch.Tensor) for t in outputs):
        raise TaskError(f"{path}: forward must return a tensor or a tuple of tensors")
    return {"module": module, "inputs": inputs, "weights": weights, "outputs": outputs,
            "flops": int(counter.get_total_flops())}


def _names(path: Path, module, n_inputs: int, n_outputs: int) -> tuple[list[str], list[str]]:
    params = [p for p in inspect.signature(module.Model.forward).parameters if p != "self"]
    inputs = params if len(params) == n_inputs and all(p.isidentifier() for p in params) else \
        [f"x{i}" for i in range(n_inputs)]
    outputs = ["out"] if n_outputs == 1 else [f"out{i}" for i in range(n_outputs)]
    return inputs, outputs


def _weight_name(key: str, taken: set[str]) -> str:
    name = re.sub(r"\W", "_", key)
    while name in taken:
        name += "_"
    return name


def build(path: Path, name: str | None) -> Built:
    path = Path(path)
    original = _run(path, {})
    module = original["module"]
    sizes = _size_constants(path)

    # Which constants set sizes: changing one changes some shape.
    def shapes_of(run):
        return [tuple(t.shape) for t in [*run["inputs"], *run["weights"].values(), *run["outputs"]]]

    shaping = {}
    for k, v in sizes.items():
        try:
            if shapes_of(_run(path, {k: v + 1})) != shapes_of(original):
                shaping[k] = v
        except Exception:  # noqa: BLE001  a size the model refuses (TaskError or the model's own): not a free axis
            continue
    variants: list[tuple[dict[str, int], dict]] = []
    for small, other in CPU_SIZES:
        values = {k: min(v, small if i % 2 == 0 else other) for i, (k, v) in enumerate(sorted(shaping.items()))}
        try:
            run = _run(path, values)
        except Exception:  # noqa: BLE001  this combination breaks the model (a divisibility rule): skip it
            continue
        total = sum(t.numel() for t in [*run["inputs"], *run["weights"].values(), *run["outputs"]])
        if total <= CPU_ELEMENTS and values not in [v for v, _ in variants] and values != shaping:
            variants.append((values, run))
    if not variants:
        raise TaskError(f"{path}: no smaller size of this problem runs on the CPU (constants tried: "
                        f"{', '.join(shaping) or 'none'}); ksearch needs small workloads to verify on the CPU")
    runs = [(dict(shaping), original), *variants]
    in_names, out_names = _names(path, module, len(original["inputs"]), len(original["outputs"]))
    taken = set(in_names) | set(out_names)
    w_names = []
    for key in original["weights"]:
        w_names.append(_weight_name(key, taken))
        taken.add(w_names[-1])
    dtype_counts = Counter(dtype_name(t.dtype) for t in [*original["inputs"], *original["weights"].values()]
                           if t.dtype.is_floating_point)
    variant_dtype = dtype_counts.most_common(1)[0][0] if dtype_counts else "float32"
    if variant_dtype not in TOLERANCES:
        raise TaskError(f"{path}: inputs in {variant_dtype}; importable dtypes are {', '.join(TOLERANCES)}")

    axis = {k: k.upper() if k.upper() != k else f"{k}_AXIS" for k in shaping}  # params keep the constant's name
    axes: dict[str, dict] = {axis[k]: {"kind": "var", "description": f"the problem's constant {k}"} for k in shaping}
    inferred = [f"size constants that became axes: {', '.join(f'{k}={v}' for k, v in shaping.items()) or 'none'}"]

    def dims_of(tensor_name: str, per_run: list[tuple[int, ...]]) -> list:
        out = []
        for i in range(len(per_run[0])):
            seq = [s[i] for s in per_run]
            if len(set(seq)) == 1:
                out.append(seq[0])
                continue
            match = next((axis[k] for k in shaping if [r[0][k] for r in runs] == seq), None)
            if match is None:
                match = next((f"{m}*{axis[k]}" for k in shaping for m in range(2, 9)
                              if [m * r[0][k] for r in runs] == seq), None)
            if match is None:
                match = f"{tensor_name}_d{i}"
                axes[match] = {"kind": "var", "description": f"dim {i} of {tensor_name}"}
            out.append(match)
        return out

    def tensor_spec(tensor_name: str, ts: list[torch.Tensor], sample: torch.Tensor | None) -> dict:
        d = dtype_name(ts[0].dtype)
        spec = {"dtype": "$dtype" if d == variant_dtype else d, "shape": dims_of(tensor_name, [tuple(t.shape) for t in ts])}
        if sample is not None:
            spec["distribution"] = infer_generator(sample)
        return spec

    inputs = {}
    for i, n in enumerate(in_names):
        inputs[n] = tensor_spec(n, [r[1]["inputs"][i] for r in runs], original["inputs"][i])
    for key, n in zip(original["weights"], w_names):
        inputs[n] = tensor_spec(n, [r[1]["weights"][key] for r in runs], original["weights"][key])
    outputs = {n: tensor_spec(n, [r[1]["outputs"][i] for r in runs], None) for i, n in enumerate(out_names)}
    counted = any(r[1]["flops"] for r in runs)
    if counted:
        axes["FLOPS"] = {"kind": "var", "description": "FLOPs torch.utils.flop_counter counted for this "
                         "workload (matmul-like ops only): an estimate"}
    workloads = []
    for j, (values, run) in enumerate(runs):
        wl_axes = {axis[k]: values[k] for k in shaping}
        for tname, tensors in [*zip(in_names, run["inputs"]), *zip(w_names, run["weights"].values()),
                               *zip(out_names, run["outputs"])]:
            tspec = inputs.get(tname) or outputs[tname]
            for dim, value in zip(tspec["shape"], tensors.shape):
                if isinstance(dim, str) and dim in axes and dim not in axis.values():
                    wl_axes[dim] = value
        if counted:
            wl_axes["FLOPS"] = max(1, run["flops"])
        label = "kernelbench" if j == 0 else "cpu_" + "_".join(f"{k}{v}" for k, v in values.items())
        workloads.append({"name": label, "axes": wl_axes, "cpu": j > 0,
                          "note": "the problem's own size" if j == 0 else "scaled down to run on the CPU"})
    spec = {
        "name": task_name(name or path.stem),
        "description": (inspect.getdoc(module.Model) or inspect.getdoc(module) or f"KernelBench problem {path.name}")
        + f"\nImported from KernelBench problem {path.name}; weights are inputs.",
        "op_family": "imported",
        "models": f"KernelBench problem {path.name}",
        "axes": axes,
        "params": {k: axis[k] for k in shaping},
        "dtypes": [variant_dtype],
        "inputs": inputs,
        "outputs": outputs,
        "entry": f"run({', '.join([*inputs, *outputs])})",
        "workloads": workloads,
    }
    spec["distributions"] = distributions_for(spec, stressed=in_names)
    spec["tolerances"] = tolerances_for([variant_dtype])
    spec["flops"] = "FLOPS" if counted else None  # None: write_task's estimate (one per output element)
    spec["bytes"] = bytes_formula(spec)
    spec["languages"] = list(LANGUAGES)
    inferred.append("input distributions inferred from one sample: "
                    + ", ".join(f"{n} {s['distribution']['kind']}" for n, s in inputs.items()))
    if counted:
        inferred.append("FLOPs: torch.utils.flop_counter per workload (an estimate)")
    reference = _REFERENCE
    meta = {"inputs": in_names, "weights": list(original["weights"]), "constants": axis}
    return Built(spec, reference, {PROBLEM_FILE: path.read_bytes(), META_FILE: json.dumps(meta, indent=1).encode()},
                 inferred)


def uses_modelnew(source: str, task_root: Path | None) -> bool:
    """A candidate in KernelBench's own form (`class ModelNew`, no `run`) for a task imported from it."""
    return (task_root is not None and (Path(task_root) / META_FILE).is_file()
            and re.search(r"^class ModelNew\b", source, re.M) is not None
            and re.search(r"^def run\b", source, re.M) is None)


def modelnew_entry(module, task_root: Path):
    """The task's entry for a KernelBench-form candidate: build its `ModelNew` with the problem's
    init inputs at the workload's size (read off the tensors' shapes), run `forward` with the given
    weights in place of its own, and copy what it returns into the outputs. Trusted harness code: the
    worker calls it, never the candidate."""
    from ksearch.task import load_task

    task_root = Path(task_root)
    meta = _meta(str(task_root))
    task = load_task(task_root)
    shapes = [(task.spec.inputs.get(n) or task.spec.outputs[n]).shape for n in [*task.input_names, *task.output_names]]
    n_args = len(meta["inputs"]) + len(meta["weights"])
    models: dict = {}

    def run(*tensors):
        sizes = {const: next(t.shape[dims.index(axis)] for t, dims in zip(tensors, shapes) if axis in dims)
                 for const, axis in meta["constants"].items()}
        result = run_problem_model(task_root, "ModelNew", module, tensors[:n_args], sizes, models)
        for out, value in zip(tensors[n_args:], result if isinstance(result, tuple) else (result,)):
            out.copy_(value)

    return run


@functools.lru_cache(maxsize=None)
def _meta(task_root: str) -> dict:
    return json.loads((Path(task_root) / META_FILE).read_text())


def run_problem_model(task_root: Path, cls: str, module, tensors, sizes: dict, models: dict | None = None):
    """`cls` (the problem's `Model`, or a candidate's `ModelNew` from `module`) built with the problem's
    init inputs at `sizes`, then run with the task's weights in place of its own: the shared step of
    the reference and of KernelBench-form candidates. `models` is the caller's cache of built models
    (by sizes and device), so each caller's models live exactly as long as it does."""
    meta = _meta(str(task_root))
    device = tensors[0].device
    models = {} if models is None else models
    key = (tuple(sorted(sizes.items())), str(device))
    if key not in models:
        problem = _load(Path(task_root) / PROBLEM_FILE, sizes)
        models[key] = getattr(module or problem, cls)(*problem.get_init_inputs()).to(device)
    n_in = len(meta["inputs"])
    with torch.no_grad():
        out = torch.func.functional_call(models[key], dict(zip(meta["weights"], tensors[n_in:])), tuple(tensors[:n_in]))
    return tuple(out) if isinstance(out, (tuple, list)) else out


_REFERENCE = '''"""Reference of an imported KernelBench problem: the problem's own Model.forward at the workload's
size constants, run with the given weights. Written by `ksearch tasks import`."""

from pathlib import Path

from ksearch.task.importers.kernelbench import run_problem_model


_MODELS = {}  # the problem's Model, built once per size and device


def reference(*tensors, **constants):
    return run_problem_model(Path(__file__).parent, "Model", None, tensors, constants, _MODELS)
'''
