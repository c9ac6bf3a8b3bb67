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


def kill_run_after_steps(args: list[str], log_dir, env=None, steps: int = 2, timeout: float = 240):
    """Start `ksearch run ARGS` logging under `log_dir`, kill -9 its process group once its run has
    logged `steps` step rows, and return the run directory (what a crashed run leaves to resume)."""
    import signal
    import time
    from pathlib import Path

    from ksearch.log import iter_rows

    log_dir = Path(log_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ksearch", "run", *args],
        env={**(env or os.environ), "KSEARCH_LOG_DIR": str(log_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dirs = list(log_dir.glob("*")) if log_dir.exists() else []
            if dirs and (dirs[0] / "history.jsonl").exists():
                logged = sum(line.row.get("kind") == "step" for line, _ in iter_rows(dirs[0]))
                if logged >= steps:
                    return dirs[0]
            time.sleep(0.5)
        raise AssertionError(f"the run logged no {steps} candidates in {timeout:.0f} s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
