"""Generate the SDK's synchronous client, `_client.py`, from its asyncio client, `_async_client.py`.

`AsyncMemoryClient` is the one source: `MemoryClient` is the same code with `async` and `await`
removed, the asyncio names swapped for their blocking twins (`NAMES`), the two docstrings that say
which client this is replaced (`DOCSTRINGS`), and `for x in y: yield x` written `yield from y`.
Ruff then sorts the imports and formats the result, which is checked in;
`tests/sdk/test_generated_client.py` fails when it is stale. Anything async left over after the
replacements (an `asyncio.gather`, an `__aiter__`) stops the generator, to be given a rule here.

    python clients/python/scripts/unasync.py           # rewrite memory_client/_client.py
    python clients/python/scripts/unasync.py --check   # exit 1 when it is stale

Run it with the project's virtualenv's Python (`.venv/bin/python`), which has ruff.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "memory_client"
SOURCE = PACKAGE / "_async_client.py"
TARGET = PACKAGE / "_client.py"
COMMAND = "python clients/python/scripts/unasync.py"

HEADER = (
    "# Generated from _async_client.py by clients/python/scripts/unasync.py: do not edit.\n"
    f"# Edit _async_client.py, then regenerate this file with `{COMMAND}`.\n"
)

# Text that says which client it is: each must appear exactly once in the source.
DOCSTRINGS = {
    '"""`AsyncMemoryClient`: the asyncio twin of `MemoryClient`, method for method."""': (
        '"""`MemoryClient`: the synchronous twin; sends the calls `_BaseClient` builds."""'
    ),
    '"""Asynchronous client for memory-server; use `async with` or call `aclose()`."""': (
        '"""Synchronous client for memory-server; use it as a context manager or call `close()`."""'
    ),
}

# Whole names (or dotted names), asyncio's on the left and the blocking twin on the right.
NAMES = {
    "import asyncio": "import time",
    "asyncio.sleep": "time.sleep",
    "AsyncMemoryClient": "MemoryClient",
    "AsyncIterator": "Iterator",
    "httpx.AsyncClient": "httpx.Client",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "aclose": "close",
    "aread": "read",
    "aiter_lines": "iter_lines",
}

_KEYWORDS = re.compile(r"\basync (?=def |with |for )|\bawait ")
_NAMES = re.compile("|".join(rf"\b{re.escape(name)}\b" for name in NAMES))
# `for x in y:` whose whole body is `yield x`: a line as indented as the `for`, or less, follows.
_YIELD_LOOP = re.compile(
    r"^(?P<indent>[ \t]*)for (?P<name>\w+) in (?P<iterable>.+):\n"
    r"(?P=indent)[ \t]+yield (?P=name)\n"
    r"(?=(?P<next>[ \t]*)\S)",
    re.MULTILINE,
)
# What is still async after the replacements: a name no rule above covers.
_LEFTOVER = re.compile(r"\b(?:async|await|asyncio|Async\w*|aiter\w*|anext|aclose|aread|__a\w+__)\b")


def unasync(source: str) -> str:
    """The synchronous code for asyncio `source`, before import sorting and formatting.

    Raises ValueError when a docstring in `DOCSTRINGS` is not in the source exactly once, or
    when something async is left over that no rule here knows how to replace.
    """
    text = source
    for old, new in DOCSTRINGS.items():
        if text.count(old) != 1:
            raise ValueError(f"expected this text once in the source, to replace: {old}")
        text = text.replace(old, new)
    text = _KEYWORDS.sub("", text)
    text = _NAMES.sub(lambda match: NAMES[match.group(0)], text)
    text = _YIELD_LOOP.sub(_yield_from, text)
    leftovers = [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), start=1)
        if _LEFTOVER.search(line)
    ]
    if leftovers:
        raise ValueError("no rule for these async names:\n" + "\n".join(leftovers))
    return text


def _yield_from(match: re.Match[str]) -> str:
    if len(match.group("next")) > len(match.group("indent")):
        return match.group(0)  # the loop's body goes on: not a plain re-yield
    return f"{match.group('indent')}yield from {match.group('iterable')}\n"


def _ruff(*args: str, text: str) -> str:
    """`text` through `ruff <args>`, with the project's settings for the target file."""
    command = [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(TARGET), "-"]
    done = subprocess.run(
        command, input=text, capture_output=True, text=True, cwd=PACKAGE.parents[2], check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    return done.stdout


def generate() -> str:
    """The text `_client.py` should have: the sync client from `_async_client.py`, formatted."""
    text = HEADER + unasync(SOURCE.read_text())
    text = _ruff("check", "--fix-only", "--select", "I", "--quiet", text=text)
    return _ruff("format", "--quiet", text=text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when _client.py is stale")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        if TARGET.read_text() != text:
            print(f"{TARGET} is stale: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
