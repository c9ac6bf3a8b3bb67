"""The world model: validated, deterministic edits; frontier gating; log replay; renderings."""

import json
import xml.etree.ElementTree as ET

import pytest

from ksearch.context.tokens import count_tokens
from ksearch.errors import KsearchError
from ksearch.log import History, iter_rows
from ksearch.log.rows import ProposerFailure, WmEdit
from ksearch.worldmodel import (
    WM_EDIT,
    EditOp,
    NodeKind,
    NodeStatus,
    WorldModel,
    WorldModelError,
    record,
    render_rich,
    render_text,
    to_dot,
    to_payload,
    write_png,
    write_svg,
)
from ksearch.worldmodel import render as render_mod


def ins(parent, title, **fields):
    return {"op": "insert", "node": parent, "fields": {"title": title, **fields}}


def attach(action, packet, score=None):
    return {"op": "attach", "node": action, "fields": {"packet_id": packet, "score": score}}


def sample() -> WorldModel:
    """n1 row block (action), n2 layout (decision) with n3 vectorized, n4 tune warps under n1."""
    wm = WorldModel.new("rmsnorm fp16", "rms norm over rows", {"task": "rmsnorm"})
    wm.apply(
        [
            ins("n0", "row block", attrs={"template": "rmsnorm/row_block", "knobs": {"BLOCK": 1024}}),
            ins("n0", "choose layout", kind="decision"),
            ins("$1", "vectorized loads", priority=0.9, difficulty=2),
            ins("n1", "tune warps"),
        ]
    )
    return wm


def rejected(wm: WorldModel, ops, **kw) -> str:
    """Apply must reject the edit atomically; returns the joined messages."""
    before = wm.snapshot()
    with pytest.raises(WorldModelError) as e:
        wm.apply(ops, **kw)
    assert wm.snapshot() == before  # nothing of a rejected edit is applied
    assert e.value.errors == wm.validate(ops, **kw)
    assert isinstance(e.value, KsearchError)
    return str(e.value)


# ---- ids and basic queries ------------------------------------------------------------------------


def test_ids_are_deterministic_and_refs_resolve():
    a, b = sample(), sample()
    assert a.snapshot() == b.snapshot()
    assert [n.id for n in a.nodes()] == ["n0", "n1", "n2", "n3", "n4"]
    assert a.snapshot()["next_id"] == 5
    assert a.node("n3").parent == "n2"  # "$1" resolved to the id op 1 assigned
    assert [n.id for n in a.children("n0")] == ["n1", "n2"]
    assert [n.id for n in a.path_to("n3")] == ["n0", "n2", "n3"]
    applied = a.apply(
        [ins("n0", "x"), {"op": "split", "node": "$0", "children": [{"title": "y"}, {"title": "z"}]}]
    )
    assert [op.assigned for op in applied] == [["n5"], ["n6", "n7"]]
    assert applied[1].node == "n5"


def test_node_defaults_and_kinds():
    wm = sample()
    n = wm.node("n1")
    assert (n.kind, n.status, n.difficulty, n.priority, n.expected_speedup, n.confidence) == (
        NodeKind.action,
        NodeStatus.open,
        3,
        0.5,
        1.0,
        0.5,
    )
    assert n.attrs["knobs"] == {"BLOCK": 1024}
    assert wm.node("n2").kind == NodeKind.decision
    assert [x.id for x in wm.actions()] == ["n1", "n3", "n4"]
    with pytest.raises(WorldModelError, match="unknown node 'n99'"):
        wm.node("n99")


# ---- validation rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op",
    [
        {"op": "update", "node": "n0", "fields": {"title": "other"}},
        {"op": "prune", "node": "n0"},
        {"op": "split", "node": "n0", "children": [{"title": "a"}]},
    ],
)
def test_root_is_immutable(op):
    assert "root n0 is immutable" in rejected(sample(), [op])


def test_unknown_ids_are_rejected():
    wm = sample()
    assert "unknown node 'n42'" in rejected(wm, [{"op": "update", "node": "n42", "fields": {"priority": 1}}])
    assert "unknown node 'n42'" in rejected(wm, [ins("n42", "orphan")])
    assert "no target node" in rejected(wm, [{"op": "insert", "fields": {"title": "x"}}])
    assert "rejected" in rejected(wm, [ins("n42", "a"), ins("$0", "b")])  # a ref to a rejected op
    assert "does not come before" in rejected(wm, [ins("$0", "self")])


def test_at_most_max_new_nodes_per_edit():
    wm = sample()
    msg = rejected(wm, [ins("n0", f"idea {i}") for i in range(9)])
    assert "adds 9 nodes; at most 8" in msg
    split = {"op": "split", "node": "n4", "children": [{"title": "a"}, {"title": "b"}, {"title": "c"}]}
    assert "at most 2" in rejected(wm, [split], max_new=2)
    assert len(wm.apply([ins("n0", f"idea {i}") for i in range(8)])) == 8


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"difficulty": 0}, "difficulty"),
        ({"difficulty": 6}, "difficulty"),
        ({"priority": 1.5}, "priority"),
        ({"priority": -0.1}, "priority"),
        ({"confidence": 2}, "confidence"),
        ({"expected_speedup": 0}, "expected_speedup"),
    ],
)
def test_ranges_are_checked(fields, field):
    wm = sample()
    assert field in rejected(wm, [{"op": "update", "node": "n1", "fields": fields}])
    assert field in rejected(wm, [ins("n0", "new", **fields)])


@pytest.mark.parametrize("field", ["id", "kind", "parent"])
def test_update_cannot_change_identity(field):
    msg = rejected(sample(), [{"op": "update", "node": "n1", "fields": {field: "n2"}}])
    assert f"cannot change {field}" in msg


def test_status_changes_go_through_their_ops():
    wm = sample()
    assert "attach" in rejected(wm, [{"op": "update", "node": "n1", "fields": {"status": "solved"}}])
    assert "op prune" in rejected(wm, [{"op": "update", "node": "n1", "fields": {"status": "pruned"}}])
    assert "only actions" in rejected(wm, [{"op": "update", "node": "n2", "fields": {"status": "too_hard"}}])
    assert "unknown field" in rejected(wm, [{"op": "update", "node": "n1", "fields": {"colour": "red"}}])
    assert "solutions come from attach" in rejected(wm, [ins("n0", "fake", kind="solution")])
    assert "cannot set id or parent" in rejected(wm, [ins("n0", "x", id="n77")])
    wm.apply([{"op": "update", "node": "n1", "fields": {"status": "trying"}}])
    assert wm.node("n1").status == NodeStatus.trying


def test_errors_are_listed_per_op():
    wm = sample()
    errors = wm.validate(
        [
            {"op": "update", "node": "n0", "fields": {"title": "x"}},
            ins("n1", "fine"),
            {"op": "update", "node": "n3", "fields": {"difficulty": 9}},
            {"op": "explode", "node": "n1"},
        ]
    )
    assert len(errors) == 3
    assert errors[0].startswith("op 0 (update n0)")
    assert errors[1].startswith("op 2 (update n3)") and "difficulty" in errors[1]
    assert errors[2].startswith("op 3: not an edit op")
    assert wm.validate([ins("n1", "fine")]) == []


def test_prune_marks_subtree_and_keeps_history():
    wm = sample()
    wm.apply([ins("n4", "deeper"), {"op": "update", "node": "n3", "fields": {"status": "too_hard"}}])
    n = len(wm)
    wm.apply([{"op": "prune", "node": "n2", "reason": "layout does not matter"}])
    assert len(wm) == n  # never deleted
    assert wm.node("n2").status == NodeStatus.pruned
    assert wm.node("n3").status == NodeStatus.too_hard  # not open, so it keeps its status
    wm.apply([{"op": "prune", "node": "n1"}])
    assert wm.node("n4").status == wm.node("n5").status == NodeStatus.pruned
    assert "already pruned" in rejected(wm, [{"op": "prune", "node": "n1"}])
    assert "pruned subtree of n1" in rejected(wm, [ins("n4", "revive")])
    assert "final" in rejected(wm, [{"op": "update", "node": "n4", "fields": {"status": "open"}}])
    assert wm.frontier() == []


def test_prune_never_hides_a_solution():
    wm = sample()
    wm.apply([attach("n4", "p1", 0.5)])  # n4 under n1 (unsolved) is solved: n5 solution, n6 refine
    assert "solved" in rejected(wm, [{"op": "prune", "node": "n4"}])
    msg = rejected(wm, [{"op": "prune", "node": "n1"}])
    assert "n4" in msg and "n5" in msg
    assert "never pruned" in rejected(wm, [{"op": "prune", "node": "n5"}])
    wm.apply([{"op": "prune", "node": "n6"}])  # pruning the continuation is fine: a new one appears
    assert wm.node("n6").status == NodeStatus.pruned
    assert [k.title for k in wm.children("n4") if k.status == NodeStatus.open] == ["refine: tune warps"]


# ---- frontier, attach, split ---------------------------------------------------------------------------


def test_frontier_gates_children_of_unsolved_actions():
    wm = sample()
    assert [n.id for n in wm.frontier()] == ["n3", "n1"]  # priority first; n4 waits for n1
    assert not wm.is_selectable("n4")
    wm.apply([{"op": "update", "node": "n1", "fields": {"status": "trying"}}])
    assert [n.id for n in wm.frontier()] == ["n3"]
    wm.apply([attach("n1", "p1", 1.2)])
    assert [n.id for n in wm.frontier()] == ["n3", "n4"]
    assert wm.is_selectable("n4")


def test_attach_adds_default_continuation():
    wm = WorldModel.new("task")
    wm.apply([ins("n0", "row block", attrs={"template": "t"}, priority=0.7)])
    applied = wm.apply([attach("n1", "p1", 0.8)])
    assert [op.op for op in applied] == ["attach", "insert"]
    assert applied[0].assigned == ["n2"] and applied[1].assigned == ["n3"]
    sol, cont = wm.node("n2"), wm.node("n3")
    assert (sol.kind, sol.packet_id, sol.score, sol.parent) == (NodeKind.solution, "p1", 0.8, "n1")
    assert wm.node("n1").status == NodeStatus.solved and wm.node("n1").best_score == 0.8
    assert (cont.title, cont.status, cont.parent, cont.attrs, cont.priority) == (
        "refine: row block",
        NodeStatus.open,
        "n1",
        {"template": "t"},
        0.7,
    )
    assert [n.id for n in wm.frontier()] == ["n3"]
    # Solving the continuation does not grow "refine: refine: ...".
    wm.apply([attach("n3", "p2", 0.9)])
    assert wm.children("n3")[-1].title == "refine: row block"
    assert wm.best_solution().packet_id == "p2"
    assert "already attached" in rejected(wm, [attach("n1", "p1")])
    assert "decision" in rejected(sample(), [attach("n2", "p9")])
    assert "packet_id" in rejected(sample(), [{"op": "attach", "node": "n1", "fields": {"score": 1.0}}])


def test_attach_keeps_the_edit_own_continuation_and_best_score():
    wm = sample()
    applied = wm.apply([attach("n1", "p1", 0.9), ins("n1", "fuse residual")])
    assert [op.op for op in applied] == ["attach", "insert"]  # no default added
    assert [k.title for k in wm.children("n1")] == ["tune warps", "packet p1", "fuse residual"]
    wm.apply([attach("n1", "p2", 0.4)])  # a worse solution of the same action
    assert wm.node("n1").best_score == 0.9
    assert wm.best_solution().id == "n5"


def test_split_turns_an_action_into_a_decision():
    wm = sample()
    wm.apply([{"op": "update", "node": "n4", "fields": {"status": "too_hard", "attempts": 3}}])
    applied = wm.apply(
        [
            {
                "op": "split",
                "node": "n4",
                "reason": "too broad",
                "children": [{"title": "warps=4"}, {"title": "warps=8", "priority": 0.8}],
            }
        ]
    )
    assert applied[0].assigned == ["n5", "n6"]
    n4 = wm.node("n4")
    assert (n4.kind, n4.status, n4.attempts) == (NodeKind.decision, NodeStatus.open, 3)
    assert [k.id for k in wm.children("n4")] == ["n5", "n6"]
    assert not wm.is_selectable("n5")  # still under the unsolved action n1
    wm.apply([attach("n1", "p1", 1.0)])
    assert {"n5", "n6"} <= {n.id for n in wm.frontier()}
    assert "only actions" in rejected(wm, [{"op": "split", "node": "n4", "children": [{"title": "x"}]}])
    assert "solved" in rejected(wm, [{"op": "split", "node": "n1", "children": [{"title": "x"}]}])
    assert "needs children" in rejected(wm, [{"op": "split", "node": "n3"}])


def test_statistics_are_updatable():
    wm = sample()
    wm.apply(
        [
            {
                "op": "update",
                "node": "n3",
                "fields": {"attempts": 4, "failures": 1, "best_score": 0.6, "last_improved_attempt": 3},
            }
        ]
    )
    n = wm.node("n3")
    assert (n.attempts, n.failures, n.best_score, n.last_improved_attempt) == (4, 1, 0.6, 3)
    assert "attempts" in rejected(wm, [{"op": "update", "node": "n3", "fields": {"attempts": -1}}])


# ---- the log ---------------------------------------------------------------------------------------------


def build_logged(run_dir) -> WorldModel:
    hist = History(run_dir, fsync=False)
    wm = WorldModel.new("rmsnorm fp16", attrs={"task": "rmsnorm"})
    record(hist, [], "new world model", root=wm.root)
    record(
        hist,
        wm.apply([ins("n0", "row block"), ins("n0", "layout", kind="decision"), ins("$1", "vec")]),
        "init",
    )
    hist.append(ProposerFailure(call="note", error="p1"))  # other rows are skipped by the replay
    record(hist, wm.apply([attach("n1", "p1", 0.7)]), "evaluated")
    record(
        hist,
        wm.apply(
            [
                {"op": "split", "node": "n3", "children": [{"title": "a"}, {"title": "b"}]},
                {"op": "prune", "node": "$0.1"},
                {"op": "update", "node": "n1", "fields": {"attempts": 2, "attrs": {"k": (1, 2)}}},
            ]
        ),
        "reflect",
    )
    return wm


def test_from_log_replays_to_the_same_tree(tmp_path):
    run = tmp_path / "r1"
    wm = build_logged(run)
    rows = [line.row for line, _ in iter_rows(run) if line.row["kind"] == WM_EDIT]
    assert list(rows[0]["payload"]) == ["root", "ops", "reason"]
    assert rows[2]["payload"]["ops"][-1]["reason"].startswith("default continuation")  # the refine insert
    again = WorldModel.from_log(run)
    assert again.snapshot() == wm.snapshot()
    assert json.loads(json.dumps(again.snapshot())) == wm.snapshot()


def test_a_log_that_disagrees_raises(tmp_path):
    run = tmp_path / "r1"
    hist = History(run, fsync=False)
    wm = WorldModel.new("task")
    record(hist, [], "new", root=wm.root)
    ops = wm.apply([ins("n0", "a")])
    record(hist, [ops[0].model_copy(update={"assigned": ["n7"]})], "tampered")
    with pytest.raises(WorldModelError, match=r"assigned ids \['n7'\], replay assigns \['n1'\]"):
        WorldModel.from_log(run)


def test_logs_without_a_root_or_with_bad_ops_raise(tmp_path):
    hist = History(tmp_path / "none", fsync=False)
    hist.append(ProposerFailure(call="note", error=""))
    with pytest.raises(WorldModelError, match="no wm_edit rows"):
        WorldModel.from_log(tmp_path / "none")
    hist = History(tmp_path / "early", fsync=False)
    hist.append(WmEdit(ops=[], reason=""))
    with pytest.raises(WorldModelError, match="before any wm_edit row created its root"):
        WorldModel.from_log(tmp_path / "early")
    hist = History(tmp_path / "bad", fsync=False)
    record(hist, [], root=WorldModel.new("t").root)
    hist.append(WmEdit(ops=[{"op": "prune", "node": "n0", "assigned": []}], reason=""))
    with pytest.raises(WorldModelError, match="does not replay.*immutable"):
        WorldModel.from_log(tmp_path / "bad")
    with pytest.raises(WorldModelError, match="record the ops apply returned"):
        to_payload([EditOp(op="insert", node="n0", fields={"title": "x"})])


# ---- rendering ------------------------------------------------------------------------------------------


def big() -> WorldModel:
    wm = WorldModel.new("fused attention forward, bf16, causal, head dim 128")
    for d in range(3):
        wm.apply(
            [
                ins(
                    "n0",
                    f"strategy {d}: " + "tile the sequence dimension and pipeline loads " * 2,
                    kind="decision",
                )
            ]
        )
        did = wm.nodes()[-1].id
        wm.apply(
            [
                ins(did, f"option {d}.{i} with a fairly long descriptive title number {i}", priority=i / 6)
                for i in range(6)
            ]
        )
    refine = wm.apply([attach("n3", "p1", 0.5)])[-1].assigned[0]
    assert refine == "n23"
    wm.apply([ins(refine, f"deep refinement {i}") for i in range(4)])
    wm.apply([{"op": "prune", "node": "n8"}])  # the second decision and its six options
    return wm


@pytest.mark.parametrize("budget", [5, 20, 60, 120, 250, 500, 800, 5000])
def test_render_text_respects_the_budget(budget):
    wm = big()
    focus = "n23"
    text = render_text(wm, budget, focus=focus)
    assert count_tokens(text) <= budget
    shown = {line.split()[0] for line in text.splitlines() if line.strip()[0] == "n"}
    path = [n.id for n in wm.path_to(focus)] + [k.id for k in wm.children(focus)]
    full = render_text(wm, 10**6, focus=focus)
    if count_tokens(full) <= budget:
        assert text == full and "more node" not in text
    elif budget >= 250:  # room for the path, the focus's children and the fold lines
        assert set(path) <= shown and "<- focus" in text
        assert "more node" in text
        pruned = {n.id for n in wm.nodes() if n.status == NodeStatus.pruned}
        folded_live = {n.id for n in wm.nodes() if n.id not in shown and n.id not in pruned}
        if folded_live:  # pruned subtrees fold before anything else
            assert not (pruned & shown)
    elif budget >= 20:  # too small even for the kept lines: the top of the path survives
        assert text.startswith("n0 [root]") and "more node" not in text


def test_render_text_full_tree_lines():
    wm = sample()
    wm.apply([attach("n1", "p1", 0.75)])
    lines = render_text(wm, 10_000).splitlines()
    assert len(lines) == len(wm)
    assert lines[0].startswith("n0 [root] rmsnorm fp16")
    assert any(
        line.strip().startswith("n1 [action/solved] row block") and "best=0.75" in line for line in lines
    )
    assert render_text(wm, 0) == ""


def test_render_rich_styles():
    wm = sample()
    wm.apply(
        [
            attach("n1", "p1", 1.0),
            {"op": "prune", "node": "n2"},
            {"op": "update", "node": "n4", "fields": {"status": "trying"}},
        ]
    )
    styles = {}
    stack = [render_rich(wm)]
    while stack:
        t = stack.pop()
        styles[t.label.plain.split()[0]] = str(t.label.style)
        stack += t.children
    assert set(styles) == {n.id for n in wm.nodes()}
    assert "green" in styles["n1"] and "strike" in styles["n3"] and "yellow" in styles["n4"]


def test_svg_has_one_box_per_node(tmp_path):
    wm = sample()
    wm.apply([ins("n3", 'quotes " and <tags> & ampersands'), attach("n1", "p1", 0.5)])
    path = write_svg(wm, tmp_path / "wm.svg")
    root = ET.parse(path).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    groups = root.findall("s:g[@class='node']", ns)
    assert sorted(g.get("id") for g in groups) == sorted(n.id for n in wm.nodes())
    assert len(root.findall(".//s:rect", ns)) == len(wm)
    assert len(root.findall("s:line", ns)) == len(wm) - 1
    assert any("<tags> & ampersands" in (g.find("s:title", ns).text or "") for g in groups)


def test_dot_names_every_node_and_escapes():
    wm = sample()
    wm.apply([ins("n3", 'say "hi" \\ bye')])
    dot = to_dot(wm)
    assert dot.startswith("digraph worldmodel {") and dot.rstrip().endswith("}")
    for n in wm.nodes():
        assert f'"{n.id}" [label=' in dot
    assert '"n3" -> "n5";' in dot
    assert 'say \\"hi\\" \\\\ bye' in dot


def test_write_png_needs_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(render_mod.shutil, "which", lambda name: None)
    with pytest.raises(WorldModelError, match="install graphviz"):
        write_png(sample(), tmp_path / "wm.png")
