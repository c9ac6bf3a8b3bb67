"""The language of a candidate: the name its compiler is registered under (`ksearch.compile.registry`).

Three are built in; a plugin adds one by registering a compiler in the `ksearch.compilers` entry-point
group, under the language's name. The evidence contract therefore accepts any such name, so a
plugin's candidates leave packets like any other.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from ksearch.plugins import COMPILERS, plugin_names

BUILTIN_LANGUAGES: tuple[str, ...] = ("triton", "tilelang", "hip")

Language = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$")]


def known_languages() -> tuple[str, ...]:
    """The built-in languages, then those installed plugins add (listed, none imported)."""
    return BUILTIN_LANGUAGES + tuple(plugin_names(COMPILERS, BUILTIN_LANGUAGES))
