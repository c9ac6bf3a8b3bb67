"""The MCP resources: skills, ISA chapters and sections, task contracts, target profiles.

    skill://NAME                   a skill (what `ksearch skills show NAME` prints)
    skill://NAME/FILE.md           one of its reference files
    isa://FAMILY/NAME              an ISA chapter (`ksearch isa show ID`)
    isa://FAMILY/NAME#SECTION      one section of it (`ksearch isa show ID#SECTION`)
    task://NAME                    a task contract (`ksearch tasks show NAME --json`)
    target://NAME                  a target profile (`ksearch targets show NAME --json`)

Every one that exists when the server starts is listed; the same kinds are also URI templates, so
a chapter ingested later still reads, and an unknown name gets the CLI's `error:` line. Contents are
read when asked for, from the same loaders the CLI uses; only names reach them, never paths.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ksearch.mcp.sandbox import SandboxError

MARKDOWN = "text/markdown"
JSON = "application/json"


@dataclass(frozen=True)
class Entry:
    uri: str
    name: str
    description: str
    mime_type: str
    read: Callable[[], str]


def read_skill(ref: str) -> str:
    from ksearch.context import show_skill

    return show_skill(ref)


def read_isa(ref: str) -> str:
    from ksearch.context import load_corpus

    return load_corpus().show(ref)


def read_task(name: str) -> str:
    from ksearch.task import load_task
    from ksearch.task.describe import describe_task
    from ksearch.task.load import list_tasks, resolve_task_file

    if name not in list_tasks():
        if not Path(name).exists():
            resolve_task_file(name)  # raises the CLI's "unknown task ..." error
        raise SandboxError(f"task://{name}: name a built-in task ({', '.join(list_tasks())})")
    return json.dumps(describe_task(load_task(name)), indent=2, default=str)


def read_target(name: str) -> str:
    from ksearch.target import describe_target, load_target

    return json.dumps(describe_target(load_target(name)), indent=2, default=str)


def catalog() -> list[Entry]:
    """Every resource that exists now, in the order above."""
    from ksearch.context import list_skills, load_corpus
    from ksearch.target import list_targets
    from ksearch.task.load import list_tasks

    entries: list[Entry] = []
    for skill in list_skills():
        entries.append(
            Entry(
                f"skill://{skill.name}",
                f"skill {skill.name}",
                f"{skill.meta.layer} skill: {skill.meta.description}",
                MARKDOWN,
                _bind(read_skill, skill.name),
            )
        )
        for ref in skill.references():
            entries.append(
                Entry(
                    f"skill://{skill.name}/{ref.name}",
                    f"skill {skill.name}/{ref.name}",
                    f"reference file of skill {skill.name}",
                    MARKDOWN,
                    _bind(read_skill, f"{skill.name}/{ref.name}"),
                )
            )
    for chapter in load_corpus().select():
        entries.append(
            Entry(
                f"isa://{chapter.id}",
                f"isa {chapter.id}",
                f"{chapter.title} (targets: {', '.join(chapter.targets)})",
                MARKDOWN,
                _bind(read_isa, chapter.id),
            )
        )
        for section in chapter.sections():
            if section.slug:
                entries.append(
                    Entry(
                        f"isa://{chapter.id}#{section.slug}",
                        f"isa {chapter.id}#{section.slug}",
                        f"{chapter.title}: {section.heading}",
                        MARKDOWN,
                        _bind(read_isa, f"{chapter.id}#{section.slug}"),
                    )
                )
    for name in list_tasks():
        entries.append(
            Entry(f"task://{name}", f"task {name}", f"task contract {name}", JSON, _bind(read_task, name))
        )
    for name in list_targets():
        entries.append(
            Entry(
                f"target://{name}", f"target {name}", f"target profile {name}", JSON, _bind(read_target, name)
            )
        )
    return entries


def _bind(read: Callable[[str], str], ref: str) -> Callable[[], str]:
    return lambda: read(ref)
