"""`ksearch skills ...` and `ksearch isa ...`: the skill library and the ISA corpus on the command line.

Thin, like the rest of the CLI: each command parses, calls one function of `ksearch.context`, prints.
Texts (skills, chapters, packets) go to stdout verbatim, so an agent can pipe them into its context;
`--json` gives the structured result. Errors are KsearchError subclasses printed on one line by
`ksearch.cli.main`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any

import typer

skills_app = typer.Typer(
    help="Skills: layered how-to files for agents (entry, harness, hardware, language, op).",
    no_args_is_help=True,
)
isa_app = typer.Typer(
    help="ISA corpus: page-addressable chapters, topics, packets under a token budget, rules.",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of text")]
Target = Annotated[str | None, typer.Option(help="target profile: b200, h100, h200, mi300x, mi355x")]


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _width() -> int:
    """Columns to fill: the terminal's, $COLUMNS, or 80 when piped (never under 40)."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def _hang(first: str, text: str, indent: int | None = None) -> str:
    """`first` then `text`, wrapped at word boundaries to the terminal width, continuation lines
    indented to where `text` starts (or by `indent`). Where that leaves under 30 columns, `text`
    goes under `first`, indented by 4. Words (ids, names) are never broken."""
    width = _width()
    pad = len(first) if indent is None else indent
    if len(first) + len(text) > width and width - pad < 30:
        first, pad = first.rstrip() + "\n    ", 4
    head, _, lead = first.rpartition("\n")
    wrapped = textwrap.fill(
        text,
        width,
        initial_indent=lead,
        subsequent_indent=" " * pad,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return (head + "\n" if head else "") + (wrapped or lead.rstrip())


def _json(data) -> None:
    def default(obj):
        if dataclasses.is_dataclass(obj):
            return dataclasses.asdict(obj)
        return str(obj)

    _write(json.dumps(data, indent=2, default=default))


# ---------------------------------------------------------------- skills


@skills_app.command("list")
def skills_list(as_json: AsJson = False) -> None:
    """Every skill with its layer, targets and body size in tokens."""
    from ksearch.context import list_skills, tokenizer_name

    skills = list_skills()
    rows: list[dict[str, Any]] = [
        {
            "name": s.name,
            "layer": s.meta.layer,
            "targets": s.meta.targets,
            "op_families": s.meta.op_families,
            "languages": s.meta.languages,
            "tokens": s.tokens,
            "description": s.meta.description,
        }
        for s in skills
    ]
    if as_json:
        return _json(rows)
    width = max(len(r["name"]) for r in rows)
    lines = [
        _hang(
            f"{r['name']:<{width}}  {r['layer']:<8}  {r['tokens']:>4} tok  ",
            f"{','.join(r['targets'])}: {r['description']}",
        )
        for r in rows
    ]
    lines.append(
        _hang("", f"({len(rows)} skills; tokens by {tokenizer_name()}; `ksearch skills show NAME`)", 1)
    )
    _write("\n".join(lines))


@skills_app.command("show")
def skills_show(
    name: Annotated[str, typer.Argument(help="skill name, or NAME/FILE.md for a reference file")],
) -> None:
    """Print a skill (or one of its reference files)."""
    from ksearch.context import show_skill

    _write(show_skill(name))


@skills_app.command("select")
def skills_select(
    task: Annotated[
        str, typer.Option(help="built-in task name, task path, or free text such as 'mxfp4 gemm'")
    ],
    target: Annotated[str, typer.Option(help="target profile: b200, h100, h200, mi300x, mi355x")],
    budget: Annotated[int, typer.Option(help="token budget for the selected skills' text")] = 4000,
    text: Annotated[
        bool, typer.Option("--text", help="print the selected skills' text instead of the ranking")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Rank the skills for a task on a target and keep what fits the budget."""
    from ksearch.context import select_skills

    sel = select_skills(task, target, budget, strict=True)
    if as_json:
        return _json(sel)
    if text:
        return _write(sel.text)
    t = sel.task
    head = (
        f"task {t.text!r}: op family {t.op_family or '?'}, languages {', '.join(t.languages)}"
        + (f", dtypes {', '.join(t.dtypes)}" if t.dtypes else "")
        + f"; target {sel.target}; budget {sel.budget}"
    )
    used = sum(p.tokens for p in sel.picked)
    lines = [_hang("", head, 4)]
    lines += [
        _hang(f"{i}. ", f"{p.name} ({p.layer}, {p.tokens} tok): {p.reason}")
        for i, p in enumerate(sel.picked, 1)
    ]
    lines += [_hang("   over budget: ", f"{p.name} ({p.tokens} tok): {p.reason}", 6) for p in sel.omitted]
    lines.append(_hang("", f"({used} of {sel.budget} tokens by {sel.tokenizer}; `--text` prints them)", 1))
    _write("\n".join(lines))


# ---------------------------------------------------------------- isa


@isa_app.command("list")
def isa_list(
    target: Target = None,
    topic: Annotated[str | None, typer.Option(help="only chapters of this topic")] = None,
    as_json: AsJson = False,
) -> None:
    """Chapters (id, targets, tokens, title), optionally for one target or topic."""
    from ksearch.context import load_corpus, load_topics
    from ksearch.context.corpus import manifest_entry
    from ksearch.context.packet import get_topic

    if topic is not None:
        topic, _ = get_topic(topic, load_topics())
    rows = [manifest_entry(c) for c in load_corpus().select(target, topic)]
    if as_json:
        return _json(rows)
    width = max((len(r["id"]) for r in rows), default=2)
    tw = max((len(",".join(r["target"])) for r in rows), default=1)
    lines = [
        _hang(f"{r['id']:<{width}}  {r['tokens']:>5} tok  {','.join(r['target']):<{tw}}  ", r["title"])
        for r in rows
    ]
    lines.append(f"({len(rows)} chapters; `ksearch isa show ID` or ID#section)")
    _write("\n".join(lines))


@isa_app.command("topics")
def isa_topics(as_json: AsJson = False) -> None:
    """Topics with their chapters and key terms (what `isa packet --topic` accepts)."""
    from ksearch.context import load_topics

    topics = load_topics()
    if as_json:
        return _json({k: v.model_dump() for k, v in topics.items()})
    _write(
        "\n".join(
            _hang(f"{k}: ", f"{v.title} — {', '.join(v.chapters)}", 4) for k, v in sorted(topics.items())
        )
    )


@isa_app.command("show")
def isa_show(
    chapter_id: Annotated[str, typer.Argument(metavar="ID", help="chapter id, or ID#section")],
) -> None:
    """Print one chapter or one section of it."""
    from ksearch.context import load_corpus

    _write(load_corpus().show(chapter_id))


@isa_app.command("search")
def isa_search(
    text: Annotated[str, typer.Argument(help="words to look for (mnemonics work: v_mfma_scale)")],
    target: Target = None,
    limit: Annotated[int, typer.Option(help="hits to print (a line counts the rest)")] = 10,
    as_json: AsJson = False,
) -> None:
    """Full-text search over chapter sections; prints ids to open with `isa show`.

    Without --target every target's sections are searched and ranked together; --target keeps that
    order and drops the other targets' sections, so it lists a subset of the unfiltered result."""
    from ksearch.context import ContextError, load_corpus

    if limit < 1:
        raise ContextError(f"--limit must be at least 1, got {limit}")
    corpus = load_corpus()
    hits = corpus.search(text, target, limit=None)
    shown, more = hits[:limit], len(hits) - limit
    if as_json:
        return _json(shown)
    if not hits:
        others = len(corpus.search(text, limit=None)) if target else 0
        where = (
            f"; {others} section{'s' if others > 1 else ''} of other targets match (drop --target)"
            if others
            else "; try fewer or other words, or `ksearch isa list`"
        )
        return _write(_hang("", f"no {target + ' ' if target else ''}section matches {text!r}{where}", 1))
    lines = []
    for h in shown:
        lines.append(_hang("", f"[{h.id}] {h.title}" + (f" — {h.heading}" if h.heading else ""), 2))
        if h.line:
            lines.append(_hang("    ", h.line))
    if more > 0:
        narrow = "" if target else ", or narrow with --target"
        lines.append(
            _hang(
                "",
                f"({more} more section{'s' if more > 1 else ''} match; --limit {len(hits)} lists all{narrow})",
                1,
            )
        )
    _write("\n".join(lines))


@isa_app.command("packet")
def isa_packet(
    topic: Annotated[str, typer.Option(help="topic from isa_corpus/topics.yaml (see `ksearch isa topics`)")],
    target: Target = None,
    budget: Annotated[int, typer.Option(help="token budget for the whole packet")] = 1500,
    as_json: AsJson = False,
) -> None:
    """The most relevant facts and chapters for a topic on a target, within the token budget."""
    from ksearch.context import build_packet

    packet = build_packet(topic, target, budget)
    _json(packet) if as_json else _write(packet.text)


@isa_app.command("rules")
def isa_rules(
    target: Annotated[str, typer.Argument(help="target profile name")], as_json: AsJson = False
) -> None:
    """A target's hard limits, and whether they agree with its profile and the audit (exit 1 if not)."""
    from ksearch.context import check_rules, load_rules

    rules = load_rules(target)
    problems = check_rules(target)
    if as_json:
        _json({"rules": rules.model_dump(), "mismatches": [str(p) for p in problems]})
    else:
        width = max(len(k) for k in rules.limits)
        lines = [f"{rules.target} ({rules.arch})"]
        for name, lim in rules.limits.items():
            tie = f"  = profile {lim.profile}" if lim.profile else ""
            lines.append(f"{name:<{width}}  {lim.value:g} {lim.unit}{tie}")
        lines.append(
            "\n".join(f"MISMATCH {p}" for p in problems)
            if problems
            else "agrees with the target profile and the audit"
        )
        _write("\n".join(lines))
    if problems:
        raise typer.Exit(1)


@isa_app.command("manifest")
def isa_manifest(
    check: Annotated[bool, typer.Option("--check", help="only report drift; exit 1 if stale")] = False,
) -> None:
    """Rewrite isa_corpus/manifest.json from the chapter files (or check that it is current)."""
    from ksearch.context import manifest_drift, write_manifest

    if check:
        drift = manifest_drift()
        _write("manifest is current" if not drift else "\n".join(drift))
        if drift:
            raise typer.Exit(1)
        return
    _write(f"wrote {write_manifest()}")


@isa_app.command("ingest")
def isa_ingest(
    amd_xml: Annotated[Path, typer.Option("--amd-xml", help="AMD machine-readable ISA XML (GPUOpen)")],
    out: Annotated[
        Path | None, typer.Option(help="corpus root to write (default isa_corpus/local, git-ignored)")
    ] = None,
    target: Annotated[
        list[str] | None, typer.Option(help="targets the chapters apply to (default from the architecture)")
    ] = None,
) -> None:
    """Turn AMD's ISA XML into per-encoding instruction chapters plus manifest entries."""
    from ksearch.context import ingest_amd_xml
    from ksearch.context.locate import check_target

    targets = [check_target(t) for t in target] if target else None
    report = ingest_amd_xml(amd_xml, out, targets)  # type: ignore[arg-type]
    _write(
        f"{report.architecture} ({report.family}, targets {', '.join(report.targets)}): "
        f"{report.instructions} instructions -> {len(report.chapters)} chapters in {report.out}\n"
        + "\n".join(f"  {c}" for c in report.chapters)
    )
