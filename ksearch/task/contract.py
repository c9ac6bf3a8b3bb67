"""`Task`: a validated TaskSpec plus its reference, with everything the harness asks of a task.

torch is imported inside the methods that need it, so loading and describing a task stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from ksearch.errors import TaskError
from ksearch.paths import tasks_dir
from ksearch.task.spec import DTYPE_ITEMSIZE, DTYPE_VARIANT, TaskSpec, ToleranceSpec, WorkloadSpec

if TYPE_CHECKING:
    import torch

WorkloadRef = str | WorkloadSpec


class TensorInfo(BaseModel):
    """A tensor of one workload and dtype variant: concrete dtype name and shape."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: Literal["input", "output"]
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPE_ITEMSIZE[self.dtype]


class Task:
    """A loaded task: the spec, where it lives, and its reference (imported on first use)."""

    def __init__(self, spec: TaskSpec, root: Path, reference_path: Path) -> None:
        self.spec = spec
        self.root = root
        self.reference_path = reference_path
        self._reference: Callable[..., Any] | None = None

    def __repr__(self) -> str:
        return f"Task({self.spec.name!r}, root={str(self.root)!r})"

    # ---- identity and contract ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ref(self) -> str:
        """What `--task` takes to load this task again: a built-in task's name, else its directory."""
        builtin = self.root.resolve() == (tasks_dir() / self.name).resolve()
        return self.name if builtin else str(self.root.resolve())

    @property
    def dtypes(self) -> list[str]:
        return list(self.spec.dtypes)

    @property
    def default_dtype(self) -> str:
        return self.spec.dtypes[0]

    @property
    def distributions(self) -> list[str]:
        return list(self.spec.distributions)

    @property
    def input_names(self) -> list[str]:
        return list(self.spec.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.spec.outputs)

    @property
    def entry_name(self) -> str:
        return self.spec.entry_signature()[0]

    @property
    def entry_args(self) -> list[str]:
        return self.spec.entry_signature()[1]

    @property
    def languages(self) -> list[str]:
        return list(self.spec.languages)

    def _dtype(self, dtype: str | None) -> str:
        if dtype is None:
            return self.default_dtype
        if dtype not in self.spec.dtypes:
            raise TaskError(
                f"task {self.name}: dtype '{dtype}' is not one of its variants; use one of: {', '.join(self.spec.dtypes)}"
            )
        return dtype

    # ---- workloads ---------------------------------------------------------------------------

    def workloads(self, cpu_only: bool = False) -> list[WorkloadSpec]:
        return [wl for wl in self.spec.workloads if wl.cpu or not cpu_only]

    def only(self, names: Sequence[str]) -> Task:
        """This task with only the named workloads (a run's): what its candidates are compiled,
        audited and modelled for. Unknown names raise TaskError."""
        keep = {self.workload(n).name for n in names}
        spec = self.spec.model_copy(update={"workloads": [w for w in self.spec.workloads if w.name in keep]})
        return Task(spec, self.root, self.reference_path)

    def workload(self, ref: WorkloadRef) -> WorkloadSpec:
        if isinstance(ref, WorkloadSpec):
            # An ad-hoc shape (not from the suite) must still give exactly the var axes.
            var_axes = self.spec.var_axes
            unknown = [a for a in ref.axes if a not in var_axes]
            missing = [a for a in var_axes if a not in ref.axes]
            if unknown or missing:
                raise TaskError(
                    f"task {self.name}: workload '{ref.name}' must set exactly the var axes "
                    f"{', '.join(var_axes)}; missing={missing} unexpected={unknown}"
                )
            bad = {a: v for a, v in ref.axes.items() if v < 1}
            if bad:
                raise TaskError(f"task {self.name}: workload '{ref.name}' has axis values < 1: {bad}")
            return ref
        for wl in self.spec.workloads:
            if wl.name == ref:
                return wl
        names = ", ".join(wl.name for wl in self.spec.workloads)
        raise TaskError(f"task {self.name} has no workload '{ref}'; use one of: {names}")

    def axes_for(self, workload: WorkloadRef) -> dict[str, int]:
        """Every axis (const and var) with its value in this workload."""
        return self.spec.axis_values(self.workload(workload))

    def params_for(self, workload: WorkloadRef) -> dict[str, bool | int | float]:
        """Keyword params for the reference, formulas evaluated for this workload."""
        return self.spec.param_values(self.axes_for(workload))

    def _tensor_infos(
        self, names: list[str], role: Literal["input", "output"], workload: WorkloadRef, dtype: str | None
    ) -> list[TensorInfo]:
        axes = self.axes_for(workload)
        variant = self._dtype(dtype)
        return [
            TensorInfo(
                name=n,
                role=role,
                dtype=self.spec.resolve_dtype(self.spec.tensors[n], variant),
                shape=self.spec.resolve_shape(n, axes),
            )
            for n in names
        ]

    def input_specs(self, workload: WorkloadRef, dtype: str | None = None) -> list[TensorInfo]:
        return self._tensor_infos(self.input_names, "input", workload, dtype)

    def output_specs(self, workload: WorkloadRef, dtype: str | None = None) -> list[TensorInfo]:
        return self._tensor_infos(self.output_names, "output", workload, dtype)

    # ---- tensors -----------------------------------------------------------------------------

    def make_inputs(
        self,
        workload: WorkloadRef,
        distribution: str = "normal",
        seed: int = 0,
        dtype: str | None = None,
        device: str | torch.device = "cpu",
    ) -> dict[str, torch.Tensor]:
        """Inputs in declared order, deterministic per (seed, input name, distribution)."""
        import torch

        from ksearch.task.inputs import derive_seed, make_distinct_last_dim, sample, torch_dtype
        from ksearch.task.spec import NormalGen

        if distribution not in self.spec.distributions:
            raise TaskError(
                f"task {self.name} has no distribution '{distribution}'; use one of: {', '.join(self.distributions)}"
            )
        if seed < 0:
            raise TaskError(f"seed {seed} is negative; seeds are integers >= 0")
        wl = self.workload(workload)
        axes = self.axes_for(wl)
        overrides = self.spec.distributions[distribution]
        tensors: dict[str, torch.Tensor] = {}
        for info in self.input_specs(wl, dtype):
            tensor_spec = self.spec.inputs[info.name]
            gen_spec = overrides.get(info.name) or tensor_spec.distribution or NormalGen(kind="normal")
            gen = torch.Generator(device="cpu").manual_seed(derive_seed(seed, info.name))
            value = sample(gen_spec, info.shape, torch_dtype(info.dtype), gen, axes)
            if tensor_spec.distinct_last_dim:
                value = make_distinct_last_dim(value)
            tensors[info.name] = value.contiguous().to(device)
        return tensors

    def allocate_outputs(
        self, workload: WorkloadRef, dtype: str | None = None, device: str | torch.device = "cpu"
    ) -> dict[str, torch.Tensor]:
        """Uninitialised output buffers of the exact declared shapes and dtypes (the harness poisons them)."""
        import torch

        from ksearch.task.inputs import torch_dtype

        return {
            info.name: torch.empty(info.shape, dtype=torch_dtype(info.dtype), device=device)
            for info in self.output_specs(workload, dtype)
        }

    # ---- reference ---------------------------------------------------------------------------

    @property
    def reference(self) -> Callable[..., Any]:
        """The task's `reference` function, imported from reference.py on first access."""
        if self._reference is None:
            self._reference = _import_reference(self.name, self.reference_path)
        return self._reference

    def run_reference(
        self,
        inputs: Mapping[str, torch.Tensor],
        workload: WorkloadRef | None = None,
        dtype: str | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run the reference on `inputs`; check the outputs against the contract.

        Without `workload`, the axes are read off the input shapes; without `dtype`, the variant is
        read off the inputs declared as "$dtype".
        """
        import torch

        from ksearch.task.inputs import dtype_name

        missing = [n for n in self.input_names if n not in inputs]
        extra = [n for n in inputs if n not in self.spec.inputs]
        if missing or extra:
            raise TaskError(
                f"task {self.name}: reference inputs must be exactly {', '.join(self.input_names)}; "
                f"got missing={missing} extra={extra}"
            )
        variant = self._dtype(dtype) if dtype is not None else self._infer_variant(inputs)
        axes = self.axes_for(workload) if workload is not None else self.axes_from_inputs(inputs)
        for name in self.input_names:
            want_shape = self.spec.resolve_shape(name, axes)
            want_dtype = self.spec.resolve_dtype(self.spec.inputs[name], variant)
            got = inputs[name]
            if tuple(got.shape) != want_shape or dtype_name(got.dtype) != want_dtype:
                raise TaskError(
                    f"task {self.name}: input '{name}' is {dtype_name(got.dtype)}{list(got.shape)}, "
                    f"the contract says {want_dtype}{list(want_shape)}; build inputs with make_inputs"
                )
        params = self.spec.param_values(axes)
        args = [inputs[n] for n in self.input_names]
        try:
            with torch.no_grad():
                result = self.reference(*args, **params)
        except TaskError:
            raise
        except Exception as exc:  # a broken reference is a task bug: report it as one line
            detail = " ".join(str(exc).split())
            raise TaskError(
                f"task {self.name}: reference raised {type(exc).__name__}: {detail}; fix {self.reference_path}"
            ) from exc
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        if len(outputs) != len(self.output_names):
            raise TaskError(
                f"task {self.name}: reference returned {len(outputs)} value(s), the contract has "
                f"{len(self.output_names)} output(s) ({', '.join(self.output_names)}); return them in that order"
            )
        checked: dict[str, torch.Tensor] = {}
        for name, value in zip(self.output_names, outputs, strict=True):
            want_shape = self.spec.resolve_shape(name, axes)
            want_dtype = self.spec.resolve_dtype(self.spec.outputs[name], variant)
            if not isinstance(value, torch.Tensor):
                raise TaskError(
                    f"task {self.name}: reference output '{name}' is a {type(value).__name__}, not a tensor; "
                    f"return torch tensors in outputs order"
                )
            if tuple(value.shape) != want_shape or dtype_name(value.dtype) != want_dtype:
                raise TaskError(
                    f"task {self.name}: reference output '{name}' is {dtype_name(value.dtype)}{list(value.shape)}, "
                    f"the contract says {want_dtype}{list(want_shape)}; fix reference.py or task.yaml"
                )
            checked[name] = value
        return checked

    def _infer_variant(self, inputs: Mapping[str, torch.Tensor]) -> str:
        from ksearch.task.inputs import dtype_name

        for name, tensor_spec in self.spec.inputs.items():
            if tensor_spec.dtype == DTYPE_VARIANT:
                found = dtype_name(inputs[name].dtype)
                if found not in self.spec.dtypes:
                    raise TaskError(
                        f"task {self.name}: input '{name}' is {found}, not one of the variants "
                        f"{', '.join(self.spec.dtypes)}; convert it or pass dtype="
                    )
                return found
        return self.default_dtype

    def axes_from_inputs(
        self, inputs: Mapping[str, torch.Tensor], *, partial: bool = False
    ) -> dict[str, int]:
        """The axes read off the input shapes (and the constant axes). An axis that sizes no input
        raises TaskError unless `partial`, which leaves it out (an imported problem's int field that
        only steers its input generator is such an axis)."""
        axes: dict[str, int] = dict(self.spec.const_axes)
        for name, tensor_spec in self.spec.inputs.items():
            shape = tuple(inputs[name].shape)
            if len(shape) != len(tensor_spec.shape):
                raise TaskError(
                    f"task {self.name}: input '{name}' has {len(shape)} dims, the contract has "
                    f"{len(tensor_spec.shape)} ({tensor_spec.shape})"
                )
            for dim, size in zip(tensor_spec.shape, shape, strict=True):
                if isinstance(dim, str) and dim.strip() in self.spec.axes:
                    axis = dim.strip()
                    if axes.setdefault(axis, size) != size:
                        raise TaskError(
                            f"task {self.name}: axis '{axis}' is {axes[axis]} in one input and {size} in "
                            f"'{name}'; the inputs disagree on their shapes"
                        )
        # Dims such as `2*I` bind their one unknown axis by solving the (affine) expression.
        for name, tensor_spec in self.spec.inputs.items():
            for dim, size in zip(tensor_spec.shape, inputs[name].shape, strict=True):
                if isinstance(dim, str):
                    _bind_expression(dim, int(size), axes)
        unbound = [a for a in self.spec.axes if a not in axes]
        if unbound and not partial:
            raise TaskError(
                f"task {self.name}: axis '{unbound[0]}' cannot be read off the input shapes; "
                "pass workload= to run_reference"
            )
        return axes

    # ---- roofline and tolerances -------------------------------------------------------------

    def _formula_namespace(self, workload: WorkloadRef, dtype: str | None) -> dict[str, int | float]:
        variant = self._dtype(dtype)
        axes = self.axes_for(workload)
        namespace: dict[str, int | float] = dict(axes)
        for name, value in self.spec.param_values(axes).items():
            if not isinstance(value, bool):
                namespace[name] = value
        for name, tensor_spec in self.spec.tensors.items():
            namespace[f"itemsize_{name}"] = DTYPE_ITEMSIZE[self.spec.resolve_dtype(tensor_spec, variant)]
        return namespace

    def flops(self, workload: WorkloadRef, dtype: str | None = None) -> float:
        from ksearch.task.formula import evaluate_formula

        ns = self._formula_namespace(workload, dtype)
        return float(evaluate_formula(self.spec.flops_formula, ns, f"task {self.name} flops formula"))

    def bytes(self, workload: WorkloadRef, dtype: str | None = None) -> float:
        from ksearch.task.formula import evaluate_formula

        ns = self._formula_namespace(workload, dtype)
        return float(evaluate_formula(self.spec.bytes_formula, ns, f"task {self.name} bytes formula"))

    def arithmetic_intensity(self, workload: WorkloadRef, dtype: str | None = None) -> float:
        """FLOPs per byte of compulsory memory traffic."""
        moved = self.bytes(workload, dtype)
        return self.flops(workload, dtype) / moved if moved > 0 else float("inf")

    def tolerance(self, dtype: str) -> ToleranceSpec:
        """Tolerance for outputs of concrete dtype `dtype` (e.g. 'float16', 'int32')."""
        if dtype not in self.spec.tolerances:
            raise TaskError(
                f"task {self.name} has no tolerance for dtype '{dtype}'; it defines: {', '.join(self.spec.tolerances)}"
            )
        return self.spec.tolerances[dtype]

    def output_tolerances(self, dtype: str | None = None) -> dict[str, ToleranceSpec]:
        """Per output, the tolerance of its concrete dtype under dtype variant `dtype`."""
        variant = self._dtype(dtype)
        return {
            name: self.tolerance(self.spec.resolve_dtype(t, variant)) for name, t in self.spec.outputs.items()
        }


def _bind_expression(dim: str, size: int, axes: dict[str, int]) -> None:
    from ksearch.task.formula import parse_formula

    formula = parse_formula(dim, "shape dim")
    unknown = sorted(formula.names - set(axes))
    if len(unknown) != 1:
        return
    axis = unknown[0]
    try:
        at0 = formula.evaluate({**axes, axis: 0})
        slope = formula.evaluate({**axes, axis: 1}) - at0
    except TaskError:
        return
    if slope == 0:
        return
    guess = (size - at0) / slope
    if float(guess).is_integer() and guess >= 1 and formula.evaluate({**axes, axis: int(guess)}) == size:
        axes[axis] = int(guess)


def _import_reference(task_name: str, path: Path) -> Callable[..., Any]:
    if not path.is_file():
        raise TaskError(
            f"task {task_name}: {path} does not exist; add a reference.py defining reference(*inputs, **params)"
        )
    # A unique module name per file, so two tasks' reference.py never collide; the module is not
    # registered in sys.modules, leaving no global trace.
    digest = hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()
    module_name = f"ksearch_task_reference_{task_name.replace('-', '_').replace('.', '_')}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TaskError(f"task {task_name}: cannot import {path}; is it a Python file?")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any import-time failure of user code is a task error
        detail = " ".join(str(exc).split())
        raise TaskError(
            f"task {task_name}: importing {path} failed with {type(exc).__name__}: {detail}; fix the file"
        ) from exc
    func = getattr(module, "reference", None)
    if func is None:
        raise TaskError(
            f"task {task_name}: {path} defines no function 'reference'; add def reference(*inputs, **params)"
        )
    if not callable(func):
        raise TaskError(f"task {task_name}: 'reference' in {path} is a {type(func).__name__}, not a function")
    return func
