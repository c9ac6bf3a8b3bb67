"""Static anti-hack checks on a candidate's Python source, by walking its AST.

Public API:
    static_checks(source, path, op_family, *, entry="run", outputs=None) -> list[Verdict]
    static_checks_for_task(source, path, task) -> list[Verdict]     op family, entry and outputs from a Task
    failing(verdicts) -> list[Verdict]                              the verdicts that reject (ok False, severity fail)
    STATIC_CHECKS                                                    check name -> the failure class it reports

A candidate (DESIGN.md, "Candidate") is a module defining `run(*inputs, *outputs) -> None` that writes
its outputs in place; torch is allowed for views and allocation only, and kernel code lives in
`@triton.jit` (or TileLang) functions. These checks reject, before anything runs, the reward hacks
that can be seen in the source: forbidden modules (threads, processes, files, timers, ctypes, ...),
eval/exec and computed attribute names, stack-frame and garbage-collector access, patched timers or
torch/triton globals, state kept across calls (data_ptr keys, module-level caches, memoization),
side streams and CUDA graphs, the reference or a vendor op doing the main computation, rebound
outputs and tensor-subclass tricks.

Every check appears in the result: one passing verdict per check that found nothing, and one
failing verdict (severity "fail", a catalog failure class, detail "line N: ...") per finding;
failing verdicts come in source-line order, so the first one is the earliest finding. The
checks are deliberately conservative about what honest Triton code does (views, allocation,
`triton.cdiv`, `tl.*` inside kernels, an `if __name__ == "__main__":` self-test block, which never
runs under the harness), and they are one layer: state hidden where no syntax shows it (closures,
iterators, objects) and wrong numerics are the dynamic checks' job.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ksearch.evidence.catalog import FailureClass
from ksearch.evidence.packet import Verdict

if TYPE_CHECKING:
    from ksearch.task import Task

F = FailureClass

# ---- what each check reports ------------------------------------------------------------------

STATIC_CHECKS: dict[str, FailureClass] = {
    "static:parse": F.IMPORT_ERROR,
    "static:entry": F.ENTRY_SIGNATURE,
    "static:forbidden_import": F.REWARD_HACK_FORBIDDEN_IMPORT,
    "static:frame_access": F.REWARD_HACK_FRAME_ACCESS,
    "static:forbidden_call": F.REWARD_HACK_FORBIDDEN_CALL,
    "static:timing_tamper": F.REWARD_HACK_TIMING_TAMPER,
    "static:global_mutation": F.REWARD_HACK_GLOBAL_MUTATION,
    "static:caching": F.REWARD_HACK_CACHING,
    "static:stream": F.REWARD_HACK_STREAM,
    "static:thread": F.REWARD_HACK_THREAD,
    "static:reference_call": F.REWARD_HACK_REFERENCE_CALL,
    "static:output_rebind": F.REWARD_HACK_OUTPUT_REBIND,
    "static:lazy_output": F.REWARD_HACK_LAZY_OUTPUT,
}
_CHECK_OF: dict[FailureClass, str] = {cls: name for name, cls in STATIC_CHECKS.items()}

# ---- modules ----------------------------------------------------------------------------------

_THREAD_MODULES = frozenset({"threading", "_thread", "multiprocessing", "concurrent", "asyncio", "queue", "sched"})
_IMPORT_FORBIDDEN = frozenset({
    # threads and processes
    *_THREAD_MODULES, "subprocess", "_posixsubprocess", "pty", "signal", "atexit", "faulthandler",
    # the interpreter, the OS and native code
    "os", "posix", "nt", "sys", "ctypes", "_ctypes", "cffi", "importlib", "builtins", "__builtin__",
    "runpy", "code", "codeop", "zipimport", "pkgutil", "site", "resource", "mmap", "fcntl",
    "weakref", "_weakref", "tracemalloc",
    # serialization (arbitrary code on load)
    "pickle", "_pickle", "cPickle", "marshal", "shelve", "copyreg", "dill", "cloudpickle", "joblib",
    # files and the network
    "shutil", "pathlib", "io", "_io", "tempfile", "glob", "fileinput", "zipfile", "tarfile", "gzip",
    "bz2", "lzma", "sqlite3", "dbm", "socket", "ssl", "select", "selectors", "urllib", "http",
    "requests", "ftplib", "smtplib",
    # the harness's clock
    "time", "timeit",
    # other GPU runtimes: raw streams, raw launches, vendor kernels
    "cupy", "pycuda", "cuda", "numba", "cuda_python",
})
_FRAME_MODULES = frozenset({"gc", "inspect", "traceback", "linecache", "__main__", "dis"})
_REFERENCE_MODULES = frozenset({"ksearch", "configs", "conftest", "reference"})
# Modules that allowed packages re-export as attributes (`torch.os`, `torch.sys`): reaching one of
# these through an attribute chain is as bad as importing it. Curated: names such as `select`,
# `cuda` or `code` are also ordinary attributes.
_REACHABLE_MODULES = frozenset({
    "os", "posix", "sys", "subprocess", "ctypes", "builtins", "importlib", "gc", "inspect", "threading",
    "_thread", "multiprocessing", "pickle", "marshal", "shutil", "socket", "time", "traceback", "atexit",
    "tempfile", "pathlib", "signal", "linecache", "weakref",
})
# Submodules of allowed packages that are themselves forbidden (checked as dotted prefixes).
_DOTTED_FORBIDDEN: dict[str, FailureClass] = {
    "torch.multiprocessing": F.REWARD_HACK_FORBIDDEN_IMPORT,
    "torch.utils.cpp_extension": F.REWARD_HACK_FORBIDDEN_IMPORT,
    "torch.distributed": F.REWARD_HACK_FORBIDDEN_IMPORT,
    "torch.hub": F.REWARD_HACK_FORBIDDEN_IMPORT,
    "torch.utils.data": F.REWARD_HACK_FORBIDDEN_IMPORT,
    "torch.cuda.nvrtc": F.REWARD_HACK_FORBIDDEN_IMPORT,
    "torch.library": F.REWARD_HACK_GLOBAL_MUTATION,
    "torch.utils._python_dispatch": F.REWARD_HACK_LAZY_OUTPUT,
    "torch.overrides": F.REWARD_HACK_LAZY_OUTPUT,
    "torch.futures": F.REWARD_HACK_THREAD,
    "torch.jit.fork": F.REWARD_HACK_THREAD,
}


def _module_class(root: str) -> FailureClass | None:
    if root in _FRAME_MODULES:
        return F.REWARD_HACK_FRAME_ACCESS
    if root in _IMPORT_FORBIDDEN:
        return F.REWARD_HACK_FORBIDDEN_IMPORT
    if root in _REFERENCE_MODULES:
        return F.REWARD_HACK_REFERENCE_CALL
    return None


# ---- names ------------------------------------------------------------------------------------

# Builtins a candidate never needs; any mention (call or value) is a finding.
_FORBIDDEN_BUILTINS = frozenset({
    "eval", "exec", "compile", "open", "globals", "locals", "vars", "breakpoint", "exit", "quit",
    "setattr", "delattr",
})
_DYNAMIC_IMPORTS = frozenset({"__import__", "importlib.import_module", "importlib.__import__",
                              "importlib.util.spec_from_file_location", "importlib.util.module_from_spec"})
_FRAME_ATTRS = frozenset({
    "__globals__", "__code__", "__closure__", "__subclasses__", "__builtins__", "__dict__", "__mro__",
    "__bases__", "__base__", "__loader__", "__spec__", "__self__", "__func__", "__wrapped__",
    "__traceback__", "f_back", "f_locals", "f_globals", "f_builtins", "f_code", "tb_frame", "tb_next", "gi_frame",
    "gi_code", "cr_frame", "ag_frame", "co_code", "co_consts", "_getframe", "currentframe",
    "get_objects", "get_referrers", "get_referents",
})
_FRAME_NAMES = frozenset({"__builtins__", "__loader__", "__spec__"})
_FORBIDDEN_DUNDERS = frozenset({
    "__setattr__", "__delattr__", "__getattribute__", "__getattr__", "__import__", "__reduce__",
    "__reduce_ex__", "__setstate__", "__init_subclass__", "__set_name__", "__class_getitem__",
})
_FORBIDDEN_CALL_QUALS = frozenset({
    "operator.attrgetter", "operator.methodcaller", "functools.partial.__call__",
    "torch.load", "torch.save", "torch.from_file", "numpy.load", "numpy.save", "numpy.savez",
    "numpy.fromfile", "numpy.loadtxt", "numpy.savetxt", "numpy.genfromtxt", "numpy.memmap",
})
_FILE_METHODS = frozenset({"tofile", "from_file"})
_EXIT_EXCEPTIONS = frozenset({"SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"})

_TIMER_NAMES = frozenset({
    "synchronize", "perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "monotonic_ns",
    "process_time", "process_time_ns", "thread_time", "do_bench", "do_bench_cudagraph", "Event",
    "elapsed_time", "record", "Timer", "timeit", "default_timer", "benchmark", "Benchmarker",
    "get_benchmarker", "wait", "query", "profiler", "cuda_sync", "sleep",
})
_STREAM_NAMES = frozenset({
    "CUDAGraph", "graph", "graphs", "make_graphed_callables", "Event", "ExternalStream", "_Graph",
    "graph_pool_handle",
})
_STREAM_METHODS = frozenset({"wait_event", "record_event", "capture_begin", "capture_end", "replay"})
_GLOBAL_STATE_CALLS = frozenset({
    "torch.manual_seed", "torch.seed", "torch.use_deterministic_algorithms", "torch.set_flush_denormal",
    "torch.cuda.manual_seed", "torch.cuda.manual_seed_all", "torch.cuda.set_rng_state",
    "torch.cuda.set_rng_state_all", "torch.cuda.set_sync_debug_mode",
    "torch.cuda.set_per_process_memory_fraction", "torch.cuda.memory.set_per_process_memory_fraction",
})
_LAZY_QUALS = frozenset({"torch.Tensor._make_subclass", "torch.Tensor._make_wrapper_subclass",
                         "torch.Tensor.as_subclass", "torch.Tensor.__torch_function__",
                         "torch.Tensor.__torch_dispatch__"})
_LAZY_METHODS = frozenset({"as_subclass", "_make_subclass", "_make_wrapper_subclass", "register_hook",
                           "register_post_accumulate_grad_hook"})
_LAZY_DEFS = frozenset({"__torch_function__", "__torch_dispatch__"})
_REBIND_METHODS = frozenset({"set_", "resize_", "resize_as_", "as_strided_", "swap_tensors"})
_CACHE_QUALS = frozenset({"functools.lru_cache", "functools.cache", "functools.cached_property"})

_CONTAINER_CALLS = frozenset({
    "dict", "list", "set", "bytearray", "collections.defaultdict", "collections.OrderedDict",
    "collections.Counter", "collections.deque", "collections.ChainMap",
})
_MUTATORS = frozenset({
    "append", "extend", "insert", "pop", "popitem", "remove", "clear", "update", "setdefault", "add",
    "discard", "appendleft", "extendleft", "popleft", "__setitem__", "__delitem__", "__iadd__",
    "difference_update", "intersection_update", "symmetric_difference_update", "sort", "reverse",
})
# An output rebound to a view of itself still writes the caller's storage.
_VIEW_METHODS = frozenset({
    "view", "reshape", "view_as", "reshape_as", "flatten", "unflatten", "unsqueeze", "squeeze", "t",
    "transpose", "permute", "narrow", "select", "contiguous", "as_strided", "movedim", "unfold",
})

# ---- the main computation, per op family ------------------------------------------------------

_GEMM = frozenset({
    "matmul", "rmatmul", "imatmul", "mm", "bmm", "addmm", "addbmm", "baddbmm", "addmv", "mv", "dot",
    "vdot", "inner", "outer", "ger", "einsum", "tensordot", "linear", "bilinear", "chain_matmul",
    "multi_dot", "scaled_mm", "int_mm", "grouped_mm", "kron", "addr",
})
_SOFTMAX = frozenset({"softmax", "log_softmax", "softmin", "logsumexp", "exp", "exp2", "expm1", "sum", "nansum"})
_NORM = frozenset({
    "rms_norm", "layer_norm", "group_norm", "batch_norm", "instance_norm", "local_response_norm",
    "normalize", "norm", "vector_norm", "matrix_norm", "renorm", "rsqrt", "sqrt", "pow", "float_power",
    "square", "mean", "nanmean", "sum", "nansum", "var", "std", "var_mean", "std_mean", "rmsnorm",
    "layernorm", "add", "addcmul", "addcdiv", "einsum",
})
_ELEMENTWISE = frozenset({
    "silu", "sigmoid", "swiglu", "gelu", "tanh", "exp", "exp2", "expm1", "expit", "logsigmoid",
    "softplus", "mish", "hardswish", "hardsigmoid", "relu", "glu", "mul", "multiply",
})
_ROUTING = frozenset({"topk", "sort", "argsort", "msort", "kthvalue", "argmax", "softmax", "log_softmax",
                      "sigmoid", "exp", "sum"})
_ATTENTION = frozenset({"softmax", "log_softmax", "exp", "exp2", "sum", "scaled_dot_product_attention",
                        "logsumexp"})
_FAMILY_FUNCS: dict[str, frozenset[str]] = {
    "gemm": _GEMM,
    "attention": _GEMM | _ATTENTION,
    "moe": _GEMM | _ROUTING,
    "norm": _GEMM | _NORM,
    "reduction": _GEMM | _SOFTMAX,
    "softmax": _GEMM | _SOFTMAX,
    "elementwise": _GEMM | _ELEMENTWISE,
    "activation": _GEMM | _ELEMENTWISE,
}
# Methods flagged on receivers that cannot be resolved (tensors): the family set, less the generic
# names other Python objects also have (`set.add`, `x.mul` on an int-like helper).
_NOT_METHODS = frozenset({"add", "mul", "multiply", "addr", "einsum_path"})
# A bare reference `f = x.softmax` (not a call) is flagged only for names no other object has.
_GENERIC = frozenset({
    "sum", "nansum", "mean", "nanmean", "exp", "exp2", "norm", "pow", "sqrt", "rsqrt", "square", "var",
    "std", "dot", "mm", "mv", "sort", "inner", "outer", "linear", "tanh", "relu", "gelu", "kron", "add",
    "mul", "multiply", "ger", "addr",
})
# Compute reachable from these roots is a vendor op; math/triton/tl are not.
_COMPUTE_ROOTS = frozenset({"torch", "numpy", "scipy", "cupy", "jax", "operator", "xformers", "flash_attn",
                            "apex", "transformer_engine", "vllm", "sgl_kernel", "flashinfer", "liger_kernel"})
_ALWAYS_REFERENCE_PREFIXES = (
    "torch.nn.", "torch.compile", "torch._dynamo", "torch._inductor", "torch.jit", "torch.export",
    "torch.fx", "torch.func", "torch.vmap", "torch.distributions", "torch.ops", "torch._C._nn",
    "torch._C._VariableFunctions", "torch.special.softmax", "torch.special.log_softmax",
    "xformers", "flash_attn", "apex", "transformer_engine", "vllm", "sgl_kernel", "flashinfer",
    "liger_kernel", "triton.ops",
)
_KERNEL_DECORATORS = frozenset({"jit", "prim_func", "macro", "autotune", "heuristics"})


def _norm_name(name: str) -> str:
    return name.strip("_").lower()


def _is_str(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _target_names(target: ast.AST) -> Iterator[ast.Name]:
    if isinstance(target, ast.Name):
        yield target
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _target_names(elt)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    test = stmt.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


class _Analyzer:
    """One walk over one module; all state lives on the instance (nothing at module level)."""

    def __init__(self, tree: ast.Module, op_family: str, entry: str, outputs: Sequence[str] | None,
                 modules: bool = False) -> None:
        self.tree = tree
        self.modules = modules
        self.family_funcs = _FAMILY_FUNCS.get(op_family, _GEMM)
        self.family_methods = self.family_funcs - _NOT_METHODS
        self.entry = entry
        self.outputs = outputs
        self.findings: dict[tuple[int, FailureClass, str], Verdict] = {}
        self.notes: list[Verdict] = []
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        self.aliases: dict[str, set[str]] = {}
        self.star_roots: list[str] = []
        self.module_defs: dict[str, ast.AST] = {}
        self.module_state: set[str] = set()  # module-level names bound to containers or objects
        self.main_guards: list[ast.If] = []
        self._build_aliases()
        self._index_module()
        self.kernel_defs = {n for n, d in self.module_defs.items() if self._is_kernel_def(d)}
        self.live_defs = self._reachable_defs()

    # ---- findings -----------------------------------------------------------------------------

    def add(self, node: ast.AST, cls: FailureClass, message: str) -> None:
        line = getattr(node, "lineno", 0)
        key = (line, cls, message)
        if key not in self.findings:
            self.findings[key] = Verdict(
                check=_CHECK_OF[cls], ok=False, detail=f"line {line}: {message}", severity="fail",
                failure_class=cls,
            )

    # ---- module index and name resolution ------------------------------------------------------

    def _module_body(self) -> list[ast.stmt]:
        body = []
        for stmt in self.tree.body:
            if _is_main_guard(stmt) and not self._name_is_rebound():
                self.main_guards.append(stmt)  # type: ignore[arg-type]
                body.extend(stmt.orelse)  # type: ignore[attr-defined]
                continue
            body.append(stmt)
        return body

    def _name_is_rebound(self) -> bool:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and node.id == "__name__" and not isinstance(node.ctx, ast.Load):
                return True
            if isinstance(node, (ast.Global, ast.Nonlocal)) and "__name__" in node.names:
                return True
        return False

    def _index_module(self) -> None:
        self.body = self._module_body()
        for stmt in self.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.module_defs[stmt.name] = stmt
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                if stmt.value is not None and (self._is_container(stmt.value) or isinstance(stmt.value, ast.Call)):
                    for target in targets:
                        for name in _target_names(target):
                            self.module_state.add(name.id)

    def _is_container(self, value: ast.AST) -> bool:
        if isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)):
            return True
        if isinstance(value, ast.Call):
            if isinstance(value.func, ast.Name) and value.func.id in {"dict", "list", "set", "bytearray"}:
                return True
            return any(q in _CONTAINER_CALLS or q.startswith("weakref.") for q in self.resolve(value.func))
        return False

    def _build_aliases(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases.setdefault(alias.asname, set()).add(alias.name)
                    else:
                        root = alias.name.split(".")[0]
                        self.aliases.setdefault(root, set()).add(root)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    if alias.name == "*":
                        self.star_roots.append(node.module)
                    else:
                        self.aliases.setdefault(alias.asname or alias.name, set()).add(f"{node.module}.{alias.name}")
        # Plain assignments of resolvable values (`mm = torch.matmul`, `T = torch`), to a fixed point.
        for _ in range(8):
            changed = False
            for node in ast.walk(self.tree):
                pairs: list[tuple[ast.AST, ast.AST]] = []
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(node.value, (ast.Tuple, ast.List)) \
                                and len(target.elts) == len(node.value.elts):
                            pairs.extend(zip(target.elts, node.value.elts))
                        else:
                            pairs.append((target, node.value))
                elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                    pairs.append((node.target, node.value))
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    args = node.args
                    positional = args.posonlyargs + args.args
                    pairs.extend(zip(positional[len(positional) - len(args.defaults):], args.defaults))
                    pairs.extend((a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None)
                elif isinstance(node, (ast.With, ast.AsyncWith)):
                    pairs.extend((item.optional_vars, item.context_expr) for item in node.items if item.optional_vars)
                for target, value in pairs:
                    name = target.id if isinstance(target, ast.Name) else target.arg if isinstance(target, ast.arg) else None
                    if name is None:
                        continue
                    quals = self.resolve(value)
                    if quals and not quals <= self.aliases.get(name, set()):
                        self.aliases.setdefault(name, set()).update(quals)
                        changed = True
            if not changed:
                break

    def resolve(self, node: ast.AST, depth: int = 0) -> set[str]:
        """Fully qualified names an expression may denote (`t.matmul` -> {'torch.matmul'})."""
        if depth > 40:
            return set()
        if isinstance(node, ast.Name):
            found = self.aliases.get(node.id)
            if found:
                return set(found)
            if node.id == "__import__":
                return {"__import__"}
            return {f"{root}.{node.id}" for root in self.star_roots}
        if isinstance(node, ast.Attribute):
            return {f"{q}.{node.attr}" for q in self.resolve(node.value, depth + 1)}
        if isinstance(node, ast.Call):
            literal = self._getattr_literal(node)
            if literal is not None:
                return {f"{q}.{literal[1]}" for q in self.resolve(literal[0], depth + 1)}
            if node.args and _is_str(node.args[0]) and self.resolve(node.func, depth + 1) & _DYNAMIC_IMPORTS:
                return {node.args[0].value}  # type: ignore[attr-defined]
            return set()
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "__dict__" and _is_str(node.slice):
            return {f"{q}.{node.slice.value}" for q in self.resolve(node.value.value, depth + 1)}  # type: ignore[attr-defined]
        return set()

    @staticmethod
    def _getattr_literal(node: ast.Call) -> tuple[ast.AST, str] | None:
        if isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2 \
                and _is_str(node.args[1]):
            return node.args[0], node.args[1].value  # type: ignore[attr-defined]
        return None

    # ---- kernels and reachability --------------------------------------------------------------

    def _is_kernel_def(self, node: ast.AST) -> bool:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return False
        for deco in node.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            for q in self.resolve(target):
                parts = q.split(".")
                if parts[0] in {"triton", "tilelang"} and parts[-1] in _KERNEL_DECORATORS:
                    if parts[-1] in {"jit", "prim_func", "macro"} or self._has_inner_jit(node):
                        return True
        return False

    def _has_inner_jit(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        for deco in node.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if any(q.split(".")[-1] in {"jit", "prim_func"} for q in self.resolve(target)):
                return True
        return False

    def _module_level_nodes(self) -> Iterator[ast.AST]:
        """Code that runs at import: statements, decorators, defaults, class bodies (not function bodies)."""
        for stmt in self.body:
            yield from self._import_time_parts(stmt)

    def _import_time_parts(self, stmt: ast.stmt) -> Iterator[ast.AST]:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from stmt.decorator_list
            yield from stmt.args.defaults
            yield from (d for d in stmt.args.kw_defaults if d is not None)
        elif isinstance(stmt, ast.ClassDef):
            yield from stmt.decorator_list
            yield from stmt.bases
            yield from stmt.keywords
            for inner in stmt.body:
                yield from self._import_time_parts(inner)
        else:
            yield stmt

    def _reachable_defs(self) -> set[str]:
        """Module-level functions and classes reachable by name from `run` or from import-time code."""
        live: set[str] = set()
        work: list[str] = []

        def visit(nodes: Iterator[ast.AST] | list[ast.AST]) -> None:
            for root in nodes:
                for node in ast.walk(root):
                    if isinstance(node, ast.Name) and node.id in self.module_defs and node.id not in live:
                        live.add(node.id)
                        work.append(node.id)

        if self.entry in self.module_defs:
            live.add(self.entry)
            work.append(self.entry)
        visit(self._module_level_nodes())
        while work:
            visit([self.module_defs[work.pop()]])
        return live

    # ---- the walk --------------------------------------------------------------------------------

    def run(self) -> None:
        self._check_entry()
        for stmt in self.body:
            self._walk_stmt_top(stmt)
        for guard in self.main_guards:
            self.notes.append(Verdict(
                check="static:main_block", ok=True, severity="info",
                detail=f"line {guard.lineno}: skipped the `if __name__ == \"__main__\":` block (never runs on import)",
            ))
        entry_def = self.module_defs.get(self.entry)
        if isinstance(entry_def, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._check_output_rebind(entry_def)

    def _walk_stmt_top(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for part in self._import_time_parts(stmt):
                self._walk(part, live=True, kernel=False, in_function=False)
            self._walk_def(stmt, live=stmt.name in self.live_defs, kernel=stmt.name in self.kernel_defs)
        elif isinstance(stmt, ast.ClassDef):
            self._check_class(stmt)
            for part in stmt.decorator_list + stmt.bases + [k.value for k in stmt.keywords]:
                self._walk(part, live=True, kernel=False, in_function=False)
            for inner in stmt.body:
                if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for part in self._import_time_parts(inner):
                        self._walk(part, live=True, kernel=False, in_function=False)
                    self._walk_def(inner, live=stmt.name in self.live_defs, kernel=False)
                else:
                    self._walk(inner, live=True, kernel=False, in_function=False)
        else:
            self._walk(stmt, live=True, kernel=False, in_function=False)

    def _walk_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef, live: bool, kernel: bool) -> None:
        self._check_def(node, kernel)
        for stmt in node.body:
            self._walk(stmt, live=live, kernel=kernel, in_function=True)

    def _walk(self, root: ast.AST, live: bool, kernel: bool, in_function: bool) -> None:
        for node in ast.walk(root):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node is not root:
                self._check_def(node, kernel)
            if isinstance(node, ast.Lambda):
                in_fn = True
            else:
                in_fn = in_function or self._inside_nested_function(node, root)
            self._check_node(node, live=live, kernel=kernel, in_function=in_fn)

    def _inside_nested_function(self, node: ast.AST, root: ast.AST) -> bool:
        cur = self.parents.get(node)
        while cur is not None and cur is not root:
            if isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return True
            cur = self.parents.get(cur)
        return False

    # ---- per-node checks ---------------------------------------------------------------------------

    def _check_node(self, node: ast.AST, live: bool, kernel: bool, in_function: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            self._check_import(node)
        elif isinstance(node, ast.Call):
            self._check_call(node, live, kernel, in_function)
        elif isinstance(node, ast.Attribute):
            self._check_attribute(node, live, kernel)
        elif isinstance(node, ast.Name):
            self._check_name(node, live, kernel)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            self._check_store(node, in_function)
        elif isinstance(node, ast.Global) and in_function:
            self.add(node, F.REWARD_HACK_CACHING, f"`global {', '.join(node.names)}` keeps state across calls")
        elif isinstance(node, ast.Nonlocal):
            self.add(node, F.REWARD_HACK_CACHING, f"`nonlocal {', '.join(node.names)}` keeps state across calls")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult) and live and not kernel:
            self.add(node, F.REWARD_HACK_REFERENCE_CALL, "the `@` operator multiplies matrices outside a kernel")
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in _EXIT_EXCEPTIONS:
                self.add(node, F.REWARD_HACK_FORBIDDEN_CALL, f"raises {exc.id} to end the worker")
        elif isinstance(node, ast.Constant) and node.value in _LAZY_DEFS:
            self.add(node, F.REWARD_HACK_LAZY_OUTPUT, f"names {node.value} (a tensor subclass intercepting reads)")
        elif isinstance(node, ast.keyword) and node.arg == "non_blocking":
            if not (isinstance(node.value, ast.Constant) and not node.value.value):
                self.add(node.value, F.REWARD_HACK_STREAM, "non_blocking copy runs outside the timed stream order")

    def _check_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.ImportFrom) and node.level:
            self.add(node, F.REWARD_HACK_FORBIDDEN_IMPORT, "relative import (a candidate is a single module)")
            return
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            assert node.module is not None
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
        for name in names:
            self._check_module_name(node, name, verb="imports")

    def _check_module_name(self, node: ast.AST, dotted: str, verb: str) -> None:
        parts = dotted.split(".")
        cls = _module_class(parts[0])
        if cls is not None:
            self.add(node, cls, f"{verb} {dotted}")
            if parts[0] in _THREAD_MODULES:
                self.add(node, F.REWARD_HACK_THREAD, f"{verb} {dotted} (threads or processes)")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in _DOTTED_FORBIDDEN:
                self.add(node, _DOTTED_FORBIDDEN[prefix], f"{verb} {prefix}")
                if prefix == "torch.multiprocessing":
                    self.add(node, F.REWARD_HACK_THREAD, f"{verb} {prefix} (processes)")
        if any("reference" in p.lower() for p in parts):
            self.add(node, F.REWARD_HACK_REFERENCE_CALL, f"{verb} {dotted} (the task's reference)")

    def _check_qualname(self, node: ast.AST, quals: set[str], live: bool, kernel: bool) -> None:
        load = isinstance(getattr(node, "ctx", ast.Load()), ast.Load)
        for q in sorted(quals):
            parts = q.split(".")
            root = parts[0]
            if q in _DYNAMIC_IMPORTS or root == "__import__":
                continue  # reported at the call
            root_cls = _module_class(root)
            if root_cls is not None:
                self.add(node, root_cls, f"uses {q}")
            # forbidden modules reached through an allowed one (`torch.os.system`, `torch.sys._getframe`)
            for i, part in enumerate(parts[1:], start=1):
                if part in _REACHABLE_MODULES:
                    cls = _module_class(part)
                    assert cls is not None
                    self.add(node, cls, f"reaches {part} through {'.'.join(parts[:i + 1])}")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in _DOTTED_FORBIDDEN:
                    self.add(node, _DOTTED_FORBIDDEN[prefix], f"uses {prefix}")
            if load and root in {"torch", "triton", "cuda"}:
                if any("stream" in p.lower() for p in parts[1:]) or \
                        (any(p in _STREAM_NAMES for p in parts[1:]) and not q.startswith(("torch.fx", "torch.export"))):
                    self.add(node, F.REWARD_HACK_STREAM, f"uses {q} (side streams, events or CUDA graphs)")
            if q in _CACHE_QUALS:
                self.add(node, F.REWARD_HACK_CACHING, f"memoizes with {q}")
            if q in _FORBIDDEN_CALL_QUALS or (root in {"torch", "numpy"} and parts[-1] in _FILE_METHODS):
                self.add(node, F.REWARD_HACK_FORBIDDEN_CALL, f"uses {q}")
            if q in _GLOBAL_STATE_CALLS or (root == "torch" and len(parts) == 2 and parts[1].startswith("set_")) \
                    or q.startswith("torch.backends.") and len(parts) > 3:
                self.add(node, F.REWARD_HACK_GLOBAL_MUTATION, f"uses {q} (process-wide torch state)")
            if q in _LAZY_QUALS or (root == "torch" and any(p in {"TorchFunctionMode", "TorchDispatchMode"} for p in parts)):
                self.add(node, F.REWARD_HACK_LAZY_OUTPUT, f"uses {q} (tensor subclass or dispatch override)")
            if q == "torch.utils.swap_tensors" or (root == "torch" and parts[-1] in _REBIND_METHODS):
                self.add(node, F.REWARD_HACK_OUTPUT_REBIND, f"uses {q} (replaces a tensor's storage)")
            if root == "torch" and parts[-1] in _LAZY_METHODS:
                self.add(node, F.REWARD_HACK_LAZY_OUTPUT, f"uses {q}")
            if live and load and (root in _COMPUTE_ROOTS or q.startswith("triton.ops")):
                self._check_compute_qual(node, q, parts)

    def _check_compute_qual(self, node: ast.AST, q: str, parts: list[str]) -> None:
        if self.modules and len(parts) == 3 and q.startswith("torch.nn.") and parts[2][:1].isupper():
            return  # a module class (nn.Module, nn.Linear): its parameters are the task's weights
        if q.startswith(_ALWAYS_REFERENCE_PREFIXES) or parts[0] in {"xformers", "flash_attn"}:
            self.add(node, F.REWARD_HACK_REFERENCE_CALL, f"uses {q} (a vendor op or compiler for the computation)")
            return
        for part in parts[1:]:
            name = _norm_name(part)
            if name in self.family_funcs or "attention" in name or "attn" in name:
                self.add(node, F.REWARD_HACK_REFERENCE_CALL, f"uses {q} (a torch op doing the main computation)")
                return

    def _maximal(self, node: ast.AST) -> bool:
        """True unless `node` is the object of a longer attribute chain."""
        parent = self.parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return False
        if isinstance(parent, ast.Call) and self._getattr_literal(parent) is not None and parent.args[0] is node:
            return False
        if isinstance(parent, ast.Subscript) and parent.value is node and isinstance(node, ast.Attribute) \
                and node.attr == "__dict__":
            return False
        return True

    def _check_name(self, node: ast.Name, live: bool, kernel: bool) -> None:
        if node.id in _FRAME_NAMES:
            self.add(node, F.REWARD_HACK_FRAME_ACCESS, f"reads {node.id}")
        if not isinstance(node.ctx, ast.Load):
            return
        parent = self.parents.get(node)
        called = isinstance(parent, ast.Call) and parent.func is node
        if node.id in _FORBIDDEN_BUILTINS:  # no shadowing exemption: a dead `eval = ...` must not hide a real one
            self.add(node, F.REWARD_HACK_FORBIDDEN_CALL, f"{'calls' if called else 'uses'} {node.id}")
        if node.id == "getattr" and not called:
            self.add(node, F.REWARD_HACK_FORBIDDEN_CALL, "passes getattr around as a value")
        if node.id == "__import__" and not called:
            self.add(node, F.REWARD_HACK_FORBIDDEN_IMPORT, "uses __import__")
        if self._maximal(node):
            quals = self.resolve(node)
            if quals:
                self._check_qualname(node, quals, live, kernel)

    def _check_attribute(self, node: ast.Attribute, live: bool, kernel: bool) -> None:
        attr = node.attr
        if attr in _FRAME_ATTRS:
            self.add(node, F.REWARD_HACK_FRAME_ACCESS, f"reads .{attr}")
        if attr in _FORBIDDEN_DUNDERS:
            self.add(node, F.REWARD_HACK_FORBIDDEN_CALL, f"uses .{attr}")
        if attr == "__class__" and not isinstance(node.ctx, ast.Load):
            self.add(node, F.REWARD_HACK_LAZY_OUTPUT, "assigns .__class__ (swaps a tensor's type)")
        if not self._maximal(node):
            return
        quals = self.resolve(node)
        if quals:
            self._check_qualname(node, quals, live, kernel)
        elif isinstance(node.ctx, ast.Load):
            self._check_method_name(node, attr, live, kernel, called=self._is_called(node))

    def _is_called(self, node: ast.AST) -> bool:
        parent = self.parents.get(node)
        return isinstance(parent, ast.Call) and parent.func is node

    def _check_method_name(self, node: ast.AST, attr: str, live: bool, kernel: bool, called: bool) -> None:
        """`attr` looked up on something that is not a known module: a tensor, as far as we can tell."""
        if attr in _REBIND_METHODS:
            self.add(node, F.REWARD_HACK_OUTPUT_REBIND, f"calls .{attr}() (replaces a tensor's storage)")
        if attr in _LAZY_METHODS:
            self.add(node, F.REWARD_HACK_LAZY_OUTPUT, f"calls .{attr}()")
        if "stream" in attr.lower() or attr in _STREAM_METHODS:
            self.add(node, F.REWARD_HACK_STREAM, f"calls .{attr}() (stream or graph control)")
        if attr in _FILE_METHODS:
            self.add(node, F.REWARD_HACK_FORBIDDEN_CALL, f"calls .{attr}() (file access)")
        if kernel or not live:
            return
        name = _norm_name(attr)
        if name in self.family_methods and (called or name not in _GENERIC):
            self.add(node, F.REWARD_HACK_REFERENCE_CALL, f"calls .{attr}() on a tensor (a torch op doing the main computation)")

    def _check_call(self, node: ast.Call, live: bool, kernel: bool, in_function: bool) -> None:
        func = node.func
        quals = self.resolve(func)
        name = func.id if isinstance(func, ast.Name) else None
        if name == "__import__" or quals & _DYNAMIC_IMPORTS:
            if node.args and _is_str(node.args[0]):
                module = node.args[0].value  # type: ignore[attr-defined]
                self.add(node, F.REWARD_HACK_FORBIDDEN_IMPORT, f"imports {module} dynamically")
                self._check_module_name(node, module, verb="imports")
            else:
                self.add(node, F.REWARD_HACK_FORBIDDEN_IMPORT, "imports a computed module name")
        if name == "getattr":
            if len(node.args) < 2 or not _is_str(node.args[1]):
                self.add(node, F.REWARD_HACK_FORBIDDEN_CALL, "getattr with a computed attribute name")
            else:
                # a literal getattr is an attribute access: check it as one
                obj, attr = node.args[0], node.args[1].value  # type: ignore[attr-defined]
                fake = ast.Attribute(value=obj, attr=attr, ctx=ast.Load())
                ast.copy_location(fake, node)
                if attr in _FRAME_ATTRS:
                    self.add(node, F.REWARD_HACK_FRAME_ACCESS, f"reads .{attr}")
                if attr in _FORBIDDEN_DUNDERS:
                    self.add(node, F.REWARD_HACK_FORBIDDEN_CALL, f"uses .{attr}")
                if self._maximal(node):
                    resolved = self.resolve(node)
                    if resolved:
                        self._check_qualname(node, resolved, live, kernel)
                    else:
                        self._check_method_name(node, attr, live, kernel, called=self._is_called(node))
        if name in {"setattr", "delattr"} and len(node.args) >= 2:
            self._check_setattr_target(node, node.args[0], node.args[1], in_function)
        if name in {"id", "hash"} and name not in self.aliases or \
                isinstance(func, ast.Attribute) and func.attr == "data_ptr":
            self._check_pointer_use(node, "data_ptr()" if name is None else f"{name}()")
        in_place = func.attr in _MUTATORS or (func.attr.endswith("_") and not func.attr.startswith("__")) \
            if isinstance(func, ast.Attribute) else False
        if isinstance(func, ast.Attribute) and in_place and in_function:
            root = self._root_name(func.value)
            if self._is_module_state(root, node):
                self.add(node, F.REWARD_HACK_CACHING, f"writes module-level {root} from a function (.{func.attr})")

    def _check_pointer_use(self, node: ast.Call, what: str) -> None:
        """A pointer or object id may be compared or tested for alignment, never kept or used as a key."""
        child: ast.AST = node
        parent = self.parents.get(node)
        while isinstance(parent, ast.BinOp) or isinstance(parent, ast.UnaryOp):
            if isinstance(parent, ast.BinOp) and isinstance(parent.op, (ast.Mod, ast.BitAnd)):
                return
            child, parent = parent, self.parents.get(parent)
        if isinstance(parent, ast.Compare) and all(
                isinstance(op, (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for op in parent.ops):
            return
        if isinstance(parent, ast.Assert) and parent.test is child:
            return
        self.add(node, F.REWARD_HACK_CACHING, f"{what} is stored or used as a key (results keyed by buffer identity)")

    @staticmethod
    def _root_name(node: ast.AST) -> str | None:
        while isinstance(node, (ast.Subscript, ast.Attribute)):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    def _is_module_state(self, root: str | None, node: ast.AST) -> bool:
        """`root` names a module-level container, object, function or class (not shadowed by a local)."""
        if root is None or not (root in self.module_state or root in self.module_defs):
            return False
        return root not in self._local_names(node)

    def _is_plain_parameter(self, name: str, node: ast.AST) -> bool:
        """`name` is a parameter of the function enclosing `node`, and that function is not a method."""
        cur = self.parents.get(node)
        while cur is not None and not isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            cur = self.parents.get(cur)
        if cur is None or isinstance(self.parents.get(cur), ast.ClassDef) or name in {"self", "cls"}:
            return False
        args = cur.args
        return name in {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}

    def _local_names(self, node: ast.AST) -> set[str]:
        """Names bound as locals of the function enclosing `node` (which shadow module globals)."""
        cur = self.parents.get(node)
        while cur is not None and not isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            cur = self.parents.get(cur)
        if cur is None:
            return set()
        args = cur.args
        names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        if isinstance(cur, ast.Lambda):
            return names
        declared_global: set[str] = set()
        for sub in ast.walk(cur):
            if isinstance(sub, ast.Global):
                declared_global.update(sub.names)
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
        return names - declared_global

    def _check_setattr_target(self, node: ast.AST, obj: ast.AST, name: ast.AST, in_function: bool) -> None:
        attr = name.value if _is_str(name) else None  # type: ignore[attr-defined]
        quals = self.resolve(obj)
        if quals:
            self._classify_patch(node, quals, attr or "<computed>")
        elif self._is_module_state(self._root_name(obj), node):
            self.add(node, F.REWARD_HACK_CACHING, f"stores state on module-level {self._root_name(obj)}")
        if attr == "data":
            self.add(node, F.REWARD_HACK_OUTPUT_REBIND, "replaces a tensor's .data")
        if attr == "__class__":
            self.add(node, F.REWARD_HACK_LAZY_OUTPUT, "assigns .__class__ (swaps a tensor's type)")

    def _classify_patch(self, node: ast.AST, quals: set[str], attr: str) -> None:
        for q in sorted(quals):
            parts = q.split(".") + [attr]
            if any(p in _TIMER_NAMES for p in parts[1:]) or any("time" in p.lower() or "bench" in p.lower()
                                                                  for p in parts[1:]):
                self.add(node, F.REWARD_HACK_TIMING_TAMPER, f"patches {q}.{attr} (a timer, event or sync)")
            else:
                self.add(node, F.REWARD_HACK_GLOBAL_MUTATION, f"patches {q}.{attr}")

    def _check_store(self, node: ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete, in_function: bool) -> None:
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        else:
            targets = [node.target]
        flat: list[ast.AST] = []
        for target in targets:
            stack = [target]
            while stack:
                t = stack.pop()
                if isinstance(t, (ast.Tuple, ast.List)):
                    stack.extend(t.elts)
                elif isinstance(t, ast.Starred):
                    stack.append(t.value)
                else:
                    flat.append(t)
        for target in flat:
            if isinstance(target, ast.Name) and target.id in {"__name__", "__builtins__", "__file__"}:
                self.add(target, F.REWARD_HACK_GLOBAL_MUTATION, f"rebinds {target.id}")
            elif isinstance(target, ast.Attribute):
                quals = self.resolve(target.value)
                root = self._root_name(target.value)
                if quals:
                    self._classify_patch(target, quals, target.attr)
                elif self._is_module_state(root, target):
                    self.add(target, F.REWARD_HACK_CACHING, f"stores state on module-level {root}")
                elif isinstance(target.value, ast.Name) and self._is_plain_parameter(target.value.id, target):
                    self.add(target, F.REWARD_HACK_CACHING,
                             f"stores state on argument {target.value.id} (the harness reuses its buffers)")
                if target.attr in {"data", "grad"}:
                    self.add(target, F.REWARD_HACK_OUTPUT_REBIND, f"assigns .{target.attr} (replaces a tensor's storage)")
            elif isinstance(target, ast.Subscript):
                if isinstance(target.value, ast.Attribute) and target.value.attr == "__dict__":
                    quals = self.resolve(target.value.value)
                    key = target.slice.value if _is_str(target.slice) else "<computed>"  # type: ignore[attr-defined]
                    if quals:
                        self._classify_patch(target, quals, str(key))
                root = self._root_name(target)
                if in_function and self._is_module_state(root, target):
                    self.add(target, F.REWARD_HACK_CACHING, f"writes module-level {root} from a function")

    def _check_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef, kernel: bool) -> None:
        if node.name in _LAZY_DEFS:
            self.add(node, F.REWARD_HACK_LAZY_OUTPUT, f"defines {node.name} (a tensor subclass intercepting reads)")
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            if self._is_container(default):
                self.add(default, F.REWARD_HACK_CACHING, f"mutable default argument of {node.name} keeps state across calls")

    def _check_class(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            quals = self.resolve(base)
            if any(q in {"torch.Tensor", "torch.nn.Parameter", "torch._C.TensorBase", "torch._C._TensorBase"}
                   for q in quals):
                self.add(node, F.REWARD_HACK_LAZY_OUTPUT, f"class {node.name} subclasses torch.Tensor")

    def _check_entry(self) -> None:
        bound = set(self.module_defs)
        for stmt in self.body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                for t in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                    bound.update(n.id for n in _target_names(t))
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                bound.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        if self.entry not in bound:
            self.findings[(0, F.ENTRY_SIGNATURE, "entry")] = Verdict(
                check="static:entry", ok=False, severity="fail", failure_class=F.ENTRY_SIGNATURE,
                detail=f"line 0: the module defines no `{self.entry}`; define def {self.entry}(*inputs, *outputs) -> None",
            )

    # ---- outputs ------------------------------------------------------------------------------

    def _output_params(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        if self.outputs is not None:
            return {p for p in params if p in set(self.outputs)}
        looks_like_output = {p for p in params if p in {"o", "c", "y", "out", "output", "result"}
                             or p.startswith(("out", "output", "result")) or p.endswith(("_out", "_output"))}
        return looks_like_output or ({params[-1]} if params else set())

    def _check_output_rebind(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outputs = self._output_params(fn)
        if not outputs:
            return

        def own_scope(node: ast.AST) -> Iterator[ast.AST]:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
                                      ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                    continue
                yield child
                yield from own_scope(child)

        for stmt in fn.body:
            for node in [stmt, *own_scope(stmt)]:
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        for name in _target_names(target):
                            if name.id in outputs and not self._is_view_of(node.value, name.id):
                                self.add(name, F.REWARD_HACK_OUTPUT_REBIND,
                                         f"rebinds output `{name.id}` instead of writing into it")
                elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and isinstance(node.target, ast.Name):
                    if node.target.id in outputs and (node.value is None or not self._is_view_of(node.value, node.target.id)):
                        self.add(node.target, F.REWARD_HACK_OUTPUT_REBIND,
                                 f"rebinds output `{node.target.id}` instead of writing into it")
                elif isinstance(node, (ast.For, ast.AsyncFor)) or isinstance(node, ast.withitem):
                    target = node.target if isinstance(node, (ast.For, ast.AsyncFor)) else node.optional_vars
                    for name in _target_names(target) if target is not None else []:
                        if name.id in outputs:
                            self.add(name, F.REWARD_HACK_OUTPUT_REBIND, f"rebinds output `{name.id}`")
                elif isinstance(node, (ast.Global, ast.Nonlocal)) and outputs & set(node.names):
                    self.add(node, F.REWARD_HACK_OUTPUT_REBIND, "declares an output global")

    def _is_view_of(self, value: ast.AST, name: str) -> bool:
        node = value
        while True:
            if isinstance(node, ast.Name):
                return node.id == name
            if isinstance(node, ast.Subscript):
                node = node.value
            elif isinstance(node, ast.Attribute) and node.attr in {"T", "mT", "H"}:
                node = node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _VIEW_METHODS:
                node = node.func.value
            else:
                return False

    # ---- result ---------------------------------------------------------------------------------

    def verdicts(self) -> list[Verdict]:
        failing = sorted(self.findings.values(), key=lambda v: (int(v.detail.split(":")[0].split()[1]), v.check))
        failed_checks = {v.check for v in failing}
        passing = [
            Verdict(check=check, ok=True, severity="fail", detail="no findings")
            for check in STATIC_CHECKS if check != "static:parse" and check not in failed_checks
        ]
        return [*passing, *failing, *self.notes]


def static_checks(
    source: str,
    path: str,
    op_family: str,
    *,
    entry: str = "run",
    outputs: Sequence[str] | None = None,
    modules: bool = False,
) -> list[Verdict]:
    """Static anti-hack verdicts for one candidate module.

    `op_family` (the task's, e.g. "norm", "gemm", "reduction") picks which torch ops count as doing
    the main computation. `outputs` names the entry's output parameters; without it, parameters named
    like outputs (out, o, c, y, *_out, ...) or else the last one are taken. A failing verdict has
    severity "fail", a catalog failure class and a detail "line N: what was found". `modules` allows
    torch.nn classes (nn.Module, nn.Parameter, nn.Linear as a weight holder): a KernelBench-form
    candidate is an nn.Module; calling one of its modules on data is torch computing, which the
    worker's op recorder rejects at run time.
    """
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        return [Verdict(
            check="static:parse", ok=False, severity="fail", failure_class=F.IMPORT_ERROR,
            detail=f"line {exc.lineno or 0}: SyntaxError: {exc.msg} in {path}",
        )]
    analyzer = _Analyzer(tree, op_family, entry, outputs, modules)
    analyzer.run()
    return analyzer.verdicts()


def static_checks_for_task(source: str, path: str, task: Task) -> list[Verdict]:
    """`static_checks` with the op family, entry name and output names of `task` (the entry of a
    KernelBench-form candidate of a task imported from KernelBench is its `ModelNew` class)."""
    from ksearch.task.importers.kernelbench import uses_modelnew

    modules = uses_modelnew(source, task.root)
    return static_checks(source, path, task.spec.op_family, entry="ModelNew" if modules else task.entry_name,
                         outputs=task.output_names, modules=modules)


def failing(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts that reject the candidate."""
    return [v for v in verdicts if not v.ok and v.severity == "fail"]
