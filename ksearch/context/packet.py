"""Topics and packets: the most relevant ISA facts and chapters for a topic that fit a token budget.

`isa_corpus/topics.yaml` maps each topic to its chapters (most relevant first), key terms and hard
facts (each naming its source and, where it is target-specific, its targets). A packet is what an
agent or the prompt builder (step 6) puts in context: the facts for the target, then whole chapters,
then single sections where a whole chapter does not fit, and last a list of the ids left out, each
openable with `ksearch isa show ID`. The whole text, header included, is counted with
`ksearch.context.tokens` and never exceeds the budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ksearch.context.corpus import Chapter, Corpus, load_corpus
from ksearch.context.errors import BudgetError, ContextFileError, UnknownTopicError
from ksearch.context.files import read_yaml
from ksearch.context.locate import ANY, check_target, corpus_dir, suggest
from ksearch.context.markdown import Section
from ksearch.context.tokens import JoinedTokens, count_tokens, tokenizer_name
from ksearch.errors import describe_validation_error

TOPICS = "topics.yaml"


class TopicFact(BaseModel):
    """One hard fact: short, sourced, optionally target-specific, pointing at its chapter."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    text: str = Field(min_length=1)
    source: str = Field(min_length=1)
    targets: list[str] = Field(default_factory=lambda: [ANY])
    chapter: str | None = None

    def applies_to(self, target: str | None) -> bool:
        return target is None or ANY in self.targets or target in self.targets


class Topic(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str = Field(min_length=1)
    chapters: list[str] = Field(min_length=1)
    key_terms: list[str] = Field(default_factory=list)
    facts: list[TopicFact] = Field(default_factory=list)


@dataclass(frozen=True)
class PacketItem:
    id: str
    kind: str  # "facts", "chapter" or "section"
    tokens: int


@dataclass(frozen=True)
class Packet:
    """A rendered packet and what went into it; `text` is what to hand an agent."""

    topic: str
    target: str | None
    budget: int
    tokens: int
    tokenizer: str
    included: list[PacketItem]
    omitted: list[str]
    text: str


def load_topics(root: Path | None = None) -> dict[str, Topic]:
    root = Path(root) if root is not None else corpus_dir()
    path = root / TOPICS
    data = read_yaml(path, "the ISA corpus needs a topics file")
    if not isinstance(data, dict):
        raise ContextFileError(f"{path} must map topic names to {{title, chapters, key_terms, facts}}")
    topics: dict[str, Topic] = {}
    for name, body in data.items():
        try:
            topics[str(name)] = Topic.model_validate(body)
        except ValidationError as exc:
            raise ContextFileError(f"{path}: topic {name!r}, {describe_validation_error(exc)}") from None
    return topics


def get_topic(name: str, topics: dict[str, Topic]) -> tuple[str, Topic]:
    """(key, topic) for a topic name as a user may write it (`MFMA-scale` is `mfma_scale`)."""
    key = name.strip().lower().replace("-", "_")
    if key not in topics:
        raise UnknownTopicError(
            f"unknown ISA topic {name!r}{suggest(key, list(topics))}; topics: {', '.join(sorted(topics))}"
        )
    return key, topics[key]


def _candidates(topic_name: str, topic: Topic, corpus: Corpus, target: str | None) -> list[str]:
    """Chapter ids for the topic on this target: the topic's own list first, then any chapter that
    declares the topic."""
    ids = [c for c in topic.chapters if corpus.get(c).applies_to(target)]
    ids += [c.id for c in corpus.select(target, topic_name) if c.id not in ids]
    return ids


def build_packet(
    topic_name: str,
    target: str | None = None,
    budget: int = 1500,
    corpus: Corpus | None = None,
    topics: dict[str, Topic] | None = None,
) -> Packet:
    """The packet for `topic_name` on `target` (None: every target) within `budget` tokens."""
    target = check_target(target)
    corpus = corpus or load_corpus()
    topics = topics if topics is not None else load_topics(corpus.roots[0])
    key, topic = get_topic(topic_name, topics)
    facts = [f for f in topic.facts if f.applies_to(target)]
    chapter_ids = _candidates(key, topic, corpus, target)

    on = f" on {target}" if target else ""
    header = (
        f"# ISA packet: {key}{on} — {topic.title}\n"
        f"budget {budget} tokens ({tokenizer_name()}); open any [id] with `ksearch isa show ID`\n"
    )
    fact_lines = [
        f"- {f.text} (source: {f.source})" + (f" [{f.chapter}]" if f.chapter else "") for f in facts
    ]
    if not fact_lines and not chapter_ids:
        header += (
            f"\nNothing in the corpus on {key} applies to {target}; `ksearch isa topics` lists the topics.\n"
        )

    # Blocks in priority order: facts one by one, then each chapter whole or, failing that, by section.
    chosen: list[tuple[str, str, str]] = []  # (id, kind, text)

    def parts(extra: list[tuple[str, str, str]], more: list[str]) -> list[str]:
        out = [header]
        lines = [t for _, kind, t in extra if kind == "fact"]
        if lines:
            out.append("## Facts\n" + "\n".join(lines) + "\n")
        out += [t for _, kind, t in extra if kind != "fact"]
        if more:
            out.append(
                "## More (not included)\n"
                + "\n".join(f"- [{i}] {corpus.get(i).title}" if "#" not in i else f"- [{i}]" for i in more)
                + "\n"
            )
        return out

    # Every part starts with "#", so each is encoded once however often the growing packet is re-counted
    count = JoinedTokens()

    def fits(extra: list[tuple[str, str, str]], more: list[str]) -> bool:
        return count(parts(extra, more)) <= budget

    pending = list(chapter_ids)
    if not fits([], pending):
        pending = []  # the more-list alone is too long: drop it rather than fail
        if not fits([], []):
            raise BudgetError(
                f"budget {budget} is too small for a packet header ({count([header])} tokens); ask for more"
            )
    for line in fact_lines:
        if fits(chosen + [("facts", "fact", line)], pending):
            chosen.append(("facts", "fact", line))
    for cid in chapter_ids:
        rest = [p for p in pending if p != cid]
        chapter = corpus.get(cid)
        whole = (cid, "chapter", f"## [{cid}] {chapter.title}\n{_demote(chapter.body)}")
        if fits(chosen + [whole], rest):
            chosen.append(whole)
            pending = rest
            continue
        for sec in _relevant_sections(chapter, topic.key_terms):
            sid = f"{cid}#{sec.slug}"
            body = sec.text.split("\n", 1)[1] if "\n" in sec.text else ""
            part = (sid, "section", f"## [{sid}] {chapter.title} — {sec.heading}\n{_demote(body)}")
            if fits(chosen + [part], pending):
                chosen.append(part)
    text = "\n".join(parts(chosen, pending))
    included = (
        [PacketItem("facts", "facts", count_tokens("\n".join(t for i, k, t in chosen if k == "fact")))]
        if any(k == "fact" for _, k, _ in chosen)
        else []
    )
    included += [PacketItem(i, k, count_tokens(t)) for i, k, t in chosen if k != "fact"]
    return Packet(key, target, budget, count_tokens(text), tokenizer_name(), included, pending, text)


def _demote(body: str) -> str:
    """A chapter's `##` headings become `###` under the packet's own `## [id]` heading."""
    return re.sub(r"^(#{2,5}) ", r"#\1 ", body.strip("\n"), flags=re.MULTILINE) + "\n"


def _relevant_sections(chapter: Chapter, key_terms: list[str]) -> list[Section]:
    """Sections to try when a whole chapter does not fit: those naming the topic's key terms, most
    terms first (a large ingested chapter holds hundreds of unrelated instructions); all of them, in
    order, when none names a key term."""
    secs = [s for s in chapter.sections() if s.slug]
    terms = [t.lower() for t in key_terms]
    scored = [(sum(t in s.text.lower() for t in terms), i, s) for i, s in enumerate(secs)]
    if not any(score for score, _, _ in scored):
        return secs
    return [s for score, _, s in sorted(scored, key=lambda x: (-x[0], x[1])) if score]
