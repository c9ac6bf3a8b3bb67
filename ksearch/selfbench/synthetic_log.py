"""Synthetic run logs for testing and benchmarking the mining tools (`log stats`, distill, report).

A synthetic run looks like a search: a `run_start`, then per candidate one attempt row (a valid
EvidencePacket) and one `step` row, and a priced `proposer_call` every few candidates. The accept
rate can jump at a given attempt, and a reward-hack class can appear from a given attempt, so that
drift detection has something to find.

    python -m ksearch.selfbench.synthetic_log DIR --attempts 1000000 [--jump-at N --accept-after P] [--bench]

`--bench` then indexes the log and times `log_stats`, `ksearch log stats` and `distill` (the
figures in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from ksearch.evidence import FailureClass
from ksearch.log.history import History
from ksearch.log.rows import PacketId, ProposerCallRecord, RowPayload, RunStart, RunStop, Step
from ksearch.selfbench.log_bench import synthetic_packet

TEMPLATES = [f"synth/t{i}" for i in range(12)]
FAILS = [
    FailureClass.COMPILE_ERROR,
    FailureClass.NUMERICAL_MISMATCH,
    FailureClass.NONFINITE,
    FailureClass.TIMEOUT,
    FailureClass.AUDIT_REGISTER_SPILL,
]
HACK = FailureClass.REWARD_HACK_STREAM


def write_synthetic_run(
    run_dir: Path,
    attempts: int,
    *,
    accept: float = 0.6,
    jump_at: int | None = None,
    accept_after: float | None = None,
    hack_from: int | None = None,
    hack_rate: float = 0.2,
    seed: int = 0,
    batch: int = 10_000,
    call_every: int = 10,
    usd_per_call: float = 0.002,
    dead: dict[str, FailureClass] | None = None,
    fsync: bool = False,
) -> Path:
    """Write a synthetic run of `attempts` candidates into `run_dir`; returns it.

    The accept rate is `accept`, then `accept_after` from attempt `jump_at` on; from `hack_from` on,
    a share `hack_rate` of attempts fail as reward_hack:stream. Templates named in `dead` always fail
    with the given class (dead ends for memory tests)."""
    dead = dead or {}
    rng = random.Random(seed)
    passes = [synthetic_packet(i, rng, passed=True) for i in range(16)]
    fails = {f: [synthetic_packet(i, rng, passed=False, failure=f) for i in range(4)] for f in (*FAILS, HACK)}
    history = History(Path(run_dir), fsync=fsync)
    history.append(
        RunStart(
            task="rmsnorm",
            dtype="float16",
            targets=["h100"],
            primary="h100",
            device="cuda",
            ksearch_version="synthetic",
            config={"task": "rmsnorm", "eval": {"seeds": [0, 1]}},
        )
    )
    passed_count = 0
    rows: list[RowPayload] = []
    for i in range(attempts):
        rate = accept_after if jump_at is not None and i >= jump_at and accept_after is not None else accept
        hack = hack_from is not None and i >= hack_from and rng.random() < hack_rate
        t = TEMPLATES[min(len(TEMPLATES) - 1, int(rng.expovariate(0.4)))]
        passed = not hack and t not in dead and rng.random() < rate
        # None exactly when the attempt passed.
        failure: FailureClass | None = None
        if hack:
            failure = HACK
        elif not passed:
            failure = dead.get(t) or (
                FAILS[TEMPLATES.index(t) % len(FAILS)] if rng.random() < 0.7 else rng.choice(FAILS)
            )
        base = rng.choice(passes) if failure is None else rng.choice(fails[failure])
        pid = f"att-{i:08x}@h100"
        reward = rng.random() * (1 + TEMPLATES.index(t) / 4) / 4 if passed else None
        packet = base.model_copy(
            update={
                "packet_id": pid,
                "reward": reward,
                "candidate": base.candidate.model_copy(
                    update={"target": "h100", "action_id": f"n{TEMPLATES.index(t) + 2}"}
                ),
                "durations_s": {
                    "compile": 0.5 + rng.random(),
                    "verify": rng.random(),
                    "benchmark": rng.random() if passed else 0.0,
                },
                "environment": base.environment.model_copy(update={"gpu_name": "NVIDIA H100 80GB HBM3"}),
            }
        )
        rows.append(packet)
        rows.append(
            Step(
                candidate=f"c{i:07d}",
                visit=i // 4,
                island=i % 2,
                action_id=packet.candidate.action_id,
                template=t,
                knobs={"num_warps": 2 ** (i % 4), "BLOCK": 256 * (1 + i % 3)},
                passed=passed,
                score=reward,
                score_basis="reward:h100" if passed else None,
                failure_class=None if failure is None else failure.value,
                packet_id=PacketId.parse(pid),
                blob=None,
                targets={"h100": "pass" if failure is None else failure.value},
                message=packet.message[:300],
            )
        )
        if call_every and i % call_every == 0:
            rows.append(
                ProposerCallRecord(
                    kind="implement",
                    summary="synthetic",
                    prompt_tokens=1500,
                    completion_tokens=400,
                    usd=usd_per_call,
                    latency_s=2.0,
                    model="synthetic",
                )
            )
        passed_count += passed
        if len(rows) >= batch:
            history.append_many(rows)
            rows = []
    rows.append(RunStop(reason="synthetic", evaluations=attempts, passed=passed_count))
    history.append_many(rows)
    return Path(run_dir)


def bench_stats(run_dir: Path, repeats: int = 5) -> dict:
    """Index a (synthetic) run, then time log_stats with the index current, the CLI command, and
    distill (memory.json and frontier.csv, what the search loop rewrites after each visit)."""
    from ksearch.log.index import build_index
    from ksearch.log.stats import log_stats
    from ksearch.propose.memory import distill

    res: dict = {}
    t = time.perf_counter()
    report = build_index(run_dir, rebuild=True)
    res["index_build_s"] = time.perf_counter() - t
    res["events"] = report.total
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        s = log_stats(run_dir)
        times.append(time.perf_counter() - t)
    res["attempts"] = s["attempts"]
    res["log_stats_s"] = sorted(times)[len(times) // 2]
    res["log_stats_first_s"] = times[0]
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ksearch", "log", "stats", str(run_dir)], check=True, stdout=subprocess.DEVNULL
    )
    res["cli_stats_s"] = time.perf_counter() - t
    res["drift_events"] = len(s["drift"]["events"])
    t = time.perf_counter()
    distill(run_dir)
    res["distill_s"] = time.perf_counter() - t
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--attempts", type=int, default=1_000_000)
    ap.add_argument("--accept", type=float, default=0.6)
    ap.add_argument("--jump-at", type=int)
    ap.add_argument("--accept-after", type=float)
    ap.add_argument("--hack-from", type=int)
    ap.add_argument("--bench", action="store_true", help="index the log and time log_stats and distill")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    write_synthetic_run(
        a.run_dir,
        a.attempts,
        accept=a.accept,
        jump_at=a.jump_at,
        accept_after=a.accept_after,
        hack_from=a.hack_from,
    )
    res = {
        "write_s": time.perf_counter() - t,
        "history_mib": (a.run_dir / "history.jsonl").stat().st_size / 2**20,
    }
    if a.bench:
        res.update(bench_stats(a.run_dir))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
