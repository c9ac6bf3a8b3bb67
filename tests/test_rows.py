"""Typed rows: every row kind is a pydantic model, packet ids are parsed in one place, and a log
written before typed rows (tests/fixtures/logs/old_rmsnorm_run.tar.gz, a 4-candidate CPU quickstart run)
still verifies, indexes, resumes and reports."""

import random
import re
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from ksearch.analysis.report import write_report
from ksearch.evidence import EvidencePacket
from ksearch.log import History, build_index, verify_log
from ksearch.log.history import iter_rows, parse_row, read_rows
from ksearch.log.rows import (
    ROW,
    AttemptRow,
    FinalAudit,
    PacketId,
    RunStartRow,
    RunStopRow,
    Step,
    StepRow,
    WmEditRow,
    kind_of,
)
from ksearch.log.stats import log_stats
from ksearch.selfbench.log_bench import synthetic_packet

ROOT = Path(__file__).resolve().parents[1]


def test_packet_ids_parse_and_format_in_one_place():
    pid = PacketId.parse("att-2ba331dde9d44421@h100")
    assert (pid.evaluation, pid.target) == ("att-2ba331dde9d44421", "h100")
    assert str(pid) == "att-2ba331dde9d44421@h100"
    assert str(pid.on("mi355x")) == "att-2ba331dde9d44421@mi355x"
    evaluation = PacketId.parse("att-2ba331dde9d44421")
    assert evaluation.target is None and str(evaluation) == "att-2ba331dde9d44421"
    assert PacketId.parse("a_1@x@b200") == PacketId("a_1@x", "b200")  # the target follows the last @
    step = Step(candidate="c0", passed=True, packet_id="att-1@h100")
    assert step.packet_id == PacketId("att-1", "h100")
    assert step.model_dump(mode="json")["packet_id"] == "att-1@h100"


def test_every_row_of_the_old_log_is_its_kinds_model(old_run):
    rows = list(read_rows(old_run))
    kinds = {r.kind for r in rows}
    assert kinds == {"run_start", "wm_edit", "proposer_call", "attempt", "step", "final_audit", "run_stop"}
    assert all(isinstance(r.payload, EvidencePacket) for r in rows if isinstance(r, AttemptRow))
    start = next(r for r in rows if isinstance(r, RunStartRow))
    assert start.payload.primary == "h100" and start.payload.config["budget"]["evaluations"] == 4
    steps = [r.payload for r in rows if isinstance(r, StepRow)]
    assert [s.candidate for s in steps] == ["c0000", "c0001", "c0002", "c0003"]
    assert all(isinstance(s.packet_id, PacketId) and s.packet_id.target == "h100" for s in steps)
    stop = next(r for r in rows if isinstance(r, RunStopRow))
    assert stop.payload.best is not None and stop.payload.best.candidate == "c0003"
    assert next(r for r in rows if isinstance(r, WmEditRow)).payload.root is not None


def test_a_row_that_does_not_fit_its_kind_is_named(tmp_path):
    run = tmp_path / "bad"
    History(run).append(FinalAudit(candidate="c1", targets={"b200": "pass"}))
    line = next(line for line, _ in iter_rows(run))
    broken = line.row | {"payload": {"candidate": 7}}
    with pytest.raises(ValidationError):
        ROW.validate_python(broken)
    unknown = line.row | {"kind": "gossip"}
    with pytest.raises(ValidationError):
        ROW.validate_python(unknown)
    assert isinstance(parse_row(line).payload, FinalAudit)


def test_history_appends_models_and_names_their_kind(tmp_path):
    run = tmp_path / "r"
    packet = synthetic_packet(0, random.Random(0), passed=True)
    assert kind_of(packet) == "attempt" and kind_of(Step(candidate="c", passed=False)) == "step"
    History(run).append_many([packet, Step(candidate="c0", passed=True, packet_id=packet.packet_id)])
    assert [r.kind for r in read_rows(run)] == ["attempt", "step"]
    assert verify_log(run).ok
    with pytest.raises(TypeError, match="models of ksearch.log.rows"):
        History(run).append({"packet_id": "a dict is no row"})  # type: ignore[arg-type]


def test_the_old_log_verifies_indexes_and_reports(old_run, tmp_path):
    report = verify_log(old_run)
    assert report.ok and report.rows == 28 and not report.warnings
    assert build_index(old_run).total == 28
    stats = log_stats(old_run)
    assert (stats["attempts"], stats["search_evaluations"], stats["final_audits"]) == (6, 4, 2)
    html = write_report(old_run, tmp_path / "r.html").read_text()
    assert "c0003" in html and "att-c0c23c68e13248ed@mi355x" in html


def test_the_old_log_resumes(old_run):
    from ksearch.search.run import start_run

    result = start_run(resume=old_run, overrides={"budget.evaluations": 1, "device": "cpu"})  # 1 more
    assert result.resumed and result.progress.evaluations == 5
    rows = list(read_rows(old_run))
    assert [r.kind for r in rows].count("run_resume") == 1
    assert [r.payload.candidate for r in rows if isinstance(r, StepRow)][-1] == "c0004"
    assert verify_log(old_run).ok
    assert result.best_packet is not None
    assert EvidencePacket.model_validate_json(result.best_packet.read_text()).packet_id


def test_no_row_is_read_through_string_keys_outside_the_row_models():
    found = subprocess.run(
        ["grep", "-rnE", r'rsplit\("@"|\.get\("payload"\)|\["payload"\]', "ksearch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert found == "", found
    assert not re.search(r"rsplit\(.@", (ROOT / "ksearch" / "search" / "pipeline.py").read_text())
