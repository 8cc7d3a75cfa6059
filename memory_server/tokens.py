"""Token counting with litellm's tokenizers (offline: litellm ships them), for any model name.

litellm is slow to import (seconds), so it is imported on first use; the server counts once at
startup so that no request pays for it.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any

_import_lock = threading.Lock()


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # litellm looks some tokenizers up on the Hugging Face hub; offline, it falls back to tiktoken
    # at once instead of waiting on a network that is not there.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with _import_lock:
        import litellm

    return litellm


def count_tokens(text: str, model: str) -> int:
    """How many tokens `text` costs in `model`'s tokenizer (litellm's choice for that model)."""
    if not text:
        return 0
    if len(text) <= _CACHED_TEXT_CHARS:
        return _cached_count(text, model)
    return int(_litellm().token_counter(model=model, text=text))


_CACHED_TEXT_CHARS = 2000  # the rendered line of one memory: counted once, reused by every request


@lru_cache(maxsize=200_000)
def _cached_count(text: str, model: str) -> int:
    return int(_litellm().token_counter(model=model, text=text))
