"""Running the command line as a user does, for tests: a subprocess per call, real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys


def ksearch(*args, cwd=None, env=None, timeout=300, columns=200) -> subprocess.CompletedProcess:
    """`python -m ksearch ARGS`; wide enough by default that rich does not fold names in tables."""
    return subprocess.run(
        [sys.executable, "-m", "ksearch", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": str(columns), **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str, code: int | None = None) -> None:
    """A failed command that printed one `error:` line holding each needle, and no traceback."""
    assert proc.returncode != 0 if code is None else proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
