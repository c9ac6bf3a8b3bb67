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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

from ksearch.context.errors import ContextFileError, UnknownChapterError
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

    def search(self, text: str, target: str | None = None, limit: int = 10) -> list[SearchHit]:
        """Sections ranked by SQLite FTS5 bm25: all words first; if nothing has all, any word."""
        import sqlite_utils  # only search needs it; keep the loaders' import light

        target = check_target(target)
        words = re.findall(r"[A-Za-z0-9_.]+", text)
        if not words:
            return []
        db = sqlite_utils.Database(memory=True)
        rows = [
            {
                "ref": f"{c.id}#{s.slug}" if s.slug else c.id,
                "title": c.title,
                "heading": s.heading,
                "body": s.text,
                "ids": c.id.replace("/", " "),
            }
            for c in self.select(target)
            for s in c.sections()
        ]
        if not rows:
            return []
        sections = db.table("sections")
        sections.insert_all(rows)
        sections.enable_fts(["title", "heading", "ids", "body"])
        quoted = ['"' + w.replace('"', "") + '"' for w in words]
        found: list[dict] = []
        for query in (" ".join(quoted), " OR ".join(quoted)):
            found = list(sections.search(query, limit=limit))
            if found:
                break
        lowered = [w.lower() for w in words]
        return [SearchHit(r["ref"], r["title"], r["heading"], _best_line(r["body"], lowered)) for r in found]


def _best_line(body: str, words: list[str]) -> str:
    lines = [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        return ""
    best = max(lines, key=lambda ln: sum(w in ln.lower() for w in words))
    return best if len(best) <= 160 else best[:157] + "..."


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
    meta, body = split_front_matter(path.read_text(encoding="utf-8"), path)
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
        return json.loads(path.read_text(encoding="utf-8"))
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
