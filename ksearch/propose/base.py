"""The proposer protocol: the three calls the search loop makes, and what they exchange.

    propose_actions(state, islands) -> edits  new strategy actions for the world model
    implement(action, state, rng) -> Implementation   a complete candidate for one action
    reflect(state, action, outcomes) -> edit ops     what the visit taught: priorities, prunes

A proposer never edits the world model itself: the loop validates and applies what it returns.
Every call is recorded (`ProposerCall`, appended to `proposer.calls`, which the loop drains into
`proposer_call` log rows): an LLM proposer fills tokens, dollars and latency; the offline proposer
records its decision text, with zero tokens and cost.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from ksearch.task import Task
from ksearch.worldmodel import EditOp, Node, WorldModel


class Exhausted(Exception):
    """`implement` has nothing new for this action: every implementation it could write was tried."""


@dataclass
class Outcome:
    """One evaluated candidate of a visit, as the proposer sees it."""

    candidate: str  # candidate id
    knobs: dict
    passed: bool
    score: float | None  # higher is better; None when the candidate failed
    failure_class: str | None
    message: str = ""


@dataclass
class Tried:
    """Everything evaluated so far, by template: the proposer's memory of the run."""

    keys: dict[str, set[str]] = field(default_factory=dict)  # template -> knob settings tried
    best: dict[str, tuple[float, dict]] = field(default_factory=dict)  # template -> (score, knobs)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)  # template -> class -> count

    def add(self, template_id: str, knobs: dict, outcome: Outcome) -> None:
        self.keys.setdefault(template_id, set()).add(knob_key(knobs))
        if outcome.passed and outcome.score is not None:
            if template_id not in self.best or outcome.score > self.best[template_id][0]:
                self.best[template_id] = (outcome.score, dict(knobs))
        elif not outcome.passed:
            per = self.failures.setdefault(template_id, {})
            per[outcome.failure_class or "unknown"] = per.get(outcome.failure_class or "unknown", 0) + 1


@dataclass
class SearchState:
    task: Task
    wm: WorldModel
    tried: Tried
    best_score: float | None


@dataclass
class Implementation:
    source: str
    attrs: dict  # what the candidate is: {"template": id, "knobs": {...}} for the offline proposer
    note: str = ""


@dataclass
class ProposerCall:
    kind: str  # propose_actions | implement | reflect
    summary: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0
    latency_s: float = 0.0


def knob_key(knobs: dict) -> str:
    return ",".join(f"{k}={knobs[k]!r}" for k in sorted(knobs))


class Proposer(Protocol):
    name: str
    calls: list[ProposerCall]

    def propose_actions(self, state: SearchState, islands: int = 1) -> list[list[EditOp]]:
        """The plan: a list of edits, each within the world model's new-node limit."""

    def implement(self, action: Node, state: SearchState, rng: random.Random) -> Implementation: ...

    def reflect(self, state: SearchState, action: Node, outcomes: list[Outcome]) -> list[EditOp]: ...
