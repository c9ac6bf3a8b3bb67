"""Small markdown helpers shared by the skill and ISA-corpus loaders.

Skills and chapters are markdown files with a YAML front matter block; chapters are addressed by
`##` section as well as whole, and both kinds of file link to each other with `isa:ID` and
`skill:NAME` references. Parsing lives here once so that loaders, tests and the link walker agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ksearch.context.errors import ContextFileError
from ksearch.context.files import yaml_problem

_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n?", re.DOTALL)
_HEADING = re.compile(r"^##[ \t]+(.+?)[ \t]*$", re.MULTILINE)
# isa:cdna4/mfma-scale, isa:cdna4/mfma-scale#scale-operands, skill:op-gemm (not inside a longer word)
ISA_REF = re.compile(r"(?<![\w/])isa:([a-z0-9][a-z0-9_.\-/]*[a-z0-9](?:#[a-z0-9_\-]+)?)")
SKILL_REF = re.compile(r"(?<![\w/])skill:([a-z0-9][a-z0-9\-]*[a-z0-9](?:/[A-Za-z0-9_.\-]+)?)")
_MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str]:
    """(front matter mapping, body) of a markdown file; ContextFileError when the block is bad."""
    m = _FRONT.match(text)
    if not m:
        raise ContextFileError(f"{path}: no YAML front matter; start the file with a '---' block")
    try:
        data = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as exc:
        raise ContextFileError(
            f"{path}: front matter is not valid YAML ({yaml_problem(exc)}); fix the '---' block"
        ) from None
    if not isinstance(data, dict):
        raise ContextFileError(f"{path}: front matter must be a mapping of fields")
    return data, text[m.end() :].lstrip("\n")


def slugify(heading: str) -> str:
    """GitHub-style anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*~\[\]()]", "", heading.strip().lower())
    text = re.sub(r"[^a-z0-9_\s\-]", "", text)
    return re.sub(r"[\s\-]+", "-", text).strip("-")


@dataclass(frozen=True)
class Section:
    """One `##` section of a markdown body (the text before the first heading has slug '')."""

    slug: str
    heading: str
    text: str  # the heading line included


def sections(body: str) -> list[Section]:
    """The body cut at `##` headings, in order; a lead paragraph before them is its own section."""
    out: list[Section] = []
    marks = list(_HEADING.finditer(body))
    lead = body[: marks[0].start()] if marks else body
    if lead.strip():
        out.append(Section("", "", lead.rstrip() + "\n"))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(body)
        out.append(Section(slugify(m.group(1)), m.group(1).strip(), body[m.start() : end].rstrip() + "\n"))
    return out


def references(text: str) -> dict[str, list[str]]:
    """The `isa:`, `skill:` and relative markdown-file links in `text`."""
    files = [t for t in _MD_LINK.findall(text) if "://" not in t and not t.startswith("#")]
    return {"isa": ISA_REF.findall(text), "skill": SKILL_REF.findall(text), "file": files}
