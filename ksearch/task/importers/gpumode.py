"""GPU MODE: a problem directory (`reference.py` with `ref_kernel(data)`, `generate_input(**spec)`,
`check_implementation(data, output)`, plus `task.yml` whose `tests:` and `benchmarks:` list the specs)
becomes a ksearch task; a submission with `custom_kernel(data)` becomes a candidate.

How it maps onto the task contract:
  - every int field of the specs but `seed` is a candidate axis; one that sizes a tensor of `data` (or a
    scalar in it) is a var axis, one that does not (histogram's `contention`, a conditioning knob) only
    steers generate_input, like the non-int fields (`case`, `nomask`): those are kept in the workload
    notes, never in the task. Each spec is a workload (tests first, benchmarks not already among them
    after); CPU-sized workloads are derived by scaling the var axes down, each checked by running
    `ref_kernel` on inputs drawn from the task's own generators;
  - the problem is never run at a spec's full size to learn shapes: generate_input (and, where it can,
    ref_kernel) runs under FakeTensorMode at every spec, which allocates nothing; real runs (for values,
    and for ref_kernel where FakeTensorMode cannot follow it) happen at the smallest spec, or at it
    scaled down to REAL_ELEMENTS, and at that point with each axis moved (doubled, else halved, +-1),
    to see which dims each axis sets; a dim the probes cannot tell (a ceil-divided count) is refitted
    on the shapes of every spec. String literals "cuda"/"cuda:N" and `.cuda()` read as the CPU here;
  - `data` may be any nesting of tuples, lists, dicts and dataclasses holding tensors and scalars
    (TriMul's `(x, mask, {"norm.weight": ...}, {"dim": 128, ...})`). Every tensor is a task tensor
    named by its path: the top-level items by `ref_kernel`'s unpacking of `data` (`x, mask, weights,
    config = data`; else `in0`, `in1`...), deeper keys and indices joined with `_` and made
    identifiers: `weights["norm.weight"]` -> `weights_norm_weight`, `kv_data["fp8"][1]` ->
    `kv_data_fp8_1` (a leading digit gets a `t`, a keyword a trailing `_`, a repeat `_2`). A lone
    tensor is `data`. A scalar (int, float, bool, str, None, torch dtype) equal at every spec is a
    constant kept in the layout; an int that follows the axes (`config["dim"]` = axis dim) is a task
    param (`config_dim: dim`), passed to the reference. Anything else in `data` (an nn.Module such as
    a KV cache object) is refused;
  - roles: a tensor of `data` that `ref_kernel` writes and returns is an output buffer (an output here);
    a tensor generate_input made with torch.empty and never wrote is an output buffer when its element
    count matches an output ref_kernel returns in a new tensor (the output then has the buffer's
    shape and dtype: vectorsum's [1] float32 buffer for a 0-dim result), else scratch that is
    allocated afresh and is no task tensor; every other tensor is an input. 0-dim tensors are [1]
    task tensors (reshaped to 0-dim for the problem). What `ref_kernel` returns (a tensor, or a
    tuple/list/dict of them) are the outputs, named `output` / `out0`, `out1`... / the dict keys, or
    after their buffer;
  - dtypes the task contract has no name for: float8_e4m3fnuz and float8_e5m2fnuz inputs are
    float8_e4m3fn / float8_e5m2 here, converted (exactly, for |x| <= 240 / 57344) before the problem
    sees them; other ones (float4_e2m1fn_x2, float8_e8m0fnu, ...) carry their bytes as uint8 (int16,
    int32 or int64 for wider ones) and are viewed back;
  - each input's distribution is read off a sample from generate_input (`infer_generator`): randn-like
    floats as normal, [0, 1)-like as uniform, integers as randint over their observed range (a task
    whose inputs are all integers stresses them with zipf draws), booleans as bernoulli. Where the
    specs' steering fields change what generate_input makes (TriMul's `nomask`), the combination
    whose data holds the fewest one-valued tensors is sampled. `check_implementation` is not used:
    ksearch compares with the task's tolerances, so a problem judged by properties (a residual check
    that never calls ref_kernel: eigenvector signs, QR factors) is refused, as is a multi-GPU one
    (generate_input taking rank/world_size) and one whose reference gives NaN on per-element draws;
  - a reference that cannot run here, because it imports a missing vendor library (`aiter`) or needs
    a CUDA device (fp4 `torch._scaled_mm`), is imported as a target-only task (`target_only:` in
    task.yaml: verification needs one of its targets) when its shapes can still be read: missing
    modules are stood in for while the problem loads, generate_input runs, and the outputs come from
    ref_kernel under FakeTensorMode, or are generate_input's unwritten torch.empty buffers. When
    generate_input itself calls the missing library, the import is refused naming it.

How the reference and a candidate receive `data`: the task's reference is called with the flat named
inputs in task order (and the params); it rebuilds the nested `data` (gpumode.json holds its layout:
structure, names, roles, constants and params, dtype carriage) and calls the problem's ref_kernel on
it. A candidate's entry is flat too, destination-passing like every ksearch task:
`run(<inputs in data order>, <outputs in ref_kernel's return order>)`, e.g. TriMul's
`run(x, mask, weights_norm_weight, ..., weights_to_out_weight, output)`; config scalars are not
passed (read them off the shapes). `submission_to_candidate` writes that entry for a `custom_kernel`
submission: it rebuilds `data` the same way (constants inline, config ints from the shapes) and
calls custom_kernel on it.

Public API beyond `detect`/`build`:
    submission_to_candidate(submission, task, out) -> Path   a custom_kernel submission as a candidate
    load_problem(reference, *, cpu=False) -> module          the problem's reference module, with its task/utils
    problem_reference(task_dir) -> callable                  what an imported task's reference.py calls
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import json
import keyword
import logging
import math
import re
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ksearch.errors import TaskError
from ksearch.task.importers.common import (
    Built,
    OutOfTime,
    bytes_formula,
    distributions_for,
    elements,
    finish_spec,
    infer_generator,
    main_dtype,
    shapes_at,
    task_name,
    time_limit,
    tolerances_for,
)
from ksearch.task.inputs import dtype_name, torch_dtype
from ksearch.task.spec import DTYPE_ITEMSIZE, LANGUAGES

if TYPE_CHECKING:
    import torch

    from ksearch.task import Task

LAYOUT_FILE = "gpumode.json"
LAYOUT_VERSION = 2
SAMPLE_ELEMENTS = (4096, 1 << 24)  # a spec this big (elements of data) gives the values' distribution
REAL_ELEMENTS = 1 << 20  # the most elements of `data` the importer makes for real (values, ref_kernel runs)
FAKE_SECONDS = (
    15.0  # time for running generate_input under FakeTensorMode at every spec (the rest go unchecked)
)
MAX_COMBOS = 6  # steering-field combinations sampled to find the one without one-valued tensors
_FAMILY_WORDS = (
    ("matmul", "gemm"),
    ("gemm", "gemm"),
    ("gemv", "gemm"),
    ("mm", "gemm"),
    ("attention", "attention"),
    ("mla", "attention"),
    ("norm", "norm"),
    ("softmax", "reduction"),
    ("sum", "reduction"),
    ("scan", "reduction"),
    ("prefix", "reduction"),
    ("histogram", "reduction"),
    ("moe", "moe"),
    ("conv", "conv"),
    ("trimul", "gemm"),
)
_CONVERTED = {"float8_e4m3fnuz": "float8_e4m3fn", "float8_e5m2fnuz": "float8_e5m2"}
_BYTES = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}
# GPU names in GPU MODE's competition files -> ksearch target profiles
_GPU_TARGETS = {
    "b200": "b200",
    "h100": "h100",
    "h200": "h200",
    "mi300": "mi300x",
    "mi300x": "mi300x",
    "mi355x": "mi355x",
    "mi355": "mi355x",
}


# ---------------------------------------------------------------------------------------------
# Loading the problem's Python


def _find_task_file(folder: Path) -> Path | None:
    """The problem's task.yml (or task.yaml), if it has one."""
    return next((p for p in (folder / "task.yml", folder / "task.yaml") if p.is_file()), None)


def _task_file(folder: Path) -> Path:
    """The problem's task.yml (or task.yaml); TaskError where it has none."""
    found = _find_task_file(folder)
    if found is None:
        raise TaskError(f"{folder} has no task.yml; a GPU MODE problem needs reference.py and task.yml")
    return found


def _problem_dir(path: Path) -> Path | None:
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not (folder / "reference.py").is_file() or _find_task_file(folder) is None:
        return None
    if path.is_file() and path.name not in ("reference.py", "task.yml", "task.yaml"):
        return None
    return folder


def detect(path: Path) -> bool:
    """A directory (or its reference.py / task.yml) holding reference.py and task.yml: GPU MODE's layout
    (build says what is missing when reference.py lacks ref_kernel or generate_input)."""
    return _problem_dir(Path(path)) is not None


def _shim_utils() -> types.ModuleType:
    import torch

    utils = types.ModuleType("utils")

    def make_match_reference(ref, rtol: float = 1e-5, atol: float = 1e-8, **_: Any):
        def check(data, output):
            expected = ref(data)
            ok = torch.allclose(output.float(), expected.float(), rtol=rtol, atol=atol)
            return ok, "" if ok else "mismatch"

        return check

    utils.__dict__.update(  # what submissions import from GPU MODE's utils
        make_match_reference=make_match_reference, set_seed=lambda seed=42: torch.manual_seed(seed)
    )
    return utils


def _shim_task() -> types.ModuleType:
    task = types.ModuleType("task")
    task.__dict__.update(input_t=object, output_t=object)
    return task


def _companions(reference: Path) -> dict[str, Path | None]:
    folder = reference.parent
    found: dict[str, Path | None] = {}
    for mod in ("task", "utils"):
        local = [folder / f"gpumode_{mod}.py", folder / f"{mod}.py", folder.parent / f"{mod}.py"]
        found[mod] = next((p for p in local if p.is_file()), None)
    return found


class _ToCpu(ast.NodeTransformer):
    """The string literals "cuda"/"cuda:N" read as "cpu" and `x.cuda(...)` as `x.cpu()`."""

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str) and (node.value == "cuda" or node.value.startswith("cuda:")):
            return ast.copy_location(ast.Constant("cpu"), node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "cuda":
            node.func.attr = "cpu"
            node.args, node.keywords = [], []
        return node


def _run_module(name: str, filename: Path, *, cpu: bool) -> types.ModuleType:
    """Run a problem file as a fresh module `name`, registered in sys.modules only while it runs (a
    dataclass needs its module there). Any failure is a TaskError naming the file, but for a missing
    module, which is re-raised as it is (the caller may stand in for it)."""
    filename = Path(filename)
    module = types.ModuleType(name)
    module.__file__ = str(filename)
    old = sys.modules.get(name)
    sys.modules[name] = module
    try:
        tree = ast.parse(filename.read_bytes(), str(filename))
        if cpu:
            tree = ast.fix_missing_locations(_ToCpu().visit(tree))
        # the problem's own code, run as its benchmark runs it (trusted as much as the user who imports it)
        exec(compile(tree, str(filename), "exec"), module.__dict__)  # noqa: S102
    except ModuleNotFoundError:
        raise
    except Exception as exc:  # the problem's code, not ours, failed: say where
        raise TaskError(
            f"running {filename} failed with {type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from exc
    finally:
        if old is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = old
    return module


def load_problem(reference: Path, *, cpu: bool = False) -> types.ModuleType:
    """The problem's reference module, its `task` and `utils` imports served from the task.py and
    utils.py beside it (or one folder up, as in reference-kernels), else from small stand-ins.
    `cpu`: the string literals "cuda"/"cuda:N" in those files read as "cpu" and `.cuda()` as `.cpu()`
    (generate_input on a host)."""
    reference = Path(reference)
    saved = {m: sys.modules.get(m) for m in ("task", "utils")}
    try:  # `from task import ...` and `from utils import ...` find these while the reference runs
        for mod, file in _companions(reference).items():
            sys.modules[mod] = (
                _run_module(mod, file, cpu=cpu)
                if file is not None
                else (_shim_task() if mod == "task" else _shim_utils())
            )
        module = _run_module("gpumode_reference", reference, cpu=cpu)
    except ModuleNotFoundError as exc:
        raise TaskError(
            f"running {reference} failed: it imports {exc.name}, which is not installed here"
        ) from exc
    finally:
        for mod, old in saved.items():
            if old is None:
                sys.modules.pop(mod, None)
            else:
                sys.modules[mod] = old
    for fn in ("ref_kernel", "generate_input"):
        if not callable(getattr(module, fn, None)):
            defined = sorted(
                n
                for n, v in vars(module).items()
                if inspect.isfunction(v) and v.__module__ == module.__name__
            )
            raise TaskError(
                f"{reference} defines no {fn}() (it defines {', '.join(defined) or 'no function'}); "
                "a GPU MODE reference needs ref_kernel(data) and generate_input(**spec)"
            )
    return module


# ---- standing in for a missing vendor library while the problem loads


class VendorMissing(Exception):  # noqa: N818  (an event, not an error of ours)
    """A stand-in for a missing module was called: `what` (e.g. aiter.fused_moe.fused_moe)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is from a module that is not installed here")
        self.what = what


class _Stub:
    """Any attribute of a missing module: attributes are stubs too; calling one raises VendorMissing."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> _Stub:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Stub(f"{self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise VendorMissing(self._name)

    def __mro_entries__(self, bases: tuple) -> tuple:
        raise VendorMissing(self._name)

    def __repr__(self) -> str:
        return f"<missing {self._name}>"


class _StubModule(types.ModuleType):
    def __getattr__(self, attr: str) -> _Stub:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Stub(f"{self.__name__}.{attr}")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the modules under the missing top-level names as stub packages."""

    def __init__(self, tops: set[str]) -> None:
        self.tops = tops

    def find_spec(
        self, fullname: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in self.tops:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


@contextlib.contextmanager
def _stubbed(tops: set[str]) -> Iterator[None]:
    if not tops:
        yield
        return
    finder = _StubFinder(tops)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n.split(".")[0] in tops]:
            if isinstance(sys.modules[name], _StubModule):
                del sys.modules[name]


def _load_with_stubs(reference: Path) -> tuple[types.ModuleType, list[str]]:
    """The problem module loaded for the CPU, with stand-ins for the modules it imports that are not
    installed (their functions raise VendorMissing when called). Returns it and the missing names."""
    missing: set[str] = set()
    for _ in range(8):
        try:
            with _stubbed(missing):
                return load_problem(reference, cpu=True), sorted(missing)
        except TaskError as exc:
            cause = exc.__cause__
            top = (getattr(cause, "name", None) or "").split(".")[0]
            if not isinstance(cause, ModuleNotFoundError) or not top or top in missing:
                raise
            if importlib.util.find_spec(top) is not None:  # installed: the failure is of a submodule
                raise
            missing.add(top)
    raise TaskError(f"{reference} imports too many missing modules ({', '.join(sorted(missing))})")


def _missing_module(exc: BaseException, missing: list[str]) -> str | None:
    """The missing module (or stand-in) behind a failure, if that is what it was."""
    if isinstance(exc, VendorMissing):
        return exc.what
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        if top in missing or importlib.util.find_spec(top) is None:
            return exc.name
    if missing and ("_Stub" in str(exc) or "<missing " in str(exc)):  # a stand-in's value reached torch
        return " or ".join(missing)
    return None


_DEVICE_WORDS = re.compile(r"\b(cuda|nvidia driver|not linked with support|hip|rocm)\b")


def _needs_device(exc: BaseException) -> bool:
    """Whether a failure of the problem's code on the CPU says it needs a GPU (or a GPU-only kernel)."""
    text = f"{type(exc).__name__}: {exc}".lower()
    if _DEVICE_WORDS.search(text):
        return True
    return (
        "not implemented for" in text or "notimplementederror" in text or "could not run" in text
    ) and any(w in text for w in ("float4", "float8", "e2m1", "e4m3", "e5m2", "e8m0", "_scaled_mm"))


# ---------------------------------------------------------------------------------------------
# Running the problem: FakeTensorMode (shapes only) and real runs that record torch.empty births


@contextlib.contextmanager
def _fake() -> Iterator[None]:
    from torch._subclasses.fake_tensor import FakeTensorMode

    loggers = [logging.getLogger(n) for n in ("torch._subclasses.fake_tensor", "torch._subclasses")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _storage_key(t: Any) -> int:
    try:
        return int(t.untyped_storage().data_ptr())
    except Exception:  # a tensor without storage (fake, sparse)  # noqa: BLE001
        return 0


def _births_mode() -> Any:
    """A dispatch mode that records which storages torch.empty-like ops made and nothing wrote since."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    empties = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"}

    def tensors(value: Any) -> Iterator[torch.Tensor]:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (tuple, list)):
            for v in value:
                yield from tensors(v)

    class Births(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.empty: set[int] = set()

        def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            schema = func._schema
            for i, arg in enumerate(schema.arguments):
                if arg.alias_info is not None and arg.alias_info.is_write:
                    value = kwargs.get(arg.name) if (arg.kwarg_only or i >= len(args)) else args[i]
                    for t in tensors(value):
                        self.empty.discard(_storage_key(t))
            fresh = all(r.alias_info is None for r in schema.returns)
            if fresh:  # a new storage: an empty one, or one that may reuse a freed empty's address
                for t in tensors(out):
                    key = _storage_key(t)
                    if func.overloadpacket.__name__ in empties:
                        self.empty.add(key)
                    else:
                        self.empty.discard(key)
            return out

    return Births()


def _call_generate(module: types.ModuleType, spec: dict) -> Any:
    import torch

    kwargs = dict(spec)
    if "seed" in inspect.signature(module.generate_input).parameters and kwargs.get("seed") is None:
        kwargs["seed"] = 42
    with torch.no_grad():
        return module.generate_input(**kwargs)


def _call_ref(module: types.ModuleType, data: Any) -> Any:
    import torch

    with torch.no_grad():
        return module.ref_kernel(data)


# ---------------------------------------------------------------------------------------------
# data <-> flat named tensors


Path_ = tuple  # a leaf's path in `data`: int indices, dict keys, dataclass field names


def _is_scalar(v: Any) -> bool:
    import torch

    return v is None or isinstance(v, (bool, int, float, str, torch.dtype))


def _flatten(data: Any, what: str) -> tuple[dict, list[tuple[Path_, Any]]]:
    """`data` as a skeleton (a layout tree with each leaf's path where its node will go) and its leaves
    (tensors and scalars) in order. Refuses what cannot be rebuilt from names and constants."""
    import torch

    leaves: list[tuple[Path_, Any]] = []

    def walk(obj: Any, path: Path_) -> dict:
        if isinstance(obj, torch.Tensor) or _is_scalar(obj):
            leaves.append((path, obj))
            return {"t": "leaf", "path": list(path)}
        if isinstance(obj, (tuple, list)) and type(obj) in (tuple, list):
            return {
                "t": "seq",
                "kind": type(obj).__name__,
                "items": [walk(v, (*path, i)) for i, v in enumerate(obj)],
            }
        if isinstance(obj, dict):
            bad = [k for k in obj if not isinstance(k, (str, int)) or isinstance(k, bool)]
            if bad:
                raise TaskError(
                    f"{what}: the dict at {_show_path(path)} has key {bad[0]!r}; only str and int keys "
                    "can be rebuilt"
                )
            return {"t": "dict", "items": [[k, walk(v, (*path, k))] for k, v in obj.items()]}
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            fields = [f.name for f in dataclasses.fields(obj) if f.init]
            return {
                "t": "dataclass",
                "cls": type(obj).__qualname__,
                "items": [[f, walk(getattr(obj, f), (*path, f))] for f in fields],
            }
        raise TaskError(
            f"{what}: {_show_path(path)} is a {type(obj).__module__}.{type(obj).__qualname__}; only "
            "tensors, scalars and tuples/lists/dicts/dataclasses of them can become task data"
        )

    skeleton = walk(data, ())
    return skeleton, leaves


def _show_path(path: Path_) -> str:
    return "data" + "".join(f"[{k!r}]" for k in path)


def _identifier(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "t"
    if name[0].isdigit():
        name = "t" + name
    return name + "_" if keyword.iskeyword(name) else name


def _leaf_names(paths: list[Path_], top: list[str] | None) -> dict[Path_, str]:
    """A unique identifier per leaf path, from the path (see the module docstring)."""
    names: dict[Path_, str] = {}
    used: set[str] = set()
    for path in paths:
        if not path:
            raw = "data"
        else:
            parts = []
            for depth, key in enumerate(path):
                if depth == 0 and isinstance(key, int):
                    parts.append(top[key] if top and key < len(top) else f"in{key}")
                else:
                    parts.append(str(key))
            raw = "_".join(parts)
        name = base = _identifier(raw)
        k = 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        names[path] = name
    return names


def _result_tensors(result: Any, what: str) -> tuple[list[str] | None, list]:
    """What ref_kernel returned as (dict keys or None, tensors in order)."""
    import torch

    if isinstance(result, torch.Tensor):
        return None, [result]
    if isinstance(result, (tuple, list)) and result and all(isinstance(t, torch.Tensor) for t in result):
        return None, list(result)
    if isinstance(result, dict) and result and all(isinstance(t, torch.Tensor) for t in result.values()):
        return [str(k) for k in result], list(result.values())
    kinds = (
        [type(t).__name__ for t in result] if isinstance(result, (tuple, list)) else [type(result).__name__]
    )
    raise TaskError(
        f"{what} is {kinds}; only a tensor or a tuple/list/dict of tensors can become task outputs"
    )


def _carry(dtype: torch.dtype) -> tuple[str, str | None]:
    """The task dtype a tensor of `dtype` travels as, and how: None (as it is), "convert" (values) or "view" (bytes)."""
    name = dtype_name(dtype)
    if name in DTYPE_ITEMSIZE:
        return name, None
    if name in _CONVERTED:
        return _CONVERTED[name], "convert"
    size = dtype.itemsize
    if size not in _BYTES:
        raise TaskError(f"dtype {name} ({size} bytes an element) cannot be carried by a task tensor")
    return _BYTES[size], "view"


def _to_task(t: torch.Tensor, carry: str | None, task_dtype: str) -> torch.Tensor:
    if carry == "view":
        return t.view(torch_dtype(task_dtype))
    if carry == "convert":
        return t.to(torch_dtype(task_dtype))
    return t


def _from_task(t: torch.Tensor, carry: str | None, orig: str) -> torch.Tensor:
    import torch

    if carry == "view":
        return t.view(getattr(torch, orig))
    if carry == "convert":
        return t.to(getattr(torch, orig))
    return t


class Layout:
    """gpumode.json: how the flat task tensors (and params) rebuild `data`, and how ref_kernel's result
    becomes the outputs. `tree` nodes: tensor {name, role: input|output|empty, dtype (the problem's),
    carry, scalar, shape (output/empty)}, seq {kind, items}, dict {items: [[key, node]]}, dataclass
    {cls, items}, const {value}, dtype {value}, param {name}. `outputs`: per output in ref_kernel's
    return order, {name, dtype (the task's), orig, carry, scalar}. `axis_params`: axis -> param for
    the axes no input's shape gives."""

    def __init__(self, layout: dict) -> None:
        if "slots" in layout:  # version 1: a tensor or a flat tuple/list of input/output slots
            nodes = [
                {"t": "tensor", "name": n, "role": role, "dtype": None, "carry": None, "scalar": False}
                for role, n in layout["slots"]
            ]
            tree = (
                nodes[0]
                if layout["kind"] == "tensor"
                else {"t": "seq", "kind": layout["kind"], "items": nodes}
            )
            layout = {"version": 1, "tree": tree, "outputs": None, "axis_params": {}}
        self.tree: dict = layout["tree"]
        self.outputs: list[dict] | None = layout.get("outputs")
        self.axis_params: dict[str, str] = dict(layout.get("axis_params") or {})

    def data(
        self,
        inputs: dict[str, Any],
        axes: dict[str, int],
        params: dict[str, Any],
        module: types.ModuleType,
        device: Any,
        shape_of: Callable[[str, dict], tuple] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """`data` for ref_kernel from the task's inputs; returns it and the output buffers made for it."""
        import torch

        from ksearch.task.formula import evaluate_formula

        buffers: dict[str, torch.Tensor] = {}

        def shape(node: dict) -> tuple[int, ...]:
            if node.get("shape") is not None:
                return tuple(
                    int(evaluate_formula(d, axes, f"shape of {node['name']}")) for d in node["shape"]
                )
            assert shape_of is not None
            return tuple(shape_of(node["name"], axes))

        def build(node: dict) -> Any:
            kind = node["t"]
            if kind == "tensor":
                if node["role"] == "input":
                    t = _from_task(inputs[node["name"]], node.get("carry"), node.get("dtype") or "")
                    return t.reshape(()) if node.get("scalar") else t
                dtype = getattr(torch, node["dtype"]) if node.get("dtype") else None
                if dtype is None:  # version 1 layout: the output's task dtype
                    dtype = torch_dtype(node["task_dtype"])
                size = () if node.get("scalar") else shape(node)
                t = torch.empty(size, dtype=dtype, device=device)
                if node["role"] == "output":
                    buffers[node["name"]] = t
                return t
            if kind == "seq":
                items = [build(n) for n in node["items"]]
                return tuple(items) if node["kind"] == "tuple" else items
            if kind == "dict":
                return {k: build(n) for k, n in node["items"]}
            if kind == "dataclass":
                cls: Any = module
                for part in node["cls"].split("."):
                    cls = getattr(cls, part)
                return cls(**{k: build(n) for k, n in node["items"]})
            if kind == "const":
                return node["value"]
            if kind == "dtype":
                return getattr(torch, node["value"])
            if kind == "param":
                return params[node["name"]]
            raise TaskError(f"{LAYOUT_FILE}: unknown node {kind!r}; re-import the problem")

        return build(self.tree), buffers

    def results(self, result: Any, names: list[str], dtypes: dict[str, str]) -> tuple:
        """ref_kernel's result as the task's outputs, in order: 0-dim made [1], converted to the task dtype."""
        _, tensors = _result_tensors(result, "ref_kernel's result")
        specs = self.outputs or [
            {"name": n, "dtype": dtypes[n], "orig": None, "carry": None, "scalar": False} for n in names
        ]
        if len(tensors) != len(specs):
            raise TaskError(
                f"ref_kernel returned {len(tensors)} tensor(s), the task has {len(specs)} output(s)"
            )
        outs = []
        for t, o in zip(tensors, specs, strict=True):
            if o.get("carry") == "view":
                t = t.contiguous().view(torch_dtype(o["dtype"]))
            elif dtype_name(t.dtype) != o["dtype"]:
                t = t.to(torch_dtype(o["dtype"]))
            outs.append(t.reshape(1) if t.dim() == 0 else t)
        return tuple(outs)


def problem_reference(task_dir: Path) -> Callable[..., Any]:
    """The callable an imported task's reference.py exposes: inputs in task order (and the task's params)
    -> outputs, through the problem's ref_kernel on `data` rebuilt as gpumode.json lays it out (output
    buffers freshly allocated, shaped as task.yaml says)."""
    from ksearch.task import load_task

    task_dir = Path(task_dir)
    task = load_task(task_dir)
    layout = Layout(json.loads((task_dir / LAYOUT_FILE).read_text()))
    modules: dict[bool, types.ModuleType] = {}
    dtypes = {n: t.dtype for n, t in task.spec.outputs.items()}
    if layout.outputs is None:  # version 1: buffers in the output's task dtype
        _set_task_dtypes(layout.tree, dtypes)

    def reference(*args: Any, **params: Any) -> Any:
        cpu = args[0].device.type == "cpu"
        if cpu not in modules:  # a reference that makes its tensors on "cuda" runs on the CPU inputs' device
            modules[cpu] = load_problem(task_dir / "gpumode_reference.py", cpu=cpu)
        inputs = dict(zip(task.input_names, args, strict=True))
        axes = task.axes_from_inputs(inputs, partial=True)
        axes.update({a: int(params[p]) for a, p in layout.axis_params.items() if p in params})
        data, _ = layout.data(
            inputs,
            axes,
            params,
            modules[cpu],
            args[0].device,
            shape_of=lambda n, ax: task.spec.resolve_shape(n, ax),
        )
        outs = layout.results(_call_ref(modules[cpu], data), task.output_names, dtypes)
        return outs[0] if len(outs) == 1 else outs

    return reference


def _set_task_dtypes(node: dict, dtypes: dict[str, str]) -> None:
    if node["t"] == "tensor" and node["role"] == "output":
        node["task_dtype"] = dtypes[node["name"]]
    for item in node.get("items", []):
        _set_task_dtypes(item[1] if isinstance(item, list) else item, dtypes)


# ---------------------------------------------------------------------------------------------
# Shapes as formulas over the axes


def _fit_dim(values: list[int], axes_runs: list[dict[str, int]]) -> int | str | None:
    """A dim as a formula over the axes, from its sizes at the base point and at each probe (the base
    with one axis doubled, in axis order)."""
    names = list(axes_runs[0])
    if len(set(values)) == 1 and all(len({r[a] for r in axes_runs}) > 1 for a in names):
        return values[0]
    for a in names:
        av = [r[a] for r in axes_runs]
        if all(v == x for v, x in zip(values, av, strict=True)):
            return a
        if (
            all(v % x == 0 for v, x in zip(values, av, strict=True))
            and len({v // x for v, x in zip(values, av, strict=True)}) == 1
        ):
            return f"{values[0] // av[0]}*{a}"
        if (
            all(v and x % v == 0 for v, x in zip(values, av, strict=True))
            and len({x // v for v, x in zip(values, av, strict=True)}) == 1
        ):
            return f"{a}//{av[0] // values[0]}"
    for _i, a in enumerate(names):
        for b in names:
            if b == a:
                continue
            pa, pb = [r[a] for r in axes_runs], [r[b] for r in axes_runs]
            if (
                b > a
                and all(v % (x * y) == 0 for v, x, y in zip(values, pa, pb, strict=True))
                and len({v // (x * y) for v, x, y in zip(values, pa, pb, strict=True)}) == 1
            ):
                c = values[0] // (pa[0] * pb[0])
                return f"{a}*{b}" if c == 1 else f"{c}*{a}*{b}"
            if all(y and x % y == 0 and v == x // y for v, x, y in zip(values, pa, pb, strict=True)):
                return f"{a}//{b}"
    linear = _fit_linear(values, axes_runs)
    if linear is not None:
        return linear
    if len(set(values)) == 1:
        return values[0]
    return None


def _fit_linear(values: list[int], axes_runs: list[dict[str, int]]) -> str | None:
    """v = c0 + sum(ci * axis_i) with integer ci, read off the base and the one-axis-doubled probes."""
    names = list(axes_runs[0])
    if len(axes_runs) != len(names) + 1:
        return None
    base = axes_runs[0]
    coef: dict[str, int] = {}
    for i, a in enumerate(names):
        step = axes_runs[i + 1][a] - base[a]
        if step == 0 or (values[i + 1] - values[0]) % step:
            return None
        if values[i + 1] - values[0]:
            coef[a] = (values[i + 1] - values[0]) // step
    if not coef:
        return None
    c0 = values[0] - sum(c * base[a] for a, c in coef.items())
    text = ""
    for a, c in coef.items():
        term = a if abs(c) == 1 else f"{abs(c)}*{a}"
        text += (f" - {term}" if c < 0 else f" + {term}") if text else (f"-{term}" if c < 0 else term)
    if c0:
        text += f" - {-c0}" if c0 < 0 else f" + {c0}"
    return text


def _fit_points(points: list[tuple[dict[str, int], int]], names: list[str]) -> int | str | None:
    """A dim as a formula that gives `value` at each (axes, value) point: a constant, an axis, a multiple or
    a quotient of one (rounded down or up: `(n + 127)//128`), a product or a quotient of two."""
    from ksearch.task.formula import evaluate_formula

    values = [v for _, v in points]
    if len(set(values)) == 1:
        return values[0]
    found: list[str] = []
    big_ax, big = max(points, key=lambda p: p[1])
    for a in names:
        found.append(a)
        if big and big_ax[a] and big % big_ax[a] == 0:
            found.append(f"{big // big_ax[a]}*{a}")
        divisors = {1 << k for k in range(1, 13)} | ({round(big_ax[a] / big)} if big else set())
        for c in sorted(c for c in divisors if c > 1):
            found += [f"{a}//{c}", f"({a} + {c - 1})//{c}"]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            found += [f"{a}*{b}", f"{a}//{b}", f"{b}//{a}"]
    for formula in dict.fromkeys(found):
        try:
            if all(evaluate_formula(formula, ax, "dim") == v for ax, v in points):
                return formula
        except (TaskError, ZeroDivisionError):
            continue
    return None


# ---------------------------------------------------------------------------------------------
# Building the task


def _specs(folder: Path) -> tuple[list[tuple[str, dict]], str, dict]:
    file = _task_file(folder)
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TaskError(f"{file}: invalid YAML ({' '.join(str(exc).split())})") from exc
    specs: list[tuple[str, dict]] = []
    for key, prefix in (("tests", "test"), ("benchmarks", "bench")):
        for i, s in enumerate(data.get(key) or []):
            if not isinstance(s, dict):
                raise TaskError(f"{file}: {key}[{i}] is {s!r}, not a mapping like {{m: 128, seed: 42}}")
            specs.append((f"{prefix}{i}", s))
    if not specs:
        raise TaskError(f"{file} lists no tests: or benchmarks: specs; add them")
    return specs, str(data.get("description") or "").strip(), data


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
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Name)
            and node.value.id == data
            and isinstance(node.targets[0], (ast.Tuple, ast.List))
        ):
            names = [e.id for e in node.targets[0].elts if isinstance(e, ast.Name)]
            if len(names) == n == len(node.targets[0].elts):
                return names
    return None


def _returned_names(module: types.ModuleType, n: int) -> list[str | None] | None:
    """Per item of the tuple generate_input returns, the variable it is (`x`, `x.contiguous()`, `x.to(...)`)."""
    try:
        tree = ast.parse(inspect.getsource(module.generate_input))
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Return)
            and isinstance(node.value, (ast.Tuple, ast.List))
            and len(node.value.elts) == n
        ):
            names: list[str | None] = []
            for e in node.value.elts:
                while isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute):
                    e = e.func.value
                names.append(e.id if isinstance(e, ast.Name) else None)
            return names
    return None


def _refuse_unsupported(folder: Path, source: str) -> None:
    """Problems ksearch cannot judge as GPU MODE does, refused before anything runs."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise TaskError(f"{folder / 'reference.py'} is not valid Python: {exc}") from exc
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    gen = funcs.get("generate_input")
    if gen is not None:
        params = {a.arg for a in [*gen.args.args, *gen.args.kwonlyargs]}
        if params & {"rank", "world_size"}:
            raise TaskError(
                f"{folder.name} is a multi-GPU problem: generate_input takes "
                f"{', '.join(sorted(params & {'rank', 'world_size'}))} (one share of the data per GPU) "
                "and ref_kernel communicates across GPUs; a ksearch task runs on one device"
            )
    check = funcs.get("check_implementation")
    if check is not None and "ref_kernel" not in funcs:
        return
    if check is not None and not any(
        isinstance(n, ast.Name) and n.id == "ref_kernel" for n in ast.walk(check)
    ):
        raise TaskError(
            f"{folder.name} judges outputs by their properties (its check_implementation tests residuals "
            "and never calls ref_kernel), so other answers than ref_kernel's are right (eigenvector signs, "
            "Householder factors); ksearch compares outputs with ref_kernel's, which would reject them: "
            "write this task by hand"
        )


def _competition_gpus(folder: Path, config: dict) -> list[str]:
    """The GPUs the problem's competition file (problems/<competition>.yaml) or task.yml names."""
    gpus = list(config.get("gpus") or [])
    for file in sorted(folder.parent.parent.glob("*.yaml")):
        try:
            comp = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError:
            continue
        for p in comp.get("problems") or []:
            if (
                isinstance(p, dict)
                and str(p.get("directory", "")).strip("/") == f"{folder.parent.name}/{folder.name}"
            ):
                gpus += list(p.get("gpus") or [])
    return [str(g) for g in gpus]


def _targets(folder: Path, config: dict, missing: str | None, dtypes: set[str]) -> list[str]:
    from ksearch.target.profile import list_targets

    known = set(list_targets())
    found = [
        _GPU_TARGETS.get(g.lower().replace(" ", "").replace("-", ""))
        for g in _competition_gpus(folder, config)
    ]
    targets = list(dict.fromkeys(t for t in found if t in known))
    if not targets:
        if missing and missing.split(".")[0] == "aiter":
            targets = ["mi355x", "mi300x"]
        elif any("float4" in d for d in dtypes):
            targets = ["b200"]
        else:
            targets = ["b200", "h100", "h200"]
    return [t for t in targets if t in known] or sorted(known)


class _Problem:
    """The problem module and the ways the importer runs it."""

    def __init__(self, folder: Path, module: types.ModuleType, missing: list[str]) -> None:
        self.folder = folder
        self.module = module
        self.missing = missing
        self.fake_gen_ok = True
        self.fake_ref_ok = True

    def generate(self, spec: dict, *, fake: bool = False, births: bool = False) -> tuple[Any, set[int]]:
        """generate_input(**spec) (under FakeTensorMode with `fake`); with `births`, also the storages
        it made with torch.empty and never wrote."""
        try:
            if fake:
                with _fake():
                    return _call_generate(self.module, spec), set()
            if births:
                mode = _births_mode()
                with mode:
                    data = _call_generate(self.module, spec)
                return data, mode.empty
            return _call_generate(self.module, spec), set()
        except TaskError:
            raise
        except Exception as exc:  # the problem's code: which kind of failure decides what comes next
            raise _Failure(exc) from exc

    def ref(self, data: Any, *, fake: bool = False, flops: list[int] | None = None) -> Any:
        """ref_kernel(data) (under FakeTensorMode with `fake`); with `flops`, its FLOP count is appended there."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False) if flops is not None else None
        try:
            with _fake() if fake else contextlib.nullcontext(), counter or contextlib.nullcontext():
                result = _call_ref(self.module, data)
            if flops is not None and counter is not None:
                flops.append(counter.get_total_flops())
            return result
        except TaskError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _Failure(exc) from exc


class _Failure(Exception):  # noqa: N818
    """The problem's code raised `exc`."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300])
        self.exc = exc


def _numel(leaves: list[tuple[Path_, Any]]) -> int:
    import torch

    return sum(v.numel() for _, v in leaves if isinstance(v, torch.Tensor))


def build(path: Path, name: str | None) -> Built:
    import torch

    folder = _problem_dir(Path(path))
    if folder is None:
        raise TaskError(f"{path} is not a GPU MODE problem: a directory with reference.py and task.yml")
    specs, description, config = _specs(folder)
    _refuse_unsupported(folder, (folder / "reference.py").read_text(errors="replace"))
    module, missing = _load_with_stubs(folder / "reference.py")
    prob = _Problem(folder, module, missing)
    inferred = [
        "generate_input and ref_kernel run on the CPU for inference ('cuda' read as 'cpu'), at full size "
        "only under FakeTensorMode"
    ]
    if missing:
        inferred.append(
            f"modules {', '.join(missing)} are not installed here: stood in for while the problem loads"
        )

    cands = [
        k
        for k, v in specs[0][1].items()
        if k != "seed" and all(isinstance(s.get(k), int) and not isinstance(s.get(k), bool) for _, s in specs)
    ]
    if not cands:
        raise TaskError(
            f"{folder}/task.yml: the specs share no int field besides seed; nothing to make var axes of"
        )
    steer = sorted({k for _, s in specs for k in s if k not in cands and k != "seed"})

    def refuse_vendor(where: str, what: str) -> TaskError:
        mod = what.split(".")[0]
        return TaskError(
            f"{folder.name} needs {mod}, which is not installed here: {where} calls {what}, so not even "
            "the shapes of its data can be read; import it where that module is installed"
        )

    # ---- shapes of every spec, under FakeTensorMode (nothing allocated)
    fake_leaves: dict[str, list[tuple[Path_, Any]]] = {}
    started = time.monotonic()
    for sname, s in sorted(specs, key=lambda x: math.prod(max(1, int(x[1][a])) for a in cands)):
        if time.monotonic() - started > FAKE_SECONDS:
            inferred.append(
                f"shapes checked under FakeTensorMode at {len(fake_leaves)} of {len(specs)} specs (the "
                f"rest, the largest, took past {FAKE_SECONDS:.0f} s)"
            )
            break
        try:
            with time_limit(FAKE_SECONDS - (time.monotonic() - started)):
                data, _ = prob.generate(s, fake=True)
        except OutOfTime:
            inferred.append(
                f"shapes checked under FakeTensorMode at {len(fake_leaves)} of {len(specs)} specs (the "
                f"rest, the largest, took past {FAKE_SECONDS:.0f} s)"
            )
            break
        except _Failure as f:
            what = _missing_module(f.exc, missing)
            if what:
                raise refuse_vendor("generate_input", what) from f.exc
            prob.fake_gen_ok = False  # (data-dependent code): shapes come from small real runs only
            break
        fake_leaves[sname] = _flatten(data, f"generate_input(**{sname})")[1]

    sizes: dict[str, int] = {}
    slow = math.prod(
        max(1, int(specs[0][1][a])) for a in cands
    )  # the axes' product past which fake runs were cut
    if len(fake_leaves) < len(specs):
        slow = min(math.prod(max(1, int(s[a])) for a in cands) for n, s in specs if n not in fake_leaves)

    def size(s: dict, sname: str | None = None) -> int:
        """Elements of generate_input's data at spec `s` (counted under FakeTensorMode, remembered)."""
        if not prob.fake_gen_ok:
            return math.prod(max(1, int(s[a])) for a in cands) * 64
        if sname is not None and sname in fake_leaves:
            return _numel(fake_leaves[sname])
        key = json.dumps(s, sort_keys=True, default=str)
        if key not in sizes:
            if len(fake_leaves) < len(specs) and math.prod(max(1, int(s[a])) for a in cands) >= slow:
                sizes[key] = 1 << 62  # as large as the specs whose fake runs took too long
            else:
                try:
                    with time_limit(10.0):
                        sizes[key] = _numel(_flatten(prob.generate(s, fake=True)[0], "generate_input")[1])
                except (_Failure, TaskError, OutOfTime):
                    sizes[key] = 1 << 62
        return sizes[key]

    base_name, base = min(specs, key=lambda x: size(x[1], x[0]))

    # ---- the point that runs for real: the smallest spec, scaled down past REAL_ELEMENTS
    point = dict(base)
    while size(point) > REAL_ELEMENTS:
        for a in sorted(cands, key=lambda x: -int(point[x])):
            if int(point[a]) < 2:
                continue
            trial = {**point, a: int(point[a]) // 2}
            if size(trial) < size(point):
                point = trial
                break
        else:
            raise TaskError(
                f"{folder.name}: the data of its smallest spec {base_name} holds {size(base):,} elements and "
                f"no var axis scales it below {REAL_ELEMENTS:,} to run here"
            )
    if point != base:
        inferred.append(
            f"values and ref_kernel's behaviour read at {_show({a: point[a] for a in cands})} (spec "
            f"{base_name} scaled down to at most {REAL_ELEMENTS:,} elements)"
        )

    # ---- the steering-field combination to sample: the one whose data holds the fewest one-valued tensors
    combos: list[dict] = []
    for _, s in specs:
        combo = {k: s[k] for k in steer if k in s}
        if combo not in combos:
            combos.append(combo)
    chosen = {k: base[k] for k in steer if k in base}
    if len(combos) > 1:

        def constants(combo: dict) -> int:
            try:
                data, _ = prob.generate({**{k: v for k, v in point.items() if k not in steer}, **combo})
                leaves = _flatten(data, "generate_input")[1]
            except (_Failure, TaskError):
                return 1 << 30
            return sum(
                1
                for _, v in leaves
                if isinstance(v, torch.Tensor) and v.numel() > 1 and bool((v == v.reshape(-1)[0]).all())
            )

        ranked = sorted([chosen, *[c for c in combos if c != chosen]][:MAX_COMBOS], key=constants)
        if ranked[0] != chosen:
            chosen = ranked[0]
            inferred.append(
                f"spec fields {_show(chosen)} sampled: generate_input makes fewer one-valued tensors "
                f"with them than with the smallest spec's {_show({k: base[k] for k in steer if k in base})}"
            )
    point = {**{k: v for k, v in point.items() if k not in steer}, **chosen}

    # ---- runs: the point, then per candidate axis the point with that axis moved (doubled, else halved,
    # +1, -1, tripled: whatever the problem accepts), to see which dims and scalars each axis sets
    target_reason: str | None = None
    target_missing: str | None = None
    out_mode = (
        "real"  # outputs from real ref_kernel runs; "fake": under FakeTensorMode; "births": empty buffers
    )

    def signature(leaves: list[tuple[Path_, Any]]) -> list[tuple[Path_, str]]:
        return [
            (pth, dtype_name(v.dtype) if isinstance(v, torch.Tensor) else type(v).__name__)
            for pth, v in leaves
        ]

    def classify(f: _Failure, leaves: list[tuple[Path_, Any]], data_spec: dict) -> tuple[str | None, str]:
        """Why ref_kernel cannot run here, when that is its target's business (else a TaskError)."""
        what = _missing_module(f.exc, missing)
        short = str(f).split(". ")[0][:120]  # the error's first sentence
        if what:
            return what, f"ref_kernel calls {what}, and {what.split('.')[0]} is not installed here"
        if _needs_device(f.exc):
            return None, f"ref_kernel needs a GPU ({short})"
        lowp = sorted(
            {
                dtype_name(v.dtype)
                for _, v in leaves
                if isinstance(v, torch.Tensor) and any(w in str(v.dtype) for w in ("float8", "float4"))
            }
        )
        if lowp:  # the CPU has no kernels for these dtypes: the shapes still pass under FakeTensorMode
            try:
                prob.ref(prob.generate(data_spec, fake=True)[0], fake=True)
                return (
                    None,
                    f"ref_kernel runs only on a GPU: its CPU kernels refuse {', '.join(lowp)} data ({short})",
                )
            except (_Failure, TaskError):
                pass
        raise TaskError(
            f"ref_kernel failed on generate_input's data at {_show({a: data_spec[a] for a in cands})}: {f}"
        ) from f.exc

    def attempt(p: dict, first: bool) -> dict:
        nonlocal out_mode, target_reason, target_missing
        axes = {a: int(p[a]) for a in cands}
        data, births = prob.generate(p, births=first)
        skeleton, leaves = _flatten(data, f"generate_input at {_show(axes)}")
        run = {
            "axes": axes,
            "data": data,
            "skeleton": skeleton,
            "leaves": leaves,
            "births": births,
            "out": None,
            "flops": [],
        }
        if not first and signature(leaves) != signature(runs[0]["leaves"]):
            moved = next(a for a in cands if axes[a] != runs[0]["axes"][a])
            raise TaskError(
                f"{folder.name}: generate_input makes other data as {moved} changes "
                f"({len(runs[0]['leaves'])} items at {moved}={runs[0]['axes'][moved]}, {len(leaves)} at "
                f"{axes[moved]}); a task has one fixed set of inputs"
            )
        if out_mode == "real":
            try:
                run["out"] = _result_tensors(
                    prob.ref(data, flops=run["flops"]), f"ref_kernel's result at {_show(axes)}"
                )
            except _Failure as f:
                if not first:
                    raise
                target_missing, target_reason = classify(f, leaves, p)
                out_mode = "fake"
        if out_mode == "fake":
            try:
                fdata, _ = prob.generate(p, fake=True)
                run["fake_leaves"] = _flatten(fdata, "generate_input")[1]
                run["flops"] = []
                run["out"] = _result_tensors(
                    prob.ref(fdata, fake=True, flops=run["flops"]), "ref_kernel's result"
                )
            except (_Failure, TaskError):
                if not first:
                    raise
                out_mode = "births"
        return run

    runs: list[dict] = []
    try:
        runs.append(attempt(point, True))
    except _Failure as f:
        what = _missing_module(f.exc, missing)
        if what:
            raise refuse_vendor("generate_input", what) from f.exc
        raise TaskError(f"generate_input failed at {_show({a: point[a] for a in cands})}: {f}") from f.exc
    for a in cands:
        v = int(point[a])
        last: Exception | None = None
        for nv in dict.fromkeys([2 * v, v // 2, v + 1, v - 1, 3 * v]):
            if nv < 1 or nv == v:
                continue
            try:
                runs.append(attempt({**point, a: nv}, False))
                break
            except _Failure as f:
                what = _missing_module(f.exc, missing)
                if what:
                    raise refuse_vendor("generate_input", what) from f.exc
                last = f
        else:
            raise TaskError(
                f"{folder.name}: generate_input or ref_kernel fails at every value of {a} tried near {v} "
                f"(to see which dims it sets): {last}"
            )
    leaves0 = runs[0]["leaves"]
    tensor_paths = [pth for pth, v in leaves0 if isinstance(v, torch.Tensor)]
    top = None
    sk = runs[0]["skeleton"]
    if sk["t"] == "seq":
        n_items = len(sk["items"])
        unpacked: Sequence[str | None] = _unpacked_names(module, "ref_kernel", n_items) or [None] * n_items
        returned: Sequence[str | None] = _returned_names(module, n_items) or [None] * n_items
        top = [
            u if u and u.strip("_") else (r or f"in{i}")
            for i, (u, r) in enumerate(zip(unpacked, returned, strict=True))
        ]
    names = _leaf_names(tensor_paths, top)
    if not tensor_paths:
        raise TaskError(f"{folder.name}: generate_input returns no tensor; nothing to make task inputs of")

    # ---- roles: outputs (buffers ref_kernel returns; unwritten empties of an output's size), scratch, inputs
    value_of = [dict(run["leaves"]) for run in runs]
    shape_leaves = [dict(run.get("fake_leaves") or run["leaves"]) for run in runs]
    keys0, outs0 = runs[0]["out"] if runs[0]["out"] is not None else (None, [])
    buffer_of: dict[Path_, int] = {}  # data path -> index of the output it is
    for j, o in enumerate(outs0):
        for pth in tensor_paths:
            t = shape_leaves[0][pth]
            if pth not in buffer_of and (
                o is t or (_same_storage(o, t) and tuple(o.shape) == tuple(t.shape))
            ):
                buffer_of[pth] = j
                break
    unwritten = [
        pth
        for pth in tensor_paths
        if _storage_key(value_of[0][pth]) in runs[0]["births"]
        and value_of[0][pth].numel() > 0
        and pth not in buffer_of
    ]
    if out_mode == "births":
        if not unwritten:
            raise TaskError(
                f"{folder.name}: {target_reason}, and generate_input allocates no output buffer, so the "
                "outputs' shapes cannot be read; import it where the reference can run"
            )
        outs0 = [value_of[0][pth] for pth in unwritten]
        buffer_of.update({pth: j for j, pth in enumerate(unwritten)})
        unwritten = []
    matched = set(buffer_of.values())
    matched_empty: set[Path_] = set(buffer_of) if out_mode == "births" else set()
    for pth in list(unwritten):
        out_index = next(
            (j for j, o in enumerate(outs0) if j not in matched and o.numel() == value_of[0][pth].numel()),
            None,
        )
        if out_index is not None:
            buffer_of[pth] = out_index
            matched.add(out_index)
            matched_empty.add(pth)
            unwritten.remove(pth)
            inferred.append(
                f"{names[pth]} (made with torch.empty, never written by generate_input) is where output "
                f"{out_index} of ref_kernel goes: an output here, in its shape and dtype"
            )
    scratch = unwritten
    if scratch:
        inferred.append(
            f"{', '.join(names[p] for p in scratch)}: made with torch.empty and matching no output: scratch "
            "allocated afresh for each call, not task inputs"
        )
    input_paths = [p for p in tensor_paths if p not in buffer_of and p not in scratch]
    if not input_paths:
        raise TaskError(
            f"{folder.name}: every tensor of data is an output buffer; nothing to make task inputs of"
        )

    # output names: a buffer's path name, else output / outN / the dict key
    out_names: list[str] = []
    in_names = {names[p] for p in input_paths}
    for j in range(len(outs0)):
        slot = next((p for p, jj in buffer_of.items() if jj == j), None)
        if slot is not None:
            nm = names[slot]
        elif keys0 is not None:
            nm = _identifier(keys0[j])
        else:
            nm = "output" if len(outs0) == 1 else f"out{j}"
        while nm in in_names or nm in out_names:
            nm = f"{nm}_out"
        out_names.append(nm)
    written_outputs = [p for p in buffer_of if p not in matched_empty]
    if written_outputs and out_mode != "births":
        inferred.append(
            f"data item(s) {', '.join(names[p] for p in written_outputs)} are written and returned by ref_kernel: "
            "outputs here"
        )

    # ---- dims as formulas: fitted at the probes, checked at every spec run under FakeTensorMode, and refitted
    # on all those points where the probes were not enough (a ceil-divided scale count equal at 64 and 128)
    axes_runs = [r["axes"] for r in runs]
    sig0 = signature(leaves0)
    spec_points = [
        ({a: int(s[a]) for a in cands}, dict(fake_leaves[n]))
        for n, s in specs
        if n in fake_leaves and signature(fake_leaves[n]) == sig0
    ]

    def fit(values: list[int], what: str, d: int, path: Path_ | None = None) -> int | str:
        found = _fit_dim(values, axes_runs)
        points = (
            [(ax, int(lv[path].shape[d]) if lv[path].dim() else 1) for ax, lv in spec_points] if path else []
        )
        if found is not None and all(_eval_dims([found], ax)[0] == v for ax, v in points):
            return found
        refit = _fit_points([*zip(axes_runs, values, strict=True), *points], cands)
        if refit is not None:
            return refit
        if found is not None:
            ax, v = next((ax, v) for ax, v in points if _eval_dims([found], ax)[0] != v)
            raise TaskError(
                f"{what} dim {d} is {v} at {_show(ax)}, but the probes read it as {found}; no formula "
                "over the axes fits every spec: write this task by hand"
            )
        raise TaskError(
            f"{what} dim {d} is {values} at {axes_runs}; it is not an axis, a multiple, a product, a "
            "quotient or a sum of them: write this task by hand"
        )

    def shape_of(tensors: list, what: str, path: Path_ | None = None) -> list:
        dims = [fit([int(t.shape[d]) for t in tensors], what, d, path) for d in range(tensors[0].dim())]
        return dims or [1]

    out_tensors = [
        [
            (r["out"][1][j] if r["out"] is not None else dict(r["leaves"])[_path_of(buffer_of, j)])
            for r in runs
        ]
        for j in range(len(outs0))
    ]
    tensor_shape = {p: shape_of([sl[p] for sl in shape_leaves], names[p], p) for p in tensor_paths}
    out_shape = []
    for j, nm in enumerate(out_names):
        slot = _path_of(buffer_of, j)
        out_shape.append(tensor_shape[slot] if slot is not None else shape_of(out_tensors[j], nm))

    # ---- scalars: constants, or params that follow the axes
    params: dict[str, str] = {}
    scalar_nodes: dict[Path_, dict] = {}
    used = set(in_names) | set(out_names)
    for pth, v in leaves0:
        if isinstance(v, torch.Tensor):
            continue
        values = [vo[pth] for vo in value_of]
        if all(type(x) is type(values[0]) and x == values[0] for x in values):
            if isinstance(v, torch.dtype):
                scalar_nodes[pth] = {"t": "dtype", "value": str(v).removeprefix("torch.")}
            elif isinstance(v, float) and not math.isfinite(v):
                raise TaskError(f"{folder.name}: {_show_path(pth)} is {v}; only finite constants can be kept")
            else:
                scalar_nodes[pth] = {"t": "const", "value": v}
            continue
        formula = (
            _fit_dim(values, axes_runs)
            if all(isinstance(x, int) and not isinstance(x, bool) for x in values)
            else None
        )
        if formula is None or isinstance(formula, int):
            raise TaskError(
                f"{folder.name}: {_show_path(pth)} is {values} at {axes_runs}; a scalar in data must be "
                "constant or an int that follows the axes"
            )
        pname = _identifier(_leaf_names([pth], top)[pth])
        while pname in used or pname in cands:
            pname += "_"
        used.add(pname)
        params[pname] = str(formula)
        scalar_nodes[pth] = {"t": "param", "name": pname}

    # ---- axes: the candidates that set a dim or a param; the rest only steer generate_input
    formulas = [d for s in [*tensor_shape.values(), *out_shape] for d in s if isinstance(d, str)] + list(
        params.values()
    )
    used_axes = {a for a in cands if any(re.search(rf"\b{re.escape(a)}\b", f) for f in formulas)}
    axis_names = [a for a in cands if a in used_axes]
    dropped = [a for a in cands if a not in used_axes]
    if dropped:
        inferred.append(
            f"spec fields {', '.join(dropped)} size no tensor: like {', '.join(steer) or 'the other fields'} "
            "they only steer generate_input and stay in the workload notes"
        )
    if not axis_names:
        raise TaskError(
            f"{folder.name}: no int field of the specs sizes a tensor; nothing to make var axes of"
        )
    if steer:
        inferred.append(
            f"spec fields {', '.join(steer)} are not int axes: they only steer generate_input and are "
            "kept in the workload notes, not in the task"
        )

    # ---- dtypes and values
    # each input's values from a sample of at least SAMPLE_ELEMENTS[0] elements where a spec (or the point
    # scaled up) gives one within SAMPLE_ELEMENTS[1] in all: a tiny sample says little of a distribution
    at_point = f"generate_input at {_show({a: point[a] for a in cands})}"
    sample = {p: (value_of[0][p], at_point) for p in input_paths}

    def elems(s: dict, paths: list[Path_] = tensor_paths) -> int:  # from the fitted shapes: nothing runs
        return sum(math.prod(_eval_dims(tensor_shape[p], {a: int(s[a]) for a in cands})) for p in paths)

    tries = [
        (
            f"generate_input at {n}" + ("'s axes" if any(s.get(k) != chosen.get(k) for k in steer) else ""),
            {**s, **chosen},
        )
        for n, s in specs
    ]
    bigger = dict(point)
    for _ in range(12):
        bigger = {**bigger, **{a: int(bigger[a]) * 2 for a in axis_names}}
        tries.append((f"generate_input at {_show({a: bigger[a] for a in axis_names})}", bigger))
    tries = sorted(
        (t for t in tries if _numel(leaves0) < elems(t[1]) <= SAMPLE_ELEMENTS[1]), key=lambda t: elems(t[1])
    )
    made = 0
    for label, s in tries:
        small = [p for p in input_paths if sample[p][0].numel() < SAMPLE_ELEMENTS[0]]
        if not small or made >= 4:
            break
        if elems(s, small) <= sum(sample[p][0].numel() for p in small):
            continue  # no small input grows there
        made += 1
        try:
            s_leaves = _flatten(prob.generate(s)[0], "generate_input")[1]
        except (_Failure, TaskError):
            continue
        if signature(s_leaves) != sig0:
            continue
        for p, v in s_leaves:
            if p in small and v.numel() > sample[p][0].numel():
                sample[p] = (v, label)

    inputs: dict[str, dict] = {}
    node_of: dict[Path_, dict] = {}
    for p in input_paths:
        t = value_of[0][p]
        task_dtype, carry = _carry(t.dtype)
        vals = _to_task(sample[p][0], carry, task_dtype)
        where = sample[p][1]
        inputs[names[p]] = {
            "dtype": task_dtype,
            "shape": tensor_shape[p],
            "distribution": infer_generator(vals),
        }
        node_of[p] = {
            "t": "tensor",
            "name": names[p],
            "role": "input",
            "dtype": str(t.dtype).removeprefix("torch."),
            "carry": carry,
            "scalar": t.dim() == 0,
        }
        note = (
            f" (the problem's {dtype_name(t.dtype)}, {'converted' if carry == 'convert' else 'its bytes'})"
            if carry
            else ""
        )
        inferred.append(
            f"input {names[p]}: {task_dtype}{tensor_shape[p]}{note}, values like "
            f"{inputs[names[p]]['distribution']} (read off {where})"
        )
    outputs: dict[str, dict] = {}
    out_layout: list[dict] = []
    for j, nm in enumerate(out_names):
        slot = _path_of(buffer_of, j)
        o = value_of[0][slot] if slot is not None else out_tensors[j][0]
        task_dtype, carry = _carry(o.dtype)
        outputs[nm] = {"dtype": task_dtype, "shape": out_shape[j]}
        out_layout.append(
            {
                "name": nm,
                "dtype": task_dtype,
                "orig": str(o.dtype).removeprefix("torch."),
                "carry": carry,
                "scalar": slot is None and o.dim() == 0,
            }
        )
        if slot is not None:
            node_of[slot] = {
                "t": "tensor",
                "name": nm,
                "role": "output",
                "dtype": str(o.dtype).removeprefix("torch."),
                "carry": carry,
                "scalar": o.dim() == 0,
                "shape": out_shape[j],
            }
    for p in scratch:
        t = value_of[0][p]
        node_of[p] = {
            "t": "tensor",
            "name": names[p],
            "role": "empty",
            "dtype": str(t.dtype).removeprefix("torch."),
            "carry": None,
            "scalar": t.dim() == 0,
            "shape": tensor_shape[p],
        }
    node_of.update(scalar_nodes)
    tree = _fill(runs[0]["skeleton"], node_of)

    # axes no input shows: passed as params so the reference can size buffers and scratch
    shown = {d for p in input_paths for d in tensor_shape[p] if isinstance(d, str) and d in axis_names}
    axis_params: dict[str, str] = {}
    for a in axis_names:
        if a not in shown:
            pname = f"{a}_value"
            while pname in used or pname in cands:
                pname += "_"
            used.add(pname)
            params[pname] = a
            axis_params[a] = pname
    layout = {"version": LAYOUT_VERSION, "tree": tree, "outputs": out_layout, "axis_params": axis_params}

    # ---- the suite: tests, then benchmarks that are not already a test
    workloads: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    for wname, s in specs:
        axes = {a: int(s[a]) for a in axis_names}
        key = json.dumps(axes, sort_keys=True)
        extra = {k: s[k] for k in [*dropped, *steer] if k in s}
        if key in seen:
            seen[key]["note"] += f"; also {wname}"
            continue
        wl = {"name": wname, "axes": axes, "note": f"task.yml {wname}" + (f" {extra}" if extra else "")}
        seen[key] = wl
        workloads.append(wl)

    pname_ = task_name(name or folder.name)
    family = next((f for w, f in _FAMILY_WORDS if w in folder.name.lower()), "elementwise")
    inferred.append(f"op_family {family} guessed from the directory name {folder.name}")
    spec: dict[str, Any] = {
        "name": pname_,
        "description": (description or f"GPU MODE problem {folder.name}")
        + f"\nImported from GPU MODE problem {folder.name}.\n",
        "op_family": family,
        "models": f"unknown (GPU MODE problem {folder.name} names none)",
        "axes": {a: {"kind": "var"} for a in axis_names},
        "dtypes": [main_dtype(inputs, outputs)],
        "inputs": inputs,
        "outputs": outputs,
        "entry": f"run({', '.join([*inputs, *outputs])})",
    }
    if params:
        spec["params"] = params
        inferred.append(
            "params (scalars of data that follow the axes, passed to the reference; a candidate reads "
            f"them off the shapes): {_show(params)}"
        )
    lay = Layout(layout)
    fixed = {k: v for k, v in point.items() if k not in axis_names}
    nonzero = [
        out_mode == "real" and any(bool(r["out"][1][j].ne(0).any()) for r in runs)
        for j in range(len(outputs))
    ]

    def ref_on(inp: dict[str, Any], axes: dict[str, int]) -> tuple:
        pv = {n: int(_eval_dims([f], axes)[0]) for n, f in params.items()}
        data, _ = lay.data(inp, axes, pv, module, "cpu")
        return lay.results(prob.ref(data), out_names, {n: o["dtype"] for n, o in outputs.items()})

    def draw(axes: dict[str, int], seed: int = 0) -> dict[str, Any]:
        from ksearch.task.inputs import sample as draw_one
        from ksearch.task.spec import TensorSpec

        gen = torch.Generator().manual_seed(seed)
        made = {}
        for n, t in inputs.items():
            ts = TensorSpec.model_validate(
                {"dtype": t["dtype"], "shape": t["shape"], "distribution": t["distribution"]}
            )
            assert ts.distribution is not None  # the importer gave every input one
            made[n] = draw_one(
                ts.distribution, tuple(_eval_dims(t["shape"], axes)), torch_dtype(t["dtype"]), gen, axes
            )
        return made

    def runs_ok(axes: dict[str, int]) -> bool:
        """Whether ref_kernel accepts data of these shapes drawn from the task's generators (derived
        workloads must keep the problem's assumptions: k % 64 == 0, T a multiple of the chunk)."""
        try:
            res = ref_on(draw(axes), axes)
        except Exception:  # the shape breaks an assumption of the problem: not a workload  # noqa: BLE001
            return False
        want = [tuple(_eval_dims(o["shape"], axes)) for o in outputs.values()]
        if [tuple(r.shape) for r in res] != want:
            return False
        # an output that is not all zeros on the problem's data must not be at this shape either (a chunked
        # scan whose first chunk's state is 0 everywhere at one chunk): the workload would test nothing
        return not any(
            live and r.numel() and not bool(r.ne(0).any()) for r, live in zip(res, nonzero, strict=True)
        )

    flops = _fit_flops(runs, axis_names)
    if target_reason is not None:
        _finish_target_only(
            spec,
            workloads,
            prob,
            fixed,
            axis_names,
            outs0,
            runs,
            out_mode,
            folder,
            config,
            target_missing,
            target_reason,
            inputs,
            inferred,
            flops,
        )
    else:
        try:
            inferred += finish_spec(spec, workloads, allowed=runs_ok)
        except TaskError as exc:
            if "cannot derive CPU-sized" not in str(exc):
                raise
            extra_wl, notes = _cpu_workloads(spec, workloads, runs_ok)
            if not extra_wl:
                raise
            inferred += notes
            inferred += finish_spec(spec, workloads + extra_wl, allowed=runs_ok)
        inferred.append(
            "check_implementation is not used: outputs are compared with the importer's tolerances for "
            + ", ".join(spec["tolerances"])
        )
        if flops is not None:
            spec["flops"] = flops
            inferred.append(f"flops: {flops}, torch's FLOP counter on ref_kernel at the point and the probes")
        _check_finite(spec, value_of[0], runs[0]["out"], draw, ref_on, folder)

    files = {
        "gpumode_reference.py": (folder / "reference.py").read_bytes(),
        LAYOUT_FILE: json.dumps(layout, indent=1).encode(),
    }
    for mod, file in _companions(folder / "reference.py").items():
        if file is not None:
            files[f"gpumode_{mod}.py"] = file.read_bytes()
    files["gpumode_task.yml"] = _task_file(folder).read_bytes()
    args = ", ".join(inputs)
    kw = (", *, " + ", ".join(params)) if params else ""
    call = ", ".join([*inputs, *[f"{p}={p}" for p in params]])
    reference = f'''"""Reference of GPU MODE problem {folder.name}: its ref_kernel (gpumode_reference.py) on `data` built
from the inputs as generate_input lays it out (gpumode.json)."""

from pathlib import Path

from ksearch.task.importers.gpumode import problem_reference

_REFERENCE = problem_reference(Path(__file__).parent)


def reference({args}{kw}):
    return _REFERENCE({call})
'''
    return Built(spec=spec, reference=reference, files=files, inferred=inferred)


def _fit_flops(runs: list[dict], axis_names: list[str]) -> str | None:
    """FLOPs as c * a^i * b^j ... over the axes, from the FLOP counts at the point and the probes (each
    moved one axis); None where they are not such a monomial (a sum of terms, an uncounted op)."""
    counted = [r["flops"][0] for r in runs if len(r.get("flops") or []) == 1]
    if len(counted) != len(runs) or counted[0] <= 0:  # a run without one count: not a monomial to fit
        return None
    counts: list[int] = counted
    base = runs[0]["axes"]
    power: dict[str, int] = {}
    for r, c in zip(runs[1:], counts[1:], strict=True):
        moved = [a for a in base if r["axes"][a] != base[a]]
        if len(moved) != 1 or c <= 0:
            return None
        a = moved[0]
        e = math.log(c / counts[0]) / math.log(r["axes"][a] / base[a])
        if abs(e - round(e)) > 1e-6 or not 0 <= round(e) <= 4:
            return None
        if round(e):
            if a not in axis_names:
                return None
            power[a] = round(e)
    coef = counts[0] / math.prod(base[a] ** e for a, e in power.items())
    if abs(coef - round(coef)) > 1e-6 * max(1.0, coef) or round(coef) < 1:
        return None
    terms = [str(round(coef))] if round(coef) != 1 or not power else []
    terms += [a for a, e in power.items() for _ in range(e)]
    return "*".join(terms)


def _path_of(buffer_of: dict[Path_, int], j: int) -> Path_ | None:
    return next((p for p, jj in buffer_of.items() if jj == j), None)


def _same_storage(a: Any, b: Any) -> bool:
    try:
        return a.untyped_storage()._cdata == b.untyped_storage()._cdata or (
            _storage_key(a) != 0 and _storage_key(a) == _storage_key(b)
        )
    except Exception:  # noqa: BLE001
        return False


def _eval_dims(dims: list, axes: dict[str, int]) -> list[int]:
    from ksearch.task.formula import evaluate_formula

    return [int(evaluate_formula(d, axes, "shape")) for d in dims]


def _show(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _fill(skeleton: dict, node_of: dict[Path_, dict]) -> dict:
    if skeleton["t"] == "leaf":
        return node_of[tuple(skeleton["path"])]
    if skeleton["t"] == "seq":
        return {**skeleton, "items": [_fill(n, node_of) for n in skeleton["items"]]}
    return {**skeleton, "items": [[k, _fill(n, node_of)] for k, n in skeleton["items"]]}


def _cpu_workloads(
    spec: dict, workloads: list[dict], allowed: Callable[[dict[str, int]], bool]
) -> tuple[list[dict], list[str]]:
    """CPU-sized workloads where cpu_suite's halving breaks the problem's constraints: halve one axis at a
    time, keeping each step `allowed`, then make a dim a non-power-of-two by moving one axis to an
    allowed odd value."""
    from ksearch.task.importers.common import CPU_ELEMENTS

    def shrink(start: dict[str, int]) -> dict[str, int] | None:
        axes = dict(start)
        frozen: set[str] = set()
        while elements(spec, axes) > CPU_ELEMENTS:
            for a in sorted(axes, key=lambda x: -axes[x]):
                if a in frozen or axes[a] < 2:
                    continue
                trial = {**axes, a: axes[a] // 2}
                if elements(spec, trial) < elements(spec, axes) and allowed(trial):
                    axes = trial
                    break
                frozen.add(a)
            else:
                return None
        return axes if allowed(axes) else None

    for base in sorted(workloads, key=lambda wl: elements(spec, wl["axes"]))[:6]:  # the smallest that shrinks
        axes = shrink(base["axes"])
        if axes is not None:
            break
    else:
        return [], []
    out = [axes]
    for a in sorted(axes, key=lambda x: -axes[x]):
        for v in (axes[a] - 1, 3, 5, 7, 6, axes[a] + axes[a] // 2, 12, 24):
            trial = {**axes, a: v}
            if (
                v >= 1
                and v != axes[a]
                and elements(spec, trial) <= CPU_ELEMENTS
                and allowed(trial)
                and any(not (d & (d - 1) == 0) for s in shapes_at(spec, trial) for d in s)
            ):
                out.append(trial)
                break
        if len(out) > 1:
            break
    smaller = {a: max(1, v // 2) for a, v in axes.items()}
    if allowed(smaller) and smaller not in out:
        out.append(smaller)
    made, notes = [], []
    for ax in out:
        name = "cpu_" + "_".join(f"{a}{v}" for a, v in ax.items())
        made.append(
            {"name": name, "axes": ax, "note": "derived: var axes scaled down for the CPU, one at a time"}
        )
        notes.append(
            f"workload {name}: var axes {_show(ax)} scaled down from workload {base['name']} "
            f"({_show(base['axes'])}) one axis at a time, each step accepted by ref_kernel"
        )
    return made, notes


def _check_finite(
    spec: dict, data_leaves: dict, out: Any, draw: Callable, ref_on: Callable, folder: Path
) -> None:
    """Refuse a problem whose reference gives NaN/inf on the task's per-element draws though it gives finite
    outputs on generate_input's data (its inputs carry a structure no distribution here reproduces)."""
    import torch

    if out is None or not all(bool(torch.isfinite(t.float()).all()) for t in out[1] if t.is_floating_point()):
        return
    wl = min((w for w in spec["workloads"] if w["cpu"]), key=lambda w: elements(spec, w["axes"]))
    try:
        res = ref_on(draw(wl["axes"], seed=0), wl["axes"])
    except (_Failure, TaskError) as exc:
        raise TaskError(
            f"{folder.name}: ref_kernel fails on inputs drawn per element at workload {wl['name']} "
            f"({exc}); generate_input's data has a structure the task's distributions do not reproduce: "
            "write this task by hand"
        ) from None
    bad = [
        n
        for n, r in zip(spec["outputs"], res, strict=True)
        if r.is_floating_point() and not bool(torch.isfinite(r.float()).all())
    ]
    if bad:
        gens = "; ".join(f"{n}: {t['distribution']['kind']}" for n, t in spec["inputs"].items())
        raise TaskError(
            f"{folder.name}: ref_kernel gives NaN/inf in {', '.join(bad)} on inputs drawn per element ({gens}) "
            "though not on generate_input's: its inputs carry a structure (cumulative, sorted, "
            "positive-definite, offsets...) that no per-element distribution reproduces: write this task by hand"
        )


def _finish_target_only(
    spec: dict,
    workloads: list[dict],
    prob: _Problem,
    fixed: dict,
    axis_names: list[str],
    outs0: list,
    runs: list[dict],
    out_mode: str,
    folder: Path,
    config: dict,
    missing: str | None,
    reason: str,
    inputs: dict,
    inferred: list[str],
    fitted: str | None,
) -> None:
    """The fields finish_spec fills, for a task whose reference cannot run here: no CPU workloads (none
    could be verified), FLOPs counted under FakeTensorMode where ref_kernel runs there."""
    from torch.utils.flop_counter import FlopCounterMode

    dtypes = {i["dtype"] for i in inputs.values()} | {str(t.dtype) for t in outs0}
    dtypes |= {str(v.dtype) for _, v in runs[0]["leaves"] if hasattr(v, "dtype") and not isinstance(v, type)}
    targets = _targets(folder, config, missing, dtypes)
    spec["target_only"] = {"reason": reason, "targets": targets}
    inferred.append(
        f"TARGET-ONLY: {reason}; candidates compile and audit anywhere, verification needs one of "
        f"{', '.join(targets)}"
    )
    wls = [{**wl, "cpu": False} for wl in workloads]
    base = min(wls, key=lambda w: elements(spec, w["axes"]))
    k = 2
    while (
        len(wls) < 4 and k <= 64
    ):  # the contract wants 4: halve the smallest one's axes (shapes checked under fake)
        ax = {a: max(1, v // k) for a, v in base["axes"].items()}
        if ax not in [w["axes"] for w in wls]:
            try:
                prob.generate({**fixed, **ax}, fake=True)
                wls.append(
                    {
                        "name": "derived_" + "_".join(f"{a}{v}" for a, v in ax.items()),
                        "axes": ax,
                        "cpu": False,
                        "note": f"derived: {base['name']}'s axes divided by {k}",
                    }
                )
            except (_Failure, TaskError):
                pass
        k *= 2
    spec["workloads"] = wls
    spec["distributions"] = distributions_for(spec)
    spec["tolerances"] = tolerances_for({t["dtype"] for t in spec["outputs"].values()})
    spec["bytes"] = bytes_formula(spec)
    spec["languages"] = list(LANGUAGES)
    out_name, out = next(iter(spec["outputs"].items()))
    per_out = "*".join(f"({d})" for d in out["shape"])
    flops = fitted
    if flops is not None:
        inferred.append(
            f"flops: {flops}, torch's FLOP counter on ref_kernel under FakeTensorMode at the probes"
        )
    elif out_mode == "fake":
        try:
            data, _ = prob.generate({**fixed, **base["axes"]}, fake=True)
            counter = FlopCounterMode(display=False)
            with counter:
                prob.ref(data, fake=True)
            counted = counter.get_total_flops()
            if counted > 0:
                n = math.prod(_eval_dims(out["shape"], base["axes"]))
                per = counted / n
                flops = f"{int(per) if float(per).is_integer() else round(per, 6)}*{per_out}"
                inferred.append(
                    f"flops: counted under FakeTensorMode at workload {base['name']}, per element of {out_name}"
                )
        except (_Failure, TaskError):
            pass
    if flops is None:
        flops = " + ".join("*".join(f"({d})" for d in t["shape"]) for t in spec["outputs"].values())
        inferred.append("flops: one per output element (ref_kernel cannot run here to count them)")
    spec["flops"] = flops


# ---------------------------------------------------------------------------------------------
# Submissions as candidates


def submission_to_candidate(submission: str | Path, task: Task | str | Path, out: str | Path) -> Path:
    """Write a GPU MODE submission (a .py defining `custom_kernel(data)`) as a ksearch candidate at
    `out` (a .py file, or a directory for `<submission stem>.py`) and return its path.

    The submission is kept as it is, less its `from task import ...` (type aliases, defined here as
    `object`); a `run(<inputs>, <outputs>)` with the task's entry signature is appended that builds
    `data` as generate_input lays it out (output buffers: the output tensors themselves; constants
    inline; config ints from the input shapes; scratch allocated), calls custom_kernel and copies what
    it returns into any output it did not write in place."""
    from ksearch.task import Task, load_task

    task = task if isinstance(task, Task) else load_task(task)
    layout_file = task.root / LAYOUT_FILE
    if not layout_file.is_file():
        raise TaskError(
            f"task {task.name} was not imported from GPU MODE (no {LAYOUT_FILE}); import the problem first"
        )
    layout = Layout(json.loads(layout_file.read_text()))
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
                raise TaskError(
                    f"{submission} imports {', '.join(a.name for a in node.names)} from utils; a candidate "
                    "is one module: copy what it needs into the submission"
                )
            aliases += [a.asname or a.name for a in node.names]
            for i in range(node.lineno - 1, node.end_lineno or node.lineno):
                lines[i] = "# (ksearch) " + lines[i]
    axis_expr = _axis_expressions(task)
    data = _data_expression(layout.tree, task, axis_expr)
    body = [
        f"    _result = custom_kernel({data})",
        "    _result = tuple(_result) if isinstance(_result, (tuple, list)) else (_result,)",
    ]
    for i, (o, spec_o) in enumerate(
        zip(task.output_names, layout.outputs or [{}] * len(task.output_names), strict=True)
    ):
        dst = f"{o}.view(torch.{spec_o['orig']})" if spec_o.get("carry") == "view" else o
        body.append(
            f"    if _result[{i}] is not {o}:\n        {dst}.copy_(_result[{i}].reshape({dst}.shape))"
        )
    header = f'"""GPU MODE submission {submission.name} as a ksearch candidate.\n\ntask: {task.name}\n"""\n\n'
    alias_block = "".join(f"{a} = object  # was imported from GPU MODE's task.py\n" for a in aliases)
    wrapper = (
        f"\n\n# ---- ksearch entry: data laid out as generate_input makes it, custom_kernel called on it\n"
        f"def {task.entry_name}({', '.join(task.entry_args)}) -> None:\n" + "\n".join(body) + "\n"
    )
    text = "\n".join(lines).rstrip() + "\n"
    if "import torch" not in text:
        text = "import torch\n" + text
    if alias_block:
        text = _after_imports(text, alias_block)
    out = Path(out)
    path = out / f"{task_name(submission.stem)}.py" if out.is_dir() or not out.suffix else out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + text + wrapper)
    return path


def _axis_expressions(task: Task) -> dict[str, str]:
    """Each var axis as an expression over the inputs' shapes (`x.shape[3]`), where an input has it as a dim."""
    found: dict[str, str] = {}
    for name, t in task.spec.inputs.items():
        for d, dim in enumerate(t.shape):
            if isinstance(dim, str) and dim.strip() in task.spec.axes and dim.strip() not in found:
                found[dim.strip()] = f"{name}.shape[{d}]"
    return found


def _formula_expression(formula: str | int, axis_expr: dict[str, str], what: str) -> str:
    if isinstance(formula, int):
        return str(formula)
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", formula))
    missing = sorted(n for n in names if n not in axis_expr)
    if missing:
        raise TaskError(
            f"{what} needs axis {missing[0]}, which no input's shape gives; a submission cannot rebuild "
            "data for this task: write the candidate's run() by hand"
        )
    return "(" + re.sub(r"[A-Za-z_][A-Za-z0-9_]*", lambda m: axis_expr[m.group(0)], formula) + ")"


def _data_expression(node: dict, task: Task, axis_expr: dict[str, str]) -> str:
    kind = node["t"]
    if kind == "tensor":
        name = node["name"]
        if node["role"] == "empty":
            dims = ", ".join(_formula_expression(d, axis_expr, f"scratch {name}") for d in node["shape"])
            first = task.input_names[0]
            return f"torch.empty(({dims},), dtype=torch.{node['dtype']}, device={first}.device)"
        expr = name
        if node.get("carry") == "view":
            expr = f"{name}.view(torch.{node['dtype']})"
        elif node.get("carry") == "convert":
            expr = f"{name}.to(torch.{node['dtype']})"
        return f"{expr}.reshape(())" if node.get("scalar") else expr
    if kind == "seq":
        items = [_data_expression(n, task, axis_expr) for n in node["items"]]
        return "[" + ", ".join(items) + "]" if node["kind"] == "list" else "(" + ", ".join(items) + ",)"
    if kind == "dict":
        return (
            "{" + ", ".join(f"{k!r}: {_data_expression(n, task, axis_expr)}" for k, n in node["items"]) + "}"
        )
    if kind == "dataclass":
        raise TaskError(
            f"task {task.name}: data holds a {node['cls']} dataclass of the problem's reference; a "
            "submission cannot rebuild it: write the candidate's run() by hand"
        )
    if kind == "const":
        return repr(node["value"])
    if kind == "dtype":
        return f"torch.{node['value']}"
    if kind == "param":
        return _formula_expression(str(task.spec.params[node["name"]]), axis_expr, f"param {node['name']}")
    raise TaskError(f"{LAYOUT_FILE}: unknown node {kind!r}; re-import the problem")


def _after_imports(text: str, block: str) -> str:
    tree = ast.parse(text)
    imports = (n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))
    last = max((n.end_lineno or n.lineno for n in imports), default=0)
    lines = text.splitlines()
    return "\n".join([*lines[:last], "", block.rstrip(), *lines[last:]]) + "\n"
