"""Errors of the skills and ISA-corpus loaders: each a KsearchError whose message says what to do."""

from ksearch.errors import ConfigError, KsearchError


class ContextError(KsearchError):
    """A skill, chapter, topic or budget request that cannot be served."""


class UnknownSkillError(ContextError):
    """No skill (or skill file) of that name."""


class UnknownChapterError(ContextError):
    """No ISA chapter (or section) of that id."""


class UnknownTopicError(ContextError):
    """No topic of that name in isa_corpus/topics.yaml."""


class BudgetError(ContextError):
    """The token budget cannot hold even the smallest useful answer."""


class ContextFileError(ContextError, ConfigError):
    """A SKILL.md, chapter, topics.yaml, rules file or AMD ISA XML file is malformed or missing (a
    ContextError too, so whoever serves context, the prompt builder say, degrades instead of stopping)."""
