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

# Piped output keeps each line whole (a path split across lines cannot be copied or grepped);
# a terminal still wraps to its width.
out = Console(soft_wrap=not sys.stdout.isatty())
RunDir = Annotated[Path, typer.Argument(help="a run directory, e.g. experiment_log/<run id>")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str, columns: list[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    return t
