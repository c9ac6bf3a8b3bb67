"""`ksearch log verify`: walk the whole hash chain and name the first bad row."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ksearch.errors import LogIntegrityError
from ksearch.log.history import Cursor, history_path, iter_lines, iter_rows, read_head


@dataclass
class VerifyReport:
    ok: bool
    rows: int
    problem: str | None = None
    bad_line: int | None = None
    bad_seq: int | None = None
    warnings: list[str] = field(default_factory=list)


def verify_log(run_dir: Path) -> VerifyReport:
    """Check every row: JSON, seq continuity, prev hashes, seals, and the head anchor.

    Catches an edited, deleted, reordered or inserted row anywhere, the last one included (the
    head anchor covers it). A torn tail left by a killed writer is a warning, not a failure.
    """
    path = history_path(run_dir)
    head = read_head(run_dir)
    cursor, head_hash, head_line = Cursor(), None, None
    try:
        for line, cursor in iter_rows(run_dir):  # noqa: B007 (the last cursor is read below)
            if head and line.row["seq"] == head["seq"]:
                head_hash, head_line = line.hash, line.lineno
    except LogIntegrityError as e:
        return VerifyReport(False, cursor.next_seq, str(e), e.lineno, e.seq)
    report = VerifyReport(True, cursor.next_seq)
    torn = path.stat().st_size - cursor.offset
    if torn:
        first = next(iter_lines(path, cursor.offset, cursor.lineno))
        report.warnings.append(
            f"{torn} bytes after the last row from line {first.lineno} are torn (a writer was killed mid-append); "
            "the next append seals them off"
        )
    if head is None:
        if cursor.next_seq:
            report.warnings.append(
                "head.json is missing or unreadable: an edit of the last row cannot be ruled out"
            )
    elif head["seq"] >= cursor.next_seq:
        report.ok, report.bad_seq = False, head["seq"]
        report.problem = (
            f"{path}: head.json names row seq {head['seq']} but the log ends at seq "
            f"{cursor.next_seq - 1}: rows at the end were deleted"
        )
    elif head_hash != head["hash"]:
        report.ok, report.bad_seq, report.bad_line = False, head["seq"], head_line
        report.problem = (
            f"{path}: row seq {head['seq']} (line {head_line}) does not match the hash in head.json: "
            "the row was edited"
        )
    return report
