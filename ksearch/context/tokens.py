"""Token counting for prompt budgets.

A real tokenizer (tiktoken's o200k_base) when its encoding file is available locally; otherwise a
conservative estimate (one token per 3 characters, rounded up), which over-counts English and
code for every current tokenizer, so a text that fits the estimate fits the real budget too.
"""

from __future__ import annotations

import functools
import math


@functools.lru_cache(maxsize=1)
def _encoding():
    try:
        import tiktoken

        return tiktoken.get_encoding("o200k_base")
    except Exception:  # not installed, or its encoding file cannot be fetched (no network): estimate
        return None


def count_tokens(text: str) -> int:
    enc = _encoding()
    if enc is not None:
        return len(enc.encode(text, disallowed_special=()))
    return math.ceil(len(text) / 3)


def tokenizer_name() -> str:
    return "tiktoken:o200k_base" if _encoding() is not None else "estimate:chars/3"
