"""`ksearch bench log`: append, index and query figures of the log on this machine's disk.

Synthetic attempt rows are real EvidencePackets (validated once), varied in status, failure class,
target and reward, so the index and the stats queries see a realistic mix.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

from ksearch.evidence import (
    Candidate,
    Environment,
    EvidencePacket,
    FailureClass,
    OutputCheck,
    Performance,
    Status,
    Unmeasured,
    Validation,
    WorkloadTiming,
    status_for,
)
from ksearch.log.history import History
from ksearch.log.index import build_index, connect_readonly
from ksearch.log.stats import STATS_QUERIES

_FAILS = [
    FailureClass.COMPILE_ERROR,
    FailureClass.NUMERICAL_MISMATCH,
    FailureClass.NONFINITE,
    FailureClass.TIMEOUT,
    FailureClass.REWARD_HACK_STREAM,
    FailureClass.OUTPUT_NOT_WRITTEN,
]
_TARGETS = ["b200", "mi355x", "h100", "h200", "mi300x"]


def synthetic_packet(
    i: int, rng: random.Random, passed: bool | None = None, failure: FailureClass | None = None
) -> EvidencePacket:
    """A valid attempt packet; pass/fail and the failure class drawn from `rng` unless given. A pass
    is timed (it has a performance block, so its reward is a measured one)."""
    passed = rng.random() < 0.4 if passed is None else passed
    failure = None if passed else (failure or rng.choice(_FAILS))
    checks = [
        OutputCheck(
            workload=w,
            distribution=d,
            seed=s,
            output="out",
            max_abs_err=rng.random() * 1e-3,
            max_rel_err=rng.random() * 1e-3,
            matched_ratio=1.0,
            checks={"shape": True, "tolerance": passed},
            passed=passed,
        )
        for w in ("m1_n4096", "m3000_n7168")
        for d in ("normal", "heavy_tailed")
        for s in (0, 1)
    ]
    packet = EvidencePacket(
        packet_id=f"att-{i:08d}",
        task="rmsnorm",
        candidate=Candidate(
            source_hash=f"{rng.getrandbits(256):064x}",
            language="triton",
            target=rng.choice(_TARGETS),
            dtype="float16",
            shape_suite=["m1_n4096", "m3000_n7168"],
            action_id=f"a{i % 97}",
        ),
        environment=Environment(ksearch_version="0.1.0", replay_command=f"ksearch replay RUN att-{i:08d}"),
        validation=Validation(
            passed=passed,
            backend="triton-interpreter",
            workloads_checked=["m1_n4096"],
            seeds=[0, 1],
            distributions=["normal", "heavy_tailed"],
            outputs=checks,
        ),
        performance=Performance(
            device="NVIDIA H100 80GB HBM3",
            workloads=[WorkloadTiming(workload="m1_n4096", median_us=10.0, iqr_us=0.1, cv=0.01, samples=50)],
        )
        if passed
        else None,
        unmeasured=None if passed else Unmeasured(reason=FailureClass.UNMEASURED_NOT_VERIFIED),
        status=Status.PASS if failure is None else status_for(failure),
        failure_class=failure,
        reward=rng.random() if passed else None,
        durations_s={"compile": rng.random(), "verify": rng.random()},
        message="" if failure is None else f"{failure.value}: synthetic failure {i} at line {i % 300}",
    )
    return packet


def bench_log(
    workdir: Path, rows: int = 1_000_000, single: int = 2000, batch: int = 10_000, query_repeats: int = 20
) -> dict:
    """Measure single-row append (fsync each), batched append, index build and stats query latency."""
    rng = random.Random(0)
    template = [synthetic_packet(i, rng) for i in range(1000)]
    res: dict = {"rows": rows}

    single_log = History(workdir / "single")
    t = time.perf_counter()
    for i in range(single):
        single_log.append(template[i % 1000])
    res["single_rows_per_s"] = single / (time.perf_counter() - t)

    log = History(workdir / "big", fsync=True)
    t = time.perf_counter()
    for start in range(0, rows, batch):
        log.append_many(
            template[i % 1000].model_copy(update={"packet_id": f"att-{i:08d}"})
            for i in range(start, min(rows, start + batch))
        )
    res["batched_rows_per_s"] = rows / (time.perf_counter() - t)
    res["history_mib"] = (workdir / "big" / "history.jsonl").stat().st_size / 2**20

    report = build_index(workdir / "big", rebuild=True)
    res["index_build_s"] = report.seconds
    res["index_mib"] = report.db.stat().st_size / 2**20
    log.append_many(template[i] for i in range(1000))
    res["index_incremental_1000_s"] = build_index(workdir / "big").seconds

    conn = connect_readonly(workdir / "big")
    try:
        for name, sql in STATS_QUERIES.items():
            times = []
            for _ in range(query_repeats):
                t = time.perf_counter()
                conn.execute(sql).fetchall()
                times.append(time.perf_counter() - t)
            res[f"query_{name}_ms"] = statistics.median(times) * 1000
    finally:
        conn.close()
    return res
