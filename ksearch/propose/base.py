"""The proposer protocol: the three calls the search loop makes, and what they exchange.

    propose_actions(state, islands) -> edits  new strategy actions for the world model
    implement(action, state, rng) -> Implementation   a complete candidate for one action
    reflect(state, action, outcomes) -> edit ops     what the visit taught: priorities, prunes

implement may return None when it has no usable candidate (an LLM's malformed replies); the loop
counts the sample as spent. A proposer raises `ProposerStop` when it cannot go on (its dollar
budget is spent, a replay ran out of recorded responses); the loop stops the run cleanly.

A proposer never edits the world model itself: the loop validates and applies what it returns.
Every call is recorded (`ProposerCall`, appended to `proposer.calls`, which the loop drains into
`proposer_call` log rows): an LLM proposer fills tokens, dollars and latency; the offline proposer
records its decision text, with zero tokens and cost.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ksearch.errors import KsearchError
from ksearch.propose.templates.base import knob_key  # Tried's keys; offline.py imports it from here too
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
    action_id: str | None = None
    blob: str | None = None  # the source, relative to the run directory
    evidence: str = ""  # the primary packet summarized for a prompt (ksearch.propose.prompt.evidence_text)


@dataclass
class Tried:
    """Everything evaluated so far, by template: the proposer's memory of the run."""

    keys: dict[str, set[str]] = field(default_factory=dict)  # template -> knob settings tried
    best: dict[str, tuple[float, dict]] = field(default_factory=dict)  # template -> (score, knobs)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)  # template -> class -> count

    def reserve(self, attrs: dict) -> None:
        """Count an implementation as tried before it is evaluated, so a batch never repeats itself
        (only a templated one has settings that could come round again)."""
        if attrs.get("template"):
            self.keys.setdefault(attrs["template"], set()).add(knob_key(attrs["knobs"]))

    def add(self, template_id: str, knobs: dict, outcome: Outcome) -> None:
        self.reserve({"template": template_id, "knobs": knobs})
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
    dtype: str = ""
    targets: list[str] = field(default_factory=list)  # the primary first
    outcomes: list[Outcome] = field(default_factory=list)  # every candidate so far, in order
    parent: Outcome | None = (
        None  # the kernel an implementation starts from (lineage solution, else the best)
    )
    run_dir: Path | None = None


class ProposerStop(KsearchError):
    """The proposer cannot make another call; the message says why and how to go on."""


@dataclass
class Implementation:
    source: str
    attrs: dict  # what the candidate is: {"template": id, "knobs": {...}} for the offline proposer
    note: str = ""


@dataclass
class ProposerCall:
    """One call, logged as a `proposer_call` row; a call whose reply was unusable (`failure`) also
    gets a `proposer_failure` row holding the raw reply text (`raw`, kept off the call row)."""

    kind: str  # propose_actions | implement | reflect
    summary: str
    prompt_tokens: int = 0  # every prompt token, cached ones included
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens read from the provider's cache
    cache_write_tokens: int = 0  # prompt tokens written to it (Anthropic)
    usd: float | None = 0.0  # None: the model has no price in configs/prices.yaml
    latency_s: float = 0.0
    model: str = ""
    finish: str | None = None  # the provider's stop reason, normalized: stop | length | ...
    prompt_blob: str | None = None  # content-addressed in the run's blobs/
    response_blob: str | None = None
    failure: str | None = None
    raw: str | None = None


class Proposer(Protocol):
    name: str
    calls: list[ProposerCall]

    def propose_actions(self, state: SearchState, islands: int = 1) -> list[list[EditOp]]:
        """The plan: a list of edits, each within the world model's new-node limit."""

    def implement(self, action: Node, state: SearchState, rng: random.Random) -> Implementation | None: ...

    def reflect(self, state: SearchState, action: Node, outcomes: list[Outcome]) -> list[EditOp]: ...

    def exhausted(self, action: Node, state: SearchState) -> bool:
        """Whether `implement` has nothing new left for `action` (selection then passes it over)."""
