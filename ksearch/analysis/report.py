"""`ksearch report RUN_DIR`: one self-contained HTML file about a run.

Figures are inlined (matplotlib PNGs as data: URIs; the world model's SVG as markup in the page, at
its natural size in a sideways-scrolling box, so its text stays readable and its node tooltips
work), so the file can be mailed or attached to an issue: the best-so-far curve, the rejection
histogram, the accept rate per window (drift), the world-model tree; then the top kernels with
their packets (per target: status, speedup, SOL fraction, audit; a note when they tie on a static
estimate), speedups and SOL fractions per target, audit verdicts over all attempts, and the run's
cost. Everything comes from the log: the index for counts (audit verdicts
included), the history for the top kernels' packets (read at their indexed offsets), analysis.curve
for the curve, worldmodel.render for the tree.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from ksearch.analysis.curve import curve_of
from ksearch.errors import KsearchError, LogError
from ksearch.evidence import EvidencePacket
from ksearch.log.index import connect_readonly, read_evaluation_packets, run_start
from ksearch.log.rows import PacketId
from ksearch.log.rundir import read_blob
from ksearch.log.stats import stats_of
from ksearch.worldmodel import WorldModel
from ksearch.worldmodel.render import to_svg

REPORT = "report.html"
_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.pass{color:#080}.fail{color:#b00}.warn{color:#8a5a00}.muted{color:#777}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em;max-height:30em}
.flag{background:#fee;padding:.4em;border-left:4px solid #c00}
.note{background:#fff8e0;padding:.4em;border-left:4px solid #d90}
.tree{overflow:auto;border:1px solid #eee;max-height:40em}.tree svg{display:block;max-width:none}
"""


def _e(x: object) -> str:
    return html.escape("" if x is None else str(x))


def _num(x: float | None, fmt: str = ".4g") -> str:
    return "–" if x is None else format(x, fmt)


def _table(headers: list[str], rows: list[list], raw: bool = False) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(data: bytes, mime: str, alt: str) -> str:
    return (
        f'<figure><img alt="{_e(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}"></figure>'
    )


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise KsearchError("the report draws its figures with matplotlib: pip install matplotlib") from e
    matplotlib.use("Agg", force=True)  # no display; files only
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    fig.clf()
    return buf.getvalue()


# ---------------------------------------------------------------- figures


def curve_png(steps: list[tuple[float | None, str | None, bool]]) -> bytes:
    """Best score so far over evaluations (analysis.curve), with every candidate's score behind it;
    `steps` holds (score, score basis, passed) per evaluation, in order."""
    plt = _pyplot()
    c = curve_of((score, basis) for score, basis, _ in steps)
    step_scores = [(n, score, passed) for n, (score, _, passed) in enumerate(steps, 1)]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ok = [(n, s) for n, s, p in step_scores if s is not None]
    if ok:
        ax.scatter([n for n, _ in ok], [s for _, s in ok], s=12, color="#9ab", label="candidate score")
    bad = [n for n, s, p in step_scores if not p]
    if bad:
        ax.scatter(bad, [0.0] * len(bad), s=14, marker="x", color="#c33", label="rejected")
    if c.improvements:
        xs = [n for n, _ in c.improvements] + [c.evaluations]
        ys = [s for _, s in c.improvements] + [c.improvements[-1][1]]
        ax.step(xs, ys, where="post", color="#c60", linewidth=2, label="best so far")
    ax.set_xlabel("evaluation")
    ax.set_ylabel(f"score ({c.basis or 'none passed'})")
    ax.set_title(f"best so far: {_num(c.best)} after {c.evaluations} evaluations")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def histogram_png(rejections: dict[str, int], attempts: int) -> bytes:
    plt = _pyplot()
    items = sorted(rejections.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(8, max(1.6, 0.35 * len(items) + 0.9)))
    if items:
        ax.barh([k for k, _ in items], [v for _, v in items], color="#c55")
        for i, (_, v) in enumerate(items):
            ax.text(v, i, f" {v}", va="center", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no rejections", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("attempts")
    ax.set_title(f"rejections by failure class ({sum(rejections.values())} of {attempts} attempts)")
    return _png(fig)


def drift_png(drift: dict) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 2.8))
    wins = drift["windows"]
    xs = [w["start"] for w in wins]
    ax.plot(xs, [w["accept_rate"] for w in wins], marker="o", markersize=3, label="accept rate")
    hacks = sorted({c for w in wins for c in w["reward_hacks"]})
    for c in hacks:
        ax.plot(xs, [w["reward_hacks"].get(c, 0.0) for w in wins], linestyle="--", label=c)
    for ev in drift["events"]:
        ax.axvline(ev["start_attempt"], color="#c00", alpha=0.5)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"attempt (windows of {drift['window']})")
    ax.set_ylabel("share")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


# ---------------------------------------------------------------- data


def _packets_of(conn, run_dir: Path, packet_id: str | None) -> list[EvidencePacket]:
    """The packets of the evaluation `packet_id` belongs to: one per target."""
    if not packet_id:
        return []
    return read_evaluation_packets(conn, run_dir, PacketId.parse(packet_id).evaluation)


def _audit_summary(conn) -> tuple[list[list], Counter]:
    """Per check over every attempt: passed, failed (by severity); and unmeasured reasons. From the
    index's audit_checks totals and the attempts' unmeasured column, not a pass over the history."""
    checks: dict[str, Counter] = {}
    for name, outcome, n in conn.execute("SELECT name, outcome, n FROM audit_checks ORDER BY rowid"):
        checks.setdefault(name, Counter())[outcome] = n
    unmeasured = Counter(
        dict(
            conn.execute(
                "SELECT unmeasured, count(*) FROM attempts WHERE unmeasured IS NOT NULL "
                "GROUP BY unmeasured ORDER BY min(seq)"
            )
        )
    )
    rows = [
        [k, c.get("ok", 0), ", ".join(f"{n} {s}" for s, n in c.items() if s != "ok") or "0"]
        for k, c in sorted(
            checks.items(), key=lambda kv: (-(sum(kv[1].values()) - kv[1].get("ok", 0)), kv[0])
        )
    ]
    return rows, unmeasured


def _verdicts_html(verdicts: list) -> str:
    """Checks that did not pass, by severity: only "fail" rejects an attempt and shows red; a
    "warn" is a warning and an "info" a note, whatever the packet's status."""
    out = []
    for severity, label, css in (
        ("fail", "failed checks", "fail"),
        ("warn", "warnings", "warn"),
        ("info", "notes", "muted"),
    ):
        hit = [v for v in verdicts if not v.ok and v.severity == severity]
        if hit:
            text = "; ".join(f"{v.check}: {v.detail}" for v in hit)
            out.append(f"<span class='{css}'>{label}: {_e(text)}</span>")
    return "; ".join(out) if out else "<span class='pass'>every check passed</span>"


def _tie_note(tops: list) -> str:
    """A note on top kernels that share a score the static estimate gave them: the model ranks
    them equal, and only timing them on the target can tell them apart."""
    groups: list[list] = []
    for t in tops:  # (candidate, ..., score at 3, score basis at 4), best first
        if groups and math.isclose(t[3], groups[-1][0][3], rel_tol=1e-9) and t[4] == groups[-1][0][4]:
            groups[-1].append(t)
        else:
            groups.append([t])
    notes = [
        f"{_e(', '.join(t[0] for t in g))} tie at score {_num(g[0][3])}: a static estimate ({_e(g[0][4])}), "
        "which cannot tell them apart; time them on the target GPU to rank them."
        for g in groups
        if len(g) > 1 and (g[0][4] or "").startswith("static-estimate")
    ]
    return "".join(f"<p class='note'>{n}</p>" for n in notes)


def _tree_html(run_dir: Path, strategy: str) -> str:
    """The world model as inline SVG (readable text, hover tooltips), scrolling sideways when
    wider than the page; a note instead for a run without one."""
    try:
        wm = WorldModel.from_log(run_dir)
    except KsearchError as e:  # a damaged log, or one without wm_edit rows
        return f"<p class='muted'>no world model: {_e(e)}</p>"
    if len(wm) == 1 and strategy == "random":
        return "<p class='muted'>this run used the random strategy: no world model, only its root</p>"
    return f"<figure class='tree' id='world-model-tree'>{to_svg(wm)}</figure>"


def _packet_block(p: EvidencePacket) -> str:
    perf, audit, status = p.performance, p.audit, p.status.value
    failure = p.failure_class.value if p.failure_class else ""
    head = (
        f"<b>{_e(p.candidate.target)}</b>: <span class='{'pass' if status == 'pass' else 'fail'}'>"
        f"{_e(status)}</span> {_e(failure)} — {_e(p.message[:200])}"
    )
    parts = [f"<p>{head}</p>"]
    if perf:
        rows = [
            [w.workload, _num(w.median_us), _num(w.speedup, ".3g"), _num(w.sol_fraction, ".1%")]
            for w in perf.workloads
        ]
        parts.append(_table(["workload", "median µs", "speedup", "SOL fraction"], rows))
        parts.append(
            f"<p>speedup (geomean) {_num(perf.speedup_geomean, '.3g')}, SOL score "
            f"{_num(perf.sol_score, '.3g')}, reward {_num(p.reward)}</p>"
        )
    elif p.unmeasured:
        parts.append(
            f"<p class='muted'>not timed: {_e(p.unmeasured.reason.value)} ({_e(p.unmeasured.detail)})</p>"
        )
    parts.append(
        f"<p>audit: registers {_e(audit.registers)}, spills {_e(audit.spills)}, "
        f"smem {_e(audit.smem_bytes)} B, occupancy {_num(audit.occupancy, '.0%')}; "
        f"instruction families {_e(', '.join(audit.families_found) or 'none')}; "
        + _verdicts_html([*audit.verdicts, *audit.anti_hack])
        + "</p>"
    )
    parts.append(
        f"<details><summary>packet {_e(p.packet_id)}</summary><pre>"
        f"{_e(p.model_dump_json(indent=1)[:20000])}</pre></details>"
    )
    return "".join(parts)


# ---------------------------------------------------------------- the report


def build_report(run_dir: Path, *, top: int = 5) -> str:
    """The report's HTML text."""
    run_dir = Path(run_dir)
    conn = connect_readonly(run_dir)  # one index update and connection for the stats and the tables below
    try:
        stats = stats_of(conn, run_dir.name)
        start = run_start(conn)
        steps = [
            (score, basis, bool(passed))
            for score, basis, passed in conn.execute(
                "SELECT score, score_basis, passed FROM steps ORDER BY ordinal"
            )
        ]
        tops = conn.execute(
            "SELECT candidate, template, knobs, score, score_basis, packet_id, blob FROM steps "
            "WHERE score IS NOT NULL ORDER BY score DESC, ordinal LIMIT ?",
            [top],
        ).fetchall()
        kernels = [(t, _packets_of(conn, run_dir, t[5])) for t in tops]
        examples = dict(
            conn.execute("SELECT failure_class, min(message) FROM failures GROUP BY failure_class")
        )
        per_target = conn.execute(
            "SELECT target, count(*), sum(status = 'pass'), sum(speedup IS NOT NULL), max(speedup), max(sol_score), "
            "max(reward) FROM attempts GROUP BY target ORDER BY target"
        ).fetchall()
        audit_rows, unmeasured = _audit_summary(conn)
    finally:
        conn.close()

    title = f"ksearch report: {run_dir.name}"
    s = stats
    rate = "n/a" if s["pass_rate"] is None else f"{s['pass_rate']:.1%}"
    out = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style>"
        "</head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>task <b>{_e(start and start.task)}</b> {_e(start and start.dtype)}, targets "
        f"{_e(', '.join(start.targets) if start else '')} (primary {_e(start and start.primary)}), device "
        f"{_e(start and start.device)}. {s['attempts']} attempts ({s['search_evaluations']} search evaluations, "
        f"{s['final_audits']} final audits), pass rate {rate}, from {_e(s['first_ts'])} to "
        f"{_e(s['last_ts'])}. Generated {datetime.now(UTC).isoformat(timespec='seconds')}.</p>",
    ]

    out.append("<h2>Best score so far</h2>")
    out.append(_img(curve_png(steps), "image/png", "best-so-far curve"))
    bpt = [
        [t, k, _num(c["best"]), c["basis"], c["by"], c.get("evals_to_best"), c["evaluations"]]
        for t, curves in s["best_per_target"].items()
        for k, c in curves.items()
    ]
    if bpt:
        out.append(_table(["target", "measure", "best", "basis", "by", "reached at", "evaluations"], bpt))

    out.append("<h2>Rejections</h2>")
    out.append(_img(histogram_png(s["rejections"], s["attempts"]), "image/png", "rejection histogram"))
    if s["rejections"]:
        out.append(
            _table(
                ["failure class", "attempts", "example"],
                [[k, v, (examples.get(k) or "")[:200]] for k, v in s["rejections"].items()],
            )
        )
    d = s["drift"]
    if d["windows"]:
        out.append("<h3>Accept rate over the run</h3>")
        out.append(_img(drift_png(d), "image/png", "accept rate per window"))
        for ev in d["events"]:
            out.append(
                f"<p class='flag'>drift: {_e(ev['metric'])} went from {_num(ev['before'], '.1%')} to "
                f"{_num(ev['after'], '.1%')} at attempt {ev['start_attempt']} (z = {ev['z']})</p>"
            )
        if not d["events"]:
            out.append("<p class='muted'>no jump in the accept rate or a reward-hack class</p>")

    out.append("<h2>World model</h2>")
    strategy = start.config.get("search", {}).get("strategy", "") if start else ""
    out.append(_tree_html(run_dir, strategy))

    out.append("<h2>Top kernels</h2>")
    if not kernels:
        out.append("<p class='muted'>no candidate passed</p>")
    out.append(_tie_note(tops))
    for i, ((cand, template, knobs, score, basis, _packet_id, blob), packets) in enumerate(kernels, 1):
        out.append(
            f"<h3>{i}. {_e(cand)}: {_e(template)} — score {_num(score)} ({_e(basis)})</h3>"
            f"<p>knobs <code>{_e(knobs)}</code></p>"
        )
        for p in packets:
            out.append(_packet_block(p))
        if blob:
            try:
                src = read_blob(run_dir, blob).decode(errors="replace")
                out.append(f"<details><summary>source ({_e(blob)})</summary><pre>{_e(src)}</pre></details>")
            except LogError as e:
                out.append(f"<p class='fail'>{_e(e)}</p>")

    out.append("<h2>Speedups and SOL fractions per target</h2>")
    out.append(
        _table(
            ["target", "attempts", "passed", "timed", "best speedup", "best SOL score", "best reward"],
            [
                [
                    t,
                    n,
                    ok,
                    timed,
                    _num(sp, ".3g"),
                    _num(sol, ".3g"),
                    "unmeasured" if rw is None else _num(rw),  # untimed attempts have no reward, not 0
                ]
                for t, n, ok, timed, sp, sol, rw in per_target
            ],
        )
    )
    if unmeasured:
        out.append(
            "<p class='muted'>not timed: "
            + _e(", ".join(f"{k} ×{v}" for k, v in unmeasured.most_common()))
            + "</p>"
        )

    out.append("<h2>Audit verdicts (all attempts)</h2>")
    out.append(_table(["check", "passed", "failed"], audit_rows))

    out.append("<h2>Top strategies by improvement</h2>")
    out.append(
        _table(
            ["strategy", "attempts", "passed", "best", "new bests", "gain"],
            [
                [
                    t["strategy"],
                    t["attempts"],
                    t["passed"],
                    _num(t["best_score"]),
                    t["new_bests"],
                    _num(t["gain"]),
                ]
                for t in s["top_strategies"]
            ],
        )
    )

    c = s["cost"]
    out.append("<h2>Cost</h2>")
    out.append(
        _table(
            [
                "LLM $",
                "LLM calls (unpriced)",
                "prompt / completion tokens",
                "GPU s",
                "evaluation s",
                "compile s",
            ],
            [
                [
                    f"{c['llm_usd']:.4f}",
                    f"{c['llm_calls']} ({c['llm_unpriced_calls']})",
                    f"{c['prompt_tokens']} / {c['completion_tokens']}",
                    f"{c['gpu_s']:.1f}",
                    f"{c['eval_s']:.1f}",
                    f"{c['compile_s']:.1f}",
                ]
            ],
        )
    )
    out.append("</body></html>")
    return "\n".join(out)


def write_report(run_dir: Path, out: Path | None = None, *, top: int = 5) -> Path:
    """Write the report (default RUN_DIR/report.html); returns its path."""
    path = Path(out) if out is not None else Path(run_dir) / REPORT
    path.write_text(build_report(run_dir, top=top), encoding="utf-8")
    return path
