"""The LLM proposer: the three calls of the protocol on any backend, every call paid for knowingly.

- propose_actions: a JSON plan (decisions with alternative actions), validated against `Plan`.
- implement: a complete module, or search/replace edits on the parent kernel; edits that do not
  apply are answered with a request for the complete module (the full-rewrite fallback).
- reflect: a JSON edit script, validated against the world model.

A reply that cannot be used (empty, truncated, prose instead of JSON, no code block, wrong entry
signature, invalid edit) is recorded with its raw text as a failure and asked for once more, with
the error; a second failure falls back deterministically: a generic plan, no candidate (the loop
counts the sample), the offline proposer's reflection rules. Transport errors are retried by the
SDK (`max_retries`, with backoff; one call is bounded by `ProposerConfig.call_limit_s`) and then
treated like an unusable reply, recorded with the URL and the cause (connection refused, timed
out, ...). FAILED_IN_A_ROW calls in a row without a reply end the run cleanly, resumable, with the
last failure as the stop reason. The endpoint is checked once when the proposer is made (one TCP
connection, `backends.probe`, in the backend's `preflight`): a dead one is a ConfigError before the
run directory exists.

Every call stores its prompt and response content-addressed in the run's blobs/ and records
tokens (cached included), dollars (configs/prices.yaml) and latency. When `budget.llm_usd` is
spent, the next call raises `ProposerStop` and the run ends cleanly, resumable.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ksearch.errors import ConfigError
from ksearch.log import put_blob, read_blob
from ksearch.propose.backends import (
    Backend,
    BackendError,
    ReplayBackend,
    Reply,
    call_rows,
    make_backend,
    recorded_calls,
)
from ksearch.propose.base import (
    Implementation,
    Outcome,
    Proposer,
    ProposerCall,
    ProposerStop,
    SearchState,
)
from ksearch.propose.offline import rule_reflect
from ksearch.propose.prices import cost_usd, price_of
from ksearch.propose.prompt import Prompt, PromptBuilder
from ksearch.propose.registry import preflight, proposer_backend
from ksearch.propose.replies import (
    ActionSpec,
    DecisionSpec,
    Plan,
    ReplyError,
    check_finish,
    parse_edit_script,
    parse_module,
    parse_plan,
)
from ksearch.propose.settings import ProposerConfig
from ksearch.task import Task
from ksearch.worldmodel import ROOT, EditOp, Node

T = TypeVar("T")
RAW_CHARS = 20000  # raw reply text kept on a proposer_failure row (the whole reply is in blobs/)
FAILED_IN_A_ROW = 3  # calls in a row with no reply (endpoint gone, key refused) before the run stops
FALLBACK_PLAN = Plan(
    decisions=[
        DecisionSpec(
            title="baseline",
            actions=[
                ActionSpec(
                    title="straightforward kernel",
                    description="one program per output row or tile; correctness first",
                    rationale="fallback plan: the proposer's plan was unusable",
                    difficulty=1,
                    priority=0.6,
                )
            ],
        )
    ]
)


class LLMProposer:
    def __init__(
        self,
        cfg: ProposerConfig,
        task: Task,
        dtype: str,
        targets: list[str],
        run_dir: Path,
        usd_limit: float = 0.0,
        backend: Backend | None = None,
    ):
        self.cfg, self.run_dir, self.usd_limit = cfg, Path(run_dir), usd_limit
        if backend is None:
            # SDK, key and endpoint (one TCP connection), before the SDK is loaded and the run starts
            preflight(cfg)
        self.backend = backend or make_backend(cfg)
        self.name = f"{cfg.backend}:{self.backend.model}"
        self.builder = PromptBuilder(task, dtype, targets, cfg.prompt)
        self.entry, self.args = task.entry_name, task.entry_args
        self.calls: list[ProposerCall] = []
        self.spent_usd = sum(r.usd or 0.0 for r in call_rows(self.run_dir))  # a resumed run's spend
        if isinstance(self.backend, ReplayBackend):
            self.backend.skip(len(recorded_calls(self.run_dir)))
        elif usd_limit > 0 and price_of(self.backend.model) is None:
            raise ConfigError(
                f"model {self.backend.model!r} has no price in configs/prices.yaml, so budget.llm_usd "
                "cannot be enforced: add its price there or set budget.llm_usd: 0 (no limit)"
            )
        self.failed_in_a_row, self.last_failure = 0, ""

    # ------------------------------------------------------------------ budget

    def stop_reason(self) -> str | None:
        if self.usd_limit > 0 and self.spent_usd >= self.usd_limit:
            return (
                f"LLM budget spent: ${self.spent_usd:.4f} of ${self.usd_limit:.4f} (budget.llm_usd); "
                "continue with --resume RUN_DIR --budget-usd D (D dollars more)"
            )
        if self.failed_in_a_row >= FAILED_IN_A_ROW:
            return (
                f"the proposer got no reply {self.failed_in_a_row} calls in a row (fix the cause, then "
                f"continue with --resume RUN_DIR); the last: {self.last_failure}"
            )
        return None

    # ------------------------------------------------------------------ calls

    def _call(self, prompt: Prompt) -> tuple[ProposerCall, Reply | None]:
        stop = self.stop_reason()
        if stop:
            raise ProposerStop(stop)
        call = ProposerCall(
            prompt.kind,
            "",
            model=self.backend.model,
            prompt_blob=put_blob(self.run_dir, prompt.as_json().encode(), ".json"),
        )
        self.calls.append(call)
        t0 = time.monotonic()
        try:
            reply = self.backend.complete(prompt)
        except BackendError as e:
            call.latency_s = round(time.monotonic() - t0, 3)
            call.summary = call.failure = f"no reply: {e}"
            if not isinstance(self.backend, ReplayBackend):  # a replay serves what its run recorded
                self.failed_in_a_row, self.last_failure = self.failed_in_a_row + 1, str(e)
            return call, None
        self.failed_in_a_row = 0
        call.latency_s = round(time.monotonic() - t0, 3)
        call.response_blob = put_blob(self.run_dir, reply.text.encode(), ".txt")
        call.finish = reply.finish
        call.prompt_tokens, call.completion_tokens = reply.input_tokens, reply.output_tokens
        call.cached_tokens, call.cache_write_tokens = reply.cached_tokens, reply.cache_write_tokens
        call.usd = (
            0.0
            if self.backend.free
            else cost_usd(
                self.backend.model,
                reply.input_tokens,
                reply.output_tokens,
                reply.cached_tokens,
                reply.cache_write_tokens,
            )
        )
        self.spent_usd += call.usd or 0.0
        return call, reply

    def _ask(self, prompt: Prompt, parse: Callable[[str], tuple[T, str]], want: str) -> T | None:
        """Ask, and once more with the error if the reply is unusable; None when both fail."""
        for _attempt in range(2):
            call, reply = self._call(prompt)
            if reply is None:
                return None  # the SDK has retried already
            try:
                check_finish(reply.text, reply.finish)
                value, call.summary = parse(reply.text)
                return value
            except ReplyError as e:
                call.summary = call.failure = f"unusable reply: {e}"
                call.raw = reply.text[:RAW_CHARS]
                prompt = prompt.with_feedback(str(e), want)
        return None

    # ------------------------------------------------------------------ protocol

    def propose_actions(self, state: SearchState, islands: int = 1) -> list[list[EditOp]]:
        def parse(text: str) -> tuple[Plan, str]:
            plan = parse_plan(text)
            return (
                plan,
                f"{len(plan.decisions)} decisions, {sum(len(d.actions) for d in plan.decisions)} actions",
            )

        plan = self._ask(
            self.builder.propose_actions(state, islands), parse, "Reply with the JSON plan only."
        )
        if plan is None:
            plan = FALLBACK_PLAN
            self.calls.append(ProposerCall("propose_actions", "fallback: the generic one-action plan"))
        edits, n = [], 0
        for d in plan.decisions:
            ops = [
                EditOp(
                    op="insert",
                    node=ROOT,
                    reason=f"{self.name} plan",
                    fields={"kind": "decision", "title": d.title},
                )
            ]
            for a in d.actions:
                ops.append(
                    EditOp(
                        op="insert",
                        node="$0",
                        reason=f"{self.name} plan",
                        fields={**a.model_dump(), "attrs": {"island": n % islands}},
                    )
                )
                n += 1
            edits.append(ops)
        return edits

    def implement(self, action: Node, state: SearchState, rng: random.Random) -> Implementation | None:
        parent = state.parent
        parent_source = (
            read_blob(state.run_dir, parent.blob).decode()
            if parent is not None and parent.blob and state.run_dir is not None
            else None
        )
        mine = [o for o in state.outcomes if o.action_id == action.id]
        evidence = mine[-1] if mine else parent
        prompt = self.builder.implement(state, action, parent_source, evidence)

        def parse(text: str) -> tuple[tuple[str, str], str]:
            source, how = parse_module(text, parent_source, self.entry, self.args)
            return (source, how), f"{action.id}: {how}, {len(source.splitlines())} lines"

        got = self._ask(prompt, parse, "Reply with the complete module in one ```python block.")
        if got is None:
            return None
        source, how = got
        return Implementation(source=source, attrs={"proposer": self.name, "how": how}, note=how)

    def exhausted(self, action: Node, state: SearchState) -> bool:
        return False  # a model can always write something new

    def reflect(self, state: SearchState, action: Node, outcomes: list[Outcome]) -> list[EditOp]:
        def parse(text: str) -> tuple[list[EditOp], str]:
            ops = parse_edit_script(text, state.wm)
            return ops, "; ".join(f"{o.op} {o.node}" for o in ops) or "no change"

        ops = self._ask(
            self.builder.reflect(state, action, outcomes),
            parse,
            'Reply with {"ops": [...]} in a ```json block, using only ids shown in the tree.',
        )
        if ops is None:
            ops = rule_reflect(state, action, outcomes)
            self.calls.append(
                ProposerCall(
                    "reflect",
                    "fallback: the offline rules: " + ("; ".join(o.reason for o in ops) or "no change"),
                )
            )
        return ops


def make_proposer(
    cfg: ProposerConfig, task: Task, dtype: str, targets: list[str], run_dir: Path, usd_limit: float = 0.0
) -> Proposer:
    """The proposer of the block's backend (ksearch.propose.registry): its own, or the LLM proposer
    driving its transport."""
    backend = proposer_backend(cfg.backend)
    if backend.make is not None:
        return backend.make(cfg, task, dtype, targets, Path(run_dir), usd_limit)
    return LLMProposer(cfg, task, dtype, targets, run_dir, usd_limit)
