"""Token counting for prompt budgets.

Budgets are only honest when counted with a real tokenizer, and this must work offline (tests, GPU
workers without network). So `bpe-openai` (a pyproject dependency), which embeds OpenAI's o200k_base
vocabulary and needs no download; should it fail to import, a conservative estimate, one token per
3 characters rounded up: it over-counts English and code for every current tokenizer, so a text
that fits the estimate fits the real budget too.

`tokenizer_name()` says which one is in use; manifests record it so stale counts can be detected.
`fit_tokens` cuts a text to a budget and `JoinedTokens` counts a list of parts filled up to a
budget; both encode the text once rather than re-counting it at every step.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import Any

ENCODING = "o200k_base"
ESTIMATE = "estimate:chars/3"
# Characters per encode call: bpe-openai refuses 1M characters or 200k tokens at once, and 50k
# characters are at most 200k bytes, so at most 200k tokens.
_CHUNK = 50_000


@functools.lru_cache(maxsize=1)
def _encoder() -> tuple[str, Any]:
    """(name, encoder) of the best tokenizer available offline; encoder None means the estimate."""
    try:
        with warnings.catch_warnings():  # its resource loader uses a deprecated importlib API
            warnings.simplefilter("ignore", DeprecationWarning)
            import bpe_openai

            return f"bpe-openai:{ENCODING}", bpe_openai.get_encoding(ENCODING)
    except Exception:  # not installed, or a broken wheel: estimate
        return ESTIMATE, None


def _splits_before(char: str) -> bool:
    """Whether o200k_base always splits a text between a newline and a following `char`: no piece of
    its pre-tokenizer's pattern continues past a newline into anything but whitespace or "/", and
    BPE never merges across pieces, so such a text counts as the sum of its two sides (checked on
    the corpus, the skills and the sources in tests/test_isa.py)."""
    return char != "" and not char.isspace() and char != "/"


def _encode(enc: Any, text: str) -> list[int]:
    """`text`'s tokens, encoded in chunks of at most _CHUNK characters cut where the tokenizer
    splits anyway (`_splits_before`; a chunk with no such newline is cut at its end)."""
    tokens: list[int] = []
    start = 0
    while len(text) - start > _CHUNK:
        cut = text.rfind("\n", start, start + _CHUNK)
        while cut > start and not _splits_before(text[cut + 1 : cut + 2]):
            cut = text.rfind("\n", start, cut)
        end = cut + 1 if cut > start else start + _CHUNK
        tokens += enc.encode(text[start:end], disallowed_special=())
        start = end
    return tokens + enc.encode(text[start:], disallowed_special=())


def count_tokens(text: str) -> int:
    """Tokens in `text` under the tokenizer `tokenizer_name()` names."""
    _, enc = _encoder()
    if enc is not None:
        return len(_encode(enc, text))
    return math.ceil(len(text) / 3)


def fit_tokens(text: str, budget: int, marker: str = "") -> str:
    """`text` if it has at most `budget` tokens, else its prefix of the most whole tokens that fit
    with `marker` (which says that something was cut) after it; "" when not even the marker fits."""
    if budget <= 0:
        return ""
    _, enc = _encoder()
    tokens = _encode(enc, text) if enc is not None else None
    if (count_tokens(text) if tokens is None else len(tokens)) <= budget:
        return text
    room = budget - count_tokens(marker)
    if room < 0:
        return ""
    # Encoded once: the cut is after the first `room` tokens (less a character split between two)
    cut = 3 * room if tokens is None else len(enc.decode_bytes(tokens[:room]).decode("utf-8", "ignore"))
    if count_tokens(text[:cut] + marker) > budget:
        # Re-encoded, the end of the cut can merge with the marker into more tokens: bisect below it
        lo, hi = 0, cut - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if count_tokens(text[:mid] + marker) <= budget else (lo, mid - 1)
        cut = lo
    return text[:cut] + marker


def fit_lines(lines: list[str], budget: int) -> int:
    """How many of the leading `lines`, joined by newlines, fit in `budget` tokens (bisected: a
    prefix never has fewer tokens than a shorter one)."""
    lo, hi = 0, len(lines)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count_tokens("\n".join(lines[:mid])) <= budget else (lo, mid - 1)
    return lo


class JoinedTokens:
    """`count_tokens("\n".join(parts))` for a caller that re-counts its list of parts as it fills a
    budget part by part: each part is encoded once, so the fill is linear in the text, not quadratic.

    Exact: where every part after the first starts with neither whitespace nor "/", the newline
    joining it to the part before is one where the tokenizer splits (`_splits_before`), so the text
    counts as the sum of its parts, each but the last with its joining newline. Any other list is
    counted whole.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, bool], int] = {}

    def __call__(self, parts: Sequence[str]) -> int:
        if not is_exact() or not all(_splits_before(p[:1]) for p in parts[1:]):
            return count_tokens("\n".join(parts))  # counted whole (the estimate only measures length)
        return sum(self._part(p, i < len(parts) - 1) for i, p in enumerate(parts))

    def _part(self, part: str, joined: bool) -> int:
        if (part, joined) not in self._tokens:
            self._tokens[part, joined] = count_tokens(part + "\n" if joined else part)
        return self._tokens[part, joined]


def tokenizer_name() -> str:
    """`bpe-openai:o200k_base`, or `estimate:chars/3`."""
    return _encoder()[0]


def is_exact() -> bool:
    """Whether counts come from a real tokenizer rather than the estimate."""
    return tokenizer_name() != ESTIMATE
