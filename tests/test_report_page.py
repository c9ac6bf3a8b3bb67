"""What people see of a run: `ksearch tree` at 80 columns, the HTML report (in headless Chromium at a
1400 px wide window) and the curves of several runs compared on a common reference.

Runs: `tests/fixtures/mining_run`, the first rows of a real CPU quickstart run (world-model
strategy, two islands, four top kernels tied on a static estimate, one passing kernel with a `warn`
audit check, one rejected for a register spill), and a fresh 2-evaluation `--strategy random` run."""

import io
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from chromium import needs_chromium, probe_in_chromium
from rich.console import Console

from ksearch.analysis.curve import Curve, best_curve, compare, compare_runs, curve_of, plot_comparison
from ksearch.analysis.report import _packet_block, _tie_note, build_report, write_report
from ksearch.log import iter_rows
from ksearch.worldmodel import NodeKind, WorldModel, render_rich

FIXTURE = Path(__file__).parent / "fixtures" / "mining_run"
WARN_CHECK = "expected:ld.global*.v4.*|ld.global*.v2.*"  # the fixture's one warn-severity check


@pytest.fixture
def real_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    return run


def random_run(tmp_path: Path) -> Path:
    """A 2-evaluation random-strategy CPU run (seed 7 draws two quick row_block settings)."""
    from ksearch.search.run import start_run

    cfg = {
        "task": "rmsnorm",
        "dtype": "float16",
        "targets": ["h100"],
        "device": "cpu",
        "seed": 7,
        "budget": {"evaluations": 2, "wall_s": 600},
        "search": {"strategy": "random", "batch": 2},
        "eval": {"seeds": [0], "workloads": ["llama3_8b_decode_m1", "gpt_oss_m7_n2880"], "targets": "best"},
    }
    path = tmp_path / "random.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return start_run(path, log_dir=tmp_path / "runs").run_dir


def payloads(run: Path, kind: str) -> list[dict]:
    return [line.row["payload"] for line, _ in iter_rows(run) if line.row and line.row["kind"] == kind]


def tree_text(wm: WorldModel, run_dir: Path | None = None, soft_wrap: bool = False) -> str:
    """The tree as printed at 80 columns; soft_wrap is how the CLI prints into a pipe."""
    console = Console(width=80, record=True, file=io.StringIO(), soft_wrap=soft_wrap)
    console.print(render_rich(wm) if run_dir is None else render_rich(wm, run_dir=run_dir))
    return console.export_text()


# ---------------------------------------------------------------- ksearch tree


@pytest.mark.parametrize("soft_wrap", [False, True])
def test_tree_at_80_columns_cuts_titles_with_an_ellipsis_and_shows_knobs_and_islands(real_run, soft_wrap):
    wm = WorldModel.from_log(real_run)
    lines = tree_text(wm, soft_wrap=soft_wrap).splitlines()
    assert len(lines) == len(wm) and all(len(line) <= 80 for line in lines)
    cut = 0
    for node in wm.nodes():
        [line] = [x for x in lines if re.search(rf"(?<!\w){node.id} \[", x)]
        if node.title not in line:  # cut to the width: visibly, ending in "…" after a prefix of it
            assert line.endswith("…"), line
            # the cut falls in the title (after the knobs), which may be left with nothing but "…"
            shown = line[:-1].rpartition("— ")[2] if "— " in line else line[:-1].partition("] ")[2]
            assert node.title.startswith(shown), line
            cut += 1
        knobs = node.attrs.get("knobs", {})
        for k, v in knobs.items():  # compact: num_warps=4 shows as warps=4
            assert f"{k.removeprefix('num_')}={v}" in line, (k, line)
        if node.kind == NodeKind.action:
            assert f"island {node.attrs['island']}" in line, line
    assert cut >= 5  # the long titles of this run do not fit 80 columns
    # a refine child and its solution sibling differ by their knobs, not only by the title
    by_id = {m[0]: x for x in lines if (m := re.search(r"n\d+", x))}
    assert "warps=16" in by_id["n9"] and "warps=4" in by_id["n10"] and "BLOCK_N=1024" in by_id["n10"]


def test_tree_without_islands_names_none():
    wm = WorldModel.new("t")
    wm.apply(
        {"op": "insert", "node": "n0", "fields": {"title": "a", "attrs": {"island": 0, "knobs": {"B": 1}}}}
    )
    text = tree_text(wm)
    assert "n1 [action/open] B=1 — a" in text
    assert "island" not in text


def test_tree_of_a_random_run_says_what_the_run_did(tmp_path):
    run = random_run(tmp_path)
    wm = WorldModel.from_log(run)
    assert len(wm) == 1  # the random strategy logs only the root
    steps = payloads(run, "step")
    best = max((s for s in steps if s["score"] is not None), key=lambda s: s["score"])
    for soft_wrap in (False, True):
        text = tree_text(wm, run, soft_wrap)
        assert all(len(line) <= 80 and not line.endswith("…") for line in text.splitlines()), text
        assert "random strategy: 2 evaluations" in text
        assert f"best: {best['candidate']} score={best['score']:.4g}" in text and best["template"] in text
        # without the run directory it still says why there is nothing under the root
        bare = tree_text(wm, soft_wrap=soft_wrap)
        assert "--strategy random" in bare and not any(line.endswith("…") for line in bare.splitlines())


# ---------------------------------------------------------------- report HTML


def test_a_passing_kernels_warning_is_a_warning_and_a_failed_check_is_a_failure(real_run):
    from ksearch.evidence import EvidencePacket

    packets = [EvidencePacket.model_validate(p) for p in payloads(real_run, "attempt")]
    warned = next(p for p in packets if any(v.check == WARN_CHECK and not v.ok for v in p.audit.verdicts))
    assert warned.status.value == "pass"
    block = _packet_block(warned)
    assert "class='warn'>warnings: " + WARN_CHECK in block
    assert "class='fail'" not in block and "failed" not in block
    spilled = next(
        p for p in packets if any(v.check == "register_spill" and not v.ok for v in p.audit.verdicts)
    )
    assert "<span class='fail'>failed checks: register_spill" in _packet_block(spilled)


def test_report_notes_top_kernels_tied_on_a_static_estimate(real_run):
    steps = [s for s in payloads(real_run, "step") if s["score"] is not None]
    top = max(s["score"] for s in steps)
    tied = [s["candidate"] for s in steps if s["score"] == top]
    assert len(tied) == 4
    page = build_report(real_run)
    [note] = re.findall(r"<p class='note'>(.*?)</p>", page)
    assert ", ".join(tied) in note and "static estimate" in note and "cannot tell them apart" in note
    # a tie of measured scores, or no tie, gets no note
    rows = [("a", "t", "{}", 0.5, "reward:h100"), ("b", "t", "{}", 0.5, "reward:h100")]
    assert _tie_note(rows) == ""
    assert (
        _tie_note(
            [("a", "t", "{}", 0.5, "static-estimate:h100"), ("b", "t", "{}", 0.4, "static-estimate:h100")]
        )
        == ""
    )


def test_report_of_a_random_run_says_it_has_no_world_model(tmp_path):
    page = build_report(random_run(tmp_path))
    assert "this run used the random strategy: no world model" in page and "<svg" not in page


# ---------------------------------------------------------------- the report in Chromium

# Runs at load, before --dump-dom serializes the page: measures what a reader sees and writes it
# into the DOM as JSON.
_PROBE = """<script>
window.addEventListener('load', function () {
  var tree = document.querySelector('#world-model-tree');
  var svg = tree && tree.querySelector('svg');
  var red = function (c) { var m = c.match(/\\d+/g).map(Number); return m[0] >= 150 && m[1] < 100 && m[2] < 100; };
  var out = {width: window.innerWidth, texts: [], redFail: [], warnColor: null, note: null};
  if (svg) {
    out.texts = Array.from(svg.querySelectorAll('text')).map(function (t) { return t.getBoundingClientRect().height; });
    out.svgWidth = svg.getBoundingClientRect().width;
    out.svgWidthAttr = Number(svg.getAttribute('width'));
    out.titles = svg.querySelectorAll('g > title').length;
    out.overflowX = getComputedStyle(tree).overflowX;
    out.scrolls = tree.scrollWidth > tree.clientWidth;
  }
  var section = '';
  Array.from(document.body.querySelectorAll('*')).forEach(function (el) {
    if (el.tagName === 'H2') section = el.textContent;
    var own = Array.from(el.childNodes).filter(function (n) { return n.nodeType === 3; })
      .map(function (n) { return n.textContent; }).join('');
    var color = getComputedStyle(el).color;
    if (/fail/i.test(own) && red(color)) out.redFail.push({section: section, text: own.slice(0, 120)});
    if (out.warnColor === null && own.indexOf('ld.global*.v4') >= 0 && section === 'Top kernels' && !el.closest('details'))
      out.warnColor = color;  // the audit line, not the packet's JSON
    if (el.className === 'note') { var r = el.getBoundingClientRect(); out.note = [r.width, r.height]; }
  });
  var pre = document.createElement('pre'); pre.id = 'ksearch-probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""


@needs_chromium
def test_report_in_chromium_has_a_readable_tree_and_no_red_failure_on_a_passing_kernel(real_run, tmp_path):
    page = write_report(real_run, tmp_path / "report.html")
    got = probe_in_chromium(page, tmp_path, _PROBE)[0]
    assert got["width"] == 1400
    # the tree is inline SVG: its text is in the page, at least 10 px high, with a tooltip per node
    assert got["texts"], "the tree's text is not in the page (drawn as an <img>?)"
    assert min(got["texts"]) >= 10, sorted(got["texts"])[:5]
    assert got["titles"] == len(WorldModel.from_log(real_run))
    # at its natural size, in a box that scrolls sideways rather than shrinking it
    assert got["svgWidth"] == pytest.approx(got["svgWidthAttr"], abs=1)
    assert got["overflowX"] in ("auto", "scroll") and got["scrolls"]
    # every top kernel of this run passed: nothing red says "failed" there; its warning is shown, not red
    top = {s["packet_id"] for s in payloads(real_run, "step") if s["score"] is not None}
    assert {a["status"] for a in payloads(real_run, "attempt") if a["packet_id"] in top} == {"pass"}
    assert [r for r in got["redFail"] if r["section"] == "Top kernels"] == []
    assert got["warnColor"] is not None, "the warning is not shown"
    r, g, b = map(int, re.findall(r"\d+", got["warnColor"])[:3])
    assert not (r >= 150 and g < 100 and b < 100), got["warnColor"]
    # the tie note is on the page and visible
    assert got["note"] and got["note"][0] > 100 and got["note"][1] >= 10


# ---------------------------------------------------------------- several runs' curves


def test_compare_takes_90_percent_of_the_best_of_all_runs_as_the_reference(tmp_path):
    a = curve_of([(0.1, "s"), (None, None), (0.5, "s"), (0.95, "s"), (1.0, "s")])  # reaches 0.9 at 4
    b = curve_of([(0.2, "s"), (0.92, "s"), (0.3, "s")])  # reaches 0.9 at 2
    c = curve_of([(0.6, "s"), (0.89, "s")])  # 99% of its own best, short of the common reference
    d = curve_of([(None, None)] * 3)  # nothing passed
    cmp = compare([("a", a), ("b", b), ("c", c), ("d", d)])
    assert cmp.reference == pytest.approx(0.9)
    assert {r.name: r.evals_to_reference for r in cmp.runs} == {"a": 4, "b": 2, "c": None, "d": None}
    assert c.evals_to(0.9) == 2  # the per-run measure would wrongly say c got there
    assert {r.name: r.evals_to_top for r in cmp.runs} == {"a": 5, "b": None, "c": None, "d": None}
    assert cmp.comparable and cmp.bases == ["s"]
    mixed = compare([("a", a), ("x", curve_of([(0.3, "static-estimate:h100")]))])
    assert not mixed.comparable
    assert compare([("d", d)]).reference is None
    assert compare([]).runs == []


def test_compare_summarises_each_strategy_by_its_median_over_runs():
    curves = [
        ("wm0", curve_of([(0.95, "s"), (1.0, "s")])),  # 90% at 1, the top at 2
        ("wm1", curve_of([(0.5, "s"), (0.91, "s"), (0.92, "s")])),  # 90% at 2, never the top
        ("wm2", curve_of([(0.1, "s")] * 5 + [(0.9, "s")])),  # 90% at 6
        ("rnd0", curve_of([(0.2, "s"), (0.3, "s"), (0.99, "s")])),  # 90% at 3
        ("rnd1", curve_of([(None, None)] * 4)),  # nothing passed: never
    ]
    cmp = compare(curves, groups=["worldmodel"] * 3 + ["random"] * 2)
    wm, rnd = cmp.groups()
    assert (wm.group, wm.runs, wm.median_to_reference, wm.median_to_top) == ("worldmodel", 3, 2, None)
    assert wm.median_best == 0.92
    # one of two random runs never got there: the median of (3, never) is never
    assert (rnd.group, rnd.runs, rnd.median_to_reference, rnd.median_best) == ("random", 2, None, 0.99)
    with pytest.raises(ValueError):
        compare(curves, groups=["worldmodel"])  # one group per curve


def test_compare_runs_and_plot_them(real_run, tmp_path):
    other = tmp_path / "other" / real_run.name  # same name in another directory: named by its path
    shutil.copytree(real_run, other)
    cmp = compare_runs([real_run, other])
    best = best_curve(real_run)
    assert best.best is not None and cmp.reference == pytest.approx(0.9 * best.best)
    assert [r.name for r in cmp.runs] == [str(real_run), str(other)]
    assert all(r.evals_to_reference == best.evals_to(0.9) for r in cmp.runs)
    svg = plot_comparison(cmp, tmp_path / "curves.svg")
    root = ET.parse(svg).getroot()
    ids = {el.get("id") for el in root.iter()}
    assert {"curve-0", "curve-1", "reference"} <= ids
    assert str(real_run) in svg.read_text()  # legend text stays text
    png = plot_comparison(cmp, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(cmp.runs[0].curve, Curve)
