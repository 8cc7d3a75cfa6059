"""Token counting with litellm's tokenizers (offline: litellm ships them), for any model name.

litellm is slow to import (3-4 s of CPU), so it is imported on first use; the server counts once
at startup so that no request pays for it. The models litellm counts with tiktoken's o200k_base
by name (`gpt-4o`, `gpt-4o-mini`, the default token model) are counted the way litellm counts
them, from the BPE file litellm ships, without importing litellm: a start does not wait for it
(tests/test_tokens.py checks the counts are litellm's).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
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


# litellm's defaults: tiktoken encodes 1,024 characters at a time (a long run of one character is
# quadratic in tiktoken's merge loop), and a text longer than 4,000,000 characters is counted from
# samples. Either changed through litellm's environment variables: litellm counts.
_LITELLM_TUNING = ("TIKTOKEN_ENCODE_CHUNK_SIZE_CHARS", "TOKEN_COUNTER_MAX_EXACT_CHARS")
_CHUNK_CHARS = 1024
_EXACT_CHARS = 4_000_000
_O200K_MODELS = frozenset({"gpt-4o", "gpt-4o-mini"})


def _o200k_counter(model: str) -> Callable[[str], int] | None:
    """litellm's count for a model it counts with o200k_base, without litellm; None for others."""
    if model.removeprefix("openai/") not in _O200K_MODELS or any(
        name in os.environ for name in _LITELLM_TUNING
    ):
        return None
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it
    if spec is None or spec.origin is None:
        return None
    bundled = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
    # where litellm points tiktoken when it is imported (litellm_core_utils/default_encoding.py)
    os.environ["TIKTOKEN_CACHE_DIR"] = os.environ.get("CUSTOM_TIKTOKEN_CACHE_DIR") or str(bundled)
    import tiktoken

    encoding = tiktoken.get_encoding("o200k_base")

    def count(text: str) -> int:
        if len(text) > _EXACT_CHARS:
            return _litellm_counter(model)(text)
        return sum(
            len(encoding.encode(text[start : start + _CHUNK_CHARS], disallowed_special=()))
            for start in range(0, len(text), _CHUNK_CHARS)
        )

    return count


@lru_cache(maxsize=256)
def _counter(model: str) -> Callable[[str], int]:
    """The count function for `model`, chosen once."""
    return _o200k_counter(model) or _litellm_counter(model)


@lru_cache(maxsize=256)
def _litellm_counter(model: str) -> Callable[[str], int]:
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
