"""The world model: K-Search's typed strategy tree, changed only through validated edit ops.

Nodes (kept on a networkx DiGraph, keyed by id, attribute "node" holding a frozen `Node`):
    root      n0, the task; immutable.
    decision  a choice point; its children are alternative actions.
    action    a concrete thing to try; status open -> trying -> solved | too_hard, or pruned.
    solution  an evaluated packet (packet_id, score) attached under the action it realises.
Ids are n0, n1, ... from a counter in graph attribute "next_id", so the same edits give the same ids.

Edit ops (`EditOp`), applied as one all-or-nothing edit by `WorldModel.apply`:
    insert  node=parent id, fields=the new node's fields (kind action by default, or decision).
    update  node=target, fields=the fields to change (never id, kind or parent).
    split   node=an action that is not solved or pruned, children=field dicts. The action becomes a
            decision (status reset to open, its statistics and attrs kept) and the children are new
            nodes under it (actions unless they say kind decision). Why a decision: its children
            become selectable alternatives at once, which is what splitting a too-broad or too-hard
            action means, while an action's children wait until the action is solved.
    prune   node=an action or decision: it and its open/trying descendants become status pruned.
            Nothing is deleted; a subtree holding a solved action or a solution cannot be pruned.
    attach  node=an action, fields={"packet_id", "score", optional title/description/rationale/
            attrs/confidence}: inserts a solution node under the action, marks the action solved and
            raises its best_score to the solution's score.
`node` may also be "$k" or "$k.j": the j-th id (default 0) assigned by op k of the same edit.
Applied ops come back with `node` resolved and `assigned` holding the new ids (insert: 1, split:
one per child, attach: the solution; update and prune: none).

Continuation rule: after the ops of an edit, every solved action without a child action that is
open, trying or solved gets a default open child action titled "refine: <title>" (same attrs and
priority; a title that already starts with "refine: " is kept as is). The added insert ops are
appended to the applied ops, so the log holds them like any other op. `max_new` (nodes per edit)
counts the nodes the ops ask for, not these.

wm_edit rows (kind "wm_edit") carry a `ksearch.log.rows.WmEdit` payload {"root": <n0's fields> or
null, "ops": [...], "reason": str}; "root" only in the first wm_edit of a run, which creates the tree; "ops" are applied ops
(`EditOp.model_dump(mode="json")`, assigned included). `WorldModel.from_log` replays them in order
and checks that re-applying each edit gives back exactly the logged ops, assigned ids included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ksearch.errors import KsearchError, describe_validation_error
from ksearch.log.history import Appended, History, read_rows
from ksearch.log.rows import WmEdit, WmEditRow

ROOT = "n0"
WM_EDIT = WmEdit.KIND
REFINE = "refine: "
_REF = re.compile(r"^\$(\d+)(?:\.(\d+))?$")


class WorldModelError(KsearchError):
    """An edit that breaks a world-model rule, or a log whose wm_edit rows do not replay."""

    def __init__(self, message: str, errors: Sequence[str] = ()):
        super().__init__(message)
        self.errors = list(errors)


class NodeKind(str, Enum):
    root = "root"
    decision = "decision"
    action = "action"
    solution = "solution"


class NodeStatus(str, Enum):
    open = "open"
    trying = "trying"
    solved = "solved"
    too_hard = "too_hard"
    pruned = "pruned"


LIVE = (NodeStatus.open, NodeStatus.trying)
# Statuses an update may set on an action; solved comes from attach, pruned from prune.
SETTABLE = (NodeStatus.open, NodeStatus.trying, NodeStatus.too_hard)


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: NodeKind
    title: str = Field(min_length=1)
    description: str = ""
    rationale: str = ""
    difficulty: int = Field(default=3, ge=1, le=5)
    expected_speedup: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    priority: float = Field(default=0.5, ge=0, le=1)
    status: NodeStatus = NodeStatus.open
    confidence: float = Field(default=0.5, ge=0, le=1)
    parent: str | None = None
    attrs: dict[str, Any] = Field(default_factory=dict)
    # Search statistics; the loop changes them through update ops so that the log has them.
    attempts: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)
    best_score: float | None = Field(default=None, allow_inf_nan=False)
    last_improved_attempt: int | None = Field(default=None, ge=0)
    # Solution nodes only.
    packet_id: str | None = None
    score: float | None = Field(default=None, allow_inf_nan=False)

    @field_validator("attrs")
    @classmethod
    def _plain_json(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:  # round-trip so that the live tree equals its replay (tuples, int keys, ...)
            return json.loads(json.dumps(v, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise ValueError(f"attrs must be plain JSON ({e})") from None


NODE_FIELDS = frozenset(Node.model_fields)
SOLUTION_FIELDS = frozenset({"packet_id", "score"})
ATTACH_FIELDS = SOLUTION_FIELDS | {"title", "description", "rationale", "attrs", "confidence"}


class EditOp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["insert", "update", "split", "prune", "attach"]
    node: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    children: list[dict[str, Any]] = Field(default_factory=list)
    reason: str = ""
    assigned: list[str] = Field(default_factory=list)  # output of apply; ignored on input


class _Reject(Exception):
    """One op breaks a rule; the message says which and what to do instead."""


def _num(node_id: str) -> int:
    return int(node_id[1:])


def _validated(data: dict[str, Any], what: str) -> Node:
    try:
        return Node.model_validate(data)
    except ValidationError as e:
        raise _Reject(f"{what}: {describe_validation_error(e)}") from None


class WorldModel:
    """The strategy tree. Read it through the query methods; change it only through `apply`."""

    def __init__(self, graph: nx.DiGraph):
        self.graph = graph

    @classmethod
    def new(cls, title: str, description: str = "", attrs: dict[str, Any] | None = None) -> WorldModel:
        try:
            root = Node(id=ROOT, kind=NodeKind.root, title=title, description=description, attrs=attrs or {})
        except ValidationError as e:
            raise WorldModelError(f"bad root: {describe_validation_error(e)}") from None
        return cls._from_root(root)

    @classmethod
    def _from_root(cls, root: Node) -> WorldModel:
        if root.id != ROOT or root.kind != NodeKind.root or root.parent is not None:
            raise WorldModelError(
                f"a root must have id {ROOT}, kind root and no parent, not {root.id}/{root.kind.value}"
            )
        graph = nx.DiGraph(next_id=1)
        graph.add_node(ROOT, node=root)
        return cls(graph)

    def copy(self) -> WorldModel:
        return WorldModel(self.graph.copy())  # nodes are frozen, so sharing them is safe

    # ---- queries -------------------------------------------------------------------------------

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.graph

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    @property
    def root(self) -> Node:
        return self.node(ROOT)

    def node(self, node_id: str) -> Node:
        if node_id not in self.graph:
            raise WorldModelError(self._unknown(node_id))
        return self.graph.nodes[node_id]["node"]

    def nodes(self) -> list[Node]:
        """All nodes in creation order."""
        return [self.graph.nodes[i]["node"] for i in sorted(self.graph, key=_num)]

    def children(self, node_id: str) -> list[Node]:
        self.node(node_id)
        return [self.graph.nodes[i]["node"] for i in sorted(self.graph.successors(node_id), key=_num)]

    def path_to(self, node_id: str) -> list[Node]:
        """Nodes from the root down to `node_id`, both included."""
        path = [self.node(node_id)]
        while path[-1].parent is not None:
            path.append(self.node(path[-1].parent))
        return path[::-1]

    def depth(self, node_id: str) -> int:
        return len(self.path_to(node_id)) - 1

    def descendants(self, node_id: str) -> list[Node]:
        return [self.graph.nodes[i]["node"] for i in sorted(nx.descendants(self.graph, node_id), key=_num)]

    def actions(self, status: NodeStatus | str | None = None) -> list[Node]:
        want = None if status is None else NodeStatus(status)
        return [n for n in self.nodes() if n.kind == NodeKind.action and (want is None or n.status == want)]

    def is_selectable(self, node_id: str) -> bool:
        """An open action whose action ancestors are all solved (and nothing above it is pruned)."""
        node = self.node(node_id)
        if node.kind != NodeKind.action or node.status != NodeStatus.open:
            return False
        for up in self.path_to(node_id)[:-1]:
            if up.status == NodeStatus.pruned or (
                up.kind == NodeKind.action and up.status != NodeStatus.solved
            ):
                return False
        return True

    def frontier(self) -> list[Node]:
        """Selectable open actions, highest priority first, then oldest first."""
        found = [n for n in self.actions(NodeStatus.open) if self.is_selectable(n.id)]
        return sorted(found, key=lambda n: (-n.priority, _num(n.id)))

    def solutions(self) -> list[Node]:
        return [n for n in self.nodes() if n.kind == NodeKind.solution]

    def best_solution(self) -> Node | None:
        """The highest-scoring solution (higher is better; unscored ones last; oldest wins ties)."""
        sols = self.solutions()
        if not sols:
            return None
        return max(sols, key=lambda n: (n.score is not None, n.score or 0.0, -_num(n.id)))

    def snapshot(self) -> dict[str, Any]:
        """Canonical JSON-able form of the whole tree; equal snapshots mean equal trees."""
        return {
            "next_id": self.graph.graph["next_id"],
            "nodes": [n.model_dump(mode="json") for n in self.nodes()],
            "edges": [[u, v] for u, v in sorted(self.graph.edges, key=lambda e: (_num(e[0]), _num(e[1])))],
        }

    # ---- edits ---------------------------------------------------------------------------------

    def validate(self, ops: Sequence[EditOp | dict], *, max_new: int | None = 8) -> list[str]:
        """Why the edit would be rejected, one message per problem; empty when it is valid."""
        return self._run(ops, max_new)[2]

    def apply(self, ops: Sequence[EditOp | dict], *, max_new: int | None = 8) -> list[EditOp]:
        """Apply all ops as one edit, or none of them (WorldModelError listing every problem)."""
        work, applied, errors = self._run(ops, max_new)
        if errors:
            raise WorldModelError("world-model edit rejected: " + " | ".join(errors), errors)
        self.graph = work.graph
        return applied

    def _run(
        self, ops: Sequence[EditOp | dict], max_new: int | None
    ) -> tuple[WorldModel, list[EditOp], list[str]]:
        if isinstance(ops, (dict, EditOp)):
            ops = [ops]  # one op given bare
        work, applied, errors = self.copy(), [], []
        by_index: dict[int, list[str]] = {}
        for i, raw in enumerate(ops):
            try:
                op = EditOp.model_validate(raw.model_dump() if isinstance(raw, EditOp) else raw)
            except ValidationError as e:
                errors.append(f"op {i}: not an edit op: {describe_validation_error(e)}")
                continue
            label = f"op {i} ({op.op} {op.node})"
            saved = work.graph.copy()
            try:
                target_id = work._resolve(op.node, i, by_index)
                done = work._apply_op(op.model_copy(update={"node": target_id, "assigned": []}), target_id)
            except _Reject as e:
                work.graph = saved  # a rejected op leaves no trace, so later messages see a sane tree
                errors.append(f"{label}: {e}")
                continue
            by_index[i] = done.assigned
            applied.append(done)
        new = sum(len(op.assigned) for op in applied)
        if max_new is not None and new > max_new:
            errors.append(
                f"the edit adds {new} nodes; at most {max_new} per edit: split it into several edits"
            )
        if not errors:
            applied += work._continue_solved()
        return work, applied, errors

    def _resolve(self, ref: str | None, i: int, by_index: dict[int, list[str]]) -> str:
        if ref is None:
            raise _Reject("no target node: set `node` (the parent id for insert)")
        m = _REF.match(ref)
        if m is None:
            if ref not in self.graph:
                raise _Reject(self._unknown(ref))
            return ref
        k, j = int(m[1]), int(m[2] or 0)
        if k >= i:
            raise _Reject(f"{ref} refers to op {k}, which does not come before op {i}")
        if k not in by_index:
            raise _Reject(f"{ref} refers to op {k}, which was rejected")
        if j >= len(by_index[k]):
            raise _Reject(f"{ref}: op {k} assigned only {len(by_index[k])} ids")
        return by_index[k][j]

    def _unknown(self, node_id: str) -> str:
        return f"unknown node {node_id!r}: this tree has ids n0..n{self.graph.graph['next_id'] - 1}"

    def _apply_op(self, op: EditOp, target_id: str) -> EditOp:
        """Apply one op, whose node `_resolve` turned into the existing `target_id`, to this (working)
        graph or raise _Reject; returns the op with assigned ids."""
        target = self.node(target_id)
        if op.op in ("update", "split", "prune") and target.kind == NodeKind.root:
            raise _Reject(f"the root {ROOT} is immutable; {op.op} its descendants instead")
        if op.op != "split" and op.children:
            raise _Reject("only split takes children")
        if op.op in ("split", "prune") and op.fields:
            raise _Reject(f"{op.op} takes no fields; change the node with a separate update op")
        assigned = getattr(self, f"_{op.op}")(target, op)
        return op.model_copy(update={"assigned": assigned})

    def _insert(self, parent: Node, op: EditOp) -> list[str]:
        return [self._add(self._make(parent, op.fields, "insert"))]

    def _make(self, parent: Node, fields: dict[str, Any], what: str) -> Node:
        if parent.kind == NodeKind.solution:
            raise _Reject(f"{parent.id} is a solution; insert under its action {parent.parent} instead")
        pruned = [n.id for n in self.path_to(parent.id) if n.status == NodeStatus.pruned]
        if pruned:
            raise _Reject(f"{parent.id} is in the pruned subtree of {pruned[0]}; insert under a live node")
        if set(fields) & {"id", "parent"}:
            raise _Reject(f"{what} cannot set id or parent: the world model assigns them")
        if set(fields) & SOLUTION_FIELDS:
            raise _Reject(f"{what} cannot set packet_id or score: solutions come from attach")
        kind = fields.get("kind", NodeKind.action.value)
        if kind not in (NodeKind.action, NodeKind.decision):
            raise _Reject(
                f"{what} cannot create a {kind!r} node: insert an action or decision (solutions come from attach)"
            )
        kind = NodeKind(kind)
        status = fields.get("status", NodeStatus.open.value)
        allowed = SETTABLE if kind == NodeKind.action else (NodeStatus.open,)
        if status not in allowed:
            raise _Reject(
                f"{what} cannot create a {kind.value} with status {status!r}: use one of "
                f"{', '.join(s.value for s in allowed)} (solved comes from attach, pruned from prune)"
            )
        node_id = f"n{self.graph.graph['next_id']}"
        return _validated({**fields, "id": node_id, "parent": parent.id, "kind": kind}, what)

    def _add(self, node: Node) -> str:
        self.graph.add_node(node.id, node=node)
        self.graph.add_edge(node.parent, node.id)
        self.graph.graph["next_id"] += 1
        return node.id

    def _put(self, node: Node) -> None:
        self.graph.nodes[node.id]["node"] = node

    def _update(self, node: Node, op: EditOp) -> list[str]:
        f = op.fields
        if not f:
            raise _Reject("update needs fields to change")
        unknown = sorted(set(f) - NODE_FIELDS)
        if unknown:
            raise _Reject(
                f"unknown field(s) {', '.join(unknown)}; fields are {', '.join(sorted(NODE_FIELDS))}"
            )
        fixed = sorted(set(f) & {"id", "kind", "parent"})
        if fixed:
            raise _Reject(
                f"update cannot change {', '.join(fixed)}: split an action to make it a decision, "
                "insert a new node elsewhere to move an idea"
            )
        if set(f) & SOLUTION_FIELDS:
            raise _Reject(
                "packet_id and score are set once by attach and never changed: attach a new solution"
            )
        if "status" in f and f["status"] != node.status:
            self._check_status(node, f["status"])
        self._put(_validated({**node.model_dump(), **f}, "update"))
        return []

    def _check_status(self, node: Node, status: Any) -> None:
        if node.kind != NodeKind.action:
            raise _Reject(
                f"{node.id} is a {node.kind.value}: only actions have a status to update (prune a decision to drop it)"
            )
        if node.status in (NodeStatus.solved, NodeStatus.pruned):
            raise _Reject(f"{node.id} is {node.status.value}, which is final: insert a new action instead")
        if status == NodeStatus.solved:
            raise _Reject("an action becomes solved only by attaching a solution (op attach)")
        if status == NodeStatus.pruned:
            raise _Reject("use op prune to prune (it also prunes the open actions below)")
        if status not in SETTABLE:
            raise _Reject(f"status {status!r} is not one of {', '.join(s.value for s in NodeStatus)}")

    def _split(self, node: Node, op: EditOp) -> list[str]:
        if node.kind != NodeKind.action:
            raise _Reject(
                f"{node.id} is a {node.kind.value}; only actions can be split (insert alternatives under a decision)"
            )
        if node.status in (NodeStatus.solved, NodeStatus.pruned):
            raise _Reject(f"{node.id} is {node.status.value}; split only open, trying or too_hard actions")
        if not op.children:
            raise _Reject("split needs children: the sub-actions that replace the action")
        self._put(node.model_copy(update={"kind": NodeKind.decision, "status": NodeStatus.open}))
        decision = self.node(node.id)
        return [self._add(self._make(decision, c, f"split child {k}")) for k, c in enumerate(op.children)]

    def _prune(self, node: Node, op: EditOp) -> list[str]:
        if node.kind not in (NodeKind.action, NodeKind.decision):
            raise _Reject(f"{node.id} is a {node.kind.value}: solutions are evidence and are never pruned")
        if node.status == NodeStatus.pruned:
            raise _Reject(f"{node.id} is already pruned")
        if node.status == NodeStatus.solved:
            raise _Reject(
                f"{node.id} is solved: solved actions are never pruned; prune its open children instead"
            )
        below = self.descendants(node.id)
        kept = [n.id for n in below if n.kind == NodeKind.solution or n.status == NodeStatus.solved]
        if kept:
            raise _Reject(
                f"{node.id} has solved nodes below it ({', '.join(kept)}), which a prune would hide; "
                "prune the open branches beside them instead"
            )
        self._put(node.model_copy(update={"status": NodeStatus.pruned}))
        for n in below:
            if n.status in LIVE:
                self._put(n.model_copy(update={"status": NodeStatus.pruned}))
        return []

    def _attach(self, action: Node, op: EditOp) -> list[str]:
        if action.kind != NodeKind.action:
            raise _Reject(
                f"{action.id} is a {action.kind.value}; attach a solution to the action it realises"
            )
        if action.status == NodeStatus.pruned:
            raise _Reject(f"{action.id} is pruned; attach to a live action")
        extra = sorted(set(op.fields) - ATTACH_FIELDS)
        if extra:
            raise _Reject(
                f"attach cannot set {', '.join(extra)}; it takes {', '.join(sorted(ATTACH_FIELDS))}"
            )
        packet = op.fields.get("packet_id")
        if not isinstance(packet, str) or not packet:
            raise _Reject("attach needs fields.packet_id, the evaluated packet's id")
        same = [n.id for n in self.solutions() if n.packet_id == packet]
        if same:
            raise _Reject(f"packet {packet} is already attached as {same[0]}")
        node_id = f"n{self.graph.graph['next_id']}"
        sol = _validated(
            {
                "title": f"packet {packet}",
                **op.fields,
                "id": node_id,
                "parent": action.id,
                "kind": NodeKind.solution,
                "status": NodeStatus.solved,
            },
            "attach",
        )
        best = action.best_score
        if sol.score is not None and (best is None or sol.score > best):
            best = sol.score
        self._put(action.model_copy(update={"status": NodeStatus.solved, "best_score": best}))
        return [self._add(sol)]

    def _continue_solved(self) -> list[EditOp]:
        """Give every solved action without a live continuation a default "refine" child."""
        added = []
        for action in self.actions(NodeStatus.solved):
            kids = self.children(action.id)
            if any(k.kind == NodeKind.action and k.status in (*LIVE, NodeStatus.solved) for k in kids):
                continue
            title = action.title if action.title.startswith(REFINE) else REFINE + action.title
            op = EditOp(
                op="insert",
                node=action.id,
                reason=f"default continuation of solved {action.id}",
                fields={
                    "title": title,
                    "attrs": action.attrs,
                    "priority": action.priority,
                    "rationale": "a solved action keeps an open continuation",
                },
            )
            added.append(op.model_copy(update={"assigned": self._insert(action, op)}))
        return added

    # ---- log -----------------------------------------------------------------------------------

    @classmethod
    def from_log(cls, run_dir: Path) -> WorldModel:
        """Rebuild the tree by replaying the run's wm_edit rows; WorldModelError if they disagree."""
        wm: WorldModel | None = None
        for row in read_rows(Path(run_dir), WM_EDIT):
            assert isinstance(row, WmEditRow)
            where = f"{run_dir}: wm_edit row seq {row.seq}"
            payload = row.payload
            if payload.root is not None:
                if wm is not None:
                    raise WorldModelError(f"{where} creates a second root; a run has one world model")
                try:
                    wm = cls._from_root(Node.model_validate(payload.root))
                except ValidationError as e:
                    raise WorldModelError(f"{where} has a bad root: {describe_validation_error(e)}") from None
            if wm is None:
                raise WorldModelError(
                    f"{where} edits the world model before any wm_edit row created its root"
                )
            try:
                logged = [EditOp.model_validate(o) for o in payload.ops]
            except ValidationError as e:
                raise WorldModelError(
                    f"{where} holds a malformed op: {describe_validation_error(e)}"
                ) from None
            try:
                replayed = wm.apply(logged, max_new=None)  # the limit held when the edit was made
            except WorldModelError as e:
                raise WorldModelError(f"{where} does not replay: {e}", e.errors) from None
            want = [o.model_dump(mode="json") for o in logged]
            got = [o.model_dump(mode="json") for o in replayed]
            if got != want:
                raise WorldModelError(f"{where} disagrees with its replay: {_first_difference(want, got)}")
        if wm is None:
            raise WorldModelError(f"{run_dir} has no wm_edit rows: this run recorded no world model")
        return wm


def _first_difference(want: list[dict], got: list[dict]) -> str:
    for i, (w, g) in enumerate(zip(want, got)):
        if w != g:
            if w["assigned"] != g["assigned"]:
                return f"op {i} ({w['op']} {w['node']}) logged assigned ids {w['assigned']}, replay assigns {g['assigned']}"
            return f"op {i} logged as {w}, replays as {g}"
    if len(got) > len(want):
        return f"replay adds ops the log lacks: {got[len(want) :]}"
    return f"the log has ops the replay does not produce: {want[len(got) :]}"


def to_payload(ops: Sequence[EditOp], reason: str = "", *, root: Node | None = None) -> WmEdit:
    """The wm_edit payload for applied ops; `root` only for the row that creates the tree."""
    for op in ops:
        if op.op in ("insert", "split", "attach") and not op.assigned:
            raise WorldModelError(
                f"{op.op} op on {op.node} has no assigned ids: record the ops apply returned"
            )
    return WmEdit(
        root=root.model_dump(mode="json") if root is not None else None,
        ops=[op.model_dump(mode="json") for op in ops],
        reason=reason,
    )


def record(
    history: History, ops: Sequence[EditOp], reason: str = "", *, root: Node | None = None
) -> Appended:
    """Append one wm_edit row to a `ksearch.log.History`; returns its `Appended`."""
    return history.append(to_payload(ops, reason, root=root))
