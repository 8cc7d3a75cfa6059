"""The vector index seen from outside the server, as tests look at it (and tamper with it).

The index keeps one Chroma collection per namespace (`<collection>.<namespace id>`) beside a
record-less marker collection named `<collection>`; these helpers hide that layout from tests.
"""

from __future__ import annotations

from typing import Any

import chromadb
from chromadb.config import Settings as ChromaSettings

from memory_server.config import Settings


def chroma_client(settings: Settings, port: int | None = None) -> Any:
    """The embedded index's client (Chroma shares it per path), or a Chroma server's on `port`."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if port is not None:
        return chromadb.HttpClient(host="127.0.0.1", port=port, settings=chroma_settings)
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


def _names(client: Any, settings: Settings) -> list[str]:
    names = [c if isinstance(c, str) else c.name for c in client.list_collections()]
    prefix = f"{settings.chroma_collection}."
    return [name for name in names if name.startswith(prefix)]


def namespace_collection(settings: Settings, namespace_id: str, client: Any = None) -> Any:
    client = client or chroma_client(settings)
    return client.get_collection(f"{settings.chroma_collection}.{namespace_id}")


def index_ids(settings: Settings, client: Any = None) -> set[str]:
    """Every record id in the index, across namespaces."""
    client = client or chroma_client(settings)
    return {
        i for name in _names(client, settings) for i in client.get_collection(name).get()["ids"]
    }


def drop_index(settings: Settings, client: Any = None) -> None:
    """Delete the whole index (marker and every namespace's collection)."""
    client = client or chroma_client(settings)
    for name in [settings.chroma_collection, *_names(client, settings)]:
        client.delete_collection(name)
