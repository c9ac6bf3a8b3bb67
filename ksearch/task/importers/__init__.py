"""Importers: problems in KernelBench, FlashInfer-Bench and GPU MODE formats become ksearch tasks.

Each format module has `detect(path) -> bool` and `build(path, name) -> Built`: the task.yaml fields,
the reference.py source and the files it needs, plus what had to be inferred. `import_task` picks the
format, builds, and writes the task through `common.write_task` (validated by the task loader,
refused when `honesty_flags` finds it cannot be searched honestly). `bulk.import_all` imports every
problem of a folder (a KernelBench level, a GPU MODE problems/ tree, a FlashInfer-Bench dataset), each
in its own process under a memory and a time limit, and reports what came of each.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ksearch.errors import TaskError
from ksearch.task.importers.common import Built, Imported, write_task

__all__ = ["FORMATS", "Built", "Imported", "detect_format", "import_task"]

FORMATS = ("kernelbench", "flashinfer", "gpumode")


def _module(fmt: str):
    return importlib.import_module(f"ksearch.task.importers.{fmt}")


def detect_format(path: Path) -> str:
    found = [fmt for fmt in FORMATS if _module(fmt).detect(Path(path))]
    if not found:
        raise TaskError(
            f"{path} is not a KernelBench problem (.py with class Model and get_inputs), a "
            "FlashInfer-Bench definition (.json) or a GPU MODE problem (reference.py + task.yml); "
            "pass --format if it is one of them"
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
    if fmt is not None and fmt not in FORMATS:
        raise TaskError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    fmt = fmt or detect_format(path)
    built: Built = _module(fmt).build(path, name)
    directory = Path(out or configs_dir() / "tasks") / built.spec["name"]
    return write_task(
        directory, built.spec, built.reference, built.files, force=force, inferred=built.inferred
    )
