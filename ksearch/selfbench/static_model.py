"""How well the static estimate ranks what was measured: `ksearch bench static-model RUN_DIR...`.

Targets we cannot run on (B200, MI355X) are ranked by `ksearch.search.estimate`. Where a GPU was
lent, its runs hold both sides: every passing candidate's measured time per workload, and the
source, which compiles here for the same target. The figure of merit is Spearman's rank
correlation between the modelled and the measured time of each workload (and between the modelled
score and the measured reward), over the distinct candidates of the runs given.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ksearch.compile import CompileRequest, compile_many
from ksearch.evidence import EvidencePacket, Status
from ksearch.harness.sol import geomean
from ksearch.log.history import read_rows
from ksearch.search.estimate import static_estimates
from ksearch.target import load_target
from ksearch.task import load_task


@dataclass
class Agreement:
    task: str
    target: str
    candidates: int
    per_workload: dict[str, tuple[int, float | None]] = field(default_factory=dict)  # (n, rho)
    score: tuple[int, float | None] = (0, None)  # modelled score against measured reward
    points: list[dict] = field(default_factory=list)  # every candidate's figures, for a closer look


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Rank correlation (ties share their mean rank); None with fewer than 3 pairs or no spread."""
    if len(xs) < 3:
        return None
    try:
        return statistics.correlation(_ranks(xs), _ranks(ys))
    except statistics.StatisticsError:  # a constant series
        return None


def _ranks(values: list[float]) -> list[float]:
    """1-based ranks, equal values sharing the mean of the ranks they span."""
    ranks = [0.0] * len(values)
    done = 0
    for _, tied in itertools.groupby(sorted(range(len(values)), key=values.__getitem__), values.__getitem__):
        members = list(tied)
        for i in members:
            ranks[i] = done + (len(members) + 1) / 2
        done += len(members)
    return ranks


def measured_packets(run_dirs: list[Path]) -> dict[str, tuple[EvidencePacket, Path]]:
    """The timed, passing packets of the runs, one per distinct source (the first met)."""
    found: dict[str, tuple[EvidencePacket, Path]] = {}
    for run_dir in run_dirs:
        for row in read_rows(Path(run_dir), "attempt"):
            p = row.payload
            if isinstance(p, EvidencePacket) and p.status is Status.PASS and p.performance is not None:
                found.setdefault(p.candidate.source_hash, (p, Path(run_dir)))
    return found


def agreement(
    run_dirs: list[Path], cache_dir: Path | None = None, jobs: int | None = None
) -> list[Agreement]:
    """Per (task, target) of the measured packets: compile each source for that target here,
    model it, and correlate with what was measured."""
    groups: dict[tuple[str, str, str], list[tuple[EvidencePacket, Path]]] = {}
    for packet, run_dir in measured_packets(run_dirs).values():
        key = (packet.task, packet.candidate.target, packet.candidate.dtype)
        groups.setdefault(key, []).append((packet, run_dir))
    out = []
    for (task_name, target, dtype), items in sorted(groups.items()):
        task, profile = load_task(task_name), load_target(target)
        requests = [
            CompileRequest(  # as the run compiled it: on the workloads it timed
                source_path=str(d / (p.candidate.source_blob or "")),
                task=task_name,
                target=target,
                dtype=dtype,
                workloads=tuple(p.candidate.shape_suite) or None,
            )
            for p, d in items
        ]
        compiled = compile_many(requests, cache_dir=cache_dir, jobs=jobs)
        result = Agreement(task_name, target, len(items))
        series: dict[str, tuple[list[float], list[float]]] = {}
        scores: tuple[list[float], list[float]] = ([], [])
        for (packet, _), comp in zip(items, compiled):
            modelled = static_estimates(task, dtype, comp, profile)
            measured = {w.workload: w.median_us for w in packet.performance.workloads}  # type: ignore[union-attr]
            common = sorted(set(modelled) & set(measured))
            for wl in common:
                series.setdefault(wl, ([], []))
                series[wl][0].append(modelled[wl][1])
                series[wl][1].append(measured[wl])
            score = geomean([modelled[wl][0] / modelled[wl][1] for wl in common]) if common else None
            if score is not None and packet.reward is not None:
                scores[0].append(score)
                scores[1].append(packet.reward)
            result.points.append(
                {
                    "source_hash": packet.candidate.source_hash,
                    "modelled_us": {wl: modelled[wl][1] for wl in common},
                    "measured_us": {wl: measured[wl] for wl in common},
                    "reward": packet.reward,
                }
            )
        result.per_workload = {wl: (len(xs), spearman(xs, ys)) for wl, (xs, ys) in sorted(series.items())}
        result.score = (len(scores[0]), spearman(*scores))
        out.append(result)
    return out
