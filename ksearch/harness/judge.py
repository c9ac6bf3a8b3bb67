"""The trusted replay: the only place a candidate's kernels produce outputs that are judged.

Started as `python -m ksearch.harness.judge FD DEVICE` (a process of its own, like a worker, so a
kernel that hangs or faults kills only it), the judge never imports the candidate. From the
candidate's source it builds a module of the `@triton.jit` functions alone (`kernel_module`: the
jit definitions, the imports of triton and math, and constant globals; every other statement is
dropped unexecuted, hooks in the jit decorator too), then replays the launch traces the worker
recorded (`ksearch.harness.trace`) on tensors the evaluator lends it: the call's own inputs and
fresh ones, outputs poisoned, scratch allocated here and poisoned unless the trace says it was
filled with a constant. Whatever the candidate's host code computed, hid in hooks, threads, caches
or native code never reaches these buffers.

On the CPU the kernels run in Triton's interpreter, which executes a kernel body as Python; only a
launch that Triton's compiler front end accepts for a real GPU target (`GATE_TARGET`) is
interpreted, so a body the compiler would reject (torch inside a kernel, a tensor passed as a
constexpr) never runs. On a GPU the kernels compile here, into the judge's own cache, and the
timing job times the replay with the harness's timer in this process, which the candidate never
ran in.
"""

from __future__ import annotations

import ast
import hashlib
import linecache
import sys
import time
import types
from pathlib import Path
from typing import Any

from ksearch.harness.trace import (
    LAUNCH_OPTIONS,
    Alloc,
    Choose,
    Copy,
    DescriptorArg,
    DtypeArg,
    Fill,
    JitArg,
    Launch,
    ScalarArg,
    TensorArg,
    Trace,
    TraceError,
    View,
)
from ksearch.harness.worker import describe_error, serve


class GateError(TraceError):
    """A launch that Triton's compiler refuses for GATE_TARGET: the CPU judge will not interpret it."""


ALLOWED_IMPORTS = ("triton", "math")  # and their submodules: what kernel code may name
GATE_TARGET = ("cuda", 90, 32)  # what a kernel must compile for before the CPU interpreter runs it
SCRATCH_POISON = 0xFF  # a NaN in every float width, -1 in every integer width
# What a kernel body may name beyond its own locals, the module's jit functions and constants: Triton's
# code generator evaluates anything else at compile time, in the judge. Builtins Triton handles:
_KERNEL_BUILTINS = {
    "range",
    "min",
    "max",
    "len",
    "int",
    "float",
    "bool",
    "abs",
    "print",
    "isinstance",
    "tuple",
    "list",
    "zip",
    "enumerate",
    "True",
    "False",
    "None",
    "AssertionError",
    "ValueError",
}
_KERNEL_MODULES = ("triton.language", "math")  # and, from `triton` itself, only:
_KERNEL_TRITON = {"triton.cdiv", "triton.next_power_of_2", "triton.jit"}
# Keyword arguments of triton.jit that shape compilation; the rest (launch_metadata, repr) are hooks.
_JIT_KEYWORDS = {"do_not_specialize", "do_not_specialize_on_alignment", "noinline", "debug"}


# ---------------------------------------------------------------- the kernel-only module


def _is_triton_jit(node: ast.expr, names: dict[str, str]) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return _dotted(target, names) == "triton.jit"


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    """`a.b.c` with `a` resolved through the imports kept so far; None for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in names:
        return None
    return ".".join([names[node.id], *reversed(parts)])


def _constant(node: ast.expr | None, names: dict[str, str], consts: set[str]) -> bool:
    """A value safe to evaluate in the judge: literals, arithmetic on them, earlier constants,
    attributes of triton/math (tl.float16, math.pi) and tl.constexpr(...) of those."""
    if node is None or isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_constant(e, names, consts) for e in node.elts)
    if isinstance(node, ast.UnaryOp):
        return _constant(node.operand, names, consts)
    if isinstance(node, ast.BinOp):
        return _constant(node.left, names, consts) and _constant(node.right, names, consts)
    if isinstance(node, ast.Name):
        return node.id in consts or node.id in names
    if isinstance(node, ast.Attribute):
        dotted = _dotted(node, names)
        return dotted is not None and "__" not in dotted
    if isinstance(node, ast.Call):
        return (
            _dotted(node.func, names) in ("triton.language.constexpr", "triton.language.core.constexpr")
            and not node.keywords
            and all(_constant(a, names, consts) for a in node.args)
        )
    return False


def _body_problem(fn: ast.FunctionDef, names: dict[str, str], globals_: set[str]) -> str | None:
    """Why a jit function's body may not be compiled in the judge (None if it may): every name it
    reads is a local, a parameter, a jit function or constant of the module, a Triton-handled
    builtin, or triton.language / math; no dunder anywhere."""
    local = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]}
    local |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("__"):
                return f"line {node.lineno}: .{node.attr}"
            dotted = _dotted(node, names)
            if (
                dotted is not None
                and not dotted.startswith(_KERNEL_MODULES)
                and dotted not in _KERNEL_TRITON
                and not any(dotted.startswith(t + ".") for t in _KERNEL_TRITON)
            ):
                return f"line {node.lineno}: {dotted} (a kernel may use triton.language and math)"
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id.startswith("__"):
                return f"line {node.lineno}: {node.id}"
            if node.id in names:
                dotted = names[node.id]
                if not (dotted.startswith(_KERNEL_MODULES) or dotted == "triton" or dotted in _KERNEL_TRITON):
                    return f"line {node.lineno}: {node.id} ({dotted})"
            elif node.id not in local and node.id not in globals_ and node.id not in _KERNEL_BUILTINS:
                return f"line {node.lineno}: {node.id} is neither Triton, a jit function nor a constant"
        elif isinstance(
            node, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Lambda, ast.ClassDef)
        ):
            return f"line {node.lineno}: {type(node).__name__.lower()} in a kernel"
    return None


def kernel_source(source: str) -> tuple[ast.Module, list[str]]:
    """The jit functions of a candidate with what they may refer to, as a module to execute, and
    what was left out (by name). Never executes anything."""
    tree = ast.parse(source)
    names: dict[str, str] = {}  # local name -> dotted module path (imports kept)
    consts: set[str] = set()
    body: list[ast.stmt] = [ast.ImportFrom(module="__future__", names=[ast.alias("annotations")], level=0)]
    dropped: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            kept = [a for a in stmt.names if a.name.split(".")[0] in ALLOWED_IMPORTS and "__" not in a.name]
            for a in kept:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            if kept:
                body.append(ast.Import(names=kept))
        elif isinstance(stmt, ast.ImportFrom):
            if (
                stmt.level == 0
                and stmt.module
                and stmt.module.split(".")[0] in ALLOWED_IMPORTS
                and "__" not in stmt.module
                and all(a.name != "*" and "__" not in a.name for a in stmt.names)
            ):
                for a in stmt.names:
                    names[a.asname or a.name] = f"{stmt.module}.{a.name}"
                body.append(stmt)
        elif isinstance(stmt, ast.FunctionDef):
            jit = [d for d in stmt.decorator_list if _is_triton_jit(d, names)]
            if not jit:
                continue
            args = stmt.args
            defaults = [*args.defaults, *[d for d in args.kw_defaults if d is not None]]
            if not all(_constant(d, names, consts) for d in defaults):
                dropped.append(f"{stmt.name} (a default value is not a constant)")
                continue
            # annotations stay text (`from __future__ import annotations` above): never evaluated here
            decorator = ast.Call(
                func=ast.Attribute(value=ast.Name("triton", ast.Load()), attr="jit", ctx=ast.Load()),
                args=[],
                keywords=[
                    k
                    for d in jit
                    if isinstance(d, ast.Call)
                    for k in d.keywords
                    if k.arg in _JIT_KEYWORDS and _constant(k.value, names, consts)
                ],
            )
            ast.copy_location(decorator, jit[0])
            stmt.decorator_list = [decorator]
            body.append(stmt)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            target_names = [t.id for t in targets if isinstance(t, ast.Name)]
            if (
                len(target_names) == len(targets)
                and stmt.value is not None
                and _constant(stmt.value, names, consts)
            ):
                consts.update(target_names)
                body.append(stmt)  # an annotation stays text: `from __future__ import annotations` above
            else:
                dropped.extend(target_names)
    jit_names = {f.name for f in body if isinstance(f, ast.FunctionDef)}
    for fn in [f for f in body if isinstance(f, ast.FunctionDef)]:
        why = _body_problem(fn, names, jit_names | consts)
        if why is not None:
            body.remove(fn)
            dropped.append(f"{fn.name} ({why})")
    if "triton" not in names:  # the regenerated decorators name it
        body.insert(1, ast.Import(names=[ast.alias("triton")]))
    module = ast.Module(body=body, type_ignores=[])
    ast.fix_missing_locations(module)
    return module, dropped


def kernel_module(source: str, path: str) -> tuple[types.ModuleType, list[str]]:
    """Execute `kernel_source` as a fresh module. Its jit functions are compiled kernels, or Triton
    interpreter functions in a process started with TRITON_INTERPRET=1 (the interpreter needs
    triton.language itself imported that way). Triton reads each kernel's text from linecache, where
    the candidate's source is put."""
    tree, dropped = kernel_source(source)
    linecache.cache[path] = (len(source), None, source.splitlines(keepends=True), path)
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    module = types.ModuleType(f"ksearch_kernels_{digest}")
    module.__file__ = path
    sys.modules[module.__name__] = module  # Triton resolves a kernel's globals through its module
    exec(compile(tree, path, "exec", dont_inherit=True), module.__dict__)
    return module, dropped


def constexpr_params(fn: Any) -> dict[str, bool]:
    """A jit function's parameters, each with whether it is a constexpr (compiled or interpreted)."""
    import inspect

    signature = inspect.signature(getattr(fn, "fn", fn))
    return {name: "constexpr" in str(p.annotation) for name, p in signature.parameters.items()}


# ---------------------------------------------------------------- replaying a trace


def _dtype(name: str) -> Any:
    import torch

    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise TraceError(f"not a torch dtype: {name!r}")
    return dtype


def dtype_size(name: str) -> int:
    return _dtype(name).itemsize


def _as_view(base: Any, view: View) -> Any:
    """`view` of the tensor `base` (a job tensor or a scratch byte buffer), sharing its memory."""
    import torch

    dtype = _dtype(view.dtype)
    start = base.storage_offset() * base.element_size() + view.offset
    if start % dtype.itemsize:
        raise TraceError(f"a {view.dtype} view at byte {view.offset} of buffer {view.buffer} is misaligned")
    out = torch.empty(0, dtype=dtype, device=base.device)
    return out.set_(base.untyped_storage(), start // dtype.itemsize, view.shape, view.stride)


class Replayer:
    """Replays traces with the kernels of one candidate."""

    def __init__(self, source: str, path: str, device: str):
        """`device`: "cuda" (compile and run), "cpu" (run in the interpreter: a process started with
        TRITON_INTERPRET=1) or "gate" (compile each launch for GATE_TARGET, run nothing: what must
        succeed before the CPU judge may interpret the same launches)."""
        self.device = device
        self.path = path
        self.module, self.dropped = kernel_module(source, path)
        self.gated: set[str] = set()  # specialization keys that compiled for the gate target
        self.choices: dict[tuple[str, int], int] = {}  # (workload, step) -> autotune alternative

    def kernel(self, name: str) -> Any:
        """The jit function `name` of the candidate (TraceError if there is none)."""
        fn = self.module.__dict__.get(name)
        if fn is None or not hasattr(fn, "run") or not hasattr(fn, "fn"):
            extra = f" (left out: {', '.join(self.dropped)})" if self.dropped else ""
            raise TraceError(
                f"{name} is not a @triton.jit function defined at the top level of the candidate{extra}"
            )
        return fn

    def plan(self, trace: Trace, job: list[Any], workload: str) -> list[tuple]:
        """The trace as ready-to-run actions on `job` and fresh scratch; built once, run many times."""
        import torch

        buffers: list[Any] = list(job)
        actions: list[tuple] = []
        for index, step in enumerate(trace.steps):
            if isinstance(step, Alloc):
                raw = torch.empty(
                    step.nbytes, dtype=torch.uint8, device="cuda" if self.device == "cuda" else "cpu"
                )
                buffers.append(raw)
                actions.append(("alloc", raw, step.fill, _dtype(step.dtype)))
            elif isinstance(step, Fill):
                actions.append(("fill", _as_view(buffers[step.dst.buffer], step.dst), step.value))
            elif isinstance(step, Copy):
                dst, src = (
                    _as_view(buffers[step.dst.buffer], step.dst),
                    _as_view(buffers[step.src.buffer], step.src),
                )
                try:
                    torch.broadcast_shapes(src.shape, dst.shape)
                except RuntimeError as e:
                    raise TraceError(f"a copy from {tuple(src.shape)} into {tuple(dst.shape)}: {e}") from e
                actions.append(("copy", dst, src))
            else:
                launch = (
                    step.alternatives[self.choices.get((workload, index), 0)]
                    if isinstance(step, Choose)
                    else step
                )
                actions.append(("launch", *self._launch(launch, buffers)))
        return actions

    def _launch(self, launch: Launch, buffers: list[Any]) -> tuple[Any, tuple, dict, str]:
        import triton.language as tl

        fn = self.kernel(launch.kernel)
        params = constexpr_params(fn)
        kwargs: dict[str, Any] = {}
        for name, arg in launch.args.items():
            if name not in params:
                raise TraceError(f"{launch.kernel} has no parameter {name}")
            if isinstance(arg, TensorArg):
                if params[name]:
                    raise TraceError(f"{launch.kernel}: a tensor passed as the constexpr {name}")
                kwargs[name] = _as_view(buffers[arg.view.buffer], arg.view)
            elif isinstance(arg, DescriptorArg):
                from triton.tools.tensor_descriptor import TensorDescriptor

                kwargs[name] = TensorDescriptor(
                    _as_view(buffers[arg.view.buffer], arg.view),
                    list(arg.shape),
                    list(arg.strides),
                    list(arg.block_shape),
                    padding=arg.padding,
                )
            elif isinstance(arg, ScalarArg):
                kwargs[name] = arg.value
            elif isinstance(arg, DtypeArg):
                try:
                    kwargs[name] = tl.dtype(arg.tl_dtype)
                except (AssertionError, ValueError, TypeError) as e:
                    raise TraceError(
                        f"{launch.kernel}: {arg.tl_dtype!r} is not a triton.language dtype"
                    ) from e
            elif isinstance(arg, JitArg):
                kwargs[name] = self.kernel(arg.jit)
        kwargs.update({k: v for k, v in launch.options.items() if v is not None})
        return fn, launch.grid, kwargs, launch.kernel

    def _gate(self, fn: Any, grid: tuple, kwargs: dict, name: str) -> None:
        """Put this launch through Triton's front end for a real GPU target: the AST-to-Triton-IR step
        of `triton.compile`, where everything that is not Triton (Python calls, torch, a tensor as a
        constexpr) is refused. Raises GateError where it fails. (The later lowering stages add
        nothing to what may run in the interpreter, and cost 40x more.)"""
        from triton._C.libtriton import ir
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        from triton.compiler.compiler import make_backend

        from ksearch.compile.capture import LaunchRecorder

        target = GPUTarget(*GATE_TARGET)
        backend = make_backend(target)
        recorder = LaunchRecorder(backend)
        # Another vendor's launch options (AMD's waves_per_eu on this CUDA gate) tune code generation,
        # which the front end does not reach; this compiler would refuse them by name.
        known = set(backend.parse_options({}).__dict__)
        recorder.record(
            fn, (), grid, {k: v for k, v in kwargs.items() if k in known or k not in LAUNCH_OPTIONS}
        )
        spec = recorder.specializations[0]
        if spec.key in self.gated:
            return
        try:
            source = ASTSource(spec.fn, spec.signature, spec.constexprs, spec.attrs)
            options = backend.parse_options(dict(spec.options.__dict__))
            context = ir.context()
            ir.load_dialects(context)
            backend.load_dialects(context)
            args = (options, backend.get_codegen_implementation(options), backend.get_module_map(), context)
            try:
                module = source.make_ir(target, *args)
            except TypeError:  # Triton 3.6's make_ir takes no target
                module = source.make_ir(*args)
            if not module.verify():
                raise GateError(f"{name}: Triton IR that does not verify")
        except GateError:
            raise
        except Exception as exc:  # noqa: BLE001  what the compiler refuses, the interpreter must not run
            text = str(exc).strip()
            raise GateError(
                f"{name} does not compile for sm_{GATE_TARGET[1]} ({type(exc).__name__}: "
                f"{text.splitlines()[-1] if text else exc}), so it is not run in the interpreter"
            ) from exc
        self.gated.add(spec.key)

    def run(self, actions: list[tuple], poison_scratch: bool = True) -> None:
        """Run a plan (outputs are poisoned by the caller); scratch of unknown content is poisoned
        unless `poison_scratch` is off (timed replays, whose first run already poisoned it)."""
        for action in actions:
            kind = action[0]
            if kind == "alloc":
                _, raw, fill, dtype = action
                if fill is None:
                    if poison_scratch:
                        raw.fill_(SCRATCH_POISON)
                else:
                    raw[: raw.numel() // dtype.itemsize * dtype.itemsize].view(dtype).fill_(fill)
            elif kind == "fill":
                action[1].fill_(action[2])
            elif kind == "copy":
                action[1].copy_(action[2])
            else:
                _, fn, grid, kwargs, name = action
                if self.device == "gate":
                    self._gate(fn, grid, kwargs, name)
                else:
                    fn[grid](**kwargs)


# ---------------------------------------------------------------- the judge process


class _Judge:
    def __init__(self, job: dict, source: str):
        self.device = job["device"]
        self.path, self.source = job["candidate"], source
        self.replayer = Replayer(source, self.path, self.device)

    def replay(self, job: dict, buffers: list) -> dict:
        """Each replay: poison its outputs, run its trace on its tensors."""
        import torch

        from ksearch.harness.poison import poison

        results = []
        for spec in job["replays"]:
            result: dict[str, Any] = {"id": spec["id"]}
            t0 = time.perf_counter()
            try:
                trace = Trace.model_validate(spec["trace"])
                if self.device == "gate":  # memory to take addresses from; nothing runs
                    tensors = [torch.empty(n, dtype=torch.uint8) for n in spec["sizes"]]
                else:
                    tensors = [buffers[i] for i in spec["args"]]
                    for out in tensors[spec["n_inputs"] :]:
                        poison(out)
                    self._autotune(trace, tensors, spec)
                self.replayer.run(self.replayer.plan(trace, tensors, spec["workload"]))
                if self.device == "cuda":
                    torch.cuda.synchronize()
            except GateError as exc:
                result["compile_error"] = str(exc)
            except TraceError as exc:
                result["trace_error"] = str(exc)
            except BaseException as exc:  # noqa: BLE001  a kernel's fault: reported, the judge goes on
                result["error"] = describe_error(exc, self.path)
            result["seconds"] = time.perf_counter() - t0
            results.append(result)
        return {"replays": results}

    def _autotune(self, trace: Trace, tensors: list, spec: dict) -> None:
        """On a GPU, pick each autotuned launch's config by timing the whole call with each in turn
        (the first config elsewhere); once per workload, so every replay of it uses the same."""
        if self.device != "cuda":
            return
        from ksearch.harness.timing import time_gpu

        for index, step in enumerate(trace.steps):
            key = (spec["workload"], index)
            if not isinstance(step, Choose) or key in self.replayer.choices or len(step.alternatives) < 2:
                continue
            medians = []
            for alt in range(len(step.alternatives)):
                self.replayer.choices[key] = alt
                actions = self.replayer.plan(trace, tensors, spec["workload"])

                def run_alternative(i: int, actions: list[tuple] = actions) -> None:
                    self.replayer.run(actions, poison_scratch=False)

                timing = time_gpu(
                    run_alternative,
                    1,
                    device="cuda",
                    budget_s=0.2,
                    rel_ci=0.05,
                    max_reps=50,
                )
                medians.append(timing.median_us)
            self.replayer.choices[key] = min(range(len(medians)), key=medians.__getitem__)

    def bench(self, job: dict, buffers: list) -> dict:
        """Time each workload's trace on rotating input sets, outputs re-poisoned before every sample
        (outside the timed events), then run each set once more for the evaluator to re-verify."""
        import torch

        from ksearch.harness.poison import poison
        from ksearch.harness.timing import time_gpu

        results = []
        for spec in job["bench"]:
            result: dict[str, Any] = {"workload": spec["workload"]}
            try:
                trace = Trace.model_validate(spec["trace"])
                sets = [[buffers[i] for i in args] for args in spec["sets"]]
                outs = [s[spec["n_inputs"] :] for s in sets]
                plans = [self.replayer.plan(trace, s, spec["workload"]) for s in sets]

                scratch = [a[1] for plan in plans for a in plan if a[0] == "alloc" and a[2] is None]

                def repoison(i: int, outs=outs, scratch=scratch) -> None:
                    # Set i's outputs and every scratch buffer: no timed call finds an earlier one's
                    # work. (The arena's other bytes are checked untouched after the job.)
                    for o in outs[i]:
                        poison(o)
                    for raw in scratch:
                        raw.fill_(SCRATCH_POISON)

                def run_set(i: int, plans: list[list[tuple]] = plans) -> None:
                    self.replayer.run(plans[i], poison_scratch=False)

                t0 = time.perf_counter()
                timing = time_gpu(
                    run_set,
                    len(sets),
                    device="cuda",
                    budget_s=spec["budget_s"],
                    rel_ci=spec["rel_ci"],
                    before=repoison,
                )
                result["timed_s"] = time.perf_counter() - t0
                for i, plan in enumerate(plans):
                    repoison(i)
                    self.replayer.run(plan)
                torch.cuda.synchronize()
                result["timing"] = timing.model_dump(mode="json")
                result["choices"] = {
                    str(step): alt
                    for (wl, step), alt in self.replayer.choices.items()
                    if wl == spec["workload"]
                }  # the autotune configs timed, for ncu
            except TraceError as exc:
                result["trace_error"] = str(exc)
            except BaseException as exc:  # noqa: BLE001
                result["error"] = describe_error(exc, self.path)
            results.append(result)
        return {"bench": results}


def main() -> None:
    from ksearch.harness.arena import open_job

    judges: list[_Judge] = []  # the candidate being judged

    def handle(job: dict) -> dict:
        source = Path(job["candidate"]).read_text()
        # One candidate per judge; the gate, which runs nothing, is kept for the next candidates.
        if not judges or (judges[0].path, judges[0].source) != (job["candidate"], source):
            judges[:] = [_Judge(job, source)]
        try:
            buffers, outside = open_job(job["buffers"]) if "buffers" in job else ([], [])
            for span in outside:
                span.fill_(SCRATCH_POISON)
            reply = judges[0].bench(job, buffers) if job.get("bench") else judges[0].replay(job, buffers)
            # min() of the bytes: no temporary as large as the arena's tail
            reply["stray_writes"] = sum(int(span.min()) != SCRATCH_POISON for span in outside if span.numel())
        except TraceError as exc:
            return {"trace_error": str(exc)}
        if "tensors" in job.get("buffers", {}):
            reply["buffers"] = buffers  # by value on the CPU
        return reply

    serve(handle)


if __name__ == "__main__":
    main()
