import csv
import json
import multiprocessing
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ksearch.errors import LogError, LogIntegrityError, NotALogError
from ksearch.evidence import FailureClass
from ksearch.log import (
    History,
    build_index,
    export_table,
    iter_rows,
    log_stats,
    put_blob,
    query,
    read_blob,
    verify_log,
)
from ksearch.log.history import GENESIS, HEAD, HISTORY, row_hash
from ksearch.log.index import connect_readonly, evaluation_packets, read_packet_at
from ksearch.log.rows import ProposerFailure, RunStart
from ksearch.selfbench.log_bench import synthetic_packet


def rows_of(run_dir):
    return [line.row for line, _ in iter_rows(run_dir)]


def lines_of(run_dir) -> list[bytes]:
    return (Path(run_dir) / HISTORY).read_bytes().splitlines(keepends=True)


def write_lines(run_dir, lines):
    (Path(run_dir) / HISTORY).write_bytes(b"".join(lines))


def packet(packet_id: str, passed: bool = True, *, reward=None, message="", failure=None):
    """A valid EvidencePacket on the target after `@` (h100 without one); a pass is timed."""
    p = synthetic_packet(0, random.Random(packet_id), passed=passed, failure=failure)
    target = packet_id.partition("@")[2] or "h100"
    return p.model_copy(
        update={
            "packet_id": packet_id,
            "reward": reward,
            "message": message,
            "candidate": p.candidate.model_copy(update={"target": target}),
        }
    )


def note(text: str, pad: str = "") -> ProposerFailure:
    """A small row of no consequence to the index."""
    return ProposerFailure(call="note", error=text, raw=pad or None)


def make_log(tmp_path, n=10, name="run") -> Path:
    run = tmp_path / name
    log = History(run)
    for i in range(n):
        passed = bool(i % 3)
        log.append(
            packet(
                f"a{i}",
                passed,
                reward=i / 10 if passed else None,
                message=f"row {i}",
                failure=None if passed else FailureClass.NUMERICAL_MISMATCH,
            )
        )
    return run


def test_rows_carry_seq_time_run_kind_payload_and_chain(tmp_path):
    run = make_log(tmp_path, 5)
    rows = rows_of(run)
    assert [r["seq"] for r in rows] == [0, 1, 2, 3, 4]
    assert all(r["run"] == "run" and r["kind"] == "attempt" and r["ts"].endswith("+00:00") for r in rows)
    assert rows[0]["prev"] == GENESIS
    raw = lines_of(run)
    for prev_line, row in zip(raw, rows[1:]):
        assert row["prev"] == row_hash(prev_line.rstrip(b"\n"))
    assert [r["payload"]["packet_id"] for r in rows] == [f"a{i}" for i in range(5)]
    assert verify_log(run).ok


def _append_many_single(run_dir: str, proc: int, n: int) -> None:
    log = History(Path(run_dir), run_id="shared")
    for i in range(n):
        log.append(note(f"{proc}:{i}"))


def test_eight_processes_appending_concurrently_keep_every_row(tmp_path):
    run = tmp_path / "shared"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many_single, args=(str(run), p, 1000)) for p in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    rows = rows_of(run)
    assert len(rows) == 8000
    assert [r["seq"] for r in rows] == list(range(8000))
    written = [tuple(map(int, r["payload"]["error"].split(":"))) for r in rows]
    assert set(written) == {(p, i) for p in range(8) for i in range(1000)}
    for p in range(8):  # each writer's rows stay in its own order
        mine = [i for proc, i in written if proc == p]
        assert mine == list(range(1000))
    report = verify_log(run)
    assert report.ok and report.rows == 8000 and not report.warnings


WRITER = """
import sys
from pathlib import Path
from ksearch.log import History
from ksearch.log.rows import ProposerFailure
log = History(Path(sys.argv[1]))
big = "x" * int(sys.argv[2])
i = 0
while True:
    log.append(ProposerFailure(call="note", error=str(i), raw=big))
    i += 1
"""


def _size(run: Path) -> int:
    try:
        return (run / HISTORY).stat().st_size
    except FileNotFoundError:
        return 0


def test_writer_killed_mid_append_never_corrupts_earlier_rows(tmp_path):
    run = tmp_path / "killed"
    rng = random.Random(1)
    before = b""
    for round_ in range(12):
        # Large rows make a kill inside write() likely, leaving a torn line.
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(run), str(rng.choice([100, 200_000, 2_000_000]))]
        )
        deadline = time.monotonic() + 60
        while _size(run) <= len(before) and time.monotonic() < deadline:  # wait until it is appending
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = (run / HISTORY).read_bytes()
        assert data.startswith(before), f"round {round_}: bytes written before the kill changed"
        report = verify_log(run)
        assert report.ok, report.problem
        before = data
    rows = rows_of(run)
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    assert len(rows) > 12


def test_torn_tail_is_skipped_by_readers_and_sealed_by_the_next_writer(tmp_path):
    run = make_log(tmp_path, 3)
    torn = b'{"seq":3,"ts":"2026-01-01T00:00:00+00:00","run":"run","kind":"attempt","prev":"ab'
    with open(run / HISTORY, "ab") as f:
        f.write(torn)
    before = (run / HISTORY).read_bytes()
    assert len(rows_of(run)) == 3
    report = verify_log(run)
    assert report.ok and "torn" in report.warnings[0]
    History(run).append(note("after"))
    after = (run / HISTORY).read_bytes()
    assert after.startswith(before), "sealing must not touch earlier bytes"
    rows = rows_of(run)
    assert [r["kind"] for r in rows] == ["attempt"] * 3 + ["seal", "proposer_failure"]
    seal = rows[3]["payload"]
    assert seal["torn_offset"] == len(before) - len(torn) and seal["torn_length"] == len(torn)
    assert seal["torn_sha256"] == row_hash(torn)
    assert verify_log(run).ok


def test_complete_lines_after_the_last_row_are_damage_no_writer_seals(tmp_path):
    # A torn write is one unterminated line; a whole line that is not a row was put there.
    run = make_log(tmp_path, 2)
    with open(run / HISTORY, "ab") as f:
        f.write(b'{"seq":2,"ts"\n{"seq":2,"kind":"se')
    before = (run / HISTORY).read_bytes()
    report = verify_log(run)
    assert not report.ok and report.bad_line == 3, report.problem
    with pytest.raises(LogIntegrityError, match="refusing to append"):
        History(run).append(note("x"))
    assert (run / HISTORY).read_bytes() == before


def test_whole_row_missing_only_its_newline_is_finished_not_sealed(tmp_path):
    run = make_log(tmp_path, 2)
    data = (run / HISTORY).read_bytes()
    (run / HISTORY).write_bytes(data[:-1])
    assert len(rows_of(run)) == 2
    History(run).append(packet("x"))
    assert [r["kind"] for r in rows_of(run)] == ["attempt"] * 3
    assert verify_log(run).ok


def _tamper_cases():
    def edit_middle(lines):
        lines[4] = lines[4].replace(b'"row 4"', b'"row 9"')
        return 4

    def edit_last(lines):
        lines[-1] = lines[-1].replace(b'"row 9"', b'"row 0"')
        return 9

    def delete_middle(lines):
        del lines[5]
        return 5

    def delete_last(lines):
        del lines[-1]
        return 9

    def reorder(lines):
        lines[3], lines[4] = lines[4], lines[3]
        return 3

    def insert_copy(lines):
        lines.insert(6, lines[2])
        return 6

    def insert_forged(lines):
        # A forged row with the right seq and prev, then later rows shifted: the chain breaks after it.
        row = json.loads(lines[6])
        row["payload"] = {"forged": True}
        lines.insert(6, json.dumps(row, separators=(",", ":")).encode() + b"\n")
        return 6

    def non_json(lines):
        lines[5] = b"this is not json\n"
        return 5

    return [edit_middle, edit_last, delete_middle, delete_last, reorder, insert_copy, insert_forged, non_json]


@pytest.mark.parametrize("tamper", _tamper_cases(), ids=lambda f: f.__name__)
def test_verify_names_the_first_bad_row(tmp_path, tamper):
    run = make_log(tmp_path, 10)
    lines = lines_of(run)
    bad_seq = tamper(lines)
    write_lines(run, lines)
    report = verify_log(run)
    assert not report.ok
    assert report.problem
    assert bad_seq in (report.bad_seq, (report.bad_line or 0) - 1), report.problem


def test_corrupt_middle_line_stops_readers_with_a_clear_error(tmp_path):
    run = make_log(tmp_path, 6)
    lines = lines_of(run)
    lines[2] = b"{oops\n"
    write_lines(run, lines)
    with pytest.raises(LogIntegrityError, match="line 3 .*not a valid row"):
        rows_of(run)
    with pytest.raises(LogIntegrityError, match="line 3"):
        build_index(run)


def test_not_a_log_directory(tmp_path):
    with pytest.raises(NotALogError, match="no history.jsonl"):
        verify_log(tmp_path)
    with pytest.raises(NotALogError, match="not a directory"):
        verify_log(tmp_path / "missing")


def test_index_is_incremental_and_rebuilds_when_history_is_rewritten(tmp_path):
    run = make_log(tmp_path, 10)
    first = build_index(run)
    assert (first.added, first.total, first.rebuilt) == (10, 10, True)
    again = build_index(run)
    assert (again.added, again.total, again.rebuilt) == (0, 10, False)
    History(run).append(
        packet(
            "late",
            False,
            failure=FailureClass.COMPILE_ERROR,
            message="CompilationError: at 12:4: unsupported tensor index",
        )
    )
    inc = build_index(run)
    assert (inc.added, inc.total, inc.rebuilt) == (1, 11, False)
    cols, rows = query(
        run,
        "SELECT f.seq FROM failures_fts JOIN failures f ON f.rowid = failures_fts.rowid "
        "WHERE failures_fts MATCH 'CompilationError'",
    )
    assert rows == [(10,)]
    # A different history in the same place: the cursor's hash no longer matches, so rebuild.
    (run / HISTORY).unlink()
    (run / HEAD).unlink()
    log = History(run)
    for i in range(4):
        log.append(note(str(i), "y" * 500))
    fresh = build_index(run)
    assert fresh.rebuilt and fresh.total == 4
    assert query(run, "SELECT count(*) FROM attempts")[1] == [(0,)]


def test_stats_and_read_only_query(tmp_path):
    run = make_log(tmp_path, 9)
    stats = log_stats(run)
    assert stats["attempts"] == 9
    assert stats["by_status"] == {"pass": 6, "fail": 3}
    assert stats["pass_rate"] == pytest.approx(6 / 9)
    assert stats["rejections"] == {"numerical_mismatch": 3}
    assert stats["best_per_target"]["h100"]["reward"]["best"] == pytest.approx(0.8)
    with pytest.raises(LogError, match="one SELECT"):
        query(run, "DELETE FROM attempts")
    assert query(run, "SELECT count(*) FROM attempts")[1] == [(9,)]


def test_an_evaluation_names_its_own_packets_even_with_underscore_or_percent(tmp_path):
    from ksearch.analysis.replay import find_attempt
    from ksearch.analysis.report import _packets_of

    run = tmp_path / "run"
    log = History(run)
    log.append(
        RunStart(config={}, task="rmsnorm", dtype="float16", targets=["h100"], primary="h100", device="cpu")
    )
    for aid in ["a_1@b200", "ab1@h100", "a_1@h100", "a%@h100", "a%z@h100", "a_10@h100", "b"]:
        log.append(packet(aid))
    conn = connect_readonly(run)
    try:
        assert [a for a, _, _ in evaluation_packets(conn, "a_1")] == ["a_1@b200", "a_1@h100"]
        assert [a for a, _, _ in evaluation_packets(conn, "a%")] == ["a%@h100"]
        assert [a for a, _, _ in evaluation_packets(conn, "b")] == ["b"]
        assert [p.packet_id for p in _packets_of(conn, run, "a_1@h100")] == ["a_1@b200", "a_1@h100"]
        # a row is read at its indexed offset, and an offset that is not that row's start is a stale index
        ((_, seq, off),) = evaluation_packets(conn, "b")
        assert read_packet_at(run, off, seq).packet_id == "b"
        for wrong_off, wrong_seq in ((off + 1, seq), (off, seq - 1)):
            with pytest.raises(LogError, match="stale"):
                read_packet_at(run, wrong_off, wrong_seq)
    finally:
        conn.close()
    assert find_attempt(run, "a_1")[0].packet_id == "a_1@h100"  # the primary target's packet
    assert find_attempt(run, "a%")[0].packet_id == "a%@h100"
    assert find_attempt(run, "a_1@b200")[0].packet_id == "a_1@b200"
    with pytest.raises(LogError, match="no attempt"):
        find_attempt(run, "a_")


def test_export_jsonl_csv_and_parquet(tmp_path):
    run = make_log(tmp_path, 5)
    n = export_table(run, tmp_path / "a.jsonl", "jsonl")
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert n == 5 and [r["attempt_id"] for r in rows] == [f"a{i}" for i in range(5)]
    export_table(run, tmp_path / "a.csv", "csv")
    with open(tmp_path / "a.csv") as f:
        assert [r["attempt_id"] for r in csv.DictReader(f)] == [f"a{i}" for i in range(5)]
    with pytest.raises(LogError, match="unknown export format"):
        export_table(run, tmp_path / "a.xml", "xml")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(LogError, match="pyarrow"):
            export_table(run, tmp_path / "a.parquet", "parquet")
    else:
        export_table(run, tmp_path / "a.parquet", "parquet")
        assert pq.read_table(tmp_path / "a.parquet").column("attempt_id").to_pylist() == [
            f"a{i}" for i in range(5)
        ]


def test_blobs_are_content_addressed_and_checked(tmp_path):
    rel = put_blob(tmp_path, b"def run(x, out): pass\n", ".py")
    assert rel == put_blob(tmp_path, b"def run(x, out): pass\n", ".py")
    assert read_blob(tmp_path, rel) == b"def run(x, out): pass\n"
    (tmp_path / rel).write_bytes(b"tampered")
    with pytest.raises(LogError, match="does not match its hash"):
        read_blob(tmp_path, rel)
