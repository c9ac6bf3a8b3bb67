"""Proposer backends: who proposes the candidates, by the name a run config or `--proposer` gives.

offline, replay, openai, anthropic, openai-compatible and dspy are built in; a plugin adds one as a
`ProposerBackend` in the `ksearch.proposers` entry-point group, under its name (see
`ksearch.plugins`). A backend either hands an LLM transport (`transport`: the proposer block ->
an object with `model`, `free` and `complete(prompt) -> Reply`, see `ksearch.propose.backends`) to
the LLM proposer, which prompts, parses, retries and pays, or makes a whole proposer (`make`, the
protocol of `ksearch.propose.base`). A transport's `preflight` checks, when the proposer is made and
before the run starts, what would otherwise fail every call: its SDK, its key, its endpoint. The
config's validation, the spec parser, `make_proposer` and the command line's help all read this
table; no other code names a backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ksearch.errors import ConfigError
from ksearch.plugins import PROPOSERS, load_plugin, plugin_names

if TYPE_CHECKING:
    from ksearch.propose.backends import Backend
    from ksearch.propose.base import Proposer
    from ksearch.propose.settings import ProposerConfig
    from ksearch.task import Task

# (proposer block, task, dtype, targets with the primary first, run directory, LLM dollar limit)
ProposerFactory = Callable[["ProposerConfig", "Task", str, list[str], Path, float], "Proposer"]


@dataclass(frozen=True)
class ProposerBackend:
    name: str  # the block's `backend:` and the spec's first word
    spec: str  # how --proposer writes it, e.g. "openai:MODEL"
    transport: Callable[[ProposerConfig], Backend] | None = None  # an LLM the LLM proposer drives
    make: ProposerFactory | None = None  # or a whole proposer
    needs_model: bool = False  # the spec is NAME:MODEL and the block needs `model`
    url_in_spec: bool = False  # NAME:MODEL@URL also sets base_url
    check: Callable[[ProposerConfig], str | None] | None = None  # what else the block lacks, if anything
    # ConfigError unless the transport can work: SDK installed, key set, endpoint reachable (one TCP
    # connection). Run once when the proposer is made, before the SDK is imported; no tokens spent.
    preflight: Callable[[ProposerConfig], None] | None = None

    def __post_init__(self) -> None:
        if (self.transport is None) == (self.make is None):
            raise ValueError(f"proposer backend {self.name!r} needs exactly one of transport and make")


def _offline(
    cfg: ProposerConfig, task: Task, dtype: str, targets: list[str], run_dir: Path, usd_limit: float
) -> Proposer:
    from ksearch.propose.offline import OfflineProposer
    from ksearch.target import load_target

    # the templates searched for the primary target's backend (targets[0]): no AMD-only launch options on CUDA
    return OfflineProposer(task, load_target(targets[0]).triton.backend if targets else None)


# The transports import their SDKs (and the SDKs' modules) only when a run uses them.
def _openai(cfg: ProposerConfig) -> Backend:
    from ksearch.propose.backends import OpenAIBackend

    return OpenAIBackend(cfg)


def _anthropic(cfg: ProposerConfig) -> Backend:
    from ksearch.propose.backends import AnthropicBackend

    return AnthropicBackend(cfg)


def _dspy(cfg: ProposerConfig) -> Backend:
    from ksearch.propose.backends import DSPyBackend

    return DSPyBackend(cfg)


def _openai_preflight(cfg: ProposerConfig) -> None:
    from ksearch.propose.backends import OpenAIBackend

    OpenAIBackend.preflight(cfg)


def _anthropic_preflight(cfg: ProposerConfig) -> None:
    from ksearch.propose.backends import AnthropicBackend

    AnthropicBackend.preflight(cfg)


def _dspy_preflight(cfg: ProposerConfig) -> None:
    from ksearch.propose.backends import DSPyBackend

    DSPyBackend.preflight(cfg)


def _replay(cfg: ProposerConfig) -> Backend:
    from ksearch.propose.backends import ReplayBackend

    return ReplayBackend(cfg)


def _needs_url(cfg: ProposerConfig) -> str | None:
    if cfg.base_url:
        return None
    return (
        "backend openai-compatible needs base_url (openai-compatible:MODEL@URL, e.g. "
        "openai-compatible:qwen2.5-coder@http://localhost:8000/v1)"
    )


def _needs_provider(cfg: ProposerConfig) -> str | None:
    if "/" in (cfg.model or ""):
        return None
    return "backend dspy needs model PROVIDER/MODEL, as litellm names it (dspy:openai/gpt-5-mini)"


def _needs_run(cfg: ProposerConfig) -> str | None:
    if cfg.replay_from:
        return None
    return "backend replay needs replay_from, the run directory to replay (--from RUN_DIR)"


BUILTIN = (
    ProposerBackend("offline", "offline", make=_offline),
    ProposerBackend("replay", "replay", transport=_replay, check=_needs_run),
    ProposerBackend(
        "openai", "openai:MODEL", transport=_openai, needs_model=True, preflight=_openai_preflight
    ),
    ProposerBackend(
        "anthropic", "anthropic:MODEL", transport=_anthropic, needs_model=True, preflight=_anthropic_preflight
    ),
    ProposerBackend(
        "openai-compatible",
        "openai-compatible:MODEL@URL",
        transport=_openai,
        needs_model=True,
        url_in_spec=True,
        check=_needs_url,
        preflight=_openai_preflight,
    ),
    ProposerBackend(
        "dspy",
        "dspy:PROVIDER/MODEL",
        transport=_dspy,
        needs_model=True,
        check=_needs_provider,
        preflight=_dspy_preflight,
    ),
)
BUILTIN_NAMES = tuple(b.name for b in BUILTIN)
SPEC_HELP = " | ".join(b.spec for b in BUILTIN)  # the built-in ones: what the command line's help shows


def spec_help() -> str:
    """Every spec --proposer takes: the built-in ones, then installed plugins' names (none imported)."""
    return SPEC_HELP + "".join(f" | {name} (plugin)" for name in plugin_names(PROPOSERS, BUILTIN_NAMES))


def preflight(cfg: ProposerConfig) -> None:
    """The block's transport checks (SDK installed, key set, endpoint reachable); ConfigError if not."""
    check = proposer_backend(cfg.backend).preflight
    if check is not None:
        check(cfg)


def proposer_backend(name: str) -> ProposerBackend:
    """The backend called `name`; ConfigError listing every spec when there is none."""
    for b in BUILTIN:
        if b.name == name:
            return b
    plugin = load_plugin(PROPOSERS, name, ProposerBackend, BUILTIN_NAMES)
    if isinstance(plugin, ProposerBackend):
        return plugin
    raise ConfigError(f"proposer backend {name!r} is not one of {spec_help()}")
