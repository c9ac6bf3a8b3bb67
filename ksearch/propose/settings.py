"""The proposer block of a run config, and the command-line spec that overrides it.

    proposer:
      backend: openai            # offline | replay | openai | anthropic | openai-compatible | dspy
      model: gpt-5-mini
      api: responses             # openai: responses or chat (openai-compatible always uses chat)
      ...

`--proposer` takes `offline`, `replay`, `openai:MODEL`, `anthropic:MODEL`,
`openai-compatible:MODEL@URL` or `dspy:PROVIDER/MODEL`; it replaces backend, model and base URL
and keeps the rest of the block (temperature, max tokens, timeouts, prompt budgets).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ksearch.errors import ConfigError

Backend = Literal["offline", "replay", "openai", "anthropic", "openai-compatible", "dspy"]
LLM_BACKENDS = ("openai", "anthropic", "openai-compatible", "dspy")
SPEC_HELP = (
    "offline | replay | openai:MODEL | anthropic:MODEL | openai-compatible:MODEL@URL | dspy:PROVIDER/MODEL"
)


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
    backend: Backend = Field(default="offline", description="who proposes: " + SPEC_HELP)
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
    timeout_s: float = Field(default=180, gt=0, description="seconds per HTTP request before it is retried")
    max_retries: int = Field(
        default=4, ge=0, description="SDK retries (with backoff) on 429, 5xx and timeouts"
    )
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        default=None, description="openai reasoning models: how hard to think"
    )
    replay_from: str | None = Field(
        default=None, description="replay: the run directory whose responses are served"
    )
    prompt: PromptBudget = Field(default_factory=PromptBudget)

    @model_validator(mode="before")
    @classmethod
    def _from_spec(cls, data: Any) -> Any:
        return parse_spec(data) if isinstance(data, str) else data

    @model_validator(mode="after")
    def _complete(self) -> ProposerConfig:
        if self.backend in LLM_BACKENDS and not self.model:
            raise ValueError(f"backend {self.backend} needs a model (e.g. {self.backend}:MODEL)")
        if self.backend == "openai-compatible" and not self.base_url:
            raise ValueError(
                "backend openai-compatible needs base_url (openai-compatible:MODEL@URL, e.g. "
                "openai-compatible:qwen2.5-coder@http://localhost:8000/v1)"
            )
        if self.backend == "dspy" and "/" not in (self.model or ""):
            raise ValueError(
                "backend dspy needs model PROVIDER/MODEL, as litellm names it (dspy:openai/gpt-5-mini)"
            )
        if self.backend == "replay" and not self.replay_from:
            raise ValueError("backend replay needs replay_from, the run directory to replay (--from RUN_DIR)")
        return self


def parse_spec(spec: str) -> dict[str, Any]:
    """`openai:gpt-5` -> {"backend": "openai", "model": "gpt-5", "base_url": None}; see SPEC_HELP."""
    spec = spec.strip()
    if spec in ("offline", "replay"):
        return {"backend": spec}
    backend, sep, model = spec.partition(":")
    if not sep or backend not in LLM_BACKENDS or not model:
        raise ConfigError(f"proposer {spec!r} is not one of {SPEC_HELP}")
    base_url = None
    if backend == "openai-compatible" and "@" in model:  # ProposerConfig says when the URL is missing
        model, _, base_url = model.rpartition("@")
    return {"backend": backend, "model": model, "base_url": base_url}


def apply_spec(block: dict[str, Any], spec: str | None, replay_from: str | None) -> dict[str, Any]:
    """The config's proposer block with a command-line spec and --from applied."""
    block = dict(block)
    if spec is not None:
        parsed = parse_spec(spec)
        if parsed["backend"] in LLM_BACKENDS:
            block.update(parsed)
        else:
            block["backend"] = parsed["backend"]
    if replay_from is not None:
        if block.get("backend") != "replay":
            raise ConfigError("--from names the run to replay; use it with --proposer replay")
        block["replay_from"] = str(replay_from)
    return block
