"""The proposer block of a run config, and the command-line spec that overrides it.

    proposer:
      backend: openai            # a backend of ksearch.propose.registry: built in or a plugin's
      model: gpt-5-mini
      api: responses             # openai: responses or chat (openai-compatible always uses chat)
      ...

`--proposer` takes one of `registry.spec_help()` (`offline`, `replay`, `openai:MODEL`,
`openai-compatible:MODEL@URL`, ...); it replaces backend, model and base URL and keeps the rest
of the block (temperature, max tokens, timeouts, prompt budgets).

One call is bounded: each HTTP request waits `timeout_s` for its reply (`CONNECT_S` to connect)
and the SDK tries it `max_retries + 1` times, so a host that never answers gives up within
`ProposerConfig.call_limit_s` (376 s with the defaults, 3 x 120 s + 2 x 8 s of backoff).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ksearch.errors import ConfigError
from ksearch.propose.registry import SPEC_HELP, proposer_backend

CONNECT_S = 5.0  # seconds an HTTP connection may take (of timeout_s), as the SDKs' own default
BACKOFF_S = 8.0  # the longest backoff of the openai and anthropic SDKs between two tries


class PromptBudget(BaseModel):
    """Tokens per prompt section (o200k_base counts); a section longer than its budget is cut."""

    model_config = ConfigDict(extra="forbid")
    task: int = Field(default=700, ge=50, description="task contract, shapes, tolerances")
    target: int = Field(default=1200, ge=0, description="ISA packet for the op class on the primary target")
    skills: int = Field(default=2000, ge=0, description="selected skills (hardware, op, language, harness)")
    world_model: int = Field(
        default=1200, ge=100, description="the tree, with the path to the current action"
    )
    memory: int = Field(default=500, ge=0, description="proven facts and dead ends from the log")
    parent: int = Field(default=3000, ge=0, description="the parent kernel's source")
    evidence: int = Field(default=800, ge=0, description="the last candidate's evidence")


class ProposerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: str = Field(
        default="offline", description="who proposes: " + SPEC_HELP + ", or an installed plugin's name"
    )
    model: str | None = Field(
        default=None, description="model name (dspy: PROVIDER/MODEL as litellm spells it)"
    )
    api: Literal["responses", "chat"] = Field(
        default="responses", description="openai: the Responses or the Chat Completions API"
    )
    base_url: str | None = Field(
        default=None, description="endpoint; default: the SDK's (OPENAI_BASE_URL, ANTHROPIC_BASE_URL)"
    )
    api_key_env: str | None = Field(
        default=None,
        description="environment variable holding the key; default: "
        "the SDK's own (OPENAI_API_KEY, ANTHROPIC_API_KEY)",
    )
    temperature: float | None = Field(
        default=0.7,
        ge=0,
        le=2,
        description="null: the model's default (reasoning models take no temperature)",
    )
    max_tokens: int = Field(default=8192, ge=16, description="output tokens per call at most")
    timeout_s: float = Field(
        default=120,
        gt=0,
        description="seconds one HTTP request may wait for its reply before the SDK retries it "
        f"(connecting: {CONNECT_S:g} s at most); fit your slowest full-length reply",
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        description="SDK retries (with backoff) on 429, 5xx, timeouts and connection errors; one call "
        f"waits at most (max_retries + 1) x timeout_s + max_retries x {BACKOFF_S:g} s on a silent host",
    )
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        default=None, description="openai reasoning models: how hard to think"
    )
    replay_from: str | None = Field(
        default=None, description="replay: the run directory whose responses are served"
    )
    prompt: PromptBudget = Field(default_factory=PromptBudget)

    @property
    def call_limit_s(self) -> float:
        """The longest one call waits on a host that takes connections but never answers: every try
        runs into timeout_s, with the SDK's backoff between tries. 376 s with the defaults
        (3 x 120 s + 2 x 8 s). A server that does answer with 429 or 5xx may ask for longer waits
        (retry-after, up to 2 min each); a dead host (refused, unresolvable) fails in seconds."""
        return (self.max_retries + 1) * self.timeout_s + self.max_retries * BACKOFF_S

    @model_validator(mode="before")
    @classmethod
    def _from_spec(cls, data: Any) -> Any:
        return parse_spec(data) if isinstance(data, str) else data

    @field_validator("backend")
    @classmethod
    def _known(cls, name: str) -> str:
        try:
            proposer_backend(name)
        except ConfigError as e:
            raise ValueError(str(e)) from e
        return name

    @model_validator(mode="after")
    def _complete(self) -> ProposerConfig:
        backend = proposer_backend(self.backend)
        if backend.needs_model and not self.model:
            raise ValueError(f"backend {self.backend} needs a model (e.g. {self.backend}:MODEL)")
        lacking = backend.check(self) if backend.check else None
        if lacking:
            raise ValueError(lacking)
        return self


def parse_spec(spec: str) -> dict[str, Any]:
    """`openai:gpt-5` -> {"backend": "openai", "model": "gpt-5", "base_url": None}; see registry.spec_help()."""
    spec = spec.strip()
    name, sep, model = spec.partition(":")
    try:
        backend = proposer_backend(name)
    except ConfigError as e:
        raise ConfigError(f"proposer {spec!r}: {e}") from e
    if not backend.needs_model:
        if sep:
            raise ConfigError(f"proposer {spec!r}: {name} takes no model; write {backend.spec}")
        return {"backend": name}
    if not model:
        raise ConfigError(f"proposer {spec!r} needs a model: write {backend.spec}")
    base_url = None
    if backend.url_in_spec and "@" in model:  # ProposerConfig says when the URL is missing
        model, _, base_url = model.rpartition("@")
    return {"backend": name, "model": model, "base_url": base_url}


def apply_spec(block: dict[str, Any], spec: str | None, replay_from: str | None) -> dict[str, Any]:
    """The config's proposer block with a command-line spec and --from applied."""
    block = dict(block)
    if spec is not None:
        parsed = parse_spec(spec)
        if proposer_backend(parsed["backend"]).needs_model:
            block.update(parsed)
        else:
            block["backend"] = parsed["backend"]
    if replay_from is not None:
        if block.get("backend") != "replay":
            raise ConfigError("--from names the run to replay; use it with --proposer replay")
        block["replay_from"] = str(replay_from)
    return block
