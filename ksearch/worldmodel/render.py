"""Views of a world model: budgeted text for prompts, a rich tree, DOT, and a dependency-free SVG."""

from __future__ import annotations

import heapq
import re
import shutil
import subprocess
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from rich.text import Text
from rich.tree import Tree

from ksearch.context.tokens import count_tokens, fit_lines, fit_tokens
from ksearch.log.history import read_rows
from ksearch.log.rows import RunResume, RunResumeRow, RunStart, RunStartRow, Step, StepRow
from ksearch.worldmodel.model import ROOT, Node, NodeKind, NodeStatus, WorldModel, WorldModelError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TITLE_CHARS = 60  # a prompt line stays one short line however long a proposer's title is


def _clean(text: str, limit: int) -> str:
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(node_id: str) -> int:
    return int(node_id[1:])


def _tag(node: Node) -> str:
    if node.kind == NodeKind.action or (node.kind == NodeKind.decision and node.status == NodeStatus.pruned):
        return f"{node.kind.value}/{node.status.value}"
    return node.kind.value


def _preorder(wm: WorldModel, hidden: AbstractSet[str] = frozenset()) -> Iterator[tuple[Node, int]]:
    """Visible nodes depth first, children in creation order; iterative, as refine chains get deep."""
    stack = [(wm.root, 0)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        kids = [k for k in wm.children(node.id) if k.id not in hidden]
        stack.extend((k, depth + 1) for k in reversed(kids))


# ---- text for prompts ----------------------------------------------------------------------------


def _text_line(node: Node, depth: int, focus: str | None) -> str:
    head = f"{'  ' * depth}{node.id} [{_tag(node)}] {_clean(node.title, TITLE_CHARS)}"
    if node.kind == NodeKind.solution:
        stats = [
            f"score={node.score:.4g}" if node.score is not None else "score=none",
            f"packet={node.packet_id}",
        ]
    elif node.kind == NodeKind.root:
        stats = []
    else:
        stats = [f"p={node.priority:.2f}", f"d={node.difficulty}"]
        if node.best_score is not None:
            stats.append(f"best={node.best_score:.4g}")
        if node.attempts:
            stats.append(f"tries={node.attempts}")
    line = head + (f" ({' '.join(stats)})" if stats else "")
    return line + ("  <- focus" if node.id == focus else "")


def _render_hidden(wm: WorldModel, hidden: AbstractSet[str], focus: str | None) -> str:
    """Lines of the visible nodes; each parent's hidden children become one "(k more nodes)" line
    after its visible ones."""
    lines: list[str] = []
    stack: list[tuple[Node | str, int]] = [(wm.root, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            lines.append(item)
            continue
        lines.append(_text_line(item, depth, focus))
        kids = wm.children(item.id)
        gone = [n for k in kids if k.id in hidden for n in (k, *wm.descendants(k.id))]
        if gone:
            pruned = sum(n.status == NodeStatus.pruned for n in gone)
            note = f", {pruned} pruned" if pruned else ""
            more = f"{len(gone)} more node" + ("s" if len(gone) > 1 else "")
            stack.append((f"{'  ' * (depth + 1)}({more}{note})", depth + 1))
        stack.extend((k, depth + 1) for k in reversed(kids) if k.id not in hidden)
    return "\n".join(lines)


def _hide_order(wm: WorldModel, keep: set[str]) -> list[str]:
    """The order in which nodes are folded away: always a leaf of what is still shown; pruned
    subtrees first, then the deepest, lowest-priority, newest nodes."""
    in_pruned = {n.id for n in wm.nodes() if any(u.status == NodeStatus.pruned for u in wm.path_to(n.id))}
    depth = {n.id: d for n, d in _preorder(wm)}
    left = {n.id: len(wm.children(n.id)) for n in wm.nodes()}

    def key(n: Node) -> tuple:
        return (n.id not in in_pruned, -depth[n.id], n.priority, -_num(n.id))

    heap: list[tuple[tuple, str]] = [
        (key(n), n.id) for n in wm.nodes() if left[n.id] == 0 and n.id not in keep
    ]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        _, node_id = heapq.heappop(heap)
        order.append(node_id)
        parent = wm.node(node_id).parent
        if parent is None:  # the root: nothing above it to fold
            continue
        left[parent] -= 1
        if left[parent] == 0 and parent not in keep:
            heapq.heappush(heap, (key(wm.node(parent)), parent))
    return order


def render_text(wm: WorldModel, budget_tokens: int = 800, focus: str | None = None) -> str:
    """The tree as indented lines, at most `budget_tokens` tokens (ksearch.context.tokens).

    The path root -> focus and the focus's children are always shown (budget permitting); the
    rest is folded, pruned subtrees first, into "(k more nodes)" lines under their parents.
    """
    if budget_tokens <= 0:
        return ""
    keep = {ROOT}
    if focus is not None:
        keep |= {n.id for n in wm.path_to(focus)} | {k.id for k in wm.children(focus)}
    order = _hide_order(wm, keep)
    memo: dict[int, str] = {}

    def text(k: int) -> str:
        if k not in memo:
            memo[k] = _render_hidden(wm, set(order[:k]), focus)
        return memo[k]

    def fits(k: int) -> bool:
        return count_tokens(text(k)) <= budget_tokens

    if fits(0):
        return text(0)
    # Gallop to a fitting fold count, then bisect for the smallest; only verified counts are returned.
    lo, hi = 0, 1
    while hi < len(order) and not fits(hi):
        lo, hi = hi, min(2 * hi, len(order))
    if fits(hi):
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(mid) else (mid, hi)
        return text(hi)
    return _truncate(text(len(order)), budget_tokens)


def _truncate(text: str, budget: int) -> str:
    """Last resort when even the kept path does not fit: drop the summaries, then lines from the
    end (the focus's children before the path to it), then characters."""
    lines = [line for line in text.split("\n") if not line.lstrip().startswith("(")]
    return fit_tokens("\n".join(lines[: max(1, fit_lines(lines, budget))]), budget)


# ---- rich ----------------------------------------------------------------------------------------

STYLES = {
    NodeStatus.solved: "green",
    NodeStatus.pruned: "dim strike",
    NodeStatus.open: "",
    NodeStatus.trying: "yellow",
    NodeStatus.too_hard: "red",
}


def _style(node: Node) -> str:
    if node.kind == NodeKind.root:
        return "bold"
    if node.kind == NodeKind.solution:
        return "bold green"
    if node.kind == NodeKind.decision:
        return "dim strike" if node.status == NodeStatus.pruned else "cyan"
    return STYLES[node.status]


def knobs_text(attrs: dict) -> str:
    """A node's knobs as `BLOCK_N=1024 warps=4`: what tells a refine child from its siblings."""
    knobs = attrs.get("knobs")
    if not isinstance(knobs, dict):
        return ""
    return " ".join(f"{k.removeprefix('num_')}={v}" for k, v in knobs.items())


def _islands(wm: WorldModel) -> bool:
    """Whether the tree is split into islands: more than one island number among its nodes."""
    return len({n.attrs["island"] for n in wm.nodes() if "island" in n.attrs}) > 1


def _rich_label(node: Node, islands: bool) -> Text:
    # One line per node; the title goes last, so a narrow terminal cuts it with an ellipsis and
    # keeps the id, status, island and knobs.
    tag = _tag(node)
    if islands and "island" in node.attrs:
        tag += f", island {node.attrs['island']}"
    parts = [f"{node.id} [{tag}]"]
    if node.score is not None:
        parts.append(f"score={node.score:.4g}")
    knobs = knobs_text(node.attrs)
    if knobs:
        parts.append(knobs)
    parts.append(("— " if len(parts) > 1 else "") + _clean(node.title, TITLE_CHARS))
    return Text(" ".join(parts), style=_style(node), no_wrap=True, overflow="ellipsis")


def _note(text: str, style: str) -> Text:
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _bare_root_note(tree: Tree, run_dir: Path | None) -> None:
    """What to show under a lone root: a random-strategy run keeps no world model (only its root
    is logged), so its evaluations and best come from the step rows. Short lines, as a piped
    console (soft wrap) would crop a wrapped one without a mark."""
    if run_dir is None:
        tree.add(_note("no strategies: the tree has only its root", "yellow"))
        tree.add(_note("(a --strategy random run keeps none, or the run stopped before its plan)", "yellow"))
        return
    strategy, steps = "worldmodel", []
    for row in read_rows(Path(run_dir), RunStart.KIND, RunResume.KIND, Step.KIND):
        if isinstance(row, (RunStartRow, RunResumeRow)):  # a resume's config is the one in force
            strategy = row.payload.config.get("search", {}).get("strategy", strategy)
        elif isinstance(row, StepRow):
            steps.append(row.payload)
    passed = sum(s.passed for s in steps)
    if strategy == "random":
        head = f"random strategy: {len(steps)} evaluations ({passed} passed), no world model"
    else:
        head = f"no strategies: the run stopped before its plan ({len(steps)} evaluations)"
    tree.add(_note(head, "yellow"))
    scored = [s for s in steps if s.score is not None]
    if not scored:
        tree.add(_note("no candidate passed", "red"))
        return
    best = max(scored, key=lambda s: s.score or 0.0)  # higher is better; the first of equals
    line = tree.add(
        _note(f"best: {best.candidate} score={best.score:.4g} ({best.score_basis})", "bold green")
    )
    line.add(_note(f"{best.template} {knobs_text({'knobs': best.knobs})}".rstrip(), ""))


def render_rich(wm: WorldModel, run_dir: Path | None = None) -> Tree:
    """The tree for a terminal: one line per node (id, status, island when there are several,
    knobs, then the title, cut with "…" to the width). A tree with only its root (a random-strategy
    run) gets a note instead, with the run's evaluations and best when `run_dir` is given."""
    islands = _islands(wm)
    tree = Tree(_rich_label(wm.root, islands))
    branches = {ROOT: tree}
    for node, _ in _preorder(wm):
        if node.parent is not None:
            branches[node.id] = branches[node.parent].add(_rich_label(node, islands))
    if len(wm) == 1:
        _bare_root_note(tree, run_dir)
    return tree


# ---- DOT and SVG ---------------------------------------------------------------------------------

FILL = {
    NodeStatus.open: "#ffffff",
    NodeStatus.trying: "#fff3b0",
    NodeStatus.solved: "#c8f7c5",
    NodeStatus.too_hard: "#f8c0c0",
    NodeStatus.pruned: "#e6e6e6",
}


def _fill(node: Node) -> str:
    if node.kind == NodeKind.root:
        return "#d6d6ff"
    if node.kind == NodeKind.solution:
        return "#8fdc8f"
    if node.kind == NodeKind.decision and node.status != NodeStatus.pruned:
        return "#dbe8ff"
    return FILL[node.status]


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(wm: WorldModel) -> str:
    lines = [
        "digraph worldmodel {",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    for node, _ in _preorder(wm):
        label = f"{node.id} [{_tag(node)}]\n{_clean(node.title, TITLE_CHARS)}"
        if node.score is not None:
            label += f"\nscore={node.score:.4g}"
        lines.append(f"  {_dot_str(node.id)} [label={_dot_str(label)}, fillcolor={_dot_str(_fill(node))}];")
    for node, _ in _preorder(wm):
        if node.parent is not None:
            lines.append(f"  {_dot_str(node.parent)} -> {_dot_str(node.id)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 180, 42, 16, 48, 12


def _layout(wm: WorldModel) -> dict[str, tuple[float, int]]:
    """Tidy top-down layout: leaves take consecutive slots in depth-first order, a parent sits
    midway between its first and last child; y is the depth."""
    order = list(_preorder(wm))
    pos: dict[str, tuple[float, int]] = {}
    slot = 0
    for node, depth in order:
        if not wm.children(node.id):
            pos[node.id] = (float(slot), depth)
            slot += 1
    for node, depth in reversed(order):  # children before their parents
        kids = wm.children(node.id)
        if kids:
            pos[node.id] = ((pos[kids[0].id][0] + pos[kids[-1].id][0]) / 2, depth)
    return pos


def to_svg(wm: WorldModel) -> str:
    pos = _layout(wm)
    width = MARGIN * 2 + (max(x for x, _ in pos.values()) + 1) * (BOX_W + GAP_X) - GAP_X
    height = MARGIN * 2 + (max(d for _, d in pos.values()) + 1) * (BOX_H + GAP_Y) - GAP_Y

    def corner(node_id: str) -> tuple[float, float]:
        x, d = pos[node_id]
        return MARGIN + x * (BOX_W + GAP_X), MARGIN + d * (BOX_H + GAP_Y)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="11">'
    ]
    for node in wm.nodes():  # edges first, so boxes cover their ends
        if node.parent is not None:
            (px, py), (cx, cy) = corner(node.parent), corner(node.id)
            out.append(
                f'<line class="edge" x1="{px + BOX_W / 2:.1f}" y1="{py + BOX_H:.1f}" '
                f'x2="{cx + BOX_W / 2:.1f}" y2="{cy:.1f}" stroke="#888"/>'
            )
    for node in wm.nodes():
        x, y = corner(node.id)
        pruned = node.status == NodeStatus.pruned and node.kind != NodeKind.solution
        look = ' stroke-dasharray="4 3" opacity="0.6"' if pruned else ""
        deco = ' text-decoration="line-through"' if pruned else ""
        score = f" {node.score:.4g}" if node.score is not None else ""
        tip = "\n".join(filter(None, [_clean(node.title, 500), knobs_text(node.attrs)]))
        out += [
            f'<g class="node" id={quoteattr(node.id)}>',
            f"<title>{escape(tip)}</title>",
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="6" '
            f'fill="{_fill(node)}" stroke="#444"{look}/>',
            f'<text x="{x + 6:.1f}" y="{y + 16:.1f}" font-weight="bold">{escape(node.id)} {escape(_tag(node))}'
            f"{escape(score)}</text>",
            f'<text x="{x + 6:.1f}" y="{y + 32:.1f}"{deco}>{escape(_clean(node.title, 28))}</text>',
            "</g>",
        ]
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_svg(wm: WorldModel, path: Path) -> Path:
    path = Path(path)
    path.write_text(to_svg(wm), encoding="utf-8")
    return path


def write_png(wm: WorldModel, path: Path) -> Path:
    """PNG through graphviz's `dot`, which must be on PATH (write_svg needs nothing)."""
    dot = shutil.which("dot")
    if dot is None:
        raise WorldModelError(
            "write_png needs the graphviz `dot` program: install graphviz "
            "(apt-get install graphviz), or use write_svg, which needs nothing"
        )
    path = Path(path)
    done = subprocess.run([dot, "-Tpng", "-o", str(path)], input=to_dot(wm), text=True, capture_output=True)
    if done.returncode != 0:
        raise WorldModelError(f"dot failed ({done.returncode}): {done.stderr.strip()[:500]}")
    return path
