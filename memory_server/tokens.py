"""Token counting with litellm's tokenizers (offline: litellm ships them), for any model name.

litellm is slow to import (seconds), so it is imported on first use; the server counts once at
startup so that no request pays for it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
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
    return _counter(model)(text)


_CACHED_TEXT_CHARS = 2000  # the rendered line of one memory: counted once, reused by every request


@lru_cache(maxsize=200_000)
def _cached_count(text: str, model: str) -> int:
    return _counter(model)(text)


@lru_cache(maxsize=256)
def _counter(model: str) -> Callable[[str], int]:
    """litellm's count function for `model`, chosen once.

    `litellm.token_counter` chooses the tokenizer again on every call, which costs 3-5x the
    counting itself; the function it would choose gives the same counts (tests/test_tokens.py).
    """
    litellm = _litellm()
    try:
        from litellm.litellm_core_utils.token_counter import _get_count_function
    except ImportError:  # a litellm that moved it: count through the public API
        return lambda text: int(litellm.token_counter(model=model, text=text))
    count: Callable[[str], int] = _get_count_function(model)
    return count
