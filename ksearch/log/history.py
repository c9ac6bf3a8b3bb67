"""history.jsonl: the append-only, hash-chained event log of one run.

Row format, one JSON object per line, keys in this order:
    {"seq": 7, "ts": "2026-11-21T13:00:00.000000+00:00", "run": "<run id>", "kind": "attempt",
     "prev": "<sha256 hex of the previous row's line>", "payload": {...}}

- `seq` starts at 0 and grows by one per row; `prev` of row 0 is GENESIS.
- The hash of a row is sha256 of its line's bytes without the newline.
- Writers take an exclusive flock on the file, append whole lines with one write, fsync, unlock.
- A writer killed mid-write leaves a torn trailing line (no newline) after at least one row. Readers
  skip it. The next writer seals it off: it appends a newline and a `seal` row naming the torn bytes'
  offset, length and hash; the torn bytes themselves are never touched. `prev` chains over valid rows
  only. A torn write is one unterminated line, nothing else: complete lines that are not rows (junk
  appended by hand, a line rewritten) are damage, which readers refuse and no writer seals.
- `head.json` beside the history names the last row's seq and hash (rewritten atomically under the
  lock) so that an edit of the final row, which no later `prev` covers, is still caught.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from pydantic import ValidationError

from ksearch.errors import LogError, LogIntegrityError, NotALogError
from ksearch.log.rows import ROW, Row, RowPayload, Seal, SealRow, kind_of
from ksearch.paths import write_atomic

HISTORY = "history.jsonl"
HEAD = "head.json"
GENESIS = "0" * 64
SEAL = "seal"
_TAIL_BLOCK = 1 << 16


def row_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def encode_row(seq: int, ts: str, run: str, kind: str, prev: str, payload: dict) -> bytes:
    row = {"seq": seq, "ts": ts, "run": run, "kind": kind, "prev": prev, "payload": payload}
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True)
class RawLine:
    """One line of the file as stored: where it is, its bytes (no newline), its parsed row if any."""

    lineno: int  # 1-based
    offset: int  # byte offset of the line's first byte
    data: bytes
    complete: bool  # ended with a newline
    row: dict | None  # None when the line is not a JSON object

    @property
    def hash(self) -> str:
        return row_hash(self.data)


def parse_line(data: bytes) -> dict | None:
    try:
        row = orjson.loads(data)  # 5x faster than json on packet-sized rows; the index reads a million
    except orjson.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def history_path(run_dir: Path) -> Path:
    """The history file of a run directory, or a NotALogError saying what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NotALogError(f"{run_dir} is not a directory; pass a run directory under experiment_log/")
    path = run_dir / HISTORY
    if not path.is_file():
        raise NotALogError(
            f"{run_dir} is not a ksearch run log: it has no {HISTORY}; pass a directory made by `ksearch run`"
        )
    return path


def iter_lines(path: Path, start: int = 0, lineno: int = 1) -> Iterator[RawLine]:
    """Every line of the file from byte `start`, parsed, including a torn last line (complete=False)."""
    with open(path, "rb") as f:
        f.seek(start)
        offset = start
        for data in f:
            complete = data.endswith(b"\n")
            body = data[:-1] if complete else data
            yield RawLine(lineno, offset, body, complete, parse_line(body))
            offset += len(data)
            lineno += 1


def is_row(row: dict | None) -> bool:
    return row is not None and isinstance(row.get("seq"), int) and isinstance(row.get("prev"), str)


@dataclass(frozen=True)
class Cursor:
    """Where a reader stopped: the next byte to read and the chain state up to it."""

    offset: int = 0
    lineno: int = 1
    next_seq: int = 0
    prev_hash: str = GENESIS


def iter_rows(run_dir: Path, cursor: Cursor = Cursor()) -> Iterator[tuple[RawLine, Cursor]]:
    """The valid rows of a run from `cursor` on, each with the cursor just past it.

    The hash chain is checked as rows are read: each row's seq is one more than the last and its
    prev is the last row's hash. A line that is not a row is a torn write only when it is one
    unterminated line: the last line of the file (a writer died; the next writer seals it), or one
    followed by the seal row accounting for exactly its bytes. Anything else raises
    LogIntegrityError naming the first bad row.
    """
    path = history_path(run_dir)
    torn: RawLine | None = None
    seq, prev, prev_line = cursor.next_seq, cursor.prev_hash, None
    prev_prev = None  # the prev recorded by the row before this one
    for line in iter_lines(path, cursor.offset, cursor.lineno):
        if torn is not None and not seals(line, torn):
            raise corrupt_line(path, torn)
        row = line.row
        if row is None or not is_row(row):
            torn = line
            continue
        torn = None
        if row["seq"] != seq:
            bad_line, bad_seq = line.lineno, seq
            if row["seq"] > seq:
                what = f"row seq {seq} is missing before line {line.lineno} (found seq {row['seq']}): rows were deleted"
            elif prev_line is not None and row["seq"] == seq - 1 and row["prev"] == prev_prev:
                what = (
                    f"lines {prev_line.lineno} and {line.lineno} both claim seq {seq - 1} after the same row: "
                    "one of them was inserted"
                )
                bad_line, bad_seq = prev_line.lineno, seq - 1
            else:
                what = f"line {line.lineno} has seq {row['seq']} where seq {seq} was due: rows were reordered or inserted"
            raise LogIntegrityError(f"{path}: {what}", bad_line, bad_seq)
        if row["prev"] != prev:
            if prev_line is None:
                raise LogIntegrityError(
                    f"{path}: line {line.lineno} (seq {seq}) does not continue the hash chain: its prev is not "
                    "the hash of the row before it",
                    line.lineno,
                    seq,
                )
            raise LogIntegrityError(
                f"{path}: row seq {seq - 1} (line {prev_line.lineno}) does not hash to the prev recorded by "
                f"row seq {seq} (line {line.lineno}): row seq {seq - 1} was edited, or a row was inserted",
                prev_line.lineno,
                seq - 1,
            )
        seq, prev, prev_line, prev_prev = seq + 1, line.hash, line, row["prev"]
        yield line, Cursor(line.offset + len(line.data) + line.complete, line.lineno + 1, seq, prev)
    if torn is not None and torn.complete:
        raise corrupt_line(path, torn)  # a whole line, not a torn write: someone put it there


def seals(line: RawLine, torn: RawLine) -> bool:
    """Whether `line` is the seal row that accounts for exactly the bytes of the torn line `torn`
    (without the newline its sealer added)."""
    try:
        seal = SealRow.model_validate(line.row).payload
    except ValidationError:
        return False
    return seal == Seal(torn_offset=torn.offset, torn_length=len(torn.data), torn_sha256=torn.hash)


def corrupt_line(path: Path, line: RawLine) -> LogIntegrityError:
    return LogIntegrityError(
        f"{path}: line {line.lineno} (byte {line.offset}) is not a valid row (not JSON, or no seq/prev) "
        "and is no torn write a seal row accounts for: the log was edited or damaged",
        line.lineno,
    )


@dataclass(frozen=True)
class Tail:
    """The end of a history file as a writer sees it under the lock."""

    last: bytes | None  # the last valid row's line, without newline
    end: int  # byte offset just past that row (and its newline, if it has one)
    terminated: bool  # False when the last valid row lacks its newline (writer died just before it)


def read_tail(fd: int, size: int) -> Tail:
    """Find the last valid row by reading blocks backwards from the end of an open file."""
    pos, buf = size, b""
    while pos > 0:
        step = min(_TAIL_BLOCK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        segments = buf.split(b"\n")  # the last one is what follows the final newline
        seg_end = pos + len(buf)
        first = 0 if pos == 0 else 1  # with pos > 0 the first segment may be a partial line
        for i in range(len(segments) - 1, first - 1, -1):
            seg = segments[i]
            seg_start = seg_end - len(seg)
            if seg and is_row(parse_line(seg)):
                terminated = i < len(segments) - 1
                return Tail(seg, seg_start + len(seg) + terminated, terminated)
            seg_end = seg_start - 1
    return Tail(None, 0, True)


@dataclass(frozen=True)
class Appended:
    seq: int
    hash: str


class History:
    """Appender for one run's history. Safe across threads and processes (flock per append)."""

    def __init__(self, run_dir: Path, run_id: str | None = None, *, fsync: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / HISTORY
        self.run_id = run_id or self.run_dir.name
        self.fsync = fsync

    def append(self, payload: RowPayload) -> Appended:
        """Append one row; its kind is its payload model's (ksearch.log.rows)."""
        return self.append_many([payload])[-1]

    def append_many(self, payloads: Iterable[RowPayload]) -> list[Appended]:
        """Append rows atomically as one write under one lock and one fsync."""
        events = [(kind_of(p), p.model_dump(mode="json")) for p in payloads]
        if not events:
            return []
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            tail = read_tail(fd, size)
            seq, prev = (json.loads(tail.last)["seq"] + 1, row_hash(tail.last)) if tail.last else (0, GENESIS)
            out: list[bytes] = []
            sealed = tail.terminated and tail.end < size
            if not tail.terminated:
                out.append(b"\n")  # the row was whole but for its newline: finish it
            elif sealed:
                # A writer died mid-write: seal its torn line off without touching it.
                torn = os.pread(fd, size - tail.end, tail.end)
                if tail.last is None or b"\n" in torn:
                    raise LogIntegrityError(
                        f"{self.path}: the {len(torn)} bytes from byte {tail.end} on are not rows and not "
                        "one torn line either: the log was damaged; refusing to append "
                        "(`ksearch log verify` names the first bad line)"
                    )
                out.append(b"\n")
                seal = Seal(torn_offset=tail.end, torn_length=len(torn), torn_sha256=row_hash(torn))
                events = [(SEAL, seal.model_dump(mode="json")), *events]
            ts = utc_now()
            done: list[Appended] = []
            for kind, payload in events:
                line = encode_row(seq, ts, self.run_id, kind, prev, payload)
                prev = row_hash(line)
                done.append(Appended(seq, prev))
                out.append(line + b"\n")
                seq += 1
            _write_all(fd, b"".join(out))
            if self.fsync:
                os.fsync(fd)
            self._write_head(done[-1])
            return done[1:] if sealed else done
        finally:
            os.close(fd)  # closing releases the flock

    def _write_head(self, last: Appended) -> None:
        write_atomic(self.run_dir / HEAD, json.dumps({"seq": last.seq, "hash": last.hash}))


def parse_row(line: RawLine) -> Row:
    """The typed row of a valid history line; LogIntegrityError naming it when it does not fit its kind."""
    try:
        return ROW.validate_python(line.row)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LogIntegrityError(
            f"line {line.lineno} is not a valid row of its kind: {where}: {first['msg']}", line.lineno
        ) from None


def read_rows(run_dir: Path, *kinds: str, cursor: Cursor = Cursor()) -> Iterator[Row]:
    """The rows of a run as models, in order; only those of `kinds` when given (the others are
    chain-checked but not parsed, so a reader of steps never pays for packets)."""
    for line, _ in iter_rows(run_dir, cursor):
        if not kinds or kind_in(line, kinds):
            yield parse_row(line)


def kind_in(line: RawLine, kinds: Collection[str]) -> bool:
    return line.row is not None and line.row.get("kind") in kinds


def read_head(run_dir: Path) -> dict | None:
    try:
        head = json.loads((Path(run_dir) / HEAD).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(head, dict) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str):
        return head
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise LogError("short write to history.jsonl; is the disk full?")
        view = view[n:]
