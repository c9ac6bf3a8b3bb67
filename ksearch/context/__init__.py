"""Skills and the ISA corpus: what agents and the proposer load, under a token budget.

The functions below are the whole interface; the CLI (`ksearch skills`, `ksearch isa`) and the
proposer's prompt builder call the same ones, and each returns plain dataclasses or strings:

    list_skills() / get_skill(name) / show_skill("name" | "name/reference.md")
    select_skills(task, target, budget) -> Selection     hardware, op, language, harness, entry skills
    load_corpus() -> Corpus                               .get(id) .show(id | id#section) .select() .search()
    load_topics() / build_packet(topic, target, budget) -> Packet
    load_rules(target) / check_rules(target)              hard limits per target vs the profiles and the audit
    ingest_amd_xml(xml, out) -> IngestReport              AMD's machine-readable ISA XML -> chapters
    count_tokens(text) / fit_tokens(text, budget) / tokenizer_name()
"""

from ksearch.context.amd_xml import IngestReport, ingest_amd_xml, parse_amd_isa_xml
from ksearch.context.corpus import (
    Chapter,
    Corpus,
    SearchHit,
    build_manifest,
    load_corpus,
    manifest_drift,
    write_manifest,
)
from ksearch.context.errors import (
    BudgetError,
    ContextError,
    ContextFileError,
    UnknownChapterError,
    UnknownSkillError,
    UnknownTopicError,
)
from ksearch.context.packet import Packet, PacketItem, Topic, build_packet, load_topics
from ksearch.context.rules import Mismatch, Rules, check_rules, load_rules
from ksearch.context.skills import (
    SKILL_BODY_BUDGET,
    Pick,
    Selection,
    Skill,
    get_skill,
    list_skills,
    load_skills,
    select_skills,
    show_skill,
    task_profile,
)
from ksearch.context.tokens import count_tokens, fit_tokens, tokenizer_name

__all__ = [
    "BudgetError",
    "Chapter",
    "ContextError",
    "ContextFileError",
    "Corpus",
    "IngestReport",
    "Mismatch",
    "Packet",
    "PacketItem",
    "Pick",
    "Rules",
    "SKILL_BODY_BUDGET",
    "SearchHit",
    "Selection",
    "Skill",
    "Topic",
    "UnknownChapterError",
    "UnknownSkillError",
    "UnknownTopicError",
    "build_manifest",
    "build_packet",
    "check_rules",
    "count_tokens",
    "fit_tokens",
    "get_skill",
    "ingest_amd_xml",
    "list_skills",
    "load_corpus",
    "load_rules",
    "load_skills",
    "load_topics",
    "manifest_drift",
    "parse_amd_isa_xml",
    "select_skills",
    "show_skill",
    "task_profile",
    "tokenizer_name",
    "write_manifest",
]
