"""Compilers by language: Triton, TileLang and HIP built in, more through plugins.

A compiler is an object with the `Compiler` protocol. Each built-in backend module
`ksearch.compile.<language>_backend` defines its own as `COMPILER`, for each language of
`ksearch.evidence.BUILTIN_LANGUAGES`; a plugin registers one in the `ksearch.compilers` entry-point
group, under its language's name (see `ksearch.plugins`). The compile service, the harness and the
command line ask `compiler(language)` and `detect_language(path, source)`; none names a language.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ksearch.errors import ConfigError
from ksearch.evidence import BUILTIN_LANGUAGES, known_languages
from ksearch.plugins import COMPILERS, load_plugin, plugin_names

if TYPE_CHECKING:
    from ksearch.compile.result import CompileResult
    from ksearch.target import TargetProfile
    from ksearch.task import Task

FALLBACK_LANGUAGE = "triton"  # a source no other compiler claims is a Triton module


@runtime_checkable
class Compiler(Protocol):
    language: str  # the name in CompileResult.language, evidence packets and a task's `languages`

    def claims(self, path: Path, source: str) -> bool:
        """Whether this source is in this language (detection, when a request names none)."""
        ...

    def toolchain(self) -> dict[str, str | None]:
        """Versions of every tool that shapes this language's output: part of the compile cache key."""
        ...

    def compile(
        self,
        source: str,
        path: Path,
        task: Task,
        target: TargetProfile,
        outdir: Path,
        *,
        dtype: str | None,
        timeout_s: float,
    ) -> CompileResult:
        """Compile one candidate for one target, artifacts under `outdir` (runs in a pool process)."""
        ...

    def cannot_run(self, device: str) -> str | None:
        """Why the harness cannot run this language's candidates on `device` (cpu, cuda); None if it can."""
        ...


@dataclass(frozen=True)
class FunctionCompiler:
    """A `Compiler` made of plain functions: how the built-in backends define theirs."""

    language: str
    claims: Callable[[Path, str], bool]
    toolchain: Callable[[], dict[str, str | None]]
    compile: Callable[..., CompileResult]  # (source, path, task, target, outdir, *, dtype, timeout_s)
    cannot_run: Callable[[str], str | None]


def compiler(language: str) -> Compiler:
    """The compiler of `language`; ConfigError naming the known languages when there is none."""
    if language in BUILTIN_LANGUAGES:
        found: Compiler = importlib.import_module(f"ksearch.compile.{language}_backend").COMPILER
        return found
    plugin = load_plugin(COMPILERS, language, Compiler, BUILTIN_LANGUAGES)
    if not isinstance(plugin, Compiler):
        raise ConfigError(
            f"no compiler for language {language!r}; known: {', '.join(known_languages())} "
            "(a plugin adds one in the ksearch.compilers entry-point group)"
        )
    return plugin


def detect_language(path: Path, source: str) -> str:
    """The first compiler that claims the source: the built-in ones, then plugins, then Triton."""
    order = [lang for lang in BUILTIN_LANGUAGES if lang != FALLBACK_LANGUAGE]
    for language in order:
        if compiler(language).claims(path, source):
            return language
    for language in plugin_names(COMPILERS, BUILTIN_LANGUAGES):
        plugin = load_plugin(COMPILERS, language, Compiler, BUILTIN_LANGUAGES)
        if isinstance(plugin, Compiler) and plugin.claims(path, source):
            return language
    return FALLBACK_LANGUAGE
