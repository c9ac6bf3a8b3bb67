"""`ksearch run`: open a run directory, record the run, and (from step 4 on) search.

Until the search loop lands this is the honest placeholder the README describes: it validates the
config, loads the task and target profiles, writes run_start and run_stop events to a fresh log,
and prints the task contract it would search. No attempt is made, so none is logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group, RenderableType
from rich.text import Text

import ksearch
from ksearch.errors import ConfigError
from ksearch.log import History, make_run_dir, new_run_id
from ksearch.search.config import load_run_config
from ksearch.target import environment_snapshot, load_target
from ksearch.task import load_task
from ksearch.task.describe import list_task_summaries, render_task, render_task_list

NOT_YET = "the search loop is not implemented yet (roadmap step 4); this run recorded its configuration only"


@dataclass
class RunResult:
    run_dir: Path
    summary: RenderableType


def default_log_root() -> Path:
    return Path(os.environ.get("KSEARCH_LOG_DIR", "experiment_log"))


def start_run(config_path: Path | None, *, log_dir: Path | None = None, task: str | None = None) -> RunResult:
    cfg = load_run_config(config_path)
    if task:
        cfg = cfg.model_copy(update={"task": task})
    spec = load_task(cfg.task)
    dtype = cfg.dtype or spec.default_dtype
    if dtype not in spec.dtypes:
        raise ConfigError(f"dtype {dtype!r} is not a variant of task {spec.name}; choose one of {', '.join(spec.dtypes)}")
    targets = [load_target(name) for name in cfg.targets]
    run_dir = make_run_dir(log_dir or default_log_root(), new_run_id(spec.name))
    log = History(run_dir)
    log.append("run_start", {
        "config": cfg.model_dump(mode="json"), "task": spec.name, "dtype": dtype,
        "targets": [t.name for t in targets], "ksearch_version": ksearch.__version__,
        "environment": environment_snapshot().model_dump(mode="json"),
    })
    log.append("run_stop", {"reason": NOT_YET, "attempts": 0})
    summary = Group(
        render_task_list(list_task_summaries()),
        render_task(spec, dtype),
        Text(f"targets: {', '.join(t.name for t in targets)}; proposer: {cfg.proposer}", style="bold"),
        Text(NOT_YET, style="yellow"),
    )
    return RunResult(run_dir, summary)
