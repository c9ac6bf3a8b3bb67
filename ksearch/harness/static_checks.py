"""Static anti-hack checks on a candidate's Python source, by walking its AST: a denylist of named
reward hacks, and an allowlist of what a kernel launcher needs.

Public API:
    static_checks(source, path, op_family, *, entry="run", outputs=None) -> list[Verdict]
    static_checks_for_task(source, path, task) -> list[Verdict]     op family, entry and outputs from a Task
    failing(verdicts) -> list[Verdict]                              the verdicts that reject (ok False, severity fail)
    STATIC_CHECKS                                                    check name -> the failure class it reports

A candidate (DESIGN.md, "Candidate") is a module defining `run(*inputs, *outputs) -> None` that writes
its outputs in place; torch is allowed for views and allocation only, and kernel code lives in
`@triton.jit` (or TileLang) functions. Two layers, both before anything runs:

* The denylist names reward hacks and reports each with its own catalog class: forbidden modules
  (threads, processes, files, timers, ctypes, ...), eval/exec and computed attribute names, stack
  frames and the garbage collector, patched timers or torch/triton globals, state kept across calls
  (data_ptr keys, module-level caches, memoization), side streams and CUDA graphs, the reference or
  a vendor op doing the main computation, rebound outputs and tensor-subclass tricks.
* The allowlist ("allow, not forbid"; DESIGN.md, "Trust boundary of the harness") refuses whatever
  host code (everything outside kernel bodies) does beyond what a kernel launcher needs: the tables
  `_HOST_QUALS`, `_ALLOWED_BUILTINS`, `_HOST_ATTRS` (`_TYPED_ATTRS` where the receiver is known) and
  `_API_KEYWORDS` below are the whole of it
  (shapes, strides, dtypes, devices, allocation and views, integer arithmetic, triton/tilelang
  configs and `kernel[grid](...)` launches). Any other import, module attribute, builtin, attribute
  of an object (whatever expression it hangs off: `_lib().sys`, `[torch][0].utils`), dunder, hook,
  class trick, and any arithmetic, comparison, truth test or number read on a tensor is refused.
  Kernel bodies have their own table (`tl.*`, `T.*`, tl.tensor members). Findings are split by
  kind: imports (forbidden_import), torch computing on the host (reference_call), stores into
  objects the candidate does not own and private internals (global_mutation), the rest
  (forbidden_call).

Honest idioms stay allowed: `functools.lru_cache`/`cache` on a module-level helper whose body only
does arithmetic on its arguments and that is only called with scalars (shapes, strides, dtypes,
constants); a module-level scratch pool (a dict created empty, written only with fresh allocations
under scalar keys, never copied into or out of); `@triton.autotune` with several configs, and
`@triton.heuristics` and grid functions that only compute sizes.

Every check appears in the result: one passing verdict per check that found nothing, and one failing
verdict (severity "fail", a catalog failure class, detail "line N: ...") per finding. The denylist's
failing verdicts come first, in source-line order, so a cheat one of its checks names keeps that
class; then the allowlist's, in line order, only on lines no denylist check flagged. An
`if __name__ == "__main__":` self-test block never runs under the harness and is not checked. The
checks are one layer: the types of values are guessed from the source, so state or compute hidden
where no syntax shows it is the dynamic checks' and the replaying judge's job.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

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
    # the allowlist: whatever host code uses beyond what a kernel launcher needs, by what it is:
    # imports; torch functions and tensor methods (compute on the host); stores into objects the
    # candidate does not own and private internals (`torch._C`, `._storage`); anything else
    "static:import_not_allowed": F.REWARD_HACK_FORBIDDEN_IMPORT,
    "static:compute_not_allowed": F.REWARD_HACK_REFERENCE_CALL,
    "static:state_not_allowed": F.REWARD_HACK_GLOBAL_MUTATION,
    "static:not_allowed": F.REWARD_HACK_FORBIDDEN_CALL,
}
_ALLOWLIST_CHECKS = frozenset(
    {
        "static:import_not_allowed",
        "static:compute_not_allowed",
        "static:state_not_allowed",
        "static:not_allowed",
    }
)
# the denylist checks, by the class they report
_CHECK_OF: dict[FailureClass, str] = {
    cls: name for name, cls in STATIC_CHECKS.items() if name not in _ALLOWLIST_CHECKS
}

# ---- modules ----------------------------------------------------------------------------------

_THREAD_MODULES = frozenset(
    {"threading", "_thread", "multiprocessing", "concurrent", "asyncio", "queue", "sched"}
)
_IMPORT_FORBIDDEN = frozenset(
    {
        # threads and processes
        *_THREAD_MODULES,
        "subprocess",
        "_posixsubprocess",
        "pty",
        "signal",
        "atexit",
        "faulthandler",
        # the interpreter, the OS and native code
        "os",
        "posix",
        "nt",
        "sys",
        "ctypes",
        "_ctypes",
        "cffi",
        "importlib",
        "builtins",
        "__builtin__",
        "runpy",
        "code",
        "codeop",
        "zipimport",
        "pkgutil",
        "site",
        "resource",
        "mmap",
        "fcntl",
        "weakref",
        "_weakref",
        "tracemalloc",
        # serialization (arbitrary code on load)
        "pickle",
        "_pickle",
        "cPickle",
        "marshal",
        "shelve",
        "copyreg",
        "dill",
        "cloudpickle",
        "joblib",
        # files and the network
        "shutil",
        "pathlib",
        "io",
        "_io",
        "tempfile",
        "glob",
        "fileinput",
        "zipfile",
        "tarfile",
        "gzip",
        "bz2",
        "lzma",
        "sqlite3",
        "dbm",
        "socket",
        "ssl",
        "select",
        "selectors",
        "urllib",
        "http",
        "requests",
        "ftplib",
        "smtplib",
        # the harness's clock
        "time",
        "timeit",
        # other GPU runtimes: raw streams, raw launches, vendor kernels
        "cupy",
        "pycuda",
        "cuda",
        "numba",
        "cuda_python",
    }
)
_FRAME_MODULES = frozenset({"gc", "inspect", "traceback", "linecache", "__main__", "dis"})
_REFERENCE_MODULES = frozenset({"ksearch", "configs", "conftest", "reference"})
# Modules that allowed packages re-export as attributes (`torch.os`, `torch.sys`): reaching one of
# these through an attribute chain is as bad as importing it. Curated: names such as `select`,
# `cuda` or `code` are also ordinary attributes.
_REACHABLE_MODULES = frozenset(
    {
        "os",
        "posix",
        "sys",
        "subprocess",
        "ctypes",
        "builtins",
        "importlib",
        "gc",
        "inspect",
        "threading",
        "_thread",
        "multiprocessing",
        "pickle",
        "marshal",
        "shutil",
        "socket",
        "time",
        "traceback",
        "atexit",
        "tempfile",
        "pathlib",
        "signal",
        "linecache",
        "weakref",
    }
)
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
_FORBIDDEN_BUILTINS = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "open",
        "globals",
        "locals",
        "vars",
        "breakpoint",
        "exit",
        "quit",
        "setattr",
        "delattr",
    }
)
_DYNAMIC_IMPORTS = frozenset(
    {
        "__import__",
        "importlib.import_module",
        "importlib.__import__",
        "importlib.util.spec_from_file_location",
        "importlib.util.module_from_spec",
    }
)
_FRAME_ATTRS = frozenset(
    {
        "__globals__",
        "__code__",
        "__closure__",
        "__subclasses__",
        "__builtins__",
        "__dict__",
        "__mro__",
        "__bases__",
        "__base__",
        "__loader__",
        "__spec__",
        "__self__",
        "__func__",
        "__wrapped__",
        "__traceback__",
        "f_back",
        "f_locals",
        "f_globals",
        "f_builtins",
        "f_code",
        "tb_frame",
        "tb_next",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "ag_frame",
        "co_code",
        "co_consts",
        "_getframe",
        "currentframe",
        "get_objects",
        "get_referrers",
        "get_referents",
    }
)
_FRAME_NAMES = frozenset({"__builtins__", "__loader__", "__spec__"})
_FORBIDDEN_DUNDERS = frozenset(
    {
        "__setattr__",
        "__delattr__",
        "__getattribute__",
        "__getattr__",
        "__import__",
        "__reduce__",
        "__reduce_ex__",
        "__setstate__",
        "__init_subclass__",
        "__set_name__",
        "__class_getitem__",
    }
)
_FORBIDDEN_CALL_QUALS = frozenset(
    {
        "operator.attrgetter",
        "operator.methodcaller",
        "functools.partial.__call__",
        "torch.load",
        "torch.save",
        "torch.from_file",
        "numpy.load",
        "numpy.save",
        "numpy.savez",
        "numpy.fromfile",
        "numpy.loadtxt",
        "numpy.savetxt",
        "numpy.genfromtxt",
        "numpy.memmap",
    }
)
_FILE_METHODS = frozenset({"tofile", "from_file"})
_EXIT_EXCEPTIONS = frozenset({"SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"})

_TIMER_NAMES = frozenset(
    {
        "synchronize",
        "perf_counter",
        "perf_counter_ns",
        "time",
        "time_ns",
        "monotonic",
        "monotonic_ns",
        "process_time",
        "process_time_ns",
        "thread_time",
        "do_bench",
        "do_bench_cudagraph",
        "Event",
        "elapsed_time",
        "record",
        "Timer",
        "timeit",
        "default_timer",
        "benchmark",
        "Benchmarker",
        "get_benchmarker",
        "wait",
        "query",
        "profiler",
        "cuda_sync",
        "sleep",
    }
)
# The harness's own clock: a rebound global of these modules is timing tamper, whatever its name
# (tests/test_static_checks.py imports each, so a rename cannot leave this list stale).
HARNESS_TIMING_MODULES = frozenset(
    {"ksearch.harness.timing", "ksearch.harness.timing_stats", "ksearch.harness.profilers"}
)
_STREAM_NAMES = frozenset(
    {
        "CUDAGraph",
        "graph",
        "graphs",
        "make_graphed_callables",
        "Event",
        "ExternalStream",
        "_Graph",
        "graph_pool_handle",
    }
)
_STREAM_METHODS = frozenset({"wait_event", "record_event", "capture_begin", "capture_end", "replay"})
_GLOBAL_STATE_CALLS = frozenset(
    {
        "torch.manual_seed",
        "torch.seed",
        "torch.use_deterministic_algorithms",
        "torch.set_flush_denormal",
        "torch.cuda.manual_seed",
        "torch.cuda.manual_seed_all",
        "torch.cuda.set_rng_state",
        "torch.cuda.set_rng_state_all",
        "torch.cuda.set_sync_debug_mode",
        "torch.cuda.set_per_process_memory_fraction",
        "torch.cuda.memory.set_per_process_memory_fraction",
    }
)
_LAZY_QUALS = frozenset(
    {
        "torch.Tensor._make_subclass",
        "torch.Tensor._make_wrapper_subclass",
        "torch.Tensor.as_subclass",
        "torch.Tensor.__torch_function__",
        "torch.Tensor.__torch_dispatch__",
    }
)
_LAZY_METHODS = frozenset(
    {
        "as_subclass",
        "_make_subclass",
        "_make_wrapper_subclass",
        "register_hook",
        "register_post_accumulate_grad_hook",
    }
)
_LAZY_DEFS = frozenset({"__torch_function__", "__torch_dispatch__"})
_REBIND_METHODS = frozenset({"set_", "resize_", "resize_as_", "as_strided_", "swap_tensors"})
_CACHE_QUALS = frozenset({"functools.lru_cache", "functools.cache", "functools.cached_property"})
_MEMOIZERS = frozenset({"functools.lru_cache", "functools.cache"})  # allowed on a pure helper of scalars

# Scalars: what a memoized helper may be called with and a scratch pool may be keyed on (shapes,
# strides, dtypes, devices, constants and arithmetic on them; never a tensor or a value read from one).
_SCALAR_ATTRS = frozenset({"shape", "dtype", "device", "ndim", "is_cuda", "itemsize", "layout"})
_SCALAR_METHODS = frozenset(
    {
        "size",
        "stride",
        "numel",
        "dim",
        "element_size",
        "storage_offset",
        "nelement",
        "ndimension",
        "is_contiguous",
    }
)
_PURE_BUILTINS = frozenset(
    {
        "int",
        "float",
        "bool",
        "min",
        "max",
        "abs",
        "len",
        "round",
        "divmod",
        "tuple",
        "sum",
        "str",
        "range",
        "any",
        "all",
        "sorted",
        "reversed",
        "enumerate",
        "zip",
        "isinstance",
        "ValueError",
        "TypeError",
        "AssertionError",
        "NotImplementedError",
        "RuntimeError",
    }
)
_PURE_QUALS = frozenset({"triton.cdiv", "triton.next_power_of_2"})
_FACTORY_QUALS = frozenset({"tilelang.compile"})  # a memoized kernel factory may compile what it defines
_STR_METHODS = frozenset(
    {
        "removeprefix",
        "removesuffix",
        "replace",
        "lower",
        "upper",
        "strip",
        "format",
        "join",
        "startswith",
        "endswith",
    }
)  # on a scalar (a dtype's name), a scalar
# Fresh allocations: what a module-level scratch pool may hold.
_ALLOC_QUALS = frozenset(
    {
        "torch.empty",
        "torch.empty_like",
        "torch.empty_strided",
        "torch.zeros",
        "torch.zeros_like",
        "torch.ones",
        "torch.ones_like",
        "torch.full",
        "torch.full_like",
    }
)
_ALLOC_METHODS = frozenset({"new_empty", "new_zeros", "new_ones", "new_full", "new_empty_strided"})
# Builtins that make an iterator: one bound at module level keeps a position across calls.
_ITERATOR_BUILTINS = frozenset({"iter", "enumerate", "zip", "map", "filter", "reversed"})

_CONTAINER_CALLS = frozenset(
    {
        "dict",
        "list",
        "set",
        "bytearray",
        "collections.defaultdict",
        "collections.OrderedDict",
        "collections.Counter",
        "collections.deque",
        "collections.ChainMap",
    }
)
_MUTATORS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "popitem",
        "remove",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
        "appendleft",
        "extendleft",
        "popleft",
        "__setitem__",
        "__delitem__",
        "__iadd__",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
        "sort",
        "reverse",
    }
)
# An output rebound to a view of itself still writes the caller's storage.
_VIEW_METHODS = frozenset(
    {
        "view",
        "reshape",
        "view_as",
        "reshape_as",
        "flatten",
        "unflatten",
        "unsqueeze",
        "squeeze",
        "t",
        "transpose",
        "permute",
        "narrow",
        "select",
        "contiguous",
        "as_strided",
        "movedim",
        "unfold",
    }
)

# ---- the main computation, per op family ------------------------------------------------------

_GEMM = frozenset(
    {
        "matmul",
        "rmatmul",
        "imatmul",
        "mm",
        "bmm",
        "addmm",
        "addbmm",
        "baddbmm",
        "addmv",
        "mv",
        "dot",
        "vdot",
        "inner",
        "outer",
        "ger",
        "einsum",
        "tensordot",
        "linear",
        "bilinear",
        "chain_matmul",
        "multi_dot",
        "scaled_mm",
        "int_mm",
        "grouped_mm",
        "kron",
        "addr",
    }
)
_SOFTMAX = frozenset(
    {"softmax", "log_softmax", "softmin", "logsumexp", "exp", "exp2", "expm1", "sum", "nansum"}
)
_NORM = frozenset(
    {
        "rms_norm",
        "layer_norm",
        "group_norm",
        "batch_norm",
        "instance_norm",
        "local_response_norm",
        "normalize",
        "norm",
        "vector_norm",
        "matrix_norm",
        "renorm",
        "rsqrt",
        "sqrt",
        "pow",
        "float_power",
        "square",
        "mean",
        "nanmean",
        "sum",
        "nansum",
        "var",
        "std",
        "var_mean",
        "std_mean",
        "rmsnorm",
        "layernorm",
        "add",
        "addcmul",
        "addcdiv",
        "einsum",
    }
)
_ELEMENTWISE = frozenset(
    {
        "silu",
        "sigmoid",
        "swiglu",
        "gelu",
        "tanh",
        "exp",
        "exp2",
        "expm1",
        "expit",
        "logsigmoid",
        "softplus",
        "mish",
        "hardswish",
        "hardsigmoid",
        "relu",
        "glu",
        "mul",
        "multiply",
    }
)
_ROUTING = frozenset(
    {
        "topk",
        "sort",
        "argsort",
        "msort",
        "kthvalue",
        "argmax",
        "softmax",
        "log_softmax",
        "sigmoid",
        "exp",
        "sum",
    }
)
_ATTENTION = frozenset(
    {"softmax", "log_softmax", "exp", "exp2", "sum", "scaled_dot_product_attention", "logsumexp"}
)
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
_GENERIC = frozenset(
    {
        "sum",
        "nansum",
        "mean",
        "nanmean",
        "exp",
        "exp2",
        "norm",
        "pow",
        "sqrt",
        "rsqrt",
        "square",
        "var",
        "std",
        "dot",
        "mm",
        "mv",
        "sort",
        "inner",
        "outer",
        "linear",
        "tanh",
        "relu",
        "gelu",
        "kron",
        "add",
        "mul",
        "multiply",
        "ger",
        "addr",
    }
)
# Compute reachable from these roots is a vendor op; math/triton/tl are not.
_COMPUTE_ROOTS = frozenset(
    {
        "torch",
        "numpy",
        "scipy",
        "cupy",
        "jax",
        "operator",
        "xformers",
        "flash_attn",
        "apex",
        "transformer_engine",
        "vllm",
        "sgl_kernel",
        "flashinfer",
        "liger_kernel",
    }
)
_ALWAYS_REFERENCE_PREFIXES = (
    "torch.nn.",
    "torch.compile",
    "torch._dynamo",
    "torch._inductor",
    "torch.jit",
    "torch.export",
    "torch.fx",
    "torch.func",
    "torch.vmap",
    "torch.distributions",
    "torch.ops",
    "torch._C._nn",
    "torch._C._VariableFunctions",
    "torch.special.softmax",
    "torch.special.log_softmax",
    "xformers",
    "flash_attn",
    "apex",
    "transformer_engine",
    "vllm",
    "sgl_kernel",
    "flashinfer",
    "liger_kernel",
    "triton.ops",
)
_KERNEL_DECORATORS = frozenset({"jit", "prim_func", "macro", "autotune", "heuristics"})

# ---- the allowlist: all that host code may use ------------------------------------------------
#
# Host code (everything outside `@triton.jit` and TileLang kernel bodies) may do what a kernel
# launcher needs and nothing else: read shapes, strides, dtypes and devices, allocate and view
# tensors, do integer arithmetic, configure and launch kernels. Whatever these tables do not name
# is refused, whatever expression it hangs off (`_lib().sys`, `[torch][0].utils`, ...).

_TORCH_DTYPES = (
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "half",
    "float",
    "double",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int",
    "long",
    "short",
    "bool",
    "complex64",
    "complex128",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
)
_TL_DTYPES = (
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "int1",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float8e4nv",
    "float8e5",
    "float8e4b15",
    "float8e4b8",
    "float8e5b16",
)
# Modules and module attributes host code may name (the whole dotted name, after alias resolution).
_HOST_QUALS = frozenset(
    {
        # allocation, dtypes, devices and device queries
        *(
            f"torch.{n}"
            for n in (
                "empty",
                "empty_like",
                "empty_strided",
                "zeros",
                "zeros_like",
                "ones",
                "ones_like",
                "full",
                "full_like",
                "arange",
                "Tensor",
                "Size",
                "device",
                "dtype",
                "finfo",
                "iinfo",
                "no_grad",
                "inference_mode",
                "is_tensor",
                "is_floating_point",
                *_TORCH_DTYPES,
            )
        ),
        *(
            f"torch.cuda.{n}"
            for n in (
                "get_device_properties",
                "get_device_capability",
                "current_device",
                "device_count",
                "device",
                "is_available",
                "synchronize",
            )
        ),
        # kernels, their configs, launch arithmetic, TMA descriptors and the tutorial's device-properties read
        "triton.jit",
        "triton.autotune",
        "triton.Config",
        "triton.heuristics",
        "triton.cdiv",
        "triton.next_power_of_2",
        "triton.language.constexpr",
        *(f"triton.language.{d}" for d in _TL_DTYPES),
        "triton.tools.tensor_descriptor.TensorDescriptor",
        "triton.tools.tensor_descriptor.TensorDescriptor.from_tensor",
        "triton.runtime.driver.active.get_active_torch_device",
        "triton.runtime.driver.active.utils.get_device_properties",
        "tilelang.compile",
        "tilelang.jit",
        "tilelang.language.prim_func",
        "tilelang.language.macro",
        # the standard library: pure helpers only
        "functools.lru_cache",
        "functools.cache",
        "functools.partial",
        "dataclasses.dataclass",
        "dataclasses.field",
        "__future__.annotations",
    }
)
# Modules whose every public name is pure (typing: only its types and `cast`; its lowercase names
# include `get_type_hints`, which evaluates strings, and the modules it imported).
_PURE_MODULES = ("math",)
_TYPING_FUNCS = frozenset({"cast", "overload", "final", "no_type_check"})
# A KernelBench-form candidate (`class ModelNew(nn.Module)`) also needs torch.nn's module classes.
_MODULES_MODE_ROOT = "torch.nn"
_ALLOWED_IMPORTS = frozenset(
    {
        "__future__",
        "torch",
        "torch.nn",
        "triton",
        "triton.language",
        "math",
        "functools",
        "typing",
        "dataclasses",
        "tilelang",
        "tilelang.language",
    }
)
_BASE_CLASS_QUALS = frozenset({"torch.nn.Module"})  # modules mode only

_ALLOWED_BUILTINS = frozenset(
    {
        "len",
        "range",
        "min",
        "max",
        "int",
        "float",
        "bool",
        "str",
        "repr",
        "tuple",
        "list",
        "dict",
        "set",
        "isinstance",
        "enumerate",
        "zip",
        "abs",
        "divmod",
        "sum",
        "any",
        "all",
        "sorted",
        "reversed",
        "round",
        "print",
        "type",  # one argument only (three build a class)
        "super",  # `super().__init__()` in a method only
        "getattr",  # with a literal name only, checked as the attribute it reads
        "Exception",
        "ValueError",
        "TypeError",
        "AssertionError",
        "NotImplementedError",
        "RuntimeError",
        "KeyError",
        "IndexError",
        "ImportError",
    }
)
# Attributes host code may read on objects that are not modules (tensors, devices, dtypes, containers,
# strings): shapes, strides, dtypes, views, allocation and in-place fills. No compute (.sum, .exp,
# .matmul), no host reads of values (.item, .tolist, .numpy, .cpu), no storage or hooks.
_HOST_ATTRS = frozenset(
    {
        # shape, layout, dtype, device
        "shape",
        "size",
        "stride",
        "dim",
        "ndim",
        "ndimension",
        "numel",
        "nelement",
        "dtype",
        "device",
        "layout",
        "is_contiguous",
        "is_cuda",
        "is_floating_point",
        "is_complex",
        "element_size",
        "itemsize",
        "storage_offset",
        "data_ptr",
        "T",
        "mT",
        "type",
        # views
        "contiguous",
        "view",
        "view_as",
        "reshape",
        "reshape_as",
        "t",
        "transpose",
        "permute",
        "expand",
        "expand_as",
        "unsqueeze",
        "squeeze",
        "narrow",
        "select",
        "flatten",
        "unflatten",
        "chunk",
        "split",
        "unbind",
        "movedim",
        "detach",
        # allocation, fills, copies and casts
        "new_empty",
        "new_zeros",
        "new_ones",
        "new_full",
        "new_empty_strided",
        "zero_",
        "fill_",
        "copy_",
        "clone",
        "to",
        "float",
        "half",
        "bfloat16",
        "double",
        "int",
        "long",
        # dicts, lists, sets and strings
        "get",
        "items",
        "keys",
        "values",
        "append",
        "extend",
        "insert",
        "pop",
        "setdefault",
        "update",
        "count",
        "format",
        "join",
        "startswith",
        "endswith",
        "removeprefix",
        "removesuffix",
        "replace",
        "lower",
        "upper",
        "strip",
    }
)
# Attributes of the objects a few allowed calls return (`torch.cuda.get_device_properties(d).multi_processor_count`),
# by type; names a tensor also answers to (`.add`, `.index`) only where the receiver is known.
_RETURNS = {
    "torch.finfo": "torch.finfo",
    "torch.iinfo": "torch.iinfo",
    "torch.device": "torch.device",
    "torch.cuda.get_device_properties": "torch.cuda.get_device_properties",
    "triton.runtime.driver.active.get_active_torch_device": "torch.device",
}
_TYPED_ATTRS: dict[str, frozenset[str]] = {
    "torch.device": frozenset({"index", "type"}),
    "set": frozenset({"add", "discard"}),
    "sequence": frozenset({"index", "count"}),
    "torch.finfo": frozenset({"max", "min", "eps", "tiny", "bits", "resolution", "smallest_normal", "dtype"}),
    "torch.iinfo": frozenset({"max", "min", "bits", "dtype"}),
    "torch.cuda.get_device_properties": frozenset(
        {
            "multi_processor_count",
            "major",
            "minor",
            "name",
            "total_memory",
            "warp_size",
            "L2_cache_size",
            "max_threads_per_multi_processor",
            "regs_per_multiprocessor",
            "shared_memory_per_block",
            "shared_memory_per_block_optin",
            "shared_memory_per_multiprocessor",
            "gcnArchName",
        }
    ),
}
# What makes host code compute on tensors: arithmetic, comparisons and truth tests on them, and the
# builtins that read their values into Python numbers.
_VALUE_READS = frozenset(
    {
        "int",
        "float",
        "bool",
        "complex",
        "sum",
        "min",
        "max",
        "abs",
        "round",
        "sorted",
        "any",
        "all",
        "divmod",
        "range",
        "str",
        "repr",
        "format",
    }
)
# Builtins whose result holds the tensors given to them (rows, pairs).
_TENSOR_CONTAINERS = frozenset({"list", "tuple", "reversed", "zip", "enumerate", "iter", "dict", "set"})
# Allowed functions that may take tensors, and how many leading arguments (None: all); every other
# allowed function takes sizes, numbers and dtypes, where a tensor would give up its values.
_TENSOR_ARG_QUALS: dict[str, int | None] = {
    "torch.empty_like": 1,
    "torch.zeros_like": 1,
    "torch.ones_like": 1,
    "torch.full_like": 1,
    "triton.tools.tensor_descriptor.TensorDescriptor.from_tensor": 1,
    "torch.is_tensor": None,
    "torch.is_floating_point": None,
    "functools.partial": None,
    "typing.cast": None,
    "torch.nn.Parameter": None,  # modules mode: a ModelNew's weights
}
# Methods of a tensor that may take another tensor (its storage, dtype or shape, never its values).
_TENSOR_ARG_METHODS = frozenset({"copy_", "view_as", "expand_as", "reshape_as", "type_as", "to", "fill_"})
# Tensor methods whose result is again a tensor (a view, a cast, an allocation like it).
_TENSOR_RESULTS = (
    _VIEW_METHODS
    | _ALLOC_METHODS
    | frozenset(
        {
            "expand",
            "expand_as",
            "detach",
            "clone",
            "to",
            "float",
            "half",
            "bfloat16",
            "double",
            "int",
            "long",
            "zero_",
            "fill_",
            "copy_",
            "chunk",
            "split",
            "unbind",
        }
    )
)
# nn.Module attributes a ModelNew may use on itself and its submodules (modules mode): its weights.
_MODULE_ATTRS = frozenset({"weight", "bias", "register_buffer", "register_parameter"})
# Keywords (and how many positional arguments) the triton and tilelang APIs may take: no hooks
# (pre_hook, post_hook, launch_metadata, repr), no config pruning or perf models, no custom
# benchmarker, no on-disk result cache, no CUDA graphs, no IR overrides or debug dumps.
_API_KEYWORDS: dict[str, tuple[int, frozenset[str]]] = {
    "triton.jit": (
        1,
        frozenset({"do_not_specialize", "do_not_specialize_on_alignment", "debug", "noinline"}),
    ),
    "triton.autotune": (2, frozenset({"configs", "key", "reset_to_zero", "restore_value", "warmup", "rep"})),
    "triton.Config": (5, frozenset({"kwargs", "num_warps", "num_stages", "num_ctas", "maxnreg"})),
    "triton.heuristics": (1, frozenset({"values"})),
    "tilelang.jit": (1, frozenset({"out_idx", "target"})),
    "tilelang.compile": (1, frozenset({"out_idx", "target"})),
}
# Keywords refused in any call (so a functools.partial cannot carry them): and any naming a hook.
_HOOK_KEYWORDS = frozenset(
    {
        "launch_metadata",
        "prune_configs_by",
        "early_config_prune",
        "perf_model",
        "do_bench",
        "use_cuda_graph",
        "cache_results",
        "ir_override",
    }
)
# torch namespaces whose functions compute: one not on the allowlist is host compute (reference_call).
_TORCH_COMPUTE = (
    "torch",
    "torch.Tensor",
    "torch.nn.functional",
    "torch.linalg",
    "torch.special",
    "torch.fft",
)
# Methods a class defined by the candidate may define under a dunder name.
_ALLOWED_DUNDER_DEFS = frozenset({"__init__", "__call__", "__post_init__"})

# Kernel bodies: triton.language / tilelang.language (one level: `tl.load`, `T.copy`, plus libdevice),
# the candidate's own jit functions and constants, the same builtins, and tensor members.
_KERNEL_QUAL_ROOTS = ("triton.language", "tilelang.language")
_KERNEL_QUAL_DEEP = (
    "triton.language.extra.libdevice",
    "triton.language.extra.cuda.libdevice",
    "triton.language.extra.hip.libdevice",
    "triton.language.math",
)
_KERNEL_QUALS = frozenset({"triton.cdiv"})
_KERNEL_ATTRS = frozenset(
    {
        # tl.tensor members
        "T",
        "abs",
        "advance",
        "argmax",
        "argmin",
        "associative_scan",
        "atomic_add",
        "atomic_and",
        "atomic_cas",
        "atomic_max",
        "atomic_min",
        "atomic_or",
        "atomic_xchg",
        "atomic_xor",
        "broadcast_to",
        "cast",
        "cdiv",
        "ceil",
        "cos",
        "cumprod",
        "cumsum",
        "erf",
        "exp",
        "exp2",
        "expand_dims",
        "flip",
        "floor",
        "gather",
        "histogram",
        "item",
        "log",
        "log2",
        "logical_and",
        "logical_or",
        "max",
        "min",
        "permute",
        "ravel",
        "reduce",
        "reduce_or",
        "reshape",
        "rsqrt",
        "sigmoid",
        "sin",
        "softmax",
        "sort",
        "split",
        "sqrt",
        "sqrt_rn",
        "store",
        "sum",
        "to",
        "trans",
        "view",
        "xor_sum",
        "shape",
        "dtype",
        "type",
        "numel",
        "value",
        # tensor descriptors and dtypes
        "load",
        "scatter",
        "block_shape",
        "block_type",
        "element_ty",
        "primitive_bitwidth",
        "scalar",
        "is_floating",
        "is_int",
        "is_ptr",
        "is_fp16",
        "is_bf16",
        "is_fp32",
        "is_fp64",
        "is_int_signed",
    }
)


class _Binding(NamedTuple):
    """One binding of a name: kind "param", "value" (`n = value`), "unpack" (`a, n = value`), "iter"
    (`for n in value`), "def" (value: the def or class) or "other" (imports, handlers, with-targets)."""

    kind: str
    value: ast.AST | None


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
# What the body of a memoized helper may contain: arithmetic, tuples, control flow, calls (checked).
_PURE_NODES = (
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Return,
    ast.If,
    ast.For,
    ast.While,
    ast.Break,
    ast.Continue,
    ast.Pass,
    ast.Expr,
    ast.Assert,
    ast.Raise,
    ast.Name,
    ast.Constant,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Tuple,
    ast.Subscript,
    ast.Slice,
    ast.Call,
    ast.keyword,
    ast.GeneratorExp,
    ast.comprehension,
    ast.Attribute,
    ast.JoinedStr,
    ast.FormattedValue,
    ast.Starred,
    ast.expr_context,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)


def _own_nodes(roots: Sequence[ast.AST]) -> Iterator[ast.AST]:
    """Nodes of one scope: not the bodies of nested functions, classes, lambdas or comprehensions
    (their decorators, defaults, bases and first iterable are evaluated here and included)."""
    stack = list(roots)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            stack.extend(
                [*node.decorator_list, *args.defaults, *(d for d in args.kw_defaults if d is not None)]
            )
        elif isinstance(node, ast.ClassDef):
            stack.extend([*node.decorator_list, *node.bases, *(k.value for k in node.keywords)])
        elif isinstance(node, ast.Lambda):
            stack.extend([*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)])
        elif isinstance(node, _COMPREHENSIONS):
            stack.append(node.generators[0].iter)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _walk_outside_kernels(root: ast.AST, is_kernel: Callable[[ast.AST], bool]) -> Iterator[ast.AST]:
    """`ast.walk`, but a kernel definition is yielded without its insides (kernel rules check those)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if not is_kernel(node):
            stack.extend(ast.iter_child_nodes(node))


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _is_dtype_qual(q: str) -> bool:
    parts = q.split(".")
    return (len(parts) == 2 and parts[0] == "torch" and parts[1] in _TORCH_DTYPES) or (
        len(parts) == 3 and parts[:2] == ["triton", "language"] and parts[2] in _TL_DTYPES
    )


def _is_pure_qual(q: str) -> bool:
    """math's functions and constants, triton.cdiv and triton.next_power_of_2."""
    parts = q.split(".")
    return q in _PURE_QUALS or (
        len(parts) == 2 and parts[0] in _PURE_MODULES and not parts[1].startswith("_")
    )


@functools.cache
def _tensor_members() -> frozenset[str]:
    """What torch.Tensor answers to, less dunders (read from torch: too many to list)."""
    import torch

    return frozenset(n for n in dir(torch.Tensor) if not _is_dunder(n))


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

    def __init__(
        self,
        tree: ast.Module,
        op_family: str,
        entry: str,
        outputs: Sequence[str] | None,
        modules: bool = False,
    ) -> None:
        self.tree = tree
        self.modules = modules
        self.family_funcs = _FAMILY_FUNCS.get(op_family, _GEMM)
        self.family_methods = self.family_funcs - _NOT_METHODS
        self.entry = entry
        self.outputs = outputs
        self.findings: dict[tuple[int, str, str], Verdict] = {}
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
        self._scope_cache: dict[ast.AST, dict[str, list[_Binding]]] = {}
        self.pure_memoized: set[ast.FunctionDef] = set()
        self.pure_memoized, self.memo_why = self._memo_verdicts()
        self.memo_ok = {deco for fn, deco in self._memoized_defs().items() if fn in self.pure_memoized}

    # ---- findings -----------------------------------------------------------------------------

    def add(self, node: ast.AST, cls: FailureClass, message: str, check: str | None = None) -> None:
        """A failing verdict of `check` (by default the denylist check that reports `cls`)."""
        line = getattr(node, "lineno", 0)
        check = check or _CHECK_OF[cls]
        key = (line, check, message)
        if key not in self.findings:
            self.findings[key] = Verdict(
                check=check,
                ok=False,
                detail=f"line {line}: {message}",
                severity="fail",
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
                if stmt.value is not None and (
                    self._is_container(stmt.value) or isinstance(stmt.value, ast.Call)
                ):
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
                        self.aliases.setdefault(alias.asname or alias.name, set()).add(
                            f"{node.module}.{alias.name}"
                        )
        # Plain assignments of resolvable values (`mm = torch.matmul`, `T = torch`), to a fixed point.
        for _ in range(8):
            changed = False
            for node in ast.walk(self.tree):
                pairs: list[tuple[ast.AST, ast.AST]] = []
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if (
                            isinstance(target, (ast.Tuple, ast.List))
                            and isinstance(node.value, (ast.Tuple, ast.List))
                            and len(target.elts) == len(node.value.elts)
                        ):
                            pairs.extend(zip(target.elts, node.value.elts))
                        else:
                            pairs.append((target, node.value))
                elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                    pairs.append((node.target, node.value))
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    args = node.args
                    positional = args.posonlyargs + args.args
                    pairs.extend(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
                    pairs.extend((a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None)
                elif isinstance(node, (ast.With, ast.AsyncWith)):
                    pairs.extend(
                        (item.optional_vars, item.context_expr) for item in node.items if item.optional_vars
                    )
                for bound, value in pairs:
                    name = (
                        bound.id
                        if isinstance(bound, ast.Name)
                        else bound.arg
                        if isinstance(bound, ast.arg)
                        else None
                    )
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
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "__dict__"
            and _is_str(node.slice)
        ):
            return {f"{q}.{node.slice.value}" for q in self.resolve(node.value.value, depth + 1)}  # type: ignore[attr-defined]
        return set()

    @staticmethod
    def _getattr_literal(node: ast.Call) -> tuple[ast.AST, str] | None:
        if (
            isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and _is_str(node.args[1])
        ):
            return node.args[0], node.args[1].value  # type: ignore[attr-defined]
        return None

    # ---- scopes: which binding a name refers to -------------------------------------------------

    def _enclosing_scopes(self, node: ast.AST) -> list[ast.AST]:
        """The scopes `node` sees names of, innermost first, the module last (a class body only for
        code directly in it)."""
        scopes: list[ast.AST] = []
        path: list[ast.AST] = [node]
        cur = self.parents.get(node)
        while cur is not None:
            child = path[-1]
            if isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = child in cur.body
            elif isinstance(cur, ast.ClassDef):
                inner = child in cur.body and not scopes
            elif isinstance(cur, ast.Lambda):
                inner = child is cur.body
            elif isinstance(cur, _COMPREHENSIONS):
                # the first iterable is evaluated in the enclosing scope
                inner = not (
                    child is cur.generators[0] and len(path) > 1 and path[-2] is cur.generators[0].iter
                )
            else:
                inner = False
            if inner:
                scopes.append(cur)
            path.append(cur)
            cur = self.parents.get(cur)
        scopes.append(self.tree)
        return scopes

    def _bindings(self, scope: ast.AST) -> dict[str, list[_Binding]]:
        """Each name bound in `scope` -> its bindings (parameters, assignments, loops, imports, defs)."""
        cached = self._scope_cache.get(scope)
        if cached is not None:
            return cached
        found: dict[str, list[_Binding]] = {}
        declared_global: set[str] = set()
        if isinstance(scope, ast.Module):
            nodes: list[ast.AST] = list(self.body)
        elif isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = scope.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if a is not None:
                    found.setdefault(a.arg, []).append(_Binding("param", None))
            nodes = [scope.body] if isinstance(scope, ast.Lambda) else list(scope.body)
        elif isinstance(scope, ast.ClassDef):
            nodes = list(scope.body)
        else:  # a comprehension: its targets only
            for gen in scope.generators:  # type: ignore[attr-defined]
                for name in _target_names(gen.target):
                    found.setdefault(name.id, []).append(_Binding("iter", gen.iter))
            self._scope_cache[scope] = found
            return found
        for node in _own_nodes(nodes):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                found.setdefault(node.id, []).append(self._binding_of(node))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.setdefault(node.name, []).append(_Binding("def", node))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    found.setdefault((alias.asname or alias.name).split(".")[0], []).append(
                        _Binding("other", None)
                    )
            elif isinstance(node, ast.ExceptHandler) and node.name:
                found.setdefault(node.name, []).append(_Binding("other", None))
            elif isinstance(node, ast.Global):
                declared_global.update(node.names)
        if isinstance(scope, ast.Module):  # `global x` in a function binds the module's x
            for node in ast.walk(scope):
                if isinstance(node, ast.Global):
                    for global_name in node.names:
                        found.setdefault(global_name, []).append(_Binding("other", None))
        else:
            for global_name in declared_global:
                found.pop(global_name, None)
        self._scope_cache[scope] = found
        return found

    def _binding_of(self, name: ast.Name) -> _Binding:
        node: ast.AST = name
        parent = self.parents.get(node)
        unpacked = False
        while isinstance(parent, (ast.Tuple, ast.List, ast.Starred)):
            unpacked = True
            node, parent = parent, self.parents.get(parent)
        if isinstance(parent, ast.Assign):
            return _Binding("unpack" if unpacked else "value", parent.value)
        if isinstance(parent, (ast.AnnAssign, ast.NamedExpr)) and parent.value is not None:
            return _Binding("value", parent.value)
        if isinstance(parent, ast.AugAssign):
            return _Binding("value", ast.BinOp(left=parent.target, op=parent.op, right=parent.value))
        if isinstance(parent, (ast.For, ast.AsyncFor, ast.comprehension)) and parent.target is node:
            return _Binding("iter", parent.iter)
        return _Binding("other", None)

    def lookup(self, name: str, node: ast.AST) -> tuple[ast.AST, list[_Binding]] | None:
        """The scope binding `name` where `node` reads it and its bindings there; None for a builtin."""
        for scope in self._enclosing_scopes(node):
            bindings = self._bindings(scope).get(name)
            if bindings:
                return scope, bindings
        return None

    def _module_def_called(self, node: ast.Name) -> ast.AST | None:
        """The module-level def or class `node` names, if that is its only binding."""
        found = self.lookup(node.id, node)
        if found is None or found[0] is not self.tree or len(found[1]) != 1 or found[1][0].kind != "def":
            return None
        return found[1][0].value

    # ---- scalars: shapes, strides, dtypes, devices, constants, and arithmetic on them ------------

    def scalar(self, node: ast.AST, seen: frozenset[str] = frozenset()) -> bool:
        """`node` is built from constants, shape/stride/dtype/device reads and arithmetic, never from a
        tensor or a value read out of one."""
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Starred):
            return self.scalar(node.value, seen)
        if isinstance(node, ast.Tuple):
            return all(self.scalar(e, seen) for e in node.elts)
        if isinstance(node, ast.Attribute):
            quals = self.resolve(node)
            return all(_is_dtype_qual(q) for q in quals) if quals else node.attr in _SCALAR_ATTRS
        if isinstance(node, ast.Subscript):
            return self.scalar(node.value, seen) and self.scalar(node.slice, seen)
        if isinstance(node, ast.Slice):
            return all(p is None or self.scalar(p, seen) for p in (node.lower, node.upper, node.step))
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp)):
            return all(
                self.scalar(c, seen)
                for c in ast.iter_child_nodes(node)
                if not isinstance(c, (ast.operator, ast.unaryop, ast.boolop, ast.cmpop))
            )
        if isinstance(node, ast.GeneratorExp):
            return self.scalar(node.elt, seen) and all(
                self.scalar(g.iter, seen) and all(self.scalar(i, seen) for i in g.ifs)
                for g in node.generators
            )
        if isinstance(node, ast.Call):
            return self._scalar_call(node, seen)
        if isinstance(node, ast.Name):
            quals = self.resolve(node)
            if quals:
                return all(_is_dtype_qual(q) for q in quals)
            if node.id in seen:
                return True  # a name defined in terms of itself: its other bindings decide
            found = self.lookup(node.id, node)
            if found is None:
                return False
            scope, bindings = found
            if [b.kind for b in bindings] == ["param"]:
                return self._param_scalar(scope, node.id, seen)
            return all(
                b.kind in {"value", "unpack", "iter"}
                and b.value is not None
                and self.scalar(b.value, seen | {node.id})
                for b in bindings
            )
        return False

    def _param_scalar(self, fn: ast.AST, name: str, seen: frozenset[str]) -> bool:
        """Parameter `name` of the module-level function `fn` gets a scalar at every call site (and
        from its default), and `fn` is only ever called."""
        key = f"{getattr(fn, 'name', '')}({name})"
        if key in seen:
            return True
        if not isinstance(fn, ast.FunctionDef) or self.module_defs.get(fn.name) is not fn:
            return False
        args = fn.args
        positional = [a.arg for a in args.posonlyargs + args.args]
        defaults = dict(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
        defaults.update((a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None)
        if name in defaults and not self.scalar(defaults[name], seen | {key}):
            return False
        sites = self._call_sites(fn)
        if not sites or fn.name == self.entry:
            return False  # called from outside (the harness): its arguments are the task's tensors
        for call in sites:
            if (
                call is None
                or any(isinstance(a, ast.Starred) for a in call.args)
                or any(k.arg is None for k in call.keywords)
            ):
                return False
            passed = [k.value for k in call.keywords if k.arg == name]
            if name in positional and positional.index(name) < len(call.args):
                passed.append(call.args[positional.index(name)])
            if not all(self.scalar(v, seen | {key}) for v in passed):
                return False
        return True

    def _call_sites(self, fn: ast.AST) -> list[ast.Call | None]:
        """Every use by name of the function `fn` (a def, or a lambda bound to a name): the call, or
        None where it is not called."""
        parent = self.parents.get(fn)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = fn.name
        elif (
            isinstance(fn, ast.Lambda)
            and isinstance(parent, ast.Assign)
            and len(parent.targets) == 1
            and isinstance(parent.targets[0], ast.Name)
        ):
            name = parent.targets[0].id
        else:
            return []
        sites: list[ast.Call | None] = []
        for stmt in self.body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load):
                    found = self.lookup(name, node)
                    if found and any(b.value is fn for b in found[1]):
                        call = self.parents.get(node)
                        sites.append(call if isinstance(call, ast.Call) and call.func is node else None)
        return sites

    def _scalar_call(self, node: ast.Call, seen: frozenset[str]) -> bool:
        args = all(self.scalar(a, seen) for a in [*node.args, *(k.value for k in node.keywords)])
        func = node.func
        if isinstance(func, ast.Attribute) and not self.resolve(func):
            return args and (
                func.attr in _SCALAR_METHODS or (func.attr in _STR_METHODS and self.scalar(func.value, seen))
            )
        if isinstance(func, ast.Name) and self.lookup(func.id, func) is None and func.id not in self.aliases:
            return func.id == "len" or (func.id in _PURE_BUILTINS and args)
        if isinstance(func, ast.Name) and self._module_def_called(func) in self.pure_memoized:
            return args
        quals = self.resolve(func)
        return bool(quals) and all(_is_pure_qual(q) for q in quals) and args

    # ---- memoized helpers: functools.lru_cache / cache on a pure function of scalars -------------

    def _memoized_defs(self) -> dict[ast.FunctionDef, ast.AST]:
        """Module-level functions whose only decorator is functools.lru_cache or functools.cache ->
        the node naming the decorator."""
        found: dict[ast.FunctionDef, ast.AST] = {}
        for d in self.module_defs.values():
            if isinstance(d, ast.FunctionDef) and len(d.decorator_list) == 1:
                deco = d.decorator_list[0]
                target = deco.func if isinstance(deco, ast.Call) else deco
                if self.resolve(target) and self.resolve(target) <= _MEMOIZERS:
                    found[d] = target
        return found

    def why_not_pure(
        self, fn: ast.FunctionDef | ast.Lambda, visiting: frozenset[str] = frozenset()
    ) -> str | None:
        """None if `fn`'s body only computes on its arguments, constants, shape/stride/dtype reads and
        pure helpers (math, triton.cdiv, other pure helpers) and builds no container; else what it does.
        A kernel factory is pure too: it may define kernels (checked as kernels) and compile them."""
        for stmt in [fn.body] if isinstance(fn, ast.Lambda) else fn.body:
            for node in _walk_outside_kernels(stmt, self._is_kernel_def):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and self._is_kernel_def(node):
                    continue
                if not isinstance(node, _PURE_NODES):
                    return f"its body has {type(node).__name__.lower()}"
                parent = self.parents.get(node)
                if isinstance(node, ast.GeneratorExp) and not (
                    isinstance(parent, ast.Call) and node in parent.args
                ):
                    return "its body makes a generator"
                if isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load):
                    return "its body writes through a subscript"
                if isinstance(node, ast.Attribute) and self._maximal(node):
                    quals = self.resolve(node)
                    called = isinstance(parent, ast.Call) and parent.func is node
                    if quals and all(
                        _is_pure_qual(q) or _is_dtype_qual(q) or (called and q in _FACTORY_QUALS)
                        for q in quals
                    ):
                        continue
                    if quals or not (
                        node.attr in _SCALAR_ATTRS or (called and node.attr in _SCALAR_METHODS | _STR_METHODS)
                    ):
                        return f"its body reads .{node.attr}"
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    why = self._why_name_not_pure(node, fn, visiting)
                    if why is not None:
                        return why
        return None

    def _why_name_not_pure(
        self, node: ast.Name, fn: ast.FunctionDef | ast.Lambda, visiting: frozenset[str]
    ) -> str | None:
        quals = self.resolve(node)
        if quals:
            ok = all(_is_pure_qual(q) or _is_dtype_qual(q) for q in quals) or not self._maximal(node)
            return None if ok else f"its body uses {sorted(quals)[0]}"
        found = self.lookup(node.id, node)
        if found is None:
            return None if node.id in _PURE_BUILTINS else f"its body uses {node.id}"
        scope, bindings = found
        if scope is not self.tree:
            return None  # its own parameters and locals, or (a nested fn) its closure's
        if all(b.kind == "def" for b in bindings):
            called = self.parents.get(node)
            target = bindings[0].value
            inner = visiting | {getattr(fn, "name", "")}
            if (
                isinstance(called, ast.Call)
                and called.func is node
                and isinstance(target, ast.FunctionDef)
                and (not target.decorator_list or target in self._memoized_defs())
                and (node.id in visiting or self.why_not_pure(target, inner) is None)
            ):
                return None
            return f"its body uses {node.id}, which is not a pure helper"
        if all(b.kind == "value" and self.scalar(b.value) for b in bindings):  # type: ignore[arg-type]
            return None  # a module-level constant
        return f"its body reads module-level {node.id}"

    def _memo_verdicts(self) -> tuple[set[ast.FunctionDef], dict[ast.AST, str]]:
        """The memoized helpers that may stay memoized, and why each other one may not (by decorator)."""
        memoized = self._memoized_defs()
        pure: set[ast.FunctionDef] = set()
        why: dict[ast.AST, str] = {}
        # purity first (a helper may call another), then every call site must pass scalars
        for fn, deco in memoized.items():
            reason = self.why_not_pure(fn)
            if reason is None:
                pure.add(fn)
            else:
                why[deco] = reason
        self.pure_memoized = pure
        for fn in list(pure):
            reason = self._why_call_sites_not_scalar(fn)
            if reason is not None:
                pure.discard(fn)
                why[memoized[fn]] = reason
        return pure, why

    def _why_call_sites_not_scalar(self, fn: ast.FunctionDef) -> str | None:
        for call in self._call_sites(fn):
            if call is None:
                return f"{fn.name} is passed around, not only called"
            if not all(self.scalar(a) for a in [*call.args, *(k.value for k in call.keywords)]):
                return (
                    f"line {call.lineno}: {fn.name} is called with an argument that is not a shape, stride, "
                    "dtype or constant"
                )
        return None

    # ---- scratch pools: a module-level dict of fresh allocations keyed by scalars ------------------

    def _is_pool(self, name: str) -> bool:
        """`name` is a module-level dict made empty (`{}`, `dict()`) and never rebound."""
        bindings = self._bindings(self.tree).get(name, [])
        return bool(bindings) and all(
            b.kind == "value"
            and (
                isinstance(b.value, ast.Dict)
                and not b.value.keys
                or isinstance(b.value, ast.Call)
                and isinstance(b.value.func, ast.Name)
                and b.value.func.id == "dict"
                and not b.value.args
                and not b.value.keywords
            )
            for b in bindings
        )

    def _is_alloc(self, value: ast.AST | None) -> bool:
        if not isinstance(value, ast.Call):
            return False
        func = value.func
        if isinstance(func, ast.Attribute) and not self.resolve(func):
            return func.attr in _ALLOC_METHODS
        quals = self.resolve(func)
        return bool(quals) and quals <= _ALLOC_QUALS

    def _is_pool_read(self, value: ast.AST | None, pool: str | None = None) -> bool:
        """`value` is `P.get(key)`, `P[key]` or `P.setdefault(...)` of a pool P (`pool`, if given)."""
        if isinstance(value, ast.Subscript):
            base = value.value
        elif (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr in {"get", "setdefault"}
        ):
            base = value.func.value
        else:
            return False
        return isinstance(base, ast.Name) and (base.id == pool if pool else self._is_pool(base.id))

    def _is_fresh(self, value: ast.AST, at: ast.AST, pool: str) -> bool:
        """`value` is a fresh allocation, or a local bound only to fresh allocations and entries of `pool`."""
        if self._is_alloc(value):
            return True
        if not isinstance(value, ast.Name):
            return False
        found = self.lookup(value.id, at)
        if found is None or found[0] is self.tree:
            return False
        return all(
            b.kind == "value" and (self._is_alloc(b.value) or self._is_pool_read(b.value, pool))
            for b in found[1]
        )

    def _is_pool_write(self, target: ast.Subscript, stmt: ast.AST) -> bool:
        """`P[key] = fresh` with P a pool and key a scalar (shape, dtype, device)."""
        return (
            isinstance(stmt, ast.Assign)
            and stmt.targets == [target]
            and isinstance(target.value, ast.Name)
            and self._is_pool(target.value.id)
            and self.scalar(target.slice)
            and self._is_fresh(stmt.value, stmt, target.value.id)
        )

    def _is_pool_setdefault(self, call: ast.Call) -> bool:
        func = call.func
        return (
            isinstance(func, ast.Attribute)
            and func.attr == "setdefault"
            and isinstance(func.value, ast.Name)
            and self._is_pool(func.value.id)
            and len(call.args) == 2
            and not call.keywords
            and self.scalar(call.args[0])
            and self._is_fresh(call.args[1], call, func.value.id)
        )

    def _is_pooled(self, expr: ast.AST, at: ast.AST) -> bool:
        """`expr` is (a view of) a pool or an entry of one: kernel scratch, never a result."""
        while True:
            if isinstance(expr, (ast.Subscript, ast.Starred)):
                expr = expr.value
            elif isinstance(expr, ast.Attribute) and expr.attr in {"T", "mT"}:
                expr = expr.value
            elif (
                isinstance(expr, ast.Call)
                and isinstance(expr.func, ast.Attribute)
                and expr.func.attr in _VIEW_METHODS
            ):
                expr = expr.func.value
            elif self._is_pool_read(expr):
                return True
            else:
                break
        if not isinstance(expr, ast.Name):
            return False
        if self._is_pool(expr.id):
            return True
        found = self.lookup(expr.id, at)
        if found is None or found[0] is self.tree:
            return False
        scope = found[0]
        if any(b.kind == "value" and self._is_pool_read(b.value) for b in found[1]):
            return True
        return any(
            isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Name)
            and n.value.id == expr.id
            and any(
                isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and self._is_pool(t.value.id)
                for t in n.targets
            )
            for n in ast.walk(scope)
        )

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
            self.notes.append(
                Verdict(
                    check="static:main_block",
                    ok=True,
                    severity="info",
                    detail=f'line {guard.lineno}: skipped the `if __name__ == "__main__":` block (never runs on import)',
                )
            )
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
            self.add(
                node, F.REWARD_HACK_CACHING, f"`global {', '.join(node.names)}` keeps state across calls"
            )
        elif isinstance(node, ast.Nonlocal):
            self.add(
                node, F.REWARD_HACK_CACHING, f"`nonlocal {', '.join(node.names)}` keeps state across calls"
            )
        elif isinstance(node, ast.Lambda):
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                if self._is_container(default):
                    self.add(
                        default,
                        F.REWARD_HACK_CACHING,
                        "mutable default argument of a lambda keeps state across calls",
                    )
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult) and live and not kernel:
            self.add(
                node, F.REWARD_HACK_REFERENCE_CALL, "the `@` operator multiplies matrices outside a kernel"
            )
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in _EXIT_EXCEPTIONS:
                self.add(node, F.REWARD_HACK_FORBIDDEN_CALL, f"raises {exc.id} to end the worker")
        elif isinstance(node, ast.Constant) and node.value in _LAZY_DEFS:
            self.add(
                node, F.REWARD_HACK_LAZY_OUTPUT, f"names {node.value} (a tensor subclass intercepting reads)"
            )
        elif isinstance(node, ast.keyword) and node.arg == "non_blocking":
            if not (isinstance(node.value, ast.Constant) and not node.value.value):
                self.add(
                    node.value, F.REWARD_HACK_STREAM, "non_blocking copy runs outside the timed stream order"
                )

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
                    self.add(node, cls, f"reaches {part} through {'.'.join(parts[: i + 1])}")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in _DOTTED_FORBIDDEN:
                    self.add(node, _DOTTED_FORBIDDEN[prefix], f"uses {prefix}")
            if load and root in {"torch", "triton", "cuda"}:
                if any("stream" in p.lower() for p in parts[1:]) or (
                    any(p in _STREAM_NAMES for p in parts[1:])
                    and not q.startswith(("torch.fx", "torch.export"))
                ):
                    self.add(node, F.REWARD_HACK_STREAM, f"uses {q} (side streams, events or CUDA graphs)")
            if q in _CACHE_QUALS and node not in self.memo_ok:
                why = self.memo_why.get(node)
                self.add(node, F.REWARD_HACK_CACHING, f"memoizes with {q}" + (f" ({why})" if why else ""))
            if q in _FORBIDDEN_CALL_QUALS or (root in {"torch", "numpy"} and parts[-1] in _FILE_METHODS):
                self.add(node, F.REWARD_HACK_FORBIDDEN_CALL, f"uses {q}")
            if (
                q in _GLOBAL_STATE_CALLS
                or (root == "torch" and len(parts) == 2 and parts[1].startswith("set_"))
                or q.startswith("torch.backends.")
                and len(parts) > 3
            ):
                self.add(node, F.REWARD_HACK_GLOBAL_MUTATION, f"uses {q} (process-wide torch state)")
            if q in _LAZY_QUALS or (
                root == "torch" and any(p in {"TorchFunctionMode", "TorchDispatchMode"} for p in parts)
            ):
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
            self.add(
                node, F.REWARD_HACK_REFERENCE_CALL, f"uses {q} (a vendor op or compiler for the computation)"
            )
            return
        for part in parts[1:]:
            name = _norm_name(part)
            if name in self.family_funcs or "attention" in name or "attn" in name:
                self.add(
                    node, F.REWARD_HACK_REFERENCE_CALL, f"uses {q} (a torch op doing the main computation)"
                )
                return

    def _maximal(self, node: ast.AST) -> bool:
        """True unless `node` is the object of a longer attribute chain."""
        parent = self.parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return False
        if (
            isinstance(parent, ast.Call)
            and self._getattr_literal(parent) is not None
            and parent.args[0] is node
        ):
            return False
        if (
            isinstance(parent, ast.Subscript)
            and parent.value is node
            and isinstance(node, ast.Attribute)
            and node.attr == "__dict__"
        ):
            return False
        return True

    def _check_name(self, node: ast.Name, live: bool, kernel: bool) -> None:
        if node.id in _FRAME_NAMES:
            self.add(node, F.REWARD_HACK_FRAME_ACCESS, f"reads {node.id}")
        if not isinstance(node.ctx, ast.Load):
            return
        parent = self.parents.get(node)
        called = isinstance(parent, ast.Call) and parent.func is node
        if (
            node.id in _FORBIDDEN_BUILTINS
        ):  # no shadowing exemption: a dead `eval = ...` must not hide a real one
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
            self.add(
                node,
                F.REWARD_HACK_REFERENCE_CALL,
                f"calls .{attr}() on a tensor (a torch op doing the main computation)",
            )

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
        if (
            name in {"id", "hash"}
            and name not in self.aliases
            or isinstance(func, ast.Attribute)
            and func.attr == "data_ptr"
        ):
            self._check_pointer_use(node, "data_ptr()" if name is None else f"{name}()")
        in_place = (
            func.attr in _MUTATORS or (func.attr.endswith("_") and not func.attr.startswith("__"))
            if isinstance(func, ast.Attribute)
            else False
        )
        if isinstance(func, ast.Attribute) and in_place and in_function:
            root = self._root_name(func.value)
            if self._is_module_state(root, node) and not self._is_pool_setdefault(node):
                self.add(
                    node, F.REWARD_HACK_CACHING, f"writes module-level {root} from a function (.{func.attr})"
                )
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "copy_"
            and in_function
            and any(self._is_pooled(e, node) for e in [func.value, *node.args])
        ):
            self.add(
                node,
                F.REWARD_HACK_CACHING,
                "copies into or out of a scratch-pool buffer "
                "(pool entries are kernel scratch, never results)",
            )
        if (
            isinstance(func, ast.Attribute)
            and (func.attr in _MUTATORS or func.attr == "copy_")
            and in_function
        ):
            for e in [func.value, *(node.args if func.attr == "copy_" else [])]:
                kept = self._kept_state(e, node, container=func.attr in _MUTATORS)
                if kept is not None:
                    self.add(node, F.REWARD_HACK_CACHING, f"{kept} (.{func.attr})")
        if (
            self.resolve(func) == {"functools.partial"}
            and not in_function
            and any(self._is_container(a) for a in [*node.args, *(k.value for k in node.keywords)])
        ):
            self.add(node, F.REWARD_HACK_CACHING, "binds a mutable container into a module-level partial")

    def _check_pointer_use(self, node: ast.Call, what: str) -> None:
        """A pointer or object id may be compared or tested for alignment, never kept or used as a key."""
        child: ast.AST = node
        parent = self.parents.get(node)
        while isinstance(parent, ast.BinOp) or isinstance(parent, ast.UnaryOp):
            if isinstance(parent, ast.BinOp) and isinstance(parent.op, (ast.Mod, ast.BitAnd)):
                return
            child, parent = parent, self.parents.get(parent)
        if isinstance(parent, ast.Compare) and all(
            isinstance(op, (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for op in parent.ops
        ):
            return
        if isinstance(parent, ast.Assert) and parent.test is child:
            return
        self.add(
            node,
            F.REWARD_HACK_CACHING,
            f"{what} is stored or used as a key (results keyed by buffer identity)",
        )

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

    def _kept_state(self, target: ast.AST, at: ast.AST, container: bool = False) -> str | None:
        """What outlives the call that writes through `target` (rooted at a name): `self` outside
        __init__ (of a class with a module-level instance, or any class when `container`, a container
        grown on an object being a cache), or a local of an enclosing function that returns the
        writing closure."""
        root = self._root_name(target)
        found = self.lookup(root, at) if root else None
        if found is None:
            return None
        scope, bindings = found
        inner = self.parents.get(at)
        while inner is not None and not isinstance(
            inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
        ):
            inner = self.parents.get(inner)
        cls = self.parents.get(scope)
        if scope is inner and isinstance(scope, ast.FunctionDef) and isinstance(cls, ast.ClassDef):
            positional = scope.args.posonlyargs + scope.args.args
            if (
                positional
                and positional[0].arg == root
                and [b.kind for b in bindings] == ["param"]
                and scope.name not in {"__init__", "__post_init__"}
                and (container or self._has_module_instance(cls))
            ):
                return f"stores state on {root} in {scope.name} (an object of {cls.name} keeps it)"
            return None
        if (
            isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef))
            and inner is not None
            and inner is not scope
        ):
            closure: ast.AST | None = inner
            while (
                closure is not None
                and self.parents.get(closure) is not None
                and self._enclosing_def(closure) is not scope
            ):
                closure = self._enclosing_def(closure)
            name = getattr(closure, "name", None)
            if name and any(
                isinstance(n, ast.Return) and isinstance(n.value, ast.Name) and n.value.id == name
                for n in _own_nodes(scope.body)
            ):
                return (
                    f"writes {root} of {scope.name} from the closure {name} it returns (state across calls)"
                )
        return None

    def _has_module_instance(self, cls: ast.ClassDef) -> bool:
        """A module-level name is bound to an instance of `cls` (`run = _Runner()`)."""
        return any(
            b.kind == "value"
            and isinstance(b.value, ast.Call)
            and isinstance(b.value.func, ast.Name)
            and b.value.func.id == cls.name
            for bs in self._bindings(self.tree).values()
            for b in bs
        )

    def _enclosing_def(self, node: ast.AST) -> ast.AST | None:
        cur = self.parents.get(node)
        while cur is not None and not isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            cur = self.parents.get(cur)
        return cur

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
            if (
                q in HARNESS_TIMING_MODULES
                or any(p in _TIMER_NAMES for p in parts[1:])
                or any(("time" in p.lower() and p != "runtime") or "bench" in p.lower() for p in parts[1:])
            ):
                self.add(node, F.REWARD_HACK_TIMING_TAMPER, f"patches {q}.{attr} (a timer, event or sync)")
            else:
                self.add(node, F.REWARD_HACK_GLOBAL_MUTATION, f"patches {q}.{attr}")

    def _check_store(
        self, node: ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete, in_function: bool
    ) -> None:
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        else:
            targets = [node.target]
        flat: list[ast.AST] = []
        for assigned in targets:
            stack = [assigned]
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
                    self.add(
                        target,
                        F.REWARD_HACK_CACHING,
                        f"stores state on argument {target.value.id} (the harness reuses its buffers)",
                    )
                elif in_function and (kept := self._kept_state(target.value, target)) is not None:
                    self.add(target, F.REWARD_HACK_CACHING, kept)
                if target.attr in {"data", "grad"}:
                    self.add(
                        target,
                        F.REWARD_HACK_OUTPUT_REBIND,
                        f"assigns .{target.attr} (replaces a tensor's storage)",
                    )
            elif isinstance(target, ast.Subscript):
                if isinstance(target.value, ast.Attribute) and target.value.attr == "__dict__":
                    quals = self.resolve(target.value.value)
                    key = target.slice.value if _is_str(target.slice) else "<computed>"  # type: ignore[attr-defined]
                    if quals:
                        self._classify_patch(target, quals, str(key))
                root = self._root_name(target)
                if (
                    in_function
                    and self._is_module_state(root, target)
                    and not self._is_pool_write(target, node)
                ):
                    self.add(target, F.REWARD_HACK_CACHING, f"writes module-level {root} from a function")
                elif in_function and (kept := self._kept_state(target, target, container=True)) is not None:
                    self.add(target, F.REWARD_HACK_CACHING, kept)
                if (
                    isinstance(node, ast.Assign)
                    and in_function
                    and not self._is_pooled(target, node)
                    and self._is_pooled(node.value, node)
                ):
                    self.add(
                        target,
                        F.REWARD_HACK_CACHING,
                        "copies a scratch-pool buffer into a tensor "
                        "(pool entries are kernel scratch, never results)",
                    )
            if isinstance(target, (ast.Attribute, ast.Subscript)):
                through = self._dunder_reached(target.value, target)
                if through is not None:
                    self.add(
                        target,
                        F.REWARD_HACK_GLOBAL_MUTATION,
                        f"writes into what .{through} reaches (a function's, class's or module's own state)",
                    )
        if (
            isinstance(node, (ast.Assign, ast.AnnAssign))
            and not in_function
            and node.value is not None
            and self._makes_iterator(node.value)
        ):
            self.add(node, F.REWARD_HACK_CACHING, "a module-level iterator keeps its position across calls")

    def _dunder_reached(self, expr: ast.AST, at: ast.AST, depth: int = 0) -> str | None:
        """The dunder attribute (`__kwdefaults__`, `__dict__`, `__globals__`, ...) `expr` reads through,
        directly or by a local bound to such a read."""
        while isinstance(expr, (ast.Attribute, ast.Subscript, ast.Call)):
            if isinstance(expr, ast.Attribute) and _is_dunder(expr.attr):
                return expr.attr
            expr = expr.func if isinstance(expr, ast.Call) else expr.value
        if isinstance(expr, ast.Name) and depth < 4:
            found = self.lookup(expr.id, at)
            for b in found[1] if found else []:
                if b.kind in {"value", "unpack"} and b.value is not None:
                    through = self._dunder_reached(b.value, b.value, depth + 1)
                    if through is not None:
                        return through
        return None

    def _makes_iterator(self, value: ast.AST) -> bool:
        if isinstance(value, ast.GeneratorExp):
            return True
        return (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id in _ITERATOR_BUILTINS
            and self.lookup(value.func.id, value) is None
        )

    def _check_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef, kernel: bool) -> None:
        if node.name in _LAZY_DEFS:
            self.add(
                node, F.REWARD_HACK_LAZY_OUTPUT, f"defines {node.name} (a tensor subclass intercepting reads)"
            )
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            if self._is_container(default):
                self.add(
                    default,
                    F.REWARD_HACK_CACHING,
                    f"mutable default argument of {node.name} keeps state across calls",
                )

    def _check_class(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            quals = self.resolve(base)
            if any(
                q in {"torch.Tensor", "torch.nn.Parameter", "torch._C.TensorBase", "torch._C._TensorBase"}
                for q in quals
            ):
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
                check="static:entry",
                ok=False,
                severity="fail",
                failure_class=F.ENTRY_SIGNATURE,
                detail=f"line 0: the module defines no `{self.entry}`; define def {self.entry}(*inputs, *outputs) -> None",
            )

    # ---- outputs ------------------------------------------------------------------------------

    def _output_params(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        if self.outputs is not None:
            return {p for p in params if p in set(self.outputs)}
        looks_like_output = {
            p
            for p in params
            if p in {"o", "c", "y", "out", "output", "result"}
            or p.startswith(("out", "output", "result"))
            or p.endswith(("_out", "_output"))
        }
        return looks_like_output or ({params[-1]} if params else set())

    def _check_output_rebind(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outputs = self._output_params(fn)
        if not outputs:
            return

        def own_scope(node: ast.AST) -> Iterator[ast.AST]:
            for child in ast.iter_child_nodes(node):
                if isinstance(
                    child,
                    (
                        ast.FunctionDef,
                        ast.AsyncFunctionDef,
                        ast.Lambda,
                        ast.ClassDef,
                        ast.ListComp,
                        ast.SetComp,
                        ast.DictComp,
                        ast.GeneratorExp,
                    ),
                ):
                    continue
                yield child
                yield from own_scope(child)

        for stmt in fn.body:
            for node in [stmt, *own_scope(stmt)]:
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        for name in _target_names(target):
                            if name.id in outputs and not self._is_view_of(node.value, name.id):
                                self.add(
                                    name,
                                    F.REWARD_HACK_OUTPUT_REBIND,
                                    f"rebinds output `{name.id}` instead of writing into it",
                                )
                elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and isinstance(node.target, ast.Name):
                    if node.target.id in outputs and (
                        node.value is None or not self._is_view_of(node.value, node.target.id)
                    ):
                        self.add(
                            node.target,
                            F.REWARD_HACK_OUTPUT_REBIND,
                            f"rebinds output `{node.target.id}` instead of writing into it",
                        )
                elif isinstance(node, (ast.For, ast.AsyncFor)) or isinstance(node, ast.withitem):
                    loop_target = (
                        node.target if isinstance(node, (ast.For, ast.AsyncFor)) else node.optional_vars
                    )
                    for name in _target_names(loop_target) if loop_target is not None else []:
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
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _VIEW_METHODS
            ):
                node = node.func.value
            else:
                return False

    # ---- result ---------------------------------------------------------------------------------

    def verdicts(self) -> list[Verdict]:
        def line(v: Verdict) -> int:
            return int(v.detail.split(":")[0].split()[1])

        # the denylist's findings first: a cheat one of them names keeps that class; the allowlist's
        # only on lines none of them flagged
        in_order = sorted(self.findings.values(), key=lambda v: (line(v), v.check))
        specific = [v for v in in_order if v.check not in _ALLOWLIST_CHECKS]
        flagged = {line(v) for v in specific}
        allowlist = [v for v in in_order if v.check in _ALLOWLIST_CHECKS and line(v) not in flagged]
        failing = specific + allowlist
        failed_checks = {v.check for v in failing}
        passing = [
            Verdict(check=check, ok=True, severity="fail", detail="no findings")
            for check in STATIC_CHECKS
            if check != "static:parse" and check not in failed_checks
        ]
        return [*passing, *failing, *self.notes]


class _Allowlist:
    """The allowlist walk: every import, name, attribute, call and definition of the module (less the
    `if __name__ == "__main__":` block) checked against the tables above, host code by the host
    tables and kernel bodies by the kernel ones."""

    def __init__(self, an: _Analyzer) -> None:
        self.an = an
        self.kernel_nodes: set[ast.AST] = set()
        for node in ast.walk(an.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and an._is_kernel_def(node):
                for part in [*node.body, node.args, *([node.returns] if node.returns else [])]:
                    self.kernel_nodes.update(ast.walk(part))
        self.classes = {n: d for n, d in an.module_defs.items() if isinstance(d, ast.ClassDef)}
        self.class_attrs = {n: self._declared(d, frozenset()) for n, d in self.classes.items()}
        # module-level defs nothing reaches by name: a torch reference kept for comparison is not compute
        self.dead: set[ast.AST] = set()
        for name, d in an.module_defs.items():
            if name not in an.live_defs:
                self.dead.update(ast.walk(d))

    def refuse(self, node: ast.AST, message: str, check: str = "static:not_allowed") -> None:
        if check == "static:compute_not_allowed" and node in self.dead:
            return
        self.an.add(node, STATIC_CHECKS[check], message, check=check)

    def run(self) -> None:
        for stmt in self.an.body:
            for node in ast.walk(stmt):
                kernel = node in self.kernel_nodes
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    self._import(node, kernel)
                elif isinstance(node, ast.Name):
                    self._name(node, kernel)
                elif isinstance(node, ast.Attribute):
                    self._attribute(node, node.value, node.attr, kernel)
                elif isinstance(node, ast.Call):
                    self._call(node, kernel)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    self._definition(node)
                elif isinstance(node, (ast.Yield, ast.YieldFrom, ast.Await)):
                    self.refuse(node, "a generator or coroutine keeps state across calls")
                if not kernel:
                    self._host_compute(node)

    # ---- what is allowed ------------------------------------------------------------------------

    def _host_qual(self, q: str) -> bool:
        parts = q.split(".")
        if q in _HOST_QUALS or _is_pure_qual(q):
            return True
        if len(parts) == 2 and parts[0] == "typing" and (parts[1][:1].isupper() or parts[1] in _TYPING_FUNCS):
            return True
        if (
            self.an.modules
            and len(parts) == 3
            and q.startswith(_MODULES_MODE_ROOT + ".")
            and parts[2][:1].isupper()
        ):
            return True  # torch.nn.Module, nn.Parameter, nn.Linear as a weight holder
        # an allowed value, then attributes any object may show (`torch.float16.itemsize`)
        return any(
            self._host_qual(".".join(parts[:i])) and all(p in _HOST_ATTRS for p in parts[i:])
            for i in range(len(parts) - 1, 1, -1)
        )

    @staticmethod
    def _kernel_qual(q: str) -> bool:
        parts = q.split(".")
        if q in _KERNEL_QUALS:
            return True
        return any(
            q.startswith(root + ".") and len(parts) == root.count(".") + 2 and not parts[-1].startswith("_")
            for root in (*_KERNEL_QUAL_ROOTS, *_KERNEL_QUAL_DEEP)
        )

    def _importable(self, module: str) -> bool:
        """An allowed module, a package on the way to allowed names, or kernel helpers (libdevice)."""
        return (
            module in _ALLOWED_IMPORTS
            or module.startswith("triton.language.")
            or any(q.startswith(module + ".") for q in _HOST_QUALS)
        )

    # ---- per node ---------------------------------------------------------------------------------

    def _import(self, node: ast.Import | ast.ImportFrom, kernel: bool) -> None:
        if kernel:
            self.refuse(node, "imports inside a kernel", check="static:import_not_allowed")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if not self._importable(alias.name):
                    self.refuse(
                        node,
                        f"imports {alias.name} (not on the allowlist)",
                        check="static:import_not_allowed",
                    )
        elif node.level or node.module is None or not self._importable(node.module):
            self.refuse(
                node,
                f"imports from {'.' * node.level}{node.module or ''} (not on the allowlist)",
                check="static:import_not_allowed",
            )
        else:
            for alias in node.names:
                q = f"{node.module}.{alias.name}"
                if alias.name == "*":
                    self.refuse(node, f"imports * from {node.module}", check="static:import_not_allowed")
                elif not (self._importable(q) or self._host_qual(q) or self._kernel_qual(q)):
                    self.refuse(
                        node, f"imports {q} (not on the allowlist)", check="static:import_not_allowed"
                    )

    def _quals(self, node: ast.AST, quals: set[str], kernel: bool) -> None:
        parent = self.an.parents.get(node)
        called = isinstance(parent, ast.Call) and parent.func is node
        decorator = isinstance(parent, (ast.FunctionDef, ast.ClassDef)) and node in parent.decorator_list
        for q in sorted(quals & _API_KEYWORDS.keys()):
            if not (called or decorator):  # a partial or an alias would carry keywords past the table
                self.refuse(node, f"passes {q} around instead of calling it")
        for q in sorted(quals):
            if not (self._kernel_qual(q) if kernel else self._host_qual(q)):
                where = " in a kernel" if kernel else ""
                if any(p.startswith("_") and not _is_dunder(p) for p in q.split(".")[1:]):
                    self.refuse(
                        node,
                        f"uses {q}{where} (private internals: library or harness state)",
                        check="static:state_not_allowed",
                    )
                elif "." in q and q.rsplit(".", 1)[0] in _TORCH_COMPUTE:
                    self.refuse(
                        node,
                        f"uses {q}{where} (torch computing: not on the allowlist)",
                        check="static:compute_not_allowed",
                    )
                else:
                    self.refuse(node, f"uses {q}{where} (not on the allowlist)")

    def _name(self, node: ast.Name, kernel: bool) -> None:
        an = self.an
        if _is_dunder(node.id):
            self.refuse(node, f"uses {node.id}")
            return
        if not isinstance(node.ctx, ast.Load):
            return
        quals = an.resolve(node)
        if quals:
            if an._maximal(node):
                self._quals(node, quals, kernel)
            return
        parent = an.parents.get(node)
        called = isinstance(parent, ast.Call) and parent.func is node
        if an.lookup(node.id, node) is None:  # a builtin
            if (
                node.id == "object"
                and isinstance(parent, ast.Assign)
                and parent.value is node
                and isinstance(an.parents.get(parent), ast.Module)
            ):
                return  # `input_t = object`: a type alias (GPU MODE's importer writes these); its dunders stay refused
            if node.id not in _ALLOWED_BUILTINS:
                self.refuse(node, f"uses builtin {node.id} (not on the allowlist)")
            elif not called and node.id in {"type", "super", "getattr"}:
                self.refuse(node, f"uses {node.id} as a value")
            return
        found = an.lookup(node.id, node)
        if (
            called
            and not kernel
            and found
            and any(b.kind == "def" and b.value is not None and an._is_kernel_def(b.value) for b in found[1])
        ):
            self.refuse(
                node, f"calls the kernel {node.id} as a Python function (launch it: {node.id}[grid](...))"
            )

    def _attribute(self, node: ast.AST, receiver: ast.AST, attr: str, kernel: bool) -> None:
        """`receiver.attr` (an Attribute node, or a getattr call with a literal name)."""
        an = self.an
        load = isinstance(getattr(node, "ctx", ast.Load()), ast.Load)
        if _is_dunder(attr):
            if not self._super_init(node):
                self.refuse(node, f"{'reads' if load else 'assigns'} .{attr}")
            return
        quals = an.resolve(node)
        if quals:
            if not load:
                self.refuse(node, f"assigns {sorted(quals)[0]}", check="static:state_not_allowed")
            elif an._maximal(node):
                self._quals(node, quals, kernel)
            return
        if kernel:
            if attr not in _KERNEL_ATTRS:
                self.refuse(node, f"uses .{attr} in a kernel (not a tl.tensor member)")
            return
        if load and (attr in _HOST_ATTRS or (an.modules and attr in _MODULE_ATTRS)):
            return
        kind = self._receiver(receiver)
        if kind is not None and attr in self._attrs_of(kind):
            return
        if not load:
            self.refuse(
                node,
                f"assigns .{attr} on an object the candidate does not own",
                check="static:state_not_allowed",
            )
        elif attr.startswith("_"):
            self.refuse(
                node,
                f"reads private ._{attr.lstrip('_')} (library or harness state)",
                check="static:state_not_allowed",
            )
        elif attr in _tensor_members():
            self.refuse(
                node,
                f"uses .{attr} (a tensor method or attribute not on the allowlist: host compute "
                "or storage access)",
                check="static:compute_not_allowed",
            )
        else:
            self.refuse(node, f"reads .{attr} (not on the allowlist)")

    def _call(self, node: ast.Call, kernel: bool) -> None:
        if kernel:
            return
        an = self.an
        for kw in node.keywords:
            if kw.arg is not None and ("hook" in kw.arg.lower() or kw.arg in _HOOK_KEYWORDS):
                self.refuse(kw.value, f"passes {kw.arg}= (a hook runs code outside the kernel)")
        for q in sorted(an.resolve(node.func) & _API_KEYWORDS.keys()):
            n_positional, allowed = _API_KEYWORDS[q]
            if len(node.args) > n_positional or any(isinstance(a, ast.Starred) for a in node.args):
                self.refuse(node, f"passes {q} more than {n_positional} positional argument(s)")
            for kw in node.keywords:
                if kw.arg is None:
                    self.refuse(node, f"passes **kwargs to {q}")
                elif kw.arg not in allowed:
                    self.refuse(kw.value, f"passes {kw.arg}= to {q} (not on the allowlist)")
        func = node.func
        if isinstance(func, ast.Subscript):  # kernel[grid](...): a grid callable runs inside the launch
            self._launch_time(func.slice, "grid")
            self._constexpr_tensors(node)
        self._module_call(node)
        if "triton.heuristics" in an.resolve(func):
            values = [*node.args, *(k.value for k in node.keywords)]
            for d in (v for v in values if isinstance(v, ast.Dict)):
                for v in d.values:
                    self._launch_time(v, "heuristics")
        if isinstance(func, ast.Name) and an.lookup(func.id, func) is None and func.id not in an.aliases:
            if func.id == "getattr":
                if len(node.args) in {2, 3} and _is_str(node.args[1]) and not node.keywords:
                    self._attribute(node, node.args[0], node.args[1].value, kernel)  # type: ignore[attr-defined]
                else:
                    self.refuse(node, "getattr with a computed attribute name")
            elif func.id == "type" and (len(node.args) != 1 or node.keywords):
                self.refuse(node, "type() with three arguments builds a class")
            elif func.id == "super" and (node.args or node.keywords or not self._in_method(node)):
                self.refuse(node, "super() outside a method")

    def _constexpr_tensors(self, launch: ast.Call) -> None:
        """A tensor passed as a `tl.constexpr` is a Python object inside the kernel: the interpreter
        would run torch on it there."""
        an = self.an
        kernel = launch.func.value if isinstance(launch.func, ast.Subscript) else None
        fn = an._module_def_called(kernel) if isinstance(kernel, ast.Name) else None
        if not isinstance(fn, ast.FunctionDef) or fn.name not in an.kernel_defs:
            return
        params = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
        constexpr = {
            a.arg
            for a in params
            if a.annotation is not None and an.resolve(a.annotation) == {"triton.language.constexpr"}
        }
        passed = [(params[i].arg, v) for i, v in enumerate(launch.args) if i < len(params)]
        passed += [(k.arg, k.value) for k in launch.keywords if k.arg is not None]
        for name, value in passed:
            if name in constexpr and self._tensorish(value, frozenset()):
                self.refuse(
                    value,
                    f"passes a tensor as the constexpr {name} of {fn.name} (a kernel would run torch on it)",
                    check="static:compute_not_allowed",
                )

    def _module_call(self, call: ast.Call) -> None:
        """`self.linear(x)` in a ModelNew: an nn module computing on data."""
        func = call.func
        if not (self.an.modules and isinstance(func, ast.Attribute)):
            return
        kind = self._receiver(func.value)
        if kind is None or kind[0] != "class":
            return
        for item in self.classes[kind[1]].body:
            for n in ast.walk(item):
                if (
                    isinstance(n, ast.Assign)
                    and isinstance(n.value, ast.Call)
                    and any(isinstance(t, ast.Attribute) and t.attr == func.attr for t in n.targets)
                    and any(q.startswith(_MODULES_MODE_ROOT + ".") for q in self.an.resolve(n.value.func))
                ):
                    self.refuse(
                        call,
                        f"calls the torch module .{func.attr} on data (only kernels compute)",
                        check="static:compute_not_allowed",
                    )
                    return

    def _launch_time(self, expr: ast.AST, role: str) -> None:
        """A grid or heuristics callable runs inside the launch, where the harness cannot watch: it
        may only compute sizes (arithmetic on its arguments, shapes, strides, pure helpers)."""
        an = self.an
        fns: list[ast.FunctionDef | ast.Lambda] = []
        if isinstance(expr, ast.Lambda):
            fns.append(expr)
        elif isinstance(expr, ast.Name):
            found = an.lookup(expr.id, expr)
            for b in found[1] if found else []:
                if isinstance(b.value, (ast.FunctionDef, ast.Lambda)):
                    fns.append(b.value)
        for fn in fns:
            why = an.why_not_pure(fn)
            if why is not None:
                self.refuse(
                    expr,
                    f"the {role} function runs inside the launch and {why} (launch-time code may only "
                    "compute sizes)",
                    check="static:compute_not_allowed",
                )

    def _definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        parent = self.an.parents.get(node)
        if isinstance(node, ast.AsyncFunctionDef):
            self.refuse(node, f"defines coroutine {node.name}")
        if _is_dunder(node.name) and not (
            isinstance(node, ast.FunctionDef)
            and node.name in _ALLOWED_DUNDER_DEFS
            and isinstance(parent, ast.ClassDef)
        ):
            self.refuse(node, f"defines {node.name}")
        if isinstance(node, ast.ClassDef):
            duck = sorted(self._declared(node, frozenset()) & _tensor_members())
            if duck:
                self.refuse(
                    node,
                    f"class {node.name} defines {', '.join('.' + d for d in duck)} (a tensor look-alike: "
                    "a launch or torch would call it)",
                )
            for kw in node.keywords:
                self.refuse(node, f"class {node.name} passes {kw.arg}= (a metaclass or class hook)")
            for base in node.bases:
                quals = self.an.resolve(base)
                module_class = isinstance(base, ast.Name) and base.id in self.classes and not quals
                if not (module_class or (self.an.modules and quals and quals <= _BASE_CLASS_QUALS)):
                    self.refuse(
                        node, f"class {node.name} derives from {ast.unparse(base)} (not on the allowlist)"
                    )

    # ---- tensors computed on by host code --------------------------------------------------------

    def _host_compute(self, node: ast.AST) -> None:
        """Arithmetic, comparisons and truth tests on tensors, and builtins reading their values."""
        operands: list[ast.AST] = []
        what = "arithmetic on a tensor"
        if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.MatMult):  # `@`: the denylist's
            operands = [node.left, node.right]
        elif isinstance(node, ast.UnaryOp):
            operands = [node.operand]
        elif isinstance(node, ast.AugAssign):
            operands = [node.target, node.value]
        elif isinstance(node, ast.Compare) and not all(isinstance(o, (ast.Is, ast.IsNot)) for o in node.ops):
            operands, what = [node.left, *node.comparators], "compares a tensor"
        elif isinstance(node, (ast.If, ast.While, ast.IfExp, ast.Assert)):
            operands, what = [node.test], "tests a tensor's truth"
        elif isinstance(node, ast.BoolOp):
            operands, what = list(node.values), "tests a tensor's truth"
        elif isinstance(node, ast.comprehension):
            operands, what = list(node.ifs), "tests a tensor's truth"
        elif isinstance(node, ast.FormattedValue):
            operands, what = [node.value], "formats a tensor's values"
        elif isinstance(node, ast.Subscript):
            operands, what = [node.slice], "indexes by a tensor's values"
        elif isinstance(node, ast.Call):
            operands, what = self._value_arguments(node)
        if any(self._tensorish(o, frozenset()) for o in operands):
            self.refuse(
                node, f"{what} on the host (only kernels compute)", check="static:compute_not_allowed"
            )

    def _value_arguments(self, node: ast.Call) -> tuple[list[ast.AST], str]:
        """The arguments of a call that it reads as numbers (where a tensor would give up its values),
        and what that call is."""
        an, func = self.an, node.func
        args: list[ast.AST] = [*node.args, *(k.value for k in node.keywords)]
        if isinstance(func, ast.Name) and an.lookup(func.id, func) is None and func.id not in an.aliases:
            return (
                (args, f"reads a tensor's values with {func.id}()") if func.id in _VALUE_READS else ([], "")
            )
        if isinstance(func, ast.Attribute) and not an.resolve(func):
            if func.attr == "format":
                return args, "formats a tensor's values"
            if func.attr not in _TENSOR_ARG_METHODS and self._tensorish(func.value, frozenset()):
                return args, f"passes a tensor where .{func.attr}() takes a number"
            return [], ""
        quals = an.resolve(func)
        if quals and all(self._host_qual(q) for q in quals):  # an allowed function: sizes, numbers, dtypes
            q = sorted(quals)[0]
            skip = _TENSOR_ARG_QUALS.get(q, 0)
            return ([] if skip is None else args[skip:]), f"passes a tensor where {q}() takes a number"
        return [], ""

    def _tensorish(self, expr: ast.AST, seen: frozenset[str]) -> bool:
        """`expr` is a tensor as far as the source shows: an argument of the entry (the task's tensors), a
        fresh allocation, or a view, cast, element or slice of one."""
        an = self.an
        if isinstance(expr, (ast.Subscript, ast.Starred)):
            return self._tensorish(expr.value, seen)
        if isinstance(expr, ast.Attribute):
            return expr.attr in {"T", "mT", "real", "imag"} and self._tensorish(expr.value, seen)
        if isinstance(expr, ast.Call):
            func = expr.func
            if isinstance(func, ast.Attribute) and not an.resolve(func):
                return func.attr in _TENSOR_RESULTS and self._tensorish(func.value, seen)
            if (
                isinstance(func, ast.Name)
                and func.id in _TENSOR_CONTAINERS
                and an.lookup(func.id, func) is None
            ):
                return any(self._tensorish(a, seen) for a in expr.args)
            return an._is_alloc(expr)
        if isinstance(expr, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return self._tensorish(expr.elt, seen)
        if isinstance(expr, (ast.Tuple, ast.List)):
            return any(self._tensorish(e, seen) for e in expr.elts)
        if isinstance(expr, ast.IfExp):
            return self._tensorish(expr.body, seen) or self._tensorish(expr.orelse, seen)
        if not isinstance(expr, ast.Name) or expr.id in seen or an.resolve(expr):
            return False
        found = an.lookup(expr.id, expr)
        if found is None:
            return False
        scope, bindings = found
        if [b.kind for b in bindings] == ["param"]:
            return self._tensor_parameter(scope, expr.id, seen | {expr.id})
        return any(
            b.kind in {"value", "unpack", "iter"}
            and b.value is not None
            and self._tensorish(b.value, seen | {expr.id})
            for b in bindings
        )

    def _tensor_parameter(self, fn: ast.AST, name: str, seen: frozenset[str]) -> bool:
        """Parameter `name` of `fn` holds a tensor: `fn` is the entry (or a ModelNew's forward), or a
        function or named lambda some call passes a tensor there."""
        an = self.an
        if not isinstance(fn, (ast.FunctionDef, ast.Lambda)):
            return False
        entry = an.module_defs.get(an.entry)
        if fn is entry:
            return True
        parent = an.parents.get(fn)
        if (
            isinstance(entry, ast.ClassDef)
            and parent is entry
            and isinstance(fn, ast.FunctionDef)
            and fn.name == "forward"
        ):
            return bool(fn.args.args) and fn.args.args[0].arg != name
        positional = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        for call in an._call_sites(fn):
            if call is None:
                continue
            passed = [k.value for k in call.keywords if k.arg in {name, None}]
            if name in positional:
                i = positional.index(name)
                passed += [
                    a for j, a in enumerate(call.args) if j == i or (j <= i and isinstance(a, ast.Starred))
                ]
            if any(self._tensorish(v, seen) for v in passed):
                return True
        return False

    # ---- receivers: objects whose attributes are known -------------------------------------------

    def _receiver(self, expr: ast.AST, depth: int = 0) -> tuple[str, str] | None:
        """("class", C) for an instance of the module's class C (`self` in its methods, `C(...)`, a
        name bound only to those); ("qual", q) for what an allowed call q returns; else None."""
        an = self.an
        if depth > 8:
            return None
        if isinstance(expr, ast.Call):
            func = expr.func
            if isinstance(func, ast.Name) and an._module_def_called(func) in self.classes.values():
                return ("class", func.id)
            if isinstance(func, ast.Name) and func.id == "set" and an.lookup("set", func) is None:
                return ("qual", "set")
            typed = sorted(_RETURNS[q] for q in an.resolve(func) if q in _RETURNS)
            return ("qual", typed[0]) if typed else None
        if isinstance(expr, (ast.Set, ast.SetComp)):
            return ("qual", "set")
        if isinstance(expr, (ast.Tuple, ast.List, ast.ListComp)):
            return ("qual", "sequence")
        if isinstance(expr, ast.Attribute) and expr.attr == "device" and not an.resolve(expr):
            return ("qual", "torch.device")
        if not isinstance(expr, ast.Name):
            return None
        found = an.lookup(expr.id, expr)
        if found is None:
            return None
        scope, bindings = found
        if [b.kind for b in bindings] == ["param"] and isinstance(scope, ast.FunctionDef):
            cls = an.parents.get(scope)
            positional = scope.args.posonlyargs + scope.args.args
            if (
                isinstance(cls, ast.ClassDef)
                and cls.name in self.classes
                and self.classes[cls.name] is cls
                and positional
                and positional[0].arg == expr.id
                and not scope.decorator_list
            ):
                return ("class", cls.name)
            return None
        kinds = {
            self._receiver(b.value, depth + 1) if b.kind == "value" and b.value is not None else None
            for b in bindings
        }
        return kinds.pop() if len(kinds) == 1 else None

    def _attrs_of(self, kind: tuple[str, str]) -> frozenset[str]:
        what, name = kind
        if what == "qual":
            return _TYPED_ATTRS[name]
        return self.class_attrs[name]

    def _declared(self, cls: ast.ClassDef, seen: frozenset[str]) -> frozenset[str]:
        """Attributes class `cls` declares: its body's names, `self.x = ...` in its methods, its bases'."""
        name = cls.name
        attrs = set(self.an._bindings(cls))
        for item in cls.body:
            if isinstance(item, ast.FunctionDef) and item.args.args:
                me = item.args.args[0].arg
                attrs.update(
                    n.attr
                    for n in ast.walk(item)
                    if isinstance(n, ast.Attribute)
                    and isinstance(n.value, ast.Name)
                    and n.value.id == me
                    and not isinstance(n.ctx, ast.Load)
                )
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in self.classes and base.id not in seen:
                attrs |= self._declared(self.classes[base.id], seen | {name})
        return frozenset(a for a in attrs if not _is_dunder(a))

    def _in_method(self, node: ast.AST) -> bool:
        cur = self.an.parents.get(node)
        while cur is not None and not isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            cur = self.an.parents.get(cur)
        return isinstance(cur, ast.FunctionDef) and isinstance(self.an.parents.get(cur), ast.ClassDef)

    def _super_init(self, node: ast.AST) -> bool:
        """`super().__init__(...)` in a method: what a KernelBench ModelNew's __init__ starts with."""
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "__init__"
            and isinstance(node.ctx, ast.Load)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "super"
            and not node.value.args
            and self._in_method(node)
        )


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
        return [
            Verdict(
                check="static:parse",
                ok=False,
                severity="fail",
                failure_class=F.IMPORT_ERROR,
                detail=f"line {exc.lineno or 0}: SyntaxError: {exc.msg} in {path}",
            )
        ]
    analyzer = _Analyzer(tree, op_family, entry, outputs, modules)
    analyzer.run()
    _Allowlist(analyzer).run()
    return analyzer.verdicts()


def static_checks_for_task(source: str, path: str, task: Task) -> list[Verdict]:
    """`static_checks` with the op family, entry name and output names of `task` (the entry of a
    KernelBench-form candidate of a task imported from KernelBench is its `ModelNew` class)."""
    from ksearch.task.importers.kernelbench import uses_modelnew

    modules = uses_modelnew(source, task.root)
    return static_checks(
        source,
        path,
        task.spec.op_family,
        entry="ModelNew" if modules else task.entry_name,
        outputs=task.output_names,
        modules=modules,
    )


def failing(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts that reject the candidate."""
    return [v for v in verdicts if not v.ok and v.severity == "fail"]
