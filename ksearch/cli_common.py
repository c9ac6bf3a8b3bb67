"""What the command modules of the CLI share: the console, JSON and table printing, argument types.

ksearch/cli.py and ksearch/cli_log.py both import it; neither imports the other's helpers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Piped output keeps each line whole (a path split across lines cannot be copied or grepped);
# a terminal still wraps to its width.
out = Console(soft_wrap=not sys.stdout.isatty())
RunDir = Annotated[Path, typer.Argument(help="a run directory, e.g. experiment_log/<run id>")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_rows(title: str, columns: list[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table when its columns fit the terminal; else one record per row, a `column: value` line
    per field, so that a wide query stays readable at 80 columns instead of folding into empty cells."""
    cells = [["" if v is None else str(v) for v in r] for r in rows]
    # a column needs its header, and its values up to a short cap (longer ones may fold)
    widths = [max([len(c), *(min(len(r[i]), 24) for r in cells)]) for i, c in enumerate(columns)]
    if sum(widths) + 3 * len(columns) + 1 <= out.width:
        out.print(table(title, columns, rows))
        return
    out.print(Text(title, style="italic"))
    pad = max(map(len, columns), default=0)
    for n, r in enumerate(cells, 1):
        out.print(Text(f"-- row {n} " + "-" * max(0, min(out.width, 80) - 11 - len(str(n))), style="dim"))
        for c, v in zip(columns, r):
            out.print(Text(f"{c.rjust(pad)} | {v}"))


def table(title: str, columns: list[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    return t
