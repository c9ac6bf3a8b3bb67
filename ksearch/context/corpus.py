"""The ISA corpus: page-addressable markdown chapters with stable ids, a manifest, and search.

Layout of a corpus root (`isa_corpus/`, and `isa_corpus/local/` for what a user ingests)::

    chapters/<family>/<name>.md   one chapter; its id is the path without `.md` (cdna4/mfma-scale)
    manifest.json                 derived from the chapters (`ksearch isa manifest` rewrites it)

A chapter starts with YAML front matter (title, target, topics, source) and is cut into `##`
sections; `ID#section-slug` addresses one section, so an agent can ask for exactly the part it
needs. The chapter files are the single source: the manifest is generated from them and a test
fails when it is stale.
"""

from __future__ import annotations

import json
import re
import sqlite3
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

from ksearch.context.errors import ContextError, ContextFileError, UnknownChapterError
from ksearch.context.files import read_context_text
from ksearch.context.locate import ANY, check_target, corpus_dir, known_targets, local_corpus_dir, suggest
from ksearch.context.markdown import Section, sections, split_front_matter
from ksearch.context.tokens import count_tokens, tokenizer_name
from ksearch.errors import describe_validation_error

CHAPTERS = "chapters"
MANIFEST = "manifest.json"
_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*(/[a-z0-9][a-z0-9_.\-]*)+$")


@dataclass(frozen=True)
class Chapter:
    """One chapter. `targets` holds target names or '*' (every target)."""

    id: str
    title: str
    targets: tuple[str, ...]
    topics: tuple[str, ...]
    sources: tuple[str, ...]
    body: str
    path: Path

    def applies_to(self, target: str | None) -> bool:
        return target is None or ANY in self.targets or target in self.targets

    def sections(self) -> list[Section]:
        return sections(self.body)

    def section(self, slug: str) -> Section:
        for s in self.sections():
            if s.slug == slug:
                return s
        known = [s.slug for s in self.sections() if s.slug]
        raise UnknownChapterError(
            f"chapter {self.id!r} has no section {slug!r}{suggest(slug, known)}; sections: {', '.join(known)}"
        )

    def render(self, slug: str | None = None) -> str:
        """What `ksearch isa show` prints: a header naming the id and sources, then the text."""
        if slug:
            sec = self.section(slug)
            return f"# {self.title} — {sec.heading}\n[id: {self.id}#{slug}]\n\n{sec.text}"
        src = "; ".join(self.sources)
        return f"# {self.title}\n[id: {self.id}] targets: {', '.join(self.targets)} · sources: {src}\n\n{self.body}"


@dataclass(frozen=True)
class SearchHit:
    """One section matching a search: its address, where it sits, and the best matching line."""

    id: str
    title: str
    heading: str
    line: str


@dataclass
class Corpus:
    roots: list[Path]
    chapters: dict[str, Chapter] = field(default_factory=dict)

    def get(self, chapter_id: str) -> Chapter:
        key = chapter_id.strip().split("#", 1)[0].strip("/")
        if key.endswith(".md"):
            key = key[:-3]
        if key not in self.chapters:
            raise UnknownChapterError(
                f"unknown ISA chapter {chapter_id!r}{suggest(key, list(self.chapters))}; "
                "list them with `ksearch isa list` or search with `ksearch isa search TEXT`"
            )
        return self.chapters[key]

    def show(self, ref: str) -> str:
        """The text of a chapter (`ID`) or of one of its sections (`ID#slug`)."""
        chapter = self.get(ref)
        slug = ref.split("#", 1)[1].strip() if "#" in ref else None
        return chapter.render(slug)

    def exists(self, ref: str) -> bool:
        try:
            self.show(ref)
        except UnknownChapterError:
            return False
        return True

    def select(self, target: str | None = None, topic: str | None = None) -> list[Chapter]:
        target = check_target(target)
        return [
            c
            for c in sorted(self.chapters.values(), key=lambda c: c.id)
            if c.applies_to(target) and (topic is None or topic in c.topics)
        ]

    def search(self, text: str, target: str | None = None, limit: int | None = 10) -> list[SearchHit]:
        """Sections holding any of the words, those with more of the words first, then by SQLite
        FTS5 bm25; at most `limit` (None: all). FTS5's Porter stemmer joins singular and plural
        (`conflict` finds `conflicts`); a mnemonic such as `v_mfma_scale_f32` is one phrase of
        adjacent tokens, since FTS5 splits words at `_` and `.`.

        The ranking is computed over the whole corpus and `target` only drops the sections of other
        targets, so a filtered search lists a subset of the unfiltered one, in the same order.
        """
        target = check_target(target)
        if limit is not None and limit < 1:
            raise ContextError(f"limit must be a positive number of hits, got {limit}")
        phrases = [f'"{w}"' for w in dict.fromkeys(w.lower() for w in _WORD.findall(text))]
        if not phrases:
            return []
        rows = [
            (c, s)
            for c in sorted(self.chapters.values(), key=lambda c: c.id)
            for s in c.sections()
            if s.text.strip()
        ]
        db = sqlite3.connect(":memory:")
        try:
            db.execute(
                "CREATE VIRTUAL TABLE sections USING fts5(title, heading, ids, body, tokenize='porter unicode61')"
            )
            db.executemany(
                "INSERT INTO sections (rowid, title, heading, ids, body) VALUES (?, ?, ?, ?, ?)",
                [(i, c.title, s.heading, c.id, s.text) for i, (c, s) in enumerate(rows)],
            )
            query = " OR ".join(phrases)
            rank = dict(
                db.execute("SELECT rowid, bm25(sections) FROM sections WHERE sections MATCH ?", [query])
            )
            matched = dict.fromkeys(rank, 0)
            line_words: dict[int, Counter[int]] = {i: Counter() for i in rank}  # body line -> query words
            for p in phrases:
                for rowid, marked in db.execute(
                    "SELECT rowid, highlight(sections, 3, ?, '') FROM sections WHERE sections MATCH ?",
                    [_MARK, p],
                ):
                    matched[rowid] += 1
                    line_words[rowid].update(k for k, ln in enumerate(marked.splitlines()) if _MARK in ln)
        finally:
            db.close()
        order = sorted(rank, key=lambda i: (-matched[i], rank[i], i))
        hits = []
        for i in order:
            c, s = rows[i]
            if c.applies_to(target):
                ref = f"{c.id}#{s.slug}" if s.slug else c.id
                hits.append(SearchHit(ref, c.title, s.heading, _best_line(s.text, line_words[i])))
        return hits if limit is None else hits[:limit]


_WORD = re.compile(r"[A-Za-z0-9_.]+")  # a query word; `v_mfma_scale_f32` stays one (a phrase)
_MARK = "\x02"  # what FTS5's highlight() puts before each match in a body


def _best_line(body: str, words: Counter[int]) -> str:
    """The body line holding the most query words (`words`: line number -> how many; the first
    such line), cut at a word near 160 chars."""
    lines = [
        (k, ln.strip()) for k, ln in enumerate(body.splitlines()) if ln.strip() and not ln.startswith("#")
    ]
    if not lines:
        return ""
    best = max(lines, key=lambda kl: words[kl[0]])[1]
    return best if len(best) <= 160 else textwrap.shorten(best, 160, placeholder=" ...")


def corpus_roots(base: Path | None = None, include_local: bool = True) -> list[Path]:
    """The base corpus, then `<base>/local` when something was ingested there."""
    root = Path(base) if base is not None else corpus_dir()
    roots = [root]
    local = local_corpus_dir(root)
    if include_local and (local / CHAPTERS).is_dir():
        roots.append(local)
    return roots


def _as_list(value: object) -> object:
    """A single string stands for a one-element list; null for none."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(_as_list)]


class ChapterMeta(BaseModel):
    """The front matter of a chapter."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    target: StrList = Field(min_length=1, description="target names from configs/targets, or '*'")
    topics: StrList = Field(default_factory=list)
    source: StrList = Field(min_length=1, description="the public documents and sections it restates")


def load_chapter(path: Path, root: Path, targets: list[str]) -> Chapter:
    """Parse one chapter file; every problem is a one-line ContextFileError naming the file."""
    meta, body = split_front_matter(read_context_text(path), path)
    try:
        m = ChapterMeta.model_validate(meta)
    except ValidationError as exc:
        raise ContextFileError(f"{path}: front matter {describe_validation_error(exc)}") from None
    chapter_id = path.relative_to(root / CHAPTERS).with_suffix("").as_posix()
    if not _ID.match(chapter_id):
        raise ContextFileError(
            f"{path}: id {chapter_id!r} must be lower-case 'family/name' (letters, digits, . _ -)"
        )
    bad = [t for t in m.target if t != ANY and t not in targets]
    if bad:
        raise ContextFileError(
            f"{path}: 'target' must list target names from configs/targets "
            f"({', '.join(targets)}) or '*'; got {m.target}"
        )
    return Chapter(chapter_id, m.title, tuple(m.target), tuple(m.topics), tuple(m.source), body, path)


def load_corpus(base: Path | None = None, include_local: bool = True) -> Corpus:
    """Every chapter under the corpus roots; an id defined twice is an error."""
    roots = corpus_roots(base, include_local)
    if not (roots[0] / CHAPTERS).is_dir():
        raise ContextFileError(
            f"ISA corpus {roots[0]} has no {CHAPTERS}/ directory; "
            "set $KSEARCH_ISA_CORPUS or run from a source checkout"
        )
    targets = known_targets()
    corpus = Corpus(roots)
    for root in roots:
        for path in sorted((root / CHAPTERS).rglob("*.md")):
            chapter = load_chapter(path, root, targets)
            if chapter.id in corpus.chapters:
                raise ContextFileError(
                    f"{path}: chapter id {chapter.id!r} is already defined by "
                    f"{corpus.chapters[chapter.id].path}; rename one of them"
                )
            corpus.chapters[chapter.id] = chapter
    return corpus


# ---- manifest --------------------------------------------------------------------------------------


def manifest_entry(chapter: Chapter) -> dict:
    return {
        "id": chapter.id,
        "title": chapter.title,
        "target": list(chapter.targets),
        "topics": list(chapter.topics),
        "tokens": count_tokens(chapter.render()),
        "source": list(chapter.sources),
        "path": f"{chapter.id}.md",
    }  # the id is the path under chapters/


def build_manifest(root: Path | None = None) -> dict:
    """The manifest of one corpus root, from its chapter files (token counts with the current tokenizer)."""
    chapters = load_corpus(root, include_local=False).chapters
    return {
        "tokenizer": tokenizer_name(),
        "chapters": [manifest_entry(chapters[i]) for i in sorted(chapters)],
    }


def write_manifest(root: Path | None = None) -> Path:
    root = Path(root) if root is not None else corpus_dir()
    path = root / MANIFEST
    path.write_text(json.dumps(build_manifest(root), indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(root: Path | None = None) -> dict:
    root = Path(root) if root is not None else corpus_dir()
    path = root / MANIFEST
    try:
        return json.loads(read_context_text(path))
    except FileNotFoundError:
        raise ContextFileError(f"{path} does not exist; write it with `ksearch isa manifest`") from None
    except json.JSONDecodeError as exc:
        raise ContextFileError(
            f"{path} is not valid JSON ({exc.msg}); rewrite it with `ksearch isa manifest`"
        ) from None


def manifest_drift(root: Path | None = None) -> list[str]:
    """How the stored manifest differs from the chapters ([] when current). Token counts are only
    compared when the stored manifest was counted with the tokenizer in use now."""
    stored, built = read_manifest(root), build_manifest(root)
    same_tokenizer = stored.get("tokenizer") == built["tokenizer"]

    def norm(entries: list[dict]) -> dict[str, dict]:
        return {e["id"]: {k: v for k, v in e.items() if k != "tokens" or same_tokenizer} for e in entries}

    old, new = norm(stored.get("chapters", [])), norm(built["chapters"])
    problems = [f"{i}: missing from the manifest" for i in sorted(set(new) - set(old))]
    problems += [f"{i}: in the manifest but no chapter file" for i in sorted(set(old) - set(new))]
    problems += [f"{i}: manifest entry is stale" for i in sorted(set(old) & set(new)) if old[i] != new[i]]
    return problems
