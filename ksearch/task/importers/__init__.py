"""Importers: problems in KernelBench, FlashInfer-Bench and GPU MODE formats become ksearch tasks.

An importer is anything with the `Importer` protocol, `detect(path) -> bool` and
`build(path, name) -> Built`: the task.yaml fields, the reference.py source and the files it needs,
plus what had to be inferred. The built-in ones are the modules `ksearch.task.importers.<format>`
for each of `BUILTIN_FORMATS`; a plugin adds a format in the `ksearch.importers` entry-point group,
under its name (see `ksearch.plugins`). `import_task` picks the format, builds, and writes the task
through `common.write_task` (validated by the task loader, refused when `honesty_flags` finds it
cannot be searched honestly). `bulk.import_all` imports every problem of a folder in a built-in
format (a KernelBench level, a GPU MODE problems/ tree, a FlashInfer-Bench dataset), each in its own
process under a memory and a time limit, and reports what came of each.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

from ksearch.errors import TaskError
from ksearch.plugins import IMPORTERS, load_plugin, plugin_names
from ksearch.task.importers.common import Built, Imported, write_task

__all__ = [
    "BUILTIN_FORMATS",
    "Built",
    "Imported",
    "Importer",
    "detect_format",
    "formats",
    "import_task",
    "importer",
]

BUILTIN_FORMATS: tuple[str, ...] = ("kernelbench", "flashinfer", "gpumode")


@runtime_checkable
class Importer(Protocol):
    def detect(self, path: Path) -> bool:
        """Whether `path` is one problem in this format."""
        ...

    def build(self, path: Path, name: str | None) -> Built:
        """The task of the problem at `path`; TaskError when it cannot become one."""
        ...


def formats() -> tuple[str, ...]:
    """The built-in formats, then those installed plugins add (listed, none imported)."""
    return BUILTIN_FORMATS + tuple(plugin_names(IMPORTERS, BUILTIN_FORMATS))


def importer(fmt: str) -> Importer:
    """The importer of format `fmt`; TaskError naming every format when there is none."""
    if fmt in BUILTIN_FORMATS:
        module: Importer = importlib.import_module(f"ksearch.task.importers.{fmt}")
        return module
    plugin = load_plugin(IMPORTERS, fmt, Importer, BUILTIN_FORMATS)
    if not isinstance(plugin, Importer):
        raise TaskError(f"unknown format {fmt!r}; use one of: {', '.join(formats())}")
    return plugin


def detect_format(path: Path) -> str:
    found = [fmt for fmt in formats() if importer(fmt).detect(Path(path))]
    if not found:
        raise TaskError(
            f"{path} is not a KernelBench problem (.py with class Model and get_inputs), a "
            "FlashInfer-Bench definition (.json), a GPU MODE problem (reference.py + task.yml) "
            "or a problem of a plugin's format; pass --format if it is one of them"
        )
    return found[0]


def import_task(
    path: Path,
    *,
    fmt: str | None = None,
    name: str | None = None,
    out: Path | None = None,
    force: bool = False,
) -> Imported:
    """Import the problem at `path` into `out/<name>/` (default: the built-in tasks' folder)."""
    from ksearch.paths import configs_dir

    path = Path(path)
    if not path.exists():
        raise TaskError(f"{path} does not exist")
    fmt = fmt or detect_format(path)
    built = importer(fmt).build(path, name)
    directory = Path(out or configs_dir() / "tasks") / built.spec["name"]
    return write_task(
        directory, built.spec, built.reference, built.files, force=force, inferred=built.inferred
    )
