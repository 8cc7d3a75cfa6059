from __future__ import annotations

import math

import pytest

from memory_server.config import Settings
from memory_server.embeddings import LazyEmbedder, embedder_name, load_embedder, split_by_length
from tests.conftest import ADMIN_KEY, LiveServer, release_chroma_clients
from tests.fake_openai import fake_openai_server


def test_bundled_model_embeds_offline_into_unit_vectors() -> None:
    embedder = load_embedder("all-MiniLM-L6-v2")
    assert load_embedder("all-MiniLM-L6-v2") is embedder  # loaded once per process
    vectors = embedder.embed(["The cat sat on the mat", "A cat is sitting on a rug", "GDP grew 3%"])
    assert embedder.dimension == 384 and all(len(v) == 384 for v in vectors)
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3


def test_a_lazy_embedder_is_named_before_loading_and_embeds_like_the_model() -> None:
    for model in ("all-MiniLM-L6-v2", "litellm/openai/text-embedding-3-small", "/models/e5-small"):
        assert LazyEmbedder(model).name == embedder_name(model)
    assert embedder_name("/models/e5-small") == "e5-small"
    assert embedder_name("litellm/openai/text-embedding-3-small") == (
        "litellm/openai/text-embedding-3-small"
    )
    absent = LazyEmbedder("/no/such/model-dir")  # nothing is loaded until it is used
    assert absent.name == "model-dir"
    with pytest.raises(OSError):
        absent.embed(["now it must load"])
    lazy, loaded = LazyEmbedder("all-MiniLM-L6-v2"), load_embedder("all-MiniLM-L6-v2")
    assert lazy.name == loaded.name and lazy.embed([]) == []
    assert lazy.embed(["Bob owns billing"]) == loaded.embed(["Bob owns billing"])
    assert lazy.dimension == 384


def test_a_batch_split_over_lanes_embeds_each_text_as_alone_in_order() -> None:
    embedder = load_embedder("all-MiniLM-L6-v2")
    texts = [f"Memory {i}: " + "the billing service moved " * (i % 7 + 1) for i in range(80)]
    batch = embedder.embed(texts)  # long enough to be split over every lane
    alone = [embedder.embed([text])[0] for text in texts[::9]]
    for vector, single in zip(batch[::9], alone, strict=True):
        assert max(abs(a - b) for a, b in zip(vector, single, strict=True)) < 1e-4
    assert batch[0] != batch[1]


def test_split_by_length_covers_every_text_once_in_similar_length_groups() -> None:
    texts = ["x" * n for n in [5, 500, 7, 480, 6, 520, 8, 490]]
    groups = split_by_length(texts, 2)
    assert sorted(i for group in groups for i in group) == list(range(len(texts)))
    lengths = [sorted(len(texts[i]) for i in group) for group in groups]
    assert lengths == [[5, 6, 7, 8, 480, 490], [500, 520]]  # short with short, totals close
    assert split_by_length(["a"], 4) == [[0]]


def test_changing_to_a_litellm_model_rebuilds_the_index(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with server.client(ADMIN_KEY) as admin:
        agent = admin.post("/v1/agents", json={"name": "switcher"}).json()
        key = admin.post(f"/v1/agents/{agent['id']}/keys", json={}).json()["key"]
    with server.client(key) as client:
        memory = client.post("/v1/memories", json={"content": "quarterly revenue report"}).json()
    server.stop()
    release_chroma_clients()

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with fake_openai_server() as fake:
        settings: Settings = server.settings.model_copy(
            update={
                "embedding_model": "litellm/openai/text-embedding-3-small",
                "embedding_api_base": fake.url,
            }
        )
        switched = LiveServer(settings).start()
        try:
            with switched.client(key) as client:
                hits = client.post("/v1/search", json={"query": "quarterly revenue report"}).json()
        finally:
            switched.stop()
    assert hits["results"][0]["memory"]["id"] == memory["memory"]["id"]
    assert hits["results"][0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    embedded = [body["input"] for path, body in fake.requests if path.endswith("/embeddings")]
    assert ["quarterly revenue report"] in embedded  # the rebuild re-embedded SQL's memory
    assert all(body["model"] == "text-embedding-3-small" for _, body in fake.requests)
