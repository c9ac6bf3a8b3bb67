"""Plugins: compilers, proposers and task importers that other distributions add, through entry points.

A distribution adds a backend by declaring an entry point in one of three groups; the entry
point's name is the name users write, its value the object that implements the backend:

    [project.entry-points."ksearch.compilers"]   # a language: ksearch.compile.registry.Compiler
    mylang = "my_pkg.compiler:COMPILER"
    [project.entry-points."ksearch.proposers"]   # a proposer backend: ksearch.propose.settings.ProposerBackend
    myllm = "my_pkg.proposer:BACKEND"
    [project.entry-points."ksearch.importers"]   # a task format: ksearch.task.importers.Importer
    myformat = "my_pkg.importer:IMPORTER"

Names are listed without importing anything; a plugin is imported when its name is used (or when
every plugin of a group must be asked, as language detection does). A plugin that fails to import,
is not what its group expects, or takes a built-in name is left out with a `PluginWarning` naming
it and its distribution: a broken plugin never fails a command that does not use it.
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

COMPILERS = "ksearch.compilers"
PROPOSERS = "ksearch.proposers"
IMPORTERS = "ksearch.importers"


class PluginWarning(UserWarning):
    """A plugin was left out; the message names it, its distribution and why."""


@functools.cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    # Cached: scanning every installed distribution's metadata is the slow part. Imported here:
    # importlib.metadata costs a command line that asks no plugin tens of milliseconds.
    from importlib.metadata import entry_points

    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)  # two distributions with one name: the first on sys.path wins
    return found


def plugin_names(group: str, builtin: tuple[str, ...] = ()) -> list[str]:
    """The names installed plugins declare in `group` (none imported), less the built-in ones."""
    return sorted(name for name in _entry_points(group) if name not in builtin)


def load_plugin(group: str, name: str, expected: type, builtin: tuple[str, ...] = ()) -> object | None:
    """The object plugin `name` of `group` declares, if it is an instance of `expected`; None (with a
    PluginWarning) when there is no such plugin working."""
    ep = _entry_points(group).get(name)
    if ep is None:
        return None
    return _load(group, ep, expected, name in builtin)


@functools.cache
def _load(group: str, ep: EntryPoint, expected: type, shadows_builtin: bool) -> object | None:
    # Cached, so each plugin is imported, and each broken one reported, once per process.
    dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "an unknown distribution"
    where = f"ksearch plugin {ep.name!r} ({group} = {ep.value!r}, from {dist})"
    if shadows_builtin:
        warnings.warn(f"{where} is left out: {ep.name!r} is built in", PluginWarning, stacklevel=3)
        return None
    try:
        obj = ep.load()
    except Exception as e:  # whatever its import raises: the plugin is broken, not this command
        warnings.warn(
            f"{where} is left out: loading it raised {type(e).__name__}: {e}", PluginWarning, stacklevel=3
        )
        return None
    if not isinstance(obj, expected):
        warnings.warn(
            f"{where} is left out: it is a {type(obj).__name__}, not a {expected.__name__}",
            PluginWarning,
            stacklevel=3,
        )
        return None
    return obj
