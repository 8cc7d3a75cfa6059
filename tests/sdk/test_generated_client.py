"""`MemoryClient` is generated from `AsyncMemoryClient` (clients/python/scripts/unasync.py)."""

from __future__ import annotations

import difflib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

GENERATOR = Path(__file__).resolve().parents[2] / "clients" / "python" / "scripts" / "unasync.py"


@pytest.fixture(scope="module")
def unasync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("memory_client_unasync", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_checked_in_sync_client_is_what_the_generator_makes(unasync: ModuleType) -> None:
    expected = unasync.generate()
    actual = unasync.TARGET.read_text()
    if actual != expected:
        diff = difflib.unified_diff(
            actual.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            "_client.py (checked in)",
            "_client.py (generated)",
        )
        pytest.fail(
            "memory_client/_client.py is stale or was edited by hand: edit _async_client.py, then "
            f"run `{unasync.COMMAND}`.\n" + "".join(list(diff)[:80]),
            pytrace=False,
        )


def _source(body: str, unasync: ModuleType) -> str:
    """A made-up async module carrying the docstrings the generator must find."""
    return "\n".join(unasync.DOCSTRINGS) + "\n" + body


def test_unasync_drops_async_and_swaps_names(unasync: ModuleType) -> None:
    body = (
        "async def pages(client: httpx.AsyncClient) -> AsyncIterator[str]:\n"
        "    async with client.stream('GET', '/') as response:\n"
        "        async for line in response.aiter_lines():\n"
        "            yield line\n"
        "        for line in response.lines:\n"
        "            print(line)\n"
        "            yield line\n"
        "        await response.aclose()\n"
        "    await asyncio.sleep(1)\n"
    )
    assert unasync.unasync(_source(body, unasync)) == "\n".join(unasync.DOCSTRINGS.values()) + (
        "\n"
        "def pages(client: httpx.Client) -> Iterator[str]:\n"
        "    with client.stream('GET', '/') as response:\n"
        "        yield from response.iter_lines()\n"
        "        for line in response.lines:\n"
        "            print(line)\n"
        "            yield line\n"
        "        response.close()\n"
        "    time.sleep(1)\n"
    )


def test_unasync_refuses_async_code_it_has_no_rule_for(unasync: ModuleType) -> None:
    body = "async def both() -> None:\n    await asyncio.gather(one(), two())\n"
    with pytest.raises(ValueError, match=r"line \d+: asyncio\.gather"):
        unasync.unasync(_source(body, unasync))


def test_unasync_refuses_a_source_whose_docstrings_changed(unasync: ModuleType) -> None:
    with pytest.raises(ValueError, match="expected this text once"):
        unasync.unasync('"""A new module docstring."""\n')
