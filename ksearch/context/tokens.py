"""Token counting for prompt budgets.

Budgets are only honest when counted with a real tokenizer, and this must work offline (tests, GPU
workers without network). So, in order:

1. `bpe-openai` (a pyproject dependency): embeds OpenAI's o200k_base vocabulary, needs no download.
2. `tiktoken`, but only when its o200k_base file is already in tiktoken's local cache (asking
   tiktoken otherwise would try the network).
3. A conservative estimate, one token per 3 characters rounded up: it over-counts English and code
   for every current tokenizer, so a text that fits the estimate fits the real budget too.

`tokenizer_name()` says which one is in use; manifests record it so stale counts can be detected.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

ENCODING = "o200k_base"
_TIKTOKEN_URL = f"https://openaipublic.blob.core.windows.net/encodings/{ENCODING}.tiktoken"
ESTIMATE = "estimate:chars/3"


def _tiktoken_cached() -> bool:
    """Whether tiktoken's cache already holds the o200k_base file (same cache rule as tiktoken)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        root = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        root = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        root = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not root:
        return False
    return (Path(root) / hashlib.sha1(_TIKTOKEN_URL.encode()).hexdigest()).is_file()


@functools.lru_cache(maxsize=1)
def _encoder() -> tuple[str, Any]:
    """(name, encoder) of the best tokenizer available offline; encoder None means the estimate."""
    try:
        with warnings.catch_warnings():  # its resource loader uses a deprecated importlib API
            warnings.simplefilter("ignore", DeprecationWarning)
            import bpe_openai

            return f"bpe-openai:{ENCODING}", bpe_openai.get_encoding(ENCODING)
    except Exception:  # not installed (e.g. a GPU worker), or a broken wheel: try the next one
        pass
    if _tiktoken_cached():
        try:
            import tiktoken

            return f"tiktoken:{ENCODING}", tiktoken.get_encoding(ENCODING)
        except Exception:  # not installed or the cached file is unreadable: estimate
            pass
    return ESTIMATE, None


def count_tokens(text: str) -> int:
    """Tokens in `text` under the tokenizer `tokenizer_name()` names."""
    _, enc = _encoder()
    if enc is not None:
        return len(enc.encode(text, disallowed_special=()))
    return math.ceil(len(text) / 3)


def tokenizer_name() -> str:
    """`bpe-openai:o200k_base`, `tiktoken:o200k_base` or `estimate:chars/3`."""
    return _encoder()[0]


def is_exact() -> bool:
    """Whether counts come from a real tokenizer rather than the estimate."""
    return tokenizer_name() != ESTIMATE
