"""Capture the Triton launches a candidate makes, without a GPU and without running a kernel.

A Triton candidate is a module whose `run(*inputs, *outputs)` launches `@triton.jit` kernels as
`kernel[grid](...)`, possibly through `@triton.autotune` / `@triton.heuristics`. To know what to
compile ahead of time we import the module from its source, call `run` once per workload on CPU
tensors of the right shapes and dtypes, and patch Triton's launch path so each launch is recorded
instead of compiled and executed:

* `JITFunction.run` computes the specialization exactly as the JIT would, with Triton's own binder
  (`create_function_from_signature`, which calls the native `specialize_impl` with the backend's
  `get_*_specialization` hooks) and `JITFunction._pack_args`, but for a backend made from the
  *target* (`make_backend(GPUTarget(...))`) instead of the local driver, and then returns.
* `Autotuner.run` launches the kernel once per config (after `early_config_prune`, if any), so every
  config becomes one specialization. Heuristics need no patch: they compute their values and call
  the wrapped `run`, which records.

Both hooks exist with the same signatures in Triton 3.6 and 3.9; where the two differ (extra launch
options 3.9 adds in `JITFunction.run`), the code says so. Patching a class attribute is visible to
the whole process, so run at most one capture per process at a time (the compile service runs one
per worker process).
"""

from __future__ import annotations

import hashlib
import linecache
import sys
import types
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from triton.backends.compiler import BaseBackend

    from ksearch.task import Task

# Options that a launch (or an autotune config) sets and that the specialization records even when
# they equal the backend default: the ones a reader compares across kernels.
_CORE_OPTIONS = ("num_warps", "num_stages", "num_ctas")
_MARKER = "__ksearch_recording__"


@dataclass
class Specialization:
    """One kernel to compile: a jit function and everything `triton.compile` needs for it."""

    fn: Any  # triton.runtime.jit.JITFunction
    signature: dict[str, Any]  # arg name -> Triton type ('*bf16', 'i32', 'constexpr', ...)
    constexprs: dict[tuple[int, ...], Any]  # arg path -> value
    attrs: dict[tuple[int, ...], list[list[Any]]]  # arg path -> [["tt.divisibility", 16], ...]
    options: Any  # the backend's parsed options (CUDAOptions / HIPOptions)
    launch_options: dict[str, Any]  # options the launch or config set explicitly
    autotune_config: dict[str, Any] | None = None
    workloads: list[str] = field(default_factory=list)
    grids: dict[str, list[int]] = field(default_factory=dict)
    arg_bytes: dict[str, dict[str, int]] = field(default_factory=dict)  # workload -> tensor arg -> bytes
    key: str = ""

    @property
    def name(self) -> str:
        return str(self.fn.__name__)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view: what the kernel was built with, by argument name."""
        names = [p.name for p in self.fn.params]
        described: dict[str, Any] = {
            "function": self.fn.__qualname__,
            "signature": {k: _jsonable(v) for k, v in self.signature.items()},
            "constexprs": {_path_name(names, p): _jsonable(v) for p, v in self.constexprs.items()},
            "attrs": {
                _path_name(names, p): {str(a[0]): _jsonable(a[1]) for a in spec}
                for p, spec in self.attrs.items()
                if spec
            },
            "options": {k: _jsonable(v) for k, v in self.launch_options.items()},
            "workloads": list(self.workloads),
            "grids": {k: list(v) for k, v in self.grids.items()},
            "arg_bytes": {k: dict(v) for k, v in self.arg_bytes.items()},
        }
        if self.autotune_config is not None:
            described["autotune_config"] = {k: _jsonable(v) for k, v in self.autotune_config.items()}
        return described


class LaunchRecorder:
    """Collects the specializations launched while it is installed, deduplicated."""

    def __init__(self, backend: BaseBackend) -> None:
        self.backend = backend
        self.workload = ""
        self.specializations: list[Specialization] = []
        self.launches = 0
        self._by_key: dict[str, Specialization] = {}
        self._binders: dict[int, Callable[..., Any]] = {}
        self._configs: list[dict[str, Any]] = []  # autotune configs active now (nested tuners stack)

    def _binder(self, fn: Any) -> Callable[..., Any]:
        from triton.runtime.jit import create_function_from_signature

        binder = self._binders.get(id(fn))
        if binder is None:
            binder = create_function_from_signature(fn.signature, fn.params, self.backend)
            self._binders[id(fn)] = binder
        return binder

    def record(self, fn: Any, args: tuple[Any, ...], grid: Any, kwargs: dict[str, Any]) -> None:
        """What JITFunction.run does up to the compile, for the target's backend."""
        from triton import knobs

        # Launch options JITFunction.run adds before binding (3.9 adds fpsan_homomorphic_casts;
        # 3.6 has only the first two).
        kwargs["debug"] = kwargs.get("debug", fn.debug) or knobs.runtime.debug
        if hasattr(knobs.compilation, "instrumentation_mode"):
            kwargs["instrumentation_mode"] = knobs.compilation.instrumentation_mode
        if hasattr(knobs.compilation, "fpsan_homomorphic_casts"):
            kwargs["fpsan_homomorphic_casts"] = knobs.compilation.fpsan_homomorphic_casts
        try:
            bound_args, specialization, raw_options = self._binder(fn)(*args, **kwargs)
        except TypeError as exc:  # wrong arguments: name the kernel, not Triton's generated binder
            raise TypeError(str(exc).replace("dynamic_func()", f"{fn.__name__}[grid]()")) from None
        options, signature, constexprs, attrs = fn._pack_args(
            self.backend, kwargs, bound_args, specialization, raw_options
        )
        self.launches += 1
        option_fields = set(options.__dict__)
        launch_options = {k: getattr(options, k) for k in _CORE_OPTIONS if k in option_fields}
        for k, v in kwargs.items():
            if k in option_fields and k not in ("debug", "instrumentation_mode", "fpsan_homomorphic_casts"):
                launch_options[k] = getattr(options, k, v)
        config = {k: v for c in self._configs for k, v in c.items()} if self._configs else None
        key = _specialization_key(fn, signature, constexprs, attrs, options)
        spec = self._by_key.get(key)
        if spec is None:
            spec = Specialization(fn, signature, constexprs, attrs, options, launch_options, config, key=key)
            self._by_key[key] = spec
            self.specializations.append(spec)
        if self.workload and self.workload not in spec.workloads:
            spec.workloads.append(self.workload)
        if self.workload and grid is not None:
            spec.grids.setdefault(self.workload, _grid_dims(grid, bound_args))
        if self.workload:
            spec.arg_bytes.setdefault(self.workload, _tensor_bytes(bound_args))

    @contextmanager
    def config(self, config: dict[str, Any]) -> Iterator[None]:
        self._configs.append(config)
        try:
            yield
        finally:
            self._configs.pop()


@contextmanager
def recording_launches(backend: BaseBackend) -> Iterator[LaunchRecorder]:
    """Patch Triton's launch path so launches are recorded, not compiled or executed."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    if getattr(JITFunction.run, _MARKER, False):
        raise RuntimeError("a Triton launch capture is already active in this process; run one at a time")
    recorder = LaunchRecorder(backend)
    original_jit_run = JITFunction.run
    original_tune_run = Autotuner.run

    def jit_run(self: Any, *args: Any, grid: Any, warmup: bool, **kwargs: Any) -> None:
        # Returns no CompiledKernel: nothing is compiled here.
        recorder.record(self, args, grid, kwargs)

    def tune_run(self: Any, *args: Any, **kwargs: Any) -> None:
        self.nargs = dict(zip(self.arg_names, args))
        configs = list(self.configs)
        # early_config_prune is the candidate's own filter; perf_model pruning needs device timings,
        # so every config that survives the early prune is compiled.
        if getattr(self, "early_config_prune", None):
            configs = list(self.early_config_prune(self.configs, self.nargs, **kwargs))
            if not configs:
                raise ValueError("early_config_prune returned no configs; it must return at least one")
        for config in configs:
            conflicts = set(kwargs) & set(config.kwargs)
            if conflicts:
                raise ValueError(
                    f"Conflicting meta-parameters: {', '.join(sorted(conflicts))}. "
                    "Make sure that you don't re-define auto-tuned symbols."
                )
            merged = config.all_kwargs()
            if config.pre_hook is not None:  # e.g. a TMA descriptor's block shape set per config
                config.pre_hook({**self.nargs, **kwargs, **merged})
            with recorder.config(merged):
                self.fn.run(*args, **kwargs, **merged)
        self.best_config = configs[0]  # for candidates that read it after the launch
        self.nargs = None

    setattr(jit_run, _MARKER, True)
    JITFunction.run = jit_run
    Autotuner.run = tune_run
    try:
        yield recorder
    finally:
        JITFunction.run = original_jit_run
        Autotuner.run = original_tune_run


@contextmanager
def candidate_module(
    source: str, source_path: Path, *, interpret: bool = False
) -> Iterator[types.ModuleType]:
    """Import a candidate from its source text under a unique module name.

    The code is compiled with `source_path` as its file name, so tracebacks, Triton's source
    locations and `inspect` all point into the candidate file; `inspect` reads the text from
    linecache, which is filled from `source` (the file on disk may differ or be absent). The module
    is in sys.modules only inside the block (dataclasses and pickling look it up there).
    With `interpret`, @triton.jit kernels run in Triton's CPU interpreter when launched.
    Raises whatever the candidate raises at import (SyntaxError included).
    """
    from triton import knobs

    filename = str(source_path)
    digest = hashlib.sha256(f"{filename}\0{source}".encode()).hexdigest()[:12]
    name = f"ksearch_candidate_{digest}_{uuid.uuid4().hex[:8]}"
    lines = source.splitlines(keepends=True)
    previous_lines = linecache.cache.get(filename)
    linecache.cache[filename] = (len(source), None, lines, filename)  # mtime None: never re-read from disk
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
        # Under TRITON_INTERPRET=1 @triton.jit builds interpreter functions, which run on launch:
        # wanted by the CPU harness (`interpret=True`), never by the compiler.
        with knobs.runtime.scope():
            knobs.runtime.interpret = interpret
            exec(code, module.__dict__)
        yield module
    finally:
        sys.modules.pop(name, None)
        if previous_lines is None:
            linecache.cache.pop(filename, None)
        else:
            linecache.cache[filename] = previous_lines


def workload_tensors(task: Task, workload: str, dtype: str | None) -> list[Any]:
    """CPU tensors for one call of the entry: inputs then outputs, uninitialised (values do not matter)."""
    import torch

    inputs = [
        torch.empty(info.shape, dtype=getattr(torch, info.dtype))
        for info in task.input_specs(workload, dtype)
    ]
    outputs = list(task.allocate_outputs(workload, dtype).values())
    return inputs + outputs


def capture_specializations(
    entry: Callable[..., Any],
    task: Task,
    backend: BaseBackend,
    dtype: str | None,
    workloads: Sequence[str],
) -> LaunchRecorder:
    """Call `entry` once per workload with launches recorded; the recorder holds the deduplicated
    specializations. Exceptions from the candidate propagate, tagged with the workload."""
    with recording_launches(backend) as recorder:
        for workload in workloads:
            recorder.workload = workload
            tensors = workload_tensors(task, workload, dtype)
            try:
                entry(*tensors)
            except Exception as exc:
                exc.add_note(f"while capturing launches for workload {workload}")
                raise
    return recorder


def _specialization_key(
    fn: Any, signature: dict[str, Any], constexprs: dict[Any, Any], attrs: dict[Any, Any], options: Any
) -> str:
    parts = [
        f"{fn.__module__}.{fn.__qualname__}:{id(fn)}",
        repr(sorted((k, repr(v)) for k, v in signature.items())),
        repr(sorted((k, _stable_repr(v)) for k, v in constexprs.items())),
        repr(sorted((k, repr(v)) for k, v in attrs.items())),
        repr(sorted((k, repr(v)) for k, v in options.__dict__.items())),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _stable_repr(value: Any) -> str:
    # jit functions passed as constexprs repr with their address; use their name instead.
    if hasattr(value, "fn") and hasattr(value, "__qualname__"):
        return f"jit:{value.__module__}.{value.__qualname__}"
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_stable_repr(v) for v in value) + ")"
    return repr(value)


def _tensor_bytes(bound_args: dict[str, Any]) -> dict[str, int]:
    """The bytes behind each tensor argument (the static estimate charges re-reads by them)."""
    return {
        name: int(v.numel() * v.element_size())
        for name, v in bound_args.items()
        if hasattr(v, "data_ptr") and hasattr(v, "element_size")
    }


def _grid_dims(grid: Any, bound_args: dict[str, Any]) -> list[int]:
    if callable(grid):
        grid = grid(bound_args)
    dims = [int(d) for d in tuple(grid)]
    return dims + [1] * (3 - len(dims))


def _path_name(names: list[str], path: tuple[int, ...]) -> str:
    text = names[path[0]] if path and path[0] < len(names) else str(path)
    return text + "".join(f"[{i}]" for i in path[1:])


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    inner = getattr(value, "value", None)  # tl.constexpr wraps a Python value
    if inner is not None and type(value).__name__ == "constexpr":
        return _jsonable(inner)
    if hasattr(value, "fn") and hasattr(value, "__qualname__"):
        return f"jit:{value.__qualname__}"
    return str(value)
