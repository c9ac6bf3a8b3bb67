"""What the MCP server may read: the project's corpora, the runs it was given, the sources it is sent.

An agent names runs and tasks by name or by path. Every name is resolved here, symlinks followed,
and a path that lands outside what the server was started with is refused before any loader sees
it: a run must be one of the `--run` directories or lie under one (a folder of runs such as
experiment_log/), and a task given as a path must lie in the configuration tree or in one of those
runs. Skills, ISA chapters, task contracts and target profiles are only ever named, never pathed, so
their loaders keep to their own directories.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ksearch.errors import KsearchError
from ksearch.paths import configs_dir
from ksearch.task.load import TASK_FILE, resolve_task_file


class SandboxError(KsearchError):
    """A path an agent named lies outside what the MCP server was given."""


def _looks_like_path(text: str) -> bool:
    # the rule ksearch.task.load.resolve_task_file and ksearch.context.task_profile apply
    return "/" in text or "\\" in text or text.endswith((".yaml", ".yml")) or text.startswith("~")


class Sandbox:
    """The run directories (or folders of runs) the server was started with, resolved once."""

    def __init__(self, runs: Sequence[Path] = ()):
        self.roots = [Path(r).expanduser().resolve() for r in runs]

    def _inside(self, path: Path, roots: Sequence[Path]) -> bool:
        return any(path == root or path.is_relative_to(root) for root in roots)

    def _given(self) -> str:
        return ", ".join(str(r) for r in self.roots)

    def run(self, run: str | None) -> Path:
        """The run directory an agent means: a path, or a name under one of the `--run` folders;
        with one `--run` that is itself a run, `None` means it."""
        if not self.roots:
            raise SandboxError(
                "this MCP server reads no run: restart it with `ksearch mcp --run RUN_DIR` (a run "
                "directory, or a folder of runs such as experiment_log/; repeatable)"
            )
        if run is None or not run.strip():
            runs = [r for r in self.roots if (r / "history.jsonl").is_file()]
            if len(self.roots) == 1 and runs:
                return runs[0]
            found = sorted(p.parent.name for root in self.roots for p in root.glob("*/history.jsonl"))
            listed = f": {', '.join(found[:10])}" + (f" (+{len(found) - 10} more)" if len(found) > 10 else "")
            raise SandboxError(f"name a run: a run directory under {self._given()}{listed if found else ''}")
        text = run.strip()
        as_given = Path(text).expanduser()
        # a bare name is looked up under each --run folder first; a path is taken as it is
        candidates = [] if as_given.is_absolute() else [root / text for root in self.roots]
        candidates.append(as_given)
        for candidate in candidates:
            if candidate.exists():
                resolved = candidate.resolve()
                if not self._inside(resolved, self.roots):
                    raise SandboxError(
                        f"run {run} ({resolved}) is outside the runs this MCP server reads ({self._given()}); "
                        "restart it with `--run` naming that run or a folder holding it"
                    )
                return resolved
        # nothing there: a path inside the sandbox gets the log's own error (not a run directory)
        resolved = candidates[0].resolve() if len(candidates) > 1 else as_given.resolve()
        if self._inside(resolved, self.roots):
            return resolved
        raise SandboxError(
            f"run {run} is outside the runs this MCP server reads ({self._given()}); "
            "name a run directory under one of them"
        )

    def task(self, task: str) -> str:
        """A task reference safe to load: a built-in name, or a path inside the configuration tree
        or a run this server reads. An unknown name raises the CLI's own TaskError."""
        text = task.strip()
        if not _looks_like_path(text) and (configs_dir() / "tasks" / text / TASK_FILE).is_file():
            return text
        if not _looks_like_path(text) and not Path(text).exists():
            resolve_task_file(text)  # raises the CLI's "unknown task ..." error
        resolved = Path(text).expanduser().resolve()
        if not self._inside(resolved, [configs_dir().resolve(), *self.roots]):
            raise SandboxError(
                f"task {task} ({resolved}) is outside what this MCP server reads; name a built-in "
                f"task or a task directory under {configs_dir()}"
            )
        return str(resolved)

    def task_text(self, task: str) -> str:
        """A task for skill selection: free text ('mxfp4 gemm') passes, a path is checked like `task`."""
        text = task.strip()
        if _looks_like_path(text) or Path(text).exists():
            return self.task(text)
        return text
