"""Prompts for the LLM proposers: sections with explicit token budgets, stable content first.

    system (the same for every call of a run, so provider prompt caches hit):
        role and rules · task contract and shapes · target facts (ISA packet) · selected skills
    user (changes every call):
        world model with the path to the current action · memory (proven facts, dead ends) ·
        parent kernel · last evidence · the call's instructions and reply format

Each section is cut to its budget (`PromptBudget`, o200k_base tokens via ksearch.context).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property

from ksearch.context import build_packet, count_tokens, fit_tokens, load_topics, select_skills
from ksearch.context.errors import ContextError
from ksearch.errors import LogError, TargetError
from ksearch.evidence import EvidencePacket
from ksearch.propose.base import Outcome, SearchState
from ksearch.propose.memory import load_memory, memory_text
from ksearch.propose.settings import PromptBudget
from ksearch.target import load_target
from ksearch.task import Task
from ksearch.task.describe import describe_task
from ksearch.worldmodel import Node, render_text

MAX_DECISIONS = 3
MAX_ACTIONS = 5  # per decision: with its decision node, within the world model's 8 new nodes per edit

SYSTEM = """You are the proposer of ksearch, an evolutionary search for fast, correct GPU kernels.
A correctness-gated harness compiles, audits, verifies and (on a GPU) times every candidate you write;
every attempt is logged. Rules for candidates:
- A candidate is one Python module (Triton unless the task says otherwise) defining the task's entry
  function in destination-passing style: it receives the inputs, then the outputs, and writes every
  output in place. It returns nothing.
- Never call the reference, torch ops or vendor libraries for the main computation; torch is allowed
  for views, strides and allocation only. No caching of results across calls, no timing tricks.
- Outputs must match the reference within the task's tolerances on every workload shape,
  including non-power-of-two and single-row shapes.
Reply exactly in the format each call asks for."""


@dataclass
class Prompt:
    kind: str  # propose_actions | implement | reflect
    system: str
    user: str
    sections: dict[str, int] = field(default_factory=dict)  # section -> tokens

    def with_feedback(self, error: str, want: str) -> Prompt:
        """The same prompt once more, told what was wrong with the previous reply."""
        note = f"\n\n## Your previous reply was rejected\n{error}\n{want}"
        return Prompt(
            self.kind, self.system, self.user + note, {**self.sections, "feedback": count_tokens(note)}
        )

    def as_json(self) -> str:
        return json.dumps({"kind": self.kind, "system": self.system, "user": self.user}, ensure_ascii=False)


def clip(text: str, budget: int) -> str:
    """`text` cut to `budget` tokens, marked where it was cut so the model knows it sees a part."""
    return fit_tokens(text, budget, f"\n[... cut to {budget} tokens]")


def evidence_text(packet: EvidencePacket) -> str:
    """What a proposer needs from a packet: verdict, located diagnostics, failed checks, worst
    mismatch, timings against the baseline and the speed of light."""
    lines = [
        f"status {packet.status.value}"
        + (f", {packet.failure_class.value}" if packet.failure_class else "")
        + f" on {packet.candidate.target}"
    ]
    if packet.message:
        lines.append(f"message: {packet.message[:400]}")
    for d in packet.diagnostics[:5]:
        where = (
            f"{d.file or '?'}:{d.line}" + (f":{d.column}" if d.column else "") if d.line else (d.file or "")
        )
        lines.append(f"{d.severity} {where}: {d.message[:200]}")
    bad = [v for v in (*packet.audit.verdicts, *packet.audit.anti_hack) if not v.ok]
    for v in bad[:4]:
        lines.append(f"audit {v.check} ({v.severity}): {v.detail[:200]}")
    if packet.audit.registers is not None or packet.audit.spills:
        lines.append(
            f"registers {packet.audit.registers}, spills {packet.audit.spills}, "
            f"smem {packet.audit.smem_bytes} B, occupancy {packet.audit.occupancy}"
        )
    if packet.validation is not None:
        wrong = [o for o in packet.validation.outputs if not o.passed]
        if wrong:
            o = wrong[0]
            lines.append(
                f"mismatch on {o.workload}/{o.distribution}: max abs err {o.max_abs_err}, "
                f"matched {o.matched_ratio}, non-finite {o.nonfinite_candidate} "
                f"({len(wrong)} of {len(packet.validation.outputs)} checks failed)"
            )
        elif packet.validation.reason:
            lines.append(f"validation: {packet.validation.reason[:300]}")
    if packet.performance is not None:
        for t in packet.performance.workloads:
            lines.append(
                f"{t.workload}: {t.median_us:.2f} us, speedup {t.speedup} vs {t.baseline}, "
                f"SOL fraction {t.sol_fraction}"
            )
    elif packet.unmeasured is not None:
        lines.append(f"not timed: {packet.unmeasured.reason.value}")
    return "\n".join(lines)


class PromptBuilder:
    def __init__(self, task: Task, dtype: str, targets: list[str], budget: PromptBudget):
        self.task, self.dtype, self.targets, self.budget = task, dtype, targets, budget
        self.primary = targets[0]

    # ---- stable ----------------------------------------------------------------------------------

    @cached_property
    def _stable(self) -> tuple[str, dict[str, int]]:
        parts = {
            "rules": SYSTEM,
            "task": clip(self._task_text(), self.budget.task),
            "target": clip(self._target_text(), self.budget.target),
            "skills": clip(self._skills_text(), self.budget.skills),
        }
        text = "\n\n".join(p for p in parts.values() if p)
        return text, {k: count_tokens(v) for k, v in parts.items()}

    def _task_text(self) -> str:
        d = describe_task(self.task, self.dtype)
        name, args = self.task.entry_name, self.task.entry_args
        tensors = "\n".join(
            f"- {t['name']} ({t['role']}): {t['dtype']} {t['shape']} {t['description']}".rstrip()
            for t in d["inputs"] + d["outputs"]
        )
        workloads = "\n".join(
            f"- {w['name']}: {w['axes']}{' (verified on CPU)' if w['cpu'] else ''}" for w in d["workloads"]
        )
        tol = d["tolerances"].get(self.dtype, {})
        return (
            f"# Task: {d['name']} ({d['op_family']}), dtype {self.dtype}\n{d['description'].strip()}\n"
            f"Entry: def {name}({', '.join(args)}) -> None (inputs, then outputs written in place)\n"
            f"Tensors:\n{tensors}\nParams: {d['params']}\nWorkloads:\n{workloads}\n"
            f"Tolerance ({self.dtype}): {tol}\nLanguages: {', '.join(d['languages'])}\n"
            f"Targets: {', '.join(self.targets)} (scored on {self.primary})"
        )

    def isa_topic(self) -> str:
        """The ISA topic for the op class on the primary target: the matrix-instruction topic named
        by the families the target profile expects of a well-lowered kernel of this op family and
        dtype (tcgen05 on sm_100a, wgmma on sm_90a, mfma or mfma_scale on CDNA; the longest name
        that fits), else occupancy."""
        try:
            families = load_target(self.primary).expected_families(self.task.spec.op_family, self.dtype)
            names = [t for t in load_topics() if any(t in f for f in families)]
        except (TargetError, ContextError):  # a dtype the profiles do not name, no topics file
            return "occupancy"
        return max(names, key=len) if names else "occupancy"

    def _target_text(self) -> str:
        if self.budget.target <= 0:
            return ""
        try:
            return build_packet(self.isa_topic(), self.primary, self.budget.target).text
        except ContextError as e:  # a corpus without the topic, or a budget too small: say so, go on
            return f"# Target {self.primary}: no ISA packet ({e})"

    def _skills_text(self) -> str:
        if self.budget.skills <= 0:
            return ""
        try:
            return "# Skills\n" + select_skills(self.task.ref, self.primary, self.budget.skills).text
        except ContextError as e:
            return f"# Skills: none ({e})"

    # ---- volatile --------------------------------------------------------------------------------

    def _prompt(self, kind: str, parts: dict[str, str]) -> Prompt:
        system, stable_counts = self._stable
        user = "\n\n".join(p for p in parts.values() if p)
        return Prompt(kind, system, user, {**stable_counts, **{k: count_tokens(v) for k, v in parts.items()}})

    def _memory(self, state: SearchState) -> str:
        """What the run has learnt: the distilled memory (proven strategies, dead ends, the frontier:
        ksearch.propose.memory, rebuilt after every visit) and the latest message of each failure class."""
        lines = []
        scored = [(o.score, o) for o in state.outcomes if o.passed and o.score is not None]
        if scored:
            best = max(scored, key=lambda so: so[0])[1]
            lines.append(f"- best so far: {best.candidate} score {best.score:.4g} (action {best.action_id})")
        lines.append(f"- {len(state.outcomes)} candidates evaluated, {len(scored)} passed")
        fails: dict[str, Outcome] = {}
        for o in state.outcomes:
            if not o.passed:
                fails[o.failure_class or "unknown"] = o
        for cls, o in fails.items():
            n = sum(1 for x in state.outcomes if not x.passed and (x.failure_class or "unknown") == cls)
            lines.append(f"- failure {cls} x{n}, latest {o.candidate}: {o.message[:160]}")
        recent = "\n".join(lines)
        distilled = ""
        if state.run_dir is not None:
            try:
                memory = load_memory(state.run_dir)
            except LogError:
                memory = None  # unreadable: the recent lines still say what happened
            distilled = memory_text(memory, max(0, self.budget.memory - count_tokens(recent) - 8))
        return clip("# Memory\n" + "\n".join(p for p in (recent, distilled) if p), self.budget.memory)

    def _tree(self, state: SearchState, focus: str | None) -> str:
        header = "# World model (id [kind/status] title (p=priority d=difficulty))\n"
        # the header counts against the section's budget too
        return header + render_text(state.wm, self.budget.world_model - count_tokens(header) - 1, focus)

    def propose_actions(self, state: SearchState, islands: int) -> Prompt:
        ask = f"""## Call: propose_actions
Plan the search. Propose up to {MAX_DECISIONS} strategy decisions (choice points) and under each 2 to
{MAX_ACTIONS} alternative actions: concrete kernel designs that could be fast for these shapes on
{self.primary}. Reply with one JSON object in a ```json block, nothing else:
{{"decisions": [{{"title": "...", "actions": [{{"title": "...", "description": "what to build",
  "rationale": "why it should be fast", "difficulty": 1-5, "expected_speedup": 1.5, "priority": 0.0-1.0}}]}}]}}"""
        return self._prompt(
            "propose_actions", {"tree": self._tree(state, None), "memory": self._memory(state), "ask": ask}
        )

    def implement(
        self, state: SearchState, action: Node, parent_source: str | None, evidence: Outcome | None
    ) -> Prompt:
        name, args = self.task.entry_name, self.task.entry_args
        parts = {"tree": self._tree(state, action.id), "memory": self._memory(state)}
        if parent_source is not None:
            parts["parent"] = clip(
                f"# Parent kernel ({state.parent.candidate if state.parent else '?'})\n"
                f"```python\n{parent_source}\n```",
                self.budget.parent,
            )
        if evidence is not None and evidence.evidence:
            parts["evidence"] = clip(
                f"# Last evidence ({evidence.candidate})\n{evidence.evidence}", self.budget.evidence
            )
        diff = (
            ""
            if parent_source is None
            else """
Or, to change the parent kernel, reply with search/replace edits, each SEARCH text copied exactly
from the parent and found there once:
<<<<<<< SEARCH
lines of the parent
=======
their replacement
>>>>>>> REPLACE"""
        )
        parts["ask"] = f"""## Call: implement
Implement action {action.id}: {action.title}
{action.description}
Reply with the complete module in one ```python block defining
`def {name}({", ".join(args)}) -> None`.{diff}"""
        return self._prompt("implement", parts)

    def reflect(self, state: SearchState, action: Node, outcomes: list[Outcome]) -> Prompt:
        got = (
            "\n".join(
                f"- {o.candidate}: {'pass' if o.passed else 'FAIL ' + (o.failure_class or '')}"
                + (f" score {o.score:.4g}" if o.score is not None else "")
                + f" {o.message[:160]}"
                for o in outcomes
            )
            or "- no candidate was evaluated"
        )
        parts = {
            "tree": self._tree(state, action.id),
            "memory": self._memory(state),
            "outcomes": clip(
                f"# This visit\nvisited action: {action.id} ({action.title})\n{got}", self.budget.evidence
            ),
        }
        last = outcomes[-1] if outcomes else None
        if last is not None and last.evidence:
            parts["evidence"] = clip(
                f"# Last evidence ({last.candidate})\n{last.evidence}", self.budget.evidence
            )
        parts["ask"] = """## Call: reflect
Update the world model from what this visit showed. Reply with one JSON object in a ```json block:
{"ops": [...]} where each op is one of
  {"op": "update", "node": "nK", "fields": {"priority": 0.0-1.0, "status": "open|too_hard",
     "confidence": 0.0-1.0, "rationale": "...", "difficulty": 1-5, "expected_speedup": 1.2}, "reason": "..."}
  {"op": "insert", "node": "<parent id>", "fields": {"title": "...", "description": "...", "rationale": "...",
     "difficulty": 1-5, "expected_speedup": 1.2, "priority": 0.0-1.0}, "reason": "..."}
  {"op": "split", "node": "nK", "children": [{"title": "...", ...}], "reason": "..."}
  {"op": "prune", "node": "nK", "reason": "..."}
Use the ids shown in the tree; at most 8 new nodes; {"ops": []} changes nothing."""
        return self._prompt("reflect", parts)
