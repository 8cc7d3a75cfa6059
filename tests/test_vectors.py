"""The vector store when another process rebuilds the index under it (as at a fleet's start)."""

from __future__ import annotations

from pathlib import Path

from memory_server.config import Settings
from memory_server.vectors import VectorRecord, open_vector_store
from tests.conftest import ADMIN_KEY, release_chroma_clients


def test_a_store_follows_an_index_rebuilt_by_another_process(tmp_path: Path) -> None:
    # The index itself: in-memory copies (vector_cache.py) do not see another process's writes,
    # which is why they are only kept in front of an index one server owns.
    settings = Settings(data_dir=tmp_path / "var", admin_key=ADMIN_KEY, vector_cache_vectors=0)
    ours, theirs = open_vector_store(settings), open_vector_store(settings)
    try:
        ours.reset("model-a")
        ours.upsert([VectorRecord("mem_1", [1.0, 0.0, 0.0], {"namespace_id": "ns_1"})])
        assert [hit.id for hit in ours.query([1.0, 0.0, 0.0], 5, ["ns_1"])] == ["mem_1"]

        theirs.reset("model-b")  # every collection, the marker included, is new now
        ours.ping()  # finds the new marker instead of failing for good
        assert ours.embedding_model() == "model-b"
        assert ours.query([1.0, 0.0, 0.0], 5, ["ns_1"]) == []  # the old handle is not used
        ours.upsert([VectorRecord("mem_2", [0.0, 1.0, 0.0], {"namespace_id": "ns_1"})])
        assert [hit.id for hit in theirs.query([0.0, 1.0, 0.0], 5, ["ns_1"])] == ["mem_2"]
        assert ours.count() == theirs.count() == 1
    finally:
        release_chroma_clients()
