"""`ksearch replay RUN_DIR ATTEMPT_ID`: evaluate one logged attempt again and compare.

The source comes from the run's blobs (content-addressed, hash-checked), the configuration from
the logged packet (task, target, dtype, the seeds and workloads it was verified on) and the run's
config (time limit, timing budget). The comparison covers status, failure class, every output
check's max errors and, where both packets were timed, per-workload medians.

ATTEMPT_ID is a packet id (`att-...@h100`), an evaluation id (`att-...`, the primary target's
packet), or a candidate id from the step rows (`c0012`).

Replay re-runs the evaluation (sandboxed verification, timing on a GPU). A target's own compile and
audit verdicts (compile_error, audit:*) on a target other than this machine's are not re-derived
here: `ksearch compile` does that.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ksearch.errors import LogError
from ksearch.evidence import EvidencePacket
from ksearch.harness.evaluate import Evaluator
from ksearch.log.index import connect_readonly, evaluation_packets, read_packet_at, run_start
from ksearch.log.rows import PacketId, RunStart
from ksearch.log.rundir import read_blob
from ksearch.search.config import RunConfig
from ksearch.task import load_task


@dataclass
class Replay:
    attempt_id: str
    logged: dict
    new: dict
    rows: list[tuple[str, object, object, bool]] = field(default_factory=list)  # (what, logged, new, same)

    @property
    def agrees(self) -> bool:
        """Same status and failure class (errors and timings may differ within tolerance)."""
        return all(same for what, _, _, same in self.rows if what in ("status", "failure_class"))


def find_attempt(run_dir: Path, ident: str) -> tuple[EvidencePacket, RunStart]:
    """(the logged packet, the run_start row) of an attempt named by packet, evaluation or candidate id."""
    conn = connect_readonly(run_dir)
    try:
        start = run_start(conn)
        step = conn.execute(
            "SELECT packet_id FROM steps WHERE candidate = ? ORDER BY seq LIMIT 1", [ident]
        ).fetchone()
        packet_id = PacketId.parse(step[0] if step and step[0] else ident)
        packets = evaluation_packets(conn, packet_id.evaluation)
    finally:
        conn.close()
    if start is None:
        raise LogError(f"{run_dir} has no run_start row: it is not a run ksearch can replay from")

    def named(attempt_id: PacketId) -> tuple[int, int] | None:
        return next(((seq, off) for a, seq, off in packets if a == str(attempt_id)), None)

    row = named(packet_id)
    if (
        row is None and packet_id.target is None
    ):  # an evaluation id: its primary target's packet, else its first
        row = named(packet_id.on(start.primary)) or (packets[0][1:] if packets else None)
    if row is None:
        raise LogError(
            f"{run_dir} has no attempt or candidate {ident!r}; list them with "
            f'`ksearch log query {run_dir} "SELECT attempt_id, status FROM attempts"`'
        )
    return read_packet_at(run_dir, row[1], row[0]), start


def replay(run_dir: Path, ident: str, *, device: str = "auto", timeout_s: float | None = None) -> Replay:
    """Evaluate the attempt again from its stored source and config; compare the packets."""
    run_dir = Path(run_dir)
    logged, start = find_attempt(run_dir, ident)
    cand = logged.candidate
    blob = cand.source_blob
    if not blob:
        raise LogError(f"attempt {logged.packet_id} names no source blob; it cannot be replayed")
    source = read_blob(run_dir, blob)
    cfg_eval = RunConfig.model_validate(start.config).eval
    seeds = tuple((logged.validation.seeds if logged.validation else None) or cfg_eval.seeds or (0,))
    workloads = (
        (logged.validation.workloads_checked if logged.validation else None) or cand.shape_suite or None
    )
    task = load_task(logged.task or start.task)
    with tempfile.TemporaryDirectory(prefix="ksearch-replay-") as tmp:
        path = Path(tmp) / f"candidate{Path(blob).suffix or '.py'}"
        path.write_bytes(source)
        with Evaluator(
            device,
            timeout_s=timeout_s or cfg_eval.timeout_s,
            bench_budget_s=cfg_eval.bench_budget_s,
        ) as ev:
            packet = ev.evaluate(
                path,
                task,
                target=cand.target,
                dtype=cand.dtype,
                seeds=seeds,
                workloads=workloads,
            )
    old, new = logged.model_dump(mode="json"), packet.model_dump(mode="json")
    return Replay(logged.packet_id, old, new, compare(old, new))


def _close(a: float | None, b: float | None, rel: float = 1e-6) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def compare(old: dict, new: dict) -> list[tuple[str, object, object, bool]]:
    """Rows (what, logged, new, same) for status, failure class, each output check, and timings."""
    rows: list[tuple[str, object, object, bool]] = [
        ("status", old.get("status"), new.get("status"), old.get("status") == new.get("status")),
        (
            "failure_class",
            old.get("failure_class"),
            new.get("failure_class"),
            old.get("failure_class") == new.get("failure_class"),
        ),
    ]

    def checks(p: dict) -> dict:
        return {
            (c["workload"], c["distribution"], c["seed"], c["output"]): c
            for c in ((p.get("validation") or {}).get("outputs") or [])
        }

    a, b = checks(old), checks(new)
    for key in sorted(set(a) | set(b), key=str):
        ca, cb = a.get(key) or {}, b.get(key) or {}
        name = "/".join(str(k) for k in key)
        for metric in ("max_abs_err", "max_rel_err"):
            rows.append(
                (f"{name} {metric}", ca.get(metric), cb.get(metric), _close(ca.get(metric), cb.get(metric)))
            )
        rows.append(
            (f"{name} passed", ca.get("passed"), cb.get("passed"), ca.get("passed") == cb.get("passed"))
        )
    pa, pb = old.get("performance"), new.get("performance")
    if pa and pb:
        ta = {w["workload"]: w for w in pa.get("workloads", [])}
        tb = {w["workload"]: w for w in pb.get("workloads", [])}
        for w in sorted(set(ta) & set(tb)):
            ma, mb = ta[w]["median_us"], tb[w]["median_us"]
            # timings agree when within the larger of the two runs' IQRs, or 5%
            tol = max(ta[w].get("iqr_us") or 0.0, tb[w].get("iqr_us") or 0.0, 0.05 * ma)
            rows.append((f"{w} median_us", ma, mb, abs(ma - mb) <= tol))
    elif pa or pb:
        rows.append(
            (
                "timing",
                "timed" if pa else (old.get("unmeasured") or {}).get("reason"),
                "timed" if pb else (new.get("unmeasured") or {}).get("reason"),
                False,
            )
        )
    return rows
