"""`ksearch tasks list` and `ksearch tasks show` at 80 columns: the list is one line per task, and
the header panel of a task wraps at word boundaries instead of cutting words."""

import os
import subprocess
import sys

import pytest
from rich.console import Console

from ksearch.task import (
    describe_task,
    list_task_summaries,
    list_tasks,
    load_task,
    render_task,
    render_task_list,
)

BUILTINS = list_tasks()


def ksearch(*args, columns=80):
    return subprocess.run(
        [sys.executable, "-m", "ksearch", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": str(columns)},
        timeout=120,
    )


def rendered(renderable, width=80, soft_wrap=False) -> str:
    console = Console(width=width, record=True, soft_wrap=soft_wrap, file=open(os.devnull, "w"))
    console.print(renderable)
    return console.export_text()


def panel_words(text: str) -> set[str]:
    """The words inside the first panel of `tasks show` (its header)."""
    inside = text[: text.index("╰")]
    return set(inside.replace("│", " ").split())


def header_words(name: str) -> list[str]:
    """Every word the header panel shows from the task's contract."""
    info = describe_task(load_task(name))
    parts = [info["description"], info["models"], info["entry"], info["flops_formula"], info["bytes_formula"]]
    return [w for part in parts for w in part.split()]


@pytest.mark.parametrize("width", [80, 60, 120])
def test_task_list_is_one_line_per_task(width):
    rows = list_task_summaries()
    text = rendered(render_task_list(rows), width)
    lines = text.rstrip("\n").splitlines()
    assert len(lines) <= len(rows) + 3, text
    assert all(len(ln) <= width for ln in lines), text
    for row in rows:
        (line,) = [ln for ln in lines if ln.split() and ln.split()[0] == row["name"]]
        assert row["op_family"] in line.split()
        if width >= 80:
            shown = line.split("  ")[-1].strip()
            # the description is cut at a word, with an ellipsis
            assert shown.endswith("…") or shown == row["description"], line
            words = shown.rstrip("…").split()
            assert words == row["description"].split()[: len(words)], line


def test_task_list_shows_an_invalid_task_on_one_line():
    rows = [*list_task_summaries(), {"name": "broken", "error": "task file broken/task.yaml: " + "bad " * 40}]
    lines = rendered(render_task_list(rows)).rstrip("\n").splitlines()
    assert len(lines) <= len(rows) + 3
    (line,) = [ln for ln in lines if ln.startswith("broken")]
    assert "invalid" in line and line.endswith("…")


@pytest.mark.parametrize("soft_wrap", [False, True])
@pytest.mark.parametrize("name", BUILTINS)
def test_task_header_wraps_at_word_boundaries(name, soft_wrap):
    """A piped `ksearch tasks show` prints with soft wrapping on; the panel used to crop its lines."""
    text = rendered(render_task(load_task(name)), 80, soft_wrap)
    assert all(len(ln) <= 80 for ln in text.splitlines())
    shown = panel_words(text)
    cut = [w for w in header_words(name) if len(w) <= 76 and w not in shown]
    assert not cut, cut


def test_cli_tasks_list_and_show_at_80_columns():
    listed = ksearch("tasks", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.rstrip("\n").splitlines()
    assert len(lines) <= len(BUILTINS) + 3, listed.stdout
    assert all(len(ln) <= 80 for ln in lines)
    assert {ln.split()[0] for ln in lines[1:-1]} == set(BUILTINS)

    shown = ksearch("tasks", "show", "gqa_decode_attention")
    assert shown.returncode == 0, shown.stderr
    cut = [w for w in header_words("gqa_decode_attention") if w not in panel_words(shown.stdout)]
    assert not cut, cut
