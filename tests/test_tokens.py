"""Token counts are litellm's, for any model name, however they are computed."""

from __future__ import annotations

import os
import subprocess
import sys

import litellm
import pytest

from memory_server.tokens import count_tokens

MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "openai/gpt-4o-mini",
    "gpt-3.5-turbo",
    "gpt-4",
    "claude-3-5-sonnet-20240620",
    "llama-3-8b-instruct",
    "command-r",
    "mistral/mistral-small",
    "some-unknown-model",
]
TEXTS = [
    "[2026-03-01 · fact · employer] The user works at Globex as a data engineer.",
    "Ünïcödé, emoji 🚀 and CJK 漢字 mixed with code: `SELECT 1;`",
    "<|endoftext|> looks like a special token but is plain text here",
    "\n".join(
        f"[2026-01-{i % 28 + 1:02d} · note] Item {i}: the billing service moved."
        for i in range(400)
    ),
    # runs across the 1,024-character chunks litellm encodes one at a time
    "=" * 3000 + " end",
    ("word " * 700) + "日本語のテキスト" * 50,
]


@pytest.mark.parametrize("model", MODELS)
def test_counts_match_litellm_token_counter(model: str) -> None:
    for text in TEXTS:
        assert count_tokens(text, model) == litellm.token_counter(model=model, text=text), text[:40]


def test_empty_text_costs_nothing() -> None:
    assert count_tokens("", "gpt-4o-mini") == 0


def test_models_with_different_tokenizers_count_differently() -> None:
    text = TEXTS[1] * 20
    assert count_tokens(text, "gpt-4o-mini") != count_tokens(text, "gpt-4")  # o200k vs cl100k


def test_the_default_token_model_counts_without_importing_litellm() -> None:
    """A start counts with the default model: it must not wait for litellm's import."""
    text = "Dana prefers email over phone calls 🚀"
    expected = litellm.token_counter(model="gpt-4o-mini", text=text)
    code = (
        "import sys\n"
        "from memory_server.tokens import count_tokens\n"
        f"assert count_tokens({text!r}, 'gpt-4o-mini') == {expected}\n"
        "assert 'litellm' not in sys.modules, 'litellm was imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR",)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
