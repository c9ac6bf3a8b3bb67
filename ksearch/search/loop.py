"""The search loop, after K-Search: select an action, refine it locally, update the world model.

    select   the open frontier action with the highest priority plus an exploration bonus for
             rarely tried actions, among those within the current difficulty level (the level
             rises as actions get solved); islands take turns, each searching its own subtrees
    refine   sample implementations of the action in batches (compiled while verified), each
             logged, until `stagnation` samples in a row bring no improvement or `max_per_visit`;
             with a pool of N evaluators (--cluster ray) batch and max_per_visit are at least N,
             and a batch's results are logged in candidate order, whichever finished first
    update   node statistics after every sample; a solution attached when the visit beats the
             action's lineage; the proposer's reflection applied as validated edit ops (an
             invalid reflection is logged as a proposer failure and skipped)
    plan     the proposer's first plan is asked for when the tree has nothing but its root (a new
             run, or one stopped before its plan); a `ProposerStop` (dollar budget spent, replay
             exhausted) ends the run cleanly, and so do NO_CANDIDATE_LIMIT implement calls in a
             row that gave no usable candidate
    migrate  every `migrate_every` visits an island's best strategy is planted, as a new action,
             in the next island that has nothing as good

Everything the loop learns goes to the log first (attempt rows per target, a `step` row per
candidate, `wm_edit` rows), so a resumed run rebuilds the same state from the log alone.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ksearch.log import History
from ksearch.log.history import read_rows
from ksearch.log.rows import (
    ProposerCallRecord,
    ProposerFailure,
    RowPayload,
    RunStop,
    RunStopRow,
    Step,
    StepRow,
)
from ksearch.propose.adapt import TaskTemplates
from ksearch.propose.base import Exhausted, Implementation, Outcome, ProposerStop, SearchState, Tried
from ksearch.propose.memory import distill
from ksearch.propose.templates import template
from ksearch.search.config import RunConfig
from ksearch.search.pipeline import CandidateJob, CandidateResult, EvaluatorsLost, Pipeline
from ksearch.task import Task
from ksearch.worldmodel import ROOT, EditOp, Node, NodeKind, NodeStatus, WorldModel, WorldModelError, record

NO_CANDIDATE_LIMIT = 4  # implement calls in a row without a usable candidate before the run stops


@dataclass
class Best:
    score: float
    candidate: str
    packet_id: str
    blob: str
    basis: str
    attrs: dict


@dataclass
class Progress:
    evaluations: int = 0
    budget: int = 0
    best: Best | None = None
    action: str = ""
    failures: Counter = field(default_factory=Counter)
    passed: int = 0
    elapsed_s: float = 0.0
    wall_s: float = 0.0


class Search:
    def __init__(
        self,
        cfg: RunConfig,
        history: History,
        task: Task,
        dtype: str,
        pipeline: Pipeline,
        proposer,
        wm: WorldModel,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        started: float | None = None,
    ):
        """`started`: the run's time.monotonic() start (its evaluator's start-up counts against the
        wall-time budget); now when not given."""
        self.cfg, self.history, self.task, self.dtype = cfg, history, task, dtype
        self.pipeline, self.proposer, self.wm = pipeline, proposer, wm
        self.on_progress = on_progress or (lambda p: None)
        self.tried = Tried()
        self.progress = Progress(budget=cfg.budget.evaluations, wall_s=cfg.budget.wall_s)
        self.island_best: dict[int, Best] = {}
        self.visits = 0
        self.t0 = time.monotonic() if started is None else started
        self.elapsed_before = 0.0
        self.outcomes: list[Outcome] = []  # every candidate, in order: what LLM prompts summarize
        self.no_candidate = 0  # implement calls in a row that gave no candidate

    # ------------------------------------------------------------------ state from the log

    def restore(self, run_dir) -> None:
        """Rebuild memory, counters and bests from the step rows of an earlier part of this run."""
        for row in read_rows(run_dir, RunStop.KIND, Step.KIND):
            if isinstance(row, RunStopRow):
                self.elapsed_before += row.payload.elapsed_s
            elif isinstance(row, StepRow):
                self._remember(row.payload)
                self.visits = max(
                    self.visits, (row.payload.visit if row.payload.visit is not None else -1) + 1
                )

    def _remember(self, s: Step) -> None:
        outcome = Outcome(
            s.candidate,
            s.knobs,
            s.passed,
            s.score,
            s.failure_class,
            s.message,
            s.action_id,
            s.blob,
            s.evidence,
        )
        self.outcomes.append(outcome)
        if s.template:
            self.tried.add(s.template, s.knobs, outcome)
        p = self.progress
        p.evaluations += 1
        if s.passed:
            p.passed += 1
        else:
            p.failures[s.failure_class or "unknown"] += 1
        if s.score is not None:
            best = Best(
                s.score,
                s.candidate,
                str(s.packet_id),
                s.blob or "",
                s.score_basis or "",
                {"template": s.template, "knobs": s.knobs},
            )
            if p.best is None or best.score > p.best.score:
                p.best = best
            island = s.island
            if island is not None and (
                island not in self.island_best or best.score > self.island_best[island].score
            ):
                self.island_best[island] = best

    # ------------------------------------------------------------------ the loop

    def run(self) -> str:
        """Search until a budget runs out; returns why it stopped."""
        self._reopen_interrupted()
        try:
            return self._run_random() if self.cfg.search.strategy == "random" else self._run_world_model()
        except ProposerStop as e:
            self._log_calls()
            return str(e)
        except EvaluatorsLost as e:
            return self._evaluators_lost(e)

    def _run_world_model(self) -> str:
        if len(self.wm) == 1:
            self._plan()
        while True:
            stop = self._stop_reason()
            if stop:
                return stop
            action = self.select(self.visits % self.cfg.search.islands)
            if action is None:
                return "nothing left to try: every open action is exhausted, pruned or too hard"
            self._visit(action)
            self.visits += 1
            distill(self.history.run_dir)  # memory.json and frontier.csv, for prompts and people
            if self.visits % self.cfg.search.migrate_every == 0:
                self._migrate()

    def _evaluators_lost(self, e: EvaluatorsLost) -> str:
        """The stop when a pool lost every evaluator: the batch in flight is not logged (a resume
        proposes it again), the infrastructure events that emptied the pool are."""
        self._log_calls()
        self.history.append_many(e.events)
        return str(e)

    def _plan(self) -> None:
        for ops in self.proposer.propose_actions(self._full_state(), islands=self.cfg.search.islands):
            try:
                self._apply(ops, f"{self.proposer.name} plan")
            except WorldModelError as e:  # one bad decision of a plan is skipped, the rest is kept
                self.history.append(
                    ProposerFailure(
                        call="propose_actions", error=str(e), ops=[o.model_dump(mode="json") for o in ops]
                    )
                )
        self._log_calls()

    def elapsed_now(self) -> float:
        """Seconds this invocation has searched (a resumed run's earlier parts: elapsed_before)."""
        return time.monotonic() - self.t0

    def _stop_reason(self) -> str | None:
        p = self.progress
        p.elapsed_s = self.elapsed_before + self.elapsed_now()
        if p.evaluations >= self.cfg.budget.evaluations:
            return f"evaluation budget spent ({p.evaluations})"
        if p.elapsed_s >= self.cfg.budget.wall_s:
            return f"wall-time budget spent ({p.elapsed_s:.0f} s)"
        stop = getattr(self.proposer, "stop_reason", lambda: None)()
        if stop:
            return stop
        if self.no_candidate >= NO_CANDIDATE_LIMIT:
            return (
                f"the proposer gave no usable candidate {self.no_candidate} times in a row "
                "(see the proposer_failure rows)"
            )
        target = self.cfg.budget.target_score
        if target is not None and p.best is not None and p.best.score >= target:
            return f"target score {target} reached"
        return None

    def select(self, island: int) -> Node | None:
        frontier = self.wm.frontier()
        if not frontier:
            return None
        state = self._state()  # an action with nothing new to try would only repeat evaluations
        frontier = [a for a in frontier if not self.proposer.exhausted(a, state)]
        if not frontier:
            return None
        mine = [a for a in frontier if self._island(a) == island] or frontier
        solved = len(self.wm.actions(NodeStatus.solved))
        level = min(5, 2 + solved // 2)
        gated = [a for a in mine if a.difficulty <= level] or mine
        n = self.progress.evaluations
        c = self.cfg.search.exploration

        def value(a: Node) -> float:
            return a.priority + c * math.sqrt(math.log(n + 2) / (1 + a.attempts))

        return max(gated, key=value)  # max keeps the first of equals: the frontier's own order

    def _island(self, node: Node) -> int:
        for n in reversed(self.wm.path_to(node.id)):
            if "island" in n.attrs:
                return n.attrs["island"]
        return 0

    def _batch(self) -> tuple[int, int]:
        """The batch size and samples per visit: the config's, raised to the evaluators' count so that
        each of a pool's evaluators has a candidate (1 locally: the config's as they are)."""
        s = self.cfg.search
        batch = max(s.batch, self.pipeline.parallel)
        return batch, max(s.max_per_visit, batch)

    def _visit(self, action: Node) -> None:
        s = self.cfg.search
        batch_size, max_per_visit = self._batch()
        self.progress.action = action.title
        self._apply(
            [
                EditOp(
                    op="update", node=action.id, fields={"status": NodeStatus.trying.value}, reason="selected"
                )
            ],
            "select",
        )
        island = self._island(action)
        lineage = self._lineage_best(action)
        visit_best: CandidateResult | None = None
        visit_best_score = 0.0
        outcomes: list[Outcome] = []
        samples = stale = 0
        best_before = self.progress.best.score if self.progress.best else None
        while samples < max_per_visit and stale < s.stagnation and not self._stop_reason():
            n = min(
                batch_size, max_per_visit - samples, self.cfg.budget.evaluations - self.progress.evaluations
            )
            state = self._full_state(action)
            batch: list[CandidateJob] = []
            for _ in range(n):
                if (
                    batch and self._stop_reason()
                ):  # e.g. the dollar budget ran out: evaluate what was paid for
                    break
                cid = f"c{self.progress.evaluations + len(batch):04d}"
                rng = random.Random(f"{self.cfg.seed}:{cid}")
                try:
                    impl = self.proposer.implement(self.wm.node(action.id), state, rng)
                except Exhausted:
                    break
                if impl is None:  # no usable candidate (an LLM's malformed replies): the sample is spent
                    self.no_candidate += 1
                    samples, stale = samples + 1, stale + 1
                    continue
                self.no_candidate = 0
                state.tried.reserve(impl.attrs)
                batch.append(
                    (cid, impl, {"action_id": action.id, "parent_id": self._parent_candidate(action)})
                )
            self._log_calls()
            if not batch:
                break  # nothing new left for this action
            for result in self.pipeline.run(batch):
                outcome = self._log_candidate(result, action, island)
                outcomes.append(outcome)
                samples += 1
                node = self.wm.node(action.id)
                score = result.score
                fields: dict[str, float | int] = {
                    "attempts": node.attempts + 1,
                    "failures": node.failures + (not result.passed),
                }
                # a new best of the action is also the visit's best: the node's best only rises
                if score is not None and (node.best_score is None or score > node.best_score):
                    stale, visit_best, visit_best_score = 0, result, score
                    fields.update(best_score=score, last_improved_attempt=self.progress.evaluations)
                else:
                    stale += 1
                self._apply(
                    [EditOp(op="update", node=action.id, fields=fields, reason=result.candidate_id)], "stats"
                )
        node = self.wm.node(action.id)
        if visit_best is not None and (lineage is None or visit_best_score > lineage):
            self._apply(
                [
                    EditOp(
                        op="attach",
                        node=action.id,
                        reason=f"{visit_best.candidate_id} beats its lineage",
                        fields={
                            "title": f"{visit_best.candidate_id}: {visit_best.score_basis} "
                            f"{visit_best.score:.4f}",
                            "packet_id": visit_best.packet.packet_id,
                            "score": visit_best.score,
                            "attrs": {**visit_best.attrs, "candidate": visit_best.candidate_id},
                        },
                    )
                ],
                "solution",
            )
        elif node.status is NodeStatus.trying:
            self._apply(
                [
                    EditOp(
                        op="update",
                        node=action.id,
                        fields={"status": NodeStatus.open.value},
                        reason="visit over",
                    )
                ],
                "visit over",
            )
        state = self._full_state(action)
        state.best_score = best_before
        ops = self.proposer.reflect(state, self.wm.node(action.id), outcomes)
        self._log_calls()
        if ops:
            try:
                self._apply(ops, "reflect")
            except WorldModelError as e:  # a proposer's invalid edit is evidence, never fatal
                self.history.append(
                    ProposerFailure(
                        call="reflect", error=str(e), ops=[o.model_dump(mode="json") for o in ops]
                    )
                )

    def _lineage_best(self, action: Node) -> float | None:
        scores = [
            n.best_score
            for n in self.wm.path_to(action.id)[:-1]
            if n.kind is NodeKind.action and n.status is NodeStatus.solved and n.best_score is not None
        ]
        return max(scores) if scores else None

    def _parent_candidate(self, action: Node) -> str | None:
        for n in reversed(self.wm.path_to(action.id)[:-1]):
            sol = [c for c in self.wm.children(n.id) if c.kind is NodeKind.solution]
            if sol:
                return sol[-1].attrs.get("candidate")
        return None

    def _state(self) -> SearchState:
        return SearchState(
            task=self.task,
            wm=self.wm,
            tried=_copy_tried(self.tried),
            best_score=self.progress.best.score if self.progress.best else None,
        )

    def _full_state(self, action: Node | None = None) -> SearchState:
        """The state with what a prompt needs: the run's outcomes and the kernel to start from."""
        state = self._state()
        if action is not None:
            cid = self._parent_candidate(action) or (
                self.progress.best.candidate if self.progress.best else None
            )
            state.parent = next((o for o in reversed(self.outcomes) if o.candidate == cid), None)
        state.dtype, state.targets = self.dtype, [p.name for p in self.pipeline.all_profiles]
        state.outcomes, state.run_dir = list(self.outcomes), self.history.run_dir
        return state

    def _log_calls(self) -> None:
        """Every proposer call becomes a `proposer_call` row (what it decided; tokens, cost, latency
        and the prompt and response blobs for LLMs); an unusable reply also a `proposer_failure` row
        with the raw text."""
        calls, self.proposer.calls[:] = list(self.proposer.calls), []
        rows: list[RowPayload] = []
        for c in calls:
            row = asdict(c)
            raw = row.pop("raw")
            rows.append(ProposerCallRecord.model_validate(row))
            if c.failure:
                rows.append(
                    ProposerFailure(
                        call=c.kind,
                        error=c.failure,
                        raw=raw,
                        prompt_blob=c.prompt_blob,
                        response_blob=c.response_blob,
                    )
                )
        if rows:
            self.history.append_many(rows)

    def _apply(self, ops: list[EditOp], reason: str) -> list[EditOp]:
        applied = self.wm.apply(ops)
        record(self.history, applied, reason)
        return applied

    def _log_candidate(self, result: CandidateResult, action: Node | None, island: int | None) -> Outcome:
        step = result.step(visit=self.visits, island=island, action_id=action.id if action else None)
        self.history.append_many(result.rows(step))
        self._remember(step)
        self.on_progress(self.progress)
        return self.outcomes[-1]

    def _reopen_interrupted(self) -> None:
        trying = self.wm.actions(NodeStatus.trying)
        if trying:
            self._apply(
                [
                    EditOp(
                        op="update",
                        node=a.id,
                        fields={"status": NodeStatus.open.value},
                        reason="the run stopped during this visit",
                    )
                    for a in trying
                ],
                "resume",
            )

    def _migrate(self) -> None:
        n = self.cfg.search.islands
        if n < 2:
            return
        planted = {a.attrs.get("migrant_from") for a in self.wm.nodes() if a.attrs.get("migrant_from")}
        for i, best in sorted(self.island_best.items()):
            j = (i + 1) % n
            theirs = self.island_best.get(j)
            if best.candidate in planted or (theirs is not None and theirs.score >= best.score):
                continue
            if not best.attrs.get("template"):
                continue
            t = template(best.attrs["template"])
            home = next((d for d in self.wm.children(ROOT) if d.title == t.decision), None)
            if home is None:
                continue
            self._apply(
                [
                    EditOp(
                        op="insert",
                        node=home.id,
                        reason=f"migration from island {i}",
                        fields={
                            "title": f"migrant from island {i}: {t.title}",
                            "rationale": f"{best.candidate} scored {best.score:.4f}",
                            "difficulty": t.difficulty,
                            "expected_speedup": t.expected_speedup,
                            "priority": 0.8,
                            "attrs": {
                                "template": t.id,
                                "knobs": best.attrs["knobs"],
                                "island": j,
                                "migrant_from": best.candidate,
                            },
                        },
                    )
                ],
                "migrate",
            )

    # ------------------------------------------------------------------ the baseline

    def _run_random(self) -> str:
        """Uniform random sampling of the same template space, without repeats (as the world-model
        loop never repeats a setting either): a template, then one of its settings not yet
        evaluated. No world model, no memory of scores."""
        task_templates = TaskTemplates(self.task, self.pipeline.all_profiles[0].triton.backend)
        ts = task_templates.templates
        tried = _copy_tried(self.tried)  # what the run has evaluated, and this batch's picks
        while True:
            stop = self._stop_reason()
            if stop:
                return stop
            n = min(self._batch()[0], self.cfg.budget.evaluations - self.progress.evaluations)
            batch: list[CandidateJob] = []
            for k in range(n):
                cid = f"c{self.progress.evaluations + k:04d}"
                rng = random.Random(f"{self.cfg.seed}:{cid}")
                left = [(t, u) for t in ts if (u := t.untried(tried.keys.get(t.id, set())))]
                if not left:
                    break
                t, untried = rng.choice(left)
                knobs = rng.choice(untried)
                impl = Implementation(
                    task_templates.render(t, knobs), {"template": t.id, "knobs": knobs}, "random"
                )
                tried.reserve(impl.attrs)
                batch.append((cid, impl, {}))
            if not batch:
                return "every setting of every template has been evaluated"
            for result in self.pipeline.run(batch):
                self._log_candidate(result, None, None)
            self.visits += 1
            distill(self.history.run_dir)


def _copy_tried(t: Tried) -> Tried:
    return Tried(
        {k: set(v) for k, v in t.keys.items()}, dict(t.best), {k: dict(v) for k, v in t.failures.items()}
    )
