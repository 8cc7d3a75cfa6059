"""Token counting, offline: tiktoken encodings from the copies that litellm ships."""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import tiktoken

FALLBACK_ENCODING = "cl100k_base"


def _use_bundled_tiktoken_files() -> None:
    """Point tiktoken at litellm's bundled encodings so it never downloads them."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return
    bundled = (
        Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    )
    if bundled.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)


@lru_cache(maxsize=64)
def encoding_for(model: str) -> tiktoken.Encoding:
    """The tokenizer of `model`, or cl100k_base for models tiktoken does not know."""
    _use_bundled_tiktoken_files()
    try:
        return tiktoken.encoding_for_model(model.split("/")[-1])
    except KeyError:
        return tiktoken.get_encoding(FALLBACK_ENCODING)


def count_tokens(text: str, model: str) -> int:
    """How many tokens `text` costs in `model`'s tokenizer."""
    return len(encoding_for(model).encode(text, disallowed_special=()))
