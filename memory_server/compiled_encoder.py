"""A sentence-transformers model's forward pass as one TorchScript call, which runs without the GIL.

`SentenceTransformer.encode` runs BERT op by op from Python: every op takes the GIL back. In a
server, other threads (SQL, ranking, a Chroma write, which holds the GIL throughout) take it for up
to 5 ms at a time, so each op waits: measured on 2 cores, encode falls from 550 to 25 texts/s while
one other thread runs Python. The traced forward (transformer, mean pooling, normalisation) runs in
TorchScript's interpreter with the GIL released and falls only to 167/s, the share one core allows.

Only models whose pipeline is a transformer, mean pooling and optionally normalisation are
compiled, and only when the compiled forward reproduces `encode` on probe texts; anything else is
served by `encode` as before (`compile_encoder` returns None).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SUB_BATCH = 64  # texts per forward pass, as `encode` does
PROBES = [
    "The billing service was migrated to the EU region on Friday.",
    "I moved to Lisbon in May.",
    "ok",
    "Priya owns the quarterly report; the legal team reviews it before the Q3 planning "
    "meeting, unless the security audit is still blocked by the Postgres upgrade. " * 12,
]
TOLERANCE = 1e-4


class CompiledEncoder:
    """Tokenizer plus traced forward; `encode` returns unit vectors in input order."""

    def __init__(self, tokenizer: Any, forward: Any, max_length: int):
        self._tokenizer = tokenizer
        self._forward = forward
        self._max_length = max_length
        # A fast tokenizer is one Rust object that may reconfigure itself per call ("Already
        # borrowed" when two threads do): calls take turns. They hold the GIL anyway.
        self._tokenizing = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # little padding
        vectors: list[np.ndarray] = [np.empty(0)] * len(texts)
        for start in range(0, len(order), SUB_BATCH):
            chunk = order[start : start + SUB_BATCH]
            with self._tokenizing:
                features = self._tokenizer(
                    [texts[i] for i in chunk],
                    padding=True,
                    truncation=True,
                    max_length=self._max_length,
                    return_tensors="pt",
                )
            ids, mask = features["input_ids"], features["attention_mask"]
            types = features.get("token_type_ids")
            if types is None:
                types = torch.zeros_like(ids)
            with torch.inference_mode():
                output = self._forward(ids, mask, types).numpy()
            for row, index in enumerate(chunk):
                vectors[index] = output[row]
        return np.stack(vectors)


def compile_encoder(model: Any) -> CompiledEncoder | None:
    """A compiled encoder equivalent to `model.encode(..., normalize_embeddings=True)`, or None
    when the model's pipeline is not one this can reproduce (checked on `PROBES`)."""
    try:
        encoder = _trace(model)
        if encoder is None:
            return None
        expected = model.encode(
            PROBES, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        difference = float(np.abs(encoder.encode(PROBES) - expected).max())
    except Exception:
        log.warning("could not compile the embedding model; using encode()", exc_info=True)
        return None
    if difference > TOLERANCE:
        log.warning("compiled embedding model differs by %.2g; using encode()", difference)
        return None
    return encoder


def _trace(model: Any) -> CompiledEncoder | None:
    import torch

    modules = list(model)
    names = [type(module).__name__ for module in modules]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    if getattr(modules[1], "pooling_mode", None) != "mean":
        return None
    transformer = getattr(modules[0], "auto_model", None)
    tokenizer = getattr(model, "tokenizer", None)
    if transformer is None or tokenizer is None:
        return None

    class MeanPooledUnit(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            tokens = self.inner(
                input_ids=ids, attention_mask=mask, token_type_ids=types, return_dict=False
            )[0]
            weights = mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    example = tokenizer(PROBES[:2], padding=True, return_tensors="pt")
    types = example.get("token_type_ids")
    if types is None:
        types = torch.zeros_like(example["input_ids"])
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    # Tracing reads every attribute of the model; some transformers properties log on access
    # (on stderr, outside the server's log format). Warnings about branches fixed at trace time
    # are expected: the probes check the result.
    transformers_logging.set_verbosity_error()
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(
                MeanPooledUnit(transformer).eval(),
                (example["input_ids"], example["attention_mask"], types),
                check_trace=False,
            )
            frozen = torch.jit.freeze(traced)
    finally:
        transformers_logging.set_verbosity(verbosity)
    return CompiledEncoder(tokenizer, frozen, int(model.max_seq_length))
