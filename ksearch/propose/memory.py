"""What a run has learned, distilled from its log: `memory.json` and `frontier.csv`.

- proven facts: strategies (a step's template, else its world-model action) whose candidates raised
  the run's best score, with the evidence: candidate ids, scores, packet ids, knobs;
- dead ends: strategies that failed repeatedly (at least `min_failures` failures and a pass rate of
  at most `max_pass_rate`, default 0.5), with their dominant failure class and an example message;
- the frontier: per strategy template of the task (its decision axis, Template.decision) and per
  knob value, how many settings were tried and how many remain.

Both files are derived (rebuilt from the log at any time, like attempts.db), written atomically.

    distill(run_dir) -> Memory                    rebuild from the log; writes memory.json, frontier.csv
    load_memory(run_dir) -> Memory | None         memory.json as written (None when there is none)
    memory_text(memory, budget_tokens) -> str     compact text for a prompt, within the token budget
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from ksearch.context.tokens import count_tokens, fit_lines
from ksearch.errors import LogError
from ksearch.log.index import connect_readonly, run_start
from ksearch.paths import write_atomic
from ksearch.propose.templates import templates_for
from ksearch.propose.templates.base import knob_key

MEMORY = "memory.json"
FRONTIER = "frontier.csv"
FRONTIER_COLUMNS = [
    "decision",
    "template",
    "title",
    "knob",
    "value",
    "settings",
    "tried",
    "untried",
    "passed",
    "best_score",
    "status",
]


class Evidence(BaseModel):
    candidate: str
    score: float
    gain: float | None = Field(default=None, description="over the run's best before it (None for the first)")
    evaluation: int = Field(description="1-based step number")
    packet_id: str | None = None
    knobs: dict = Field(default_factory=dict)


class Fact(BaseModel):
    """A strategy that raised the run's best score."""

    strategy: str
    template: str | None = None
    action_id: str | None = None
    decision: str | None = None
    title: str | None = None
    attempts: int
    passed: int
    best_score: float | None
    basis: str | None = None
    best_knobs: dict = Field(default_factory=dict)
    evidence: list[Evidence]


class DeadEnd(BaseModel):
    """A strategy that failed repeatedly."""

    strategy: str
    template: str | None = None
    decision: str | None = None
    title: str | None = None
    attempts: int
    failures: int
    dominant_failure_class: str
    dominant_share: float
    failure_classes: dict[str, int]
    example: str = ""
    candidates: list[str] = Field(default_factory=list)


class FrontierRow(BaseModel):
    decision: str = ""
    template: str
    title: str = ""
    knob: str = ""
    value: str = ""
    settings: int | None = None  # settings containing this row (all of the template's for a template row)
    tried: int = 0
    untried: int | None = None
    passed: int = 0
    best_score: float | None = None
    status: str = ""  # untried | open | exhausted (template rows; knob values: untried | tried)


class Memory(BaseModel):
    version: int = 1
    run: str
    task: str | None = None
    dtype: str | None = None
    primary: str | None = None
    updated_at: str
    evaluations: int
    passed: int
    best: Evidence | None = None
    best_strategy: str | None = None
    best_basis: str | None = None
    proven: list[Fact] = Field(default_factory=list)
    dead_ends: list[DeadEnd] = Field(default_factory=list)
    frontier: list[FrontierRow] = Field(
        default_factory=list, description="template rows only; knobs in frontier.csv"
    )


# ---------------------------------------------------------------- distill


def distill(
    run_dir: Path, *, min_failures: int = 3, max_pass_rate: float = 0.5, evidence_per_fact: int = 5
) -> Memory:
    """Rebuild the run's memory from its log and write memory.json and frontier.csv; the search loop
    calls it after each visit. It brings the index up to date (incrementally) and reads its aggregate
    tables (one row per strategy and per template setting tried), not the steps;
    `python -m ksearch.selfbench.synthetic_log DIR --bench` times it (`distill_s`)."""
    run_dir = Path(run_dir)
    conn = connect_readonly(run_dir)
    try:
        memory, knob_rows = _distill(conn, run_dir, min_failures, max_pass_rate, evidence_per_fact)
    finally:
        conn.close()
    write_atomic(run_dir / MEMORY, memory.model_dump_json(indent=2))
    buf = io.StringIO()
    w = csv.DictWriter(buf, FRONTIER_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in _frontier_csv_rows(memory.frontier, knob_rows):
        w.writerow({k: "" if v is None else v for k, v in row.model_dump().items()})
    write_atomic(run_dir / FRONTIER, buf.getvalue())
    return memory


def load_memory(run_dir: Path) -> Memory | None:
    """The run's memory.json, or None when it has none yet; LogError when it is unreadable."""
    path = Path(run_dir) / MEMORY
    if not path.is_file():
        return None
    try:
        return Memory.model_validate_json(path.read_bytes())
    except (ValidationError, ValueError) as e:
        raise LogError(
            f"{path} is not a valid memory file ({e.__class__.__name__}); "
            f"rebuild it with `ksearch log distill {run_dir}`"
        ) from e


def _templates(task: str | None) -> dict:
    if not task:
        return {}
    return {t.id: t for t in templates_for(task)}


def _distill(
    conn: sqlite3.Connection, run_dir: Path, min_failures: int, max_pass_rate: float, per_fact: int
) -> tuple[Memory, list[FrontierRow]]:
    start = run_start(conn)
    task = start.task if start else None
    templates = _templates(task)
    strategies = {
        r[0]: r
        for r in conn.execute(
            "SELECT strategy, template, action_id, n, passed, best_score FROM strategy_stats"
        )
    }
    # every step is counted under one strategy (its template, else its action, else "(none)")
    evaluations = sum(r[3] for r in strategies.values())
    passed = sum(r[4] for r in strategies.values())

    # proven: the steps that set a new best, grouped by strategy
    improvements = conn.execute(
        "SELECT i.strategy, i.id, i.score, i.prev_score, i.ordinal, i.basis, s.packet_id, s.knobs FROM improvements i "
        "LEFT JOIN steps s ON s.seq = i.seq WHERE i.stream = 'step' ORDER BY i.ordinal"
    ).fetchall()
    by_strategy: dict[str, list[Evidence]] = {}
    basis_of: dict[str, str | None] = {}
    best = best_strategy = best_basis = None
    for strategy, cand, score, prev, ordinal, basis, packet_id, knobs in improvements:
        ev = Evidence(
            candidate=cand,
            score=score,
            gain=None if prev is None else score - prev,
            evaluation=ordinal + 1,
            packet_id=packet_id,
            knobs=json.loads(knobs) if knobs else {},
        )
        by_strategy.setdefault(strategy, []).append(ev)
        basis_of[strategy] = basis
        if best is None or score > best.score:
            best, best_strategy, best_basis = ev, strategy, basis

    def describe(template: str | None) -> tuple[str | None, str | None]:
        t = templates.get(template or "")
        return (t.decision, t.title) if t else (None, None)

    proven = []
    for strategy, evs in by_strategy.items():
        _, template, action, n, ok, best_score = strategies.get(strategy, (strategy, None, None, 0, 0, None))
        decision, title = describe(template)
        top = max(evs, key=lambda e: e.score)
        proven.append(
            Fact(
                strategy=strategy,
                template=template,
                action_id=action,
                decision=decision,
                title=title,
                attempts=n,
                passed=ok,
                best_score=best_score,
                basis=basis_of[strategy],
                best_knobs=top.knobs,
                evidence=evs[-per_fact:],
            )
        )
    proven.sort(key=lambda f: -(f.best_score or 0.0))

    # dead ends: repeated failures and (almost) nothing passing
    fails: dict[str, dict[str, int]] = {}
    for strategy, cls, n in conn.execute("SELECT strategy, failure_class, n FROM strategy_failures"):
        fails.setdefault(strategy, {})[cls] = n
    dead = []
    for strategy, classes in fails.items():
        _, template, _, n, ok, _ = strategies.get(strategy, (strategy, None, None, 0, 0, None))
        failures = sum(classes.values())
        if failures < min_failures or not n or ok / n > max_pass_rate:
            continue
        cls, k = max(classes.items(), key=lambda kv: (kv[1], kv[0]))
        examples = conn.execute(
            "SELECT candidate, message FROM steps WHERE strategy = ? AND passed = 0 "
            "AND failure_class IS ? ORDER BY seq DESC LIMIT 5",
            [strategy, None if cls == "unknown" else cls],
        ).fetchall()
        decision, title = describe(template)
        dead.append(
            DeadEnd(
                strategy=strategy,
                template=template,
                decision=decision,
                title=title,
                attempts=n,
                failures=failures,
                dominant_failure_class=cls,
                dominant_share=k / failures,
                failure_classes=dict(sorted(classes.items(), key=lambda kv: -kv[1])),
                example=(examples[0][1] or "")[:300] if examples else "",
                candidates=[c for c, _ in examples],
            )
        )
    dead.sort(key=lambda d: -d.failures)

    frontier, knob_rows = _frontier(conn, templates, strategies)
    memory = Memory(
        run=run_dir.name,
        task=task,
        dtype=start.dtype if start else None,
        primary=start.primary if start else None,
        updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        evaluations=evaluations,
        passed=passed,
        best=best,
        best_strategy=best_strategy,
        best_basis=best_basis,
        proven=proven,
        dead_ends=dead,
        frontier=frontier,
    )
    return memory, knob_rows


def _frontier(
    conn: sqlite3.Connection, templates: dict, strategies: dict
) -> tuple[list[FrontierRow], list[FrontierRow]]:
    """Template rows (tried vs untried settings) and knob-value rows (which values were never tried)."""
    tried: dict[str, dict[str, list]] = {}  # template -> knob_key -> [knobs, passed, best score]
    for template, knobs, ok, score in conn.execute(
        "SELECT template, knobs, passed, best_score FROM template_settings"
    ):
        setting = json.loads(knobs) if knobs else {}
        entry = tried.setdefault(template, {}).setdefault(knob_key(setting), [setting, 0, None])
        entry[1] += ok
        if score is not None and (entry[2] is None or score > entry[2]):
            entry[2] = score
    rows, knob_rows = [], []
    for tid, t in templates.items():
        mine = tried.get(tid, {})
        settings = t.settings()
        untried = len(t.untried(mine.keys()))
        scores = [b for _, _, b in mine.values() if b is not None]
        status = "untried" if not mine else ("exhausted" if not untried else "open")
        rows.append(
            FrontierRow(
                decision=t.decision,
                template=tid,
                title=t.title,
                settings=len(settings),
                tried=len(mine),
                untried=untried,
                passed=sum(p for _, p, _ in mine.values()),
                best_score=max(scores) if scores else None,
                status=status,
            )
        )
        for knob, values in t.knobs.items():
            for value in values:
                with_value = [e for e in mine.values() if e[0].get(knob) == value]
                n_settings = sum(1 for s in settings if s.get(knob) == value)
                best_vals = [b for _, _, b in with_value if b is not None]
                knob_rows.append(
                    FrontierRow(
                        decision=t.decision,
                        template=tid,
                        title=t.title,
                        knob=knob,
                        value=json.dumps(value),
                        settings=n_settings,
                        tried=len(with_value),
                        untried=max(0, n_settings - len(with_value)),
                        passed=sum(p for _, p, _ in with_value),
                        best_score=max(best_vals) if best_vals else None,
                        status="tried" if with_value else "untried",
                    )
                )
    # strategies the templates do not know (an LLM proposer's actions): tried, no settings to count
    for strategy, (_, template, _action, n, ok, best) in strategies.items():
        if (template or "") in templates:
            continue
        rows.append(FrontierRow(template=strategy, tried=n, passed=ok, best_score=best, status="open"))
    return rows, knob_rows


def _frontier_csv_rows(rows: list[FrontierRow], knob_rows: list[FrontierRow]) -> list[FrontierRow]:
    out = []
    by_template: dict[str, list[FrontierRow]] = {}
    for k in knob_rows:
        by_template.setdefault(k.template, []).append(k)
    for r in rows:
        out.append(r)
        out.extend(by_template.get(r.template, []))
    return out


def read_frontier(run_dir: Path) -> list[dict]:
    """frontier.csv as dicts (strings), for tools and tests."""
    with open(Path(run_dir) / FRONTIER, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- prompt text


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _knobs(k: dict) -> str:
    return ", ".join(f"{a}={b}" for a, b in k.items()) or "defaults"


def memory_lines(memory: Memory) -> list[tuple[int, str]]:
    """(section, line) pairs in priority order: the header, proven facts, dead ends, the frontier."""
    m = memory
    head = (
        f"Run memory ({m.task or '?'} {m.dtype or ''} on {m.primary or '?'}): {m.evaluations} candidates, "
        f"{m.passed} passed"
    )
    if m.best:
        head += (
            f"; best {_fmt(m.best.score)} ({m.best_basis or 'score'}) by {m.best.candidate} "
            f"[{m.best_strategy}: {_knobs(m.best.knobs)}]"
        )
    lines = [(0, head + ".")]
    if m.proven:
        lines.append((1, "Proven (raised the best score):"))
        for f in m.proven:
            evs = ", ".join(f"{e.candidate} {_fmt(e.score)}" for e in f.evidence[-3:])
            lines.append(
                (
                    1,
                    f"- {f.strategy}{f' ({f.title})' if f.title else ''}: best {_fmt(f.best_score)}, "
                    f"{f.passed}/{f.attempts} passed; new bests {evs}; best knobs {_knobs(f.best_knobs)}",
                )
            )
    if m.dead_ends:
        lines.append((2, "Dead ends (failed repeatedly; avoid or fix the cause):"))
        for d in m.dead_ends:
            lines.append(
                (
                    2,
                    f"- {d.strategy}: {d.failures}/{d.attempts} failed, mostly {d.dominant_failure_class} "
                    f"({d.dominant_share:.0%}){': ' + d.example[:160] if d.example else ''}",
                )
            )
    open_rows = [r for r in m.frontier if r.status in ("untried", "open") and r.untried]
    if open_rows:
        lines.append((3, "Frontier (settings not yet tried):"))
        for r in sorted(open_rows, key=lambda r: (r.status != "untried", -(r.untried or 0))):
            where = f"{r.decision}: " if r.decision else ""
            lines.append(
                (
                    3,
                    f"- {where}{r.template} ({r.title}): {r.untried} of {r.settings} settings untried"
                    f"{'' if r.tried else ', never tried'}",
                )
            )
    return lines


def memory_text(memory: Memory | None, budget_tokens: int) -> str:
    """The memory as compact text that fits `budget_tokens` (counted with ksearch.context.tokens):
    lines are kept in priority order (header, proven facts, dead ends, frontier) while they fit; a
    section heading is kept only with at least one of its lines. Empty when nothing fits or no memory."""
    if memory is None or budget_tokens <= 0:
        return ""
    kept: list[str] = []
    used = 0
    pending_heading: str | None = None
    for section, line in memory_lines(memory):
        if section and not line.startswith("- "):
            pending_heading = line
            continue
        block = [pending_heading, line] if pending_heading else [line]
        cost = count_tokens("\n".join(block) + "\n")
        if used + cost > budget_tokens:
            continue  # a later, shorter line may still fit
        kept.extend(block)
        used += cost
        pending_heading = None
    return "\n".join(kept[: fit_lines(kept, budget_tokens)])  # token counts are not exactly additive
