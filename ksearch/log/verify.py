"""`ksearch log verify`: walk the whole hash chain and name the first bad row."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ksearch.errors import LogIntegrityError
from ksearch.log.history import Cursor, history_path, iter_rows, parse_row, read_head


@dataclass
class VerifyReport:
    ok: bool
    rows: int
    problem: str | None = None
    bad_line: int | None = None
    bad_seq: int | None = None
    warnings: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)  # rows per kind


def verify_log(run_dir: Path) -> VerifyReport:
    """Check every row: JSON, seq continuity, prev hashes, seals, the head anchor, and that each
    row is a valid row of its kind (ksearch.log.rows).

    Catches an edited, deleted, reordered or inserted row anywhere, the last one included (the
    head anchor covers it). One torn last line left by a killed writer is a warning, not a failure;
    any other line that is not a row (junk lines, random bytes, a first line that is no row) fails.
    """
    path = history_path(run_dir)
    head = read_head(run_dir)
    cursor, head_hash, head_line = Cursor(), None, None
    kinds: Counter[str] = Counter()
    try:
        for line, cursor in iter_rows(run_dir):  # noqa: B007 (the last cursor is read below)
            row = parse_row(line)  # every row must be a valid row of its kind, or nothing can read it
            kinds[row.kind] += 1
            if head and row.seq == head["seq"]:
                head_hash, head_line = line.hash, line.lineno
    except LogIntegrityError as e:
        return VerifyReport(False, cursor.next_seq, str(e), e.lineno, e.seq)
    report = VerifyReport(True, cursor.next_seq, kinds=kinds)
    torn = path.stat().st_size - cursor.offset
    if torn and not cursor.next_seq:
        # No writer tears a line before its first row is whole: this is no ksearch history.
        return VerifyReport(
            False,
            0,
            f"{path}: line 1 is not a row (not JSON, or no seq/prev): this is not a ksearch history",
            1,
        )
    if torn:
        report.warnings.append(
            f"{torn} bytes after the last row, on line {cursor.lineno}, are a torn line (a writer was killed "
            "mid-append); the next append seals them off"
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
