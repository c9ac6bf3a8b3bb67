"""Dollars per call, from configs/prices.yaml (US dollars per million tokens)."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ksearch.errors import ConfigError, describe_validation_error
from ksearch.paths import configs_dir


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


def prices_path() -> Path:
    return configs_dir() / "prices.yaml"


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, Price]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return {str(k): Price.model_validate(v) for k, v in (data.get("models") or {}).items()}
    except OSError as e:
        raise ConfigError(f"price table {path} cannot be read ({e.strerror})") from e
    except ValidationError as e:
        raise ConfigError(
            f"price table {path}: {describe_validation_error(e)}; see the comment at its top for the format"
        ) from e
    except (yaml.YAMLError, AttributeError) as e:
        raise ConfigError(
            f"price table {path} is malformed: {str(e).splitlines()[0]}; "
            "see the comment at its top for the format"
        ) from e


def price_of(model: str) -> Price | None:
    """The model's price: exact name, else the longest listed name it starts with; None if unlisted."""
    table = _load(prices_path())
    name = model.rsplit("/", 1)[-1]
    if name in table:
        return table[name]
    prefixes = [k for k in table if name.startswith(k)]
    return table[max(prefixes, key=len)] if prefixes else None


def cost_usd(
    model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0, cache_write_tokens: int = 0
) -> float | None:
    """Dollars for one call; `input_tokens` counts every prompt token, cached and cache writes included."""
    p = price_of(model)
    if p is None:
        return None
    fresh = max(0, input_tokens - cached_tokens - cache_write_tokens)
    usd = (
        fresh * p.input
        + cached_tokens * (p.cached_input if p.cached_input is not None else p.input)
        + cache_write_tokens * (p.cache_write if p.cache_write is not None else p.input)
        + output_tokens * p.output
    ) / 1e6
    return round(usd, 8)
