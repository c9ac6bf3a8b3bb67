"""`ksearch log verify`: the store's chain check, then the world-model replay a resume depends on.

The store (ksearch.log.verify) can say every row is intact and in order; it cannot say the rows
make sense together. A log whose wm_edit rows do not replay cannot be resumed or shown as a tree,
so it must not verify as ok either.
"""

from __future__ import annotations

from pathlib import Path

from ksearch.log.verify import VerifyReport, verify_log
from ksearch.worldmodel import WM_EDIT, WorldModel, WorldModelError


def check_run(run_dir: Path) -> VerifyReport:
    """verify_log, and when the chain is intact, the replay of the world model (if the run has one:
    a random-baseline run has no wm_edit rows)."""
    report = verify_log(run_dir)
    if not report.ok or not report.kinds.get(WM_EDIT):
        return report
    try:
        WorldModel.from_log(Path(run_dir))
    except WorldModelError as e:
        report.ok, report.problem = False, f"the world model does not replay from the log: {e}"
    return report
