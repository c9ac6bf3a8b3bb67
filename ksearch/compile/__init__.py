"""Compile candidates for every target without the hardware: Triton AOT, TileLang lowering, HIP."""

from ksearch.compile.registry import Compiler, compiler, detect_language
from ksearch.compile.result import CompileResult, KernelInfo
from ksearch.compile.service import CompileRequest, compile_many, default_cache_dir

__all__ = [
    "CompileRequest",
    "CompileResult",
    "Compiler",
    "KernelInfo",
    "compile_many",
    "compiler",
    "default_cache_dir",
    "detect_language",
]
