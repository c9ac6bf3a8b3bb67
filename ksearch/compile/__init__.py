"""Compile candidates for every target without the hardware: Triton AOT, TileLang lowering, HIP."""

from ksearch.compile.result import CompileResult, KernelInfo
from ksearch.compile.service import CompileRequest, compile_many, default_cache_dir, detect_language

__all__ = [
    "CompileRequest",
    "CompileResult",
    "KernelInfo",
    "compile_many",
    "default_cache_dir",
    "detect_language",
]
