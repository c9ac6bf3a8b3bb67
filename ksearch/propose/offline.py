"""The offline proposer: strategy templates as actions, knob mutation as implementation, and a
deterministic reflection that promotes what improved and prunes what keeps failing. No network.

- propose_actions: one decision node per strategy decision of the task's templates (spread over
  the islands), one action per template under it, with a prior priority from the template's
  expected speedup and difficulty.
- implement: an untried action starts at its knobs (the template defaults, or a migrant's); after
  that it samples an untried setting nearest the best one known for the template: a neighbour
  (local refinement), or, once those are spent, one of the next ring out, and so on.
- reflect: a visit that raised the best score raises the action's priority; one that only failed
  lowers it and, after DEAD_END failures without any pass, prunes the action with its dominant
  failure class; a passing visit that did not improve lowers the priority, and an open action
  that keeps stagnating is marked too_hard.
"""

from __future__ import annotations

import random
from collections import Counter

from ksearch.propose.adapt import TaskTemplates
from ksearch.propose.base import Exhausted, Implementation, Outcome, ProposerCall, SearchState, knob_key
from ksearch.propose.templates import Template, template
from ksearch.task import Task, load_task
from ksearch.worldmodel import ROOT, EditOp, Node, NodeKind, NodeStatus

DEAD_END = 3  # failures without a single pass before an action is pruned
STAGNANT_PRIORITY = 0.1  # an unsolved action whose priority sinks below this is given up (too_hard)


def prior_priority(t: Template, axes: list[dict[str, int]] | None = None) -> float:
    """The prior from the template's expected speedup on the run's workload axes, and its difficulty."""
    p = 0.35 + 0.12 * min(t.expected_on(axes or []), 4.0) - 0.05 * (t.difficulty - 1)
    return round(min(0.95, max(0.05, p)), 3)


class OfflineProposer:
    name = "offline"

    def __init__(self, task: Task | str, backend: str | None = None):
        """`backend`: the Triton backend of the run's primary target; None: every template."""
        task = task if isinstance(task, Task) else load_task(task)
        self.task_templates = TaskTemplates(task, backend)
        self.templates = self.task_templates.templates
        self.task_name = task.name
        self.calls: list[ProposerCall] = []
        if self.task_templates.fit is not None:
            fit = self.task_templates.fit
            self.calls.append(
                ProposerCall("fit", f"task {task.name} fits {fit.family} ({fit.why}): its templates")
            )

    # ------------------------------------------------------------------ propose

    def propose_actions(self, state: SearchState, islands: int = 1) -> list[list[EditOp]]:
        """The initial plan, one edit per decision (each edit stays within the new-node limit)."""
        decisions: dict[str, list[Template]] = {}
        axes = [state.task.axes_for(w) for w in state.task.spec.workloads]  # the run's own shapes
        for t in self.templates:
            decisions.setdefault(t.decision, []).append(t)
        edits = []
        n = 0
        for decision, ts in decisions.items():
            ops = [
                EditOp(
                    op="insert",
                    node=ROOT,
                    reason="offline plan",
                    fields={"kind": "decision", "title": decision},
                )
            ]
            for t in ts:  # templates are dealt to the islands in turn, across decisions
                ops.append(
                    EditOp(
                        op="insert",
                        node="$0",
                        reason="strategy template",
                        fields={
                            "title": t.title,
                            "description": t.description,
                            "rationale": t.rationale,
                            "difficulty": t.difficulty,
                            "expected_speedup": round(t.expected_on(axes), 3),
                            "priority": prior_priority(t, axes),
                            "attrs": {"template": t.id, "knobs": t.default_knobs(), "island": n % islands},
                        },
                    )
                )
                n += 1
            edits.append(ops)
        self.calls.append(
            ProposerCall("propose_actions", f"{len(self.templates)} templates in {len(edits)} decisions")
        )
        return edits

    # ------------------------------------------------------------------ implement

    def implement(self, action: Node, state: SearchState, rng: random.Random) -> Implementation:
        t = template(action.attrs["template"])
        tried = state.tried.keys.get(t.id, set())
        start = t.complete(action.attrs.get("knobs"))
        if knob_key(start) not in tried:
            knobs, how = start, "the action's own setting"
        else:
            center = state.tried.best.get(t.id, (None, start))[1]
            knobs, steps = nearest_untried(t, center, tried, rng)
            how = {0: "an untried setting", 1: "a neighbour of the best setting"}.get(
                steps, f"{steps} steps from the best setting"
            )
        self.calls.append(ProposerCall("implement", f"{t.id}: {how}: {knob_key(knobs)}"))
        return Implementation(
            source=self.task_templates.render(t, knobs), attrs={"template": t.id, "knobs": knobs}, note=how
        )

    def exhausted(self, action: Node, state: SearchState) -> bool:
        """Whether every setting of the action's template has been evaluated: nothing new to try."""
        return not template(action.attrs["template"]).untried(
            state.tried.keys.get(action.attrs["template"], set())
        )

    # ------------------------------------------------------------------ reflect

    def reflect(self, state: SearchState, action: Node, outcomes: list[Outcome]) -> list[EditOp]:
        ops = rule_reflect(state, action, outcomes)
        self.calls.append(ProposerCall("reflect", "; ".join(o.reason for o in ops) or "no change"))
        return ops


def nearest_untried(t: Template, center: dict, tried: set[str], rng: random.Random) -> tuple[dict, int]:
    """An untried setting as few steps (`Template.neighbours` moves) from `center` as there are, drawn
    at random among those at that distance, and the distance. Widening ring by ring keeps a search
    near its best kernel once the one-step ring is spent (a uniform draw lands mostly on small tiles
    far from it). Settings no chain of valid moves reaches come last (distance 0). Raises Exhausted
    when every setting has been evaluated."""
    seen = {knob_key(center)}
    ring = [center]
    steps = 0
    while ring:
        steps += 1
        nxt: dict[str, dict] = {}
        for k in ring:
            for n in t.neighbours(k):
                key = knob_key(n)
                if key not in seen:
                    seen.add(key)
                    nxt[key] = n
        fresh = [n for key, n in nxt.items() if key not in tried]
        if fresh:
            return rng.choice(fresh), steps
        ring = list(nxt.values())
    rest = t.untried(tried)  # settings the constraint cuts off from `center`'s moves
    if not rest:
        raise Exhausted(f"every setting of {t.id} has been evaluated")
    return rng.choice(rest), 0


def rule_reflect(state: SearchState, action: Node, outcomes: list[Outcome]) -> list[EditOp]:
    """The deterministic reflection (the LLM proposers' fallback too); `state.best_score` is the
    best score before the visit."""
    scores = [o.score for o in outcomes if o.passed and o.score is not None]
    passed = any(o.passed for o in outcomes)
    improved = bool(scores) and (state.best_score is None or max(scores) > state.best_score)
    ops: list[EditOp] = []
    if action.status in (NodeStatus.pruned, NodeStatus.too_hard):
        return ops
    parent = state.wm.node(action.parent) if action.parent else None
    # the solved action this one refines, if any
    refined = (
        parent
        if parent is not None and parent.kind is NodeKind.action and parent.status is NodeStatus.solved
        else None
    )
    if improved:
        ops.append(_priority(action, +0.1, "raised the best score"))
    elif passed and refined is not None and action.status is not NodeStatus.solved:
        # Local refinement around the parent's solution found nothing better: this continuation is
        # exhausted. The parent gets a fresh continuation at a lower priority.
        ops.append(_priority(refined, -0.15, "its refinement found nothing better"))
        ops.append(
            EditOp(
                op="prune",
                node=action.id,
                reason=f"exhausted: {action.attempts} samples without "
                f"beating the parent's {refined.best_score:.4g}",
            )
        )
    elif not passed and action.status is not NodeStatus.solved:
        classes = Counter(o.failure_class for o in outcomes)
        if action.failures >= DEAD_END and action.best_score is None:
            cls = classes.most_common(1)[0][0] if classes else "no candidate"
            ops.append(
                EditOp(
                    op="prune",
                    node=action.id,
                    reason=f"dead end: {action.failures} failures, no pass; this visit mostly {cls}",
                )
            )
        else:
            ops.append(
                _priority(action, -0.15, f"failed: {', '.join(f'{c} x{n}' for c, n in classes.items())}")
            )
    else:
        op = _priority(action, -0.1, "passed without improving the best score")
        if action.status is not NodeStatus.solved and op.fields["priority"] < STAGNANT_PRIORITY:
            op.fields["status"] = NodeStatus.too_hard.value
            op.reason = "stagnated: no improvement over several visits"
        ops.append(op)
    return ops


def _priority(action: Node, delta: float, reason: str) -> EditOp:
    value = round(min(0.95, max(0.02, action.priority + delta)), 3)
    return EditOp(op="update", node=action.id, fields={"priority": value}, reason=reason)
