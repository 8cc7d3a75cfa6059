"""A sentence-transformers model's forward pass as one compiled call that runs without the GIL.

`SentenceTransformer.encode` runs BERT op by op from Python: every op takes the GIL back. In a
server, other threads (SQL, ranking, a Chroma write, which holds the GIL throughout) take it for up
to 5 ms at a time, so each op waits: measured on 2 cores, encode falls from 550 to 25 texts/s while
one other thread runs Python. A compiled forward (transformer, mean pooling, normalisation) runs
with the GIL released.

Two compilers, tried in this order:
- **ONNX Runtime**: the forward exported to ONNX (in memory, from the local weights) and run by
  onnxruntime, whose fused kernels take about half TorchScript's CPU time for the same
  vectors (one thread: 3.6 vs 6.8 ms for a lone query, 2.1 vs 4.2 ms per query in batches of 8;
  docs/benchmarks.md).
- **TorchScript**: the forward traced and frozen.

Only models whose pipeline is a transformer, mean pooling and optionally normalisation, with a fast
(Rust) tokenizer, are compiled, and a compiled forward is used only when it reproduces `encode` on
probe texts; anything else is served by `encode` as before (`compile_encoder` returns None). A
compiled encoder tokenizes with the `tokenizers` library directly, configured as transformers
configures it, so that an ONNX encoder runs without torch or transformers: `encoder_cache` keeps
one on disk for the next process.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol

import numpy as np

log = logging.getLogger(__name__)

Runtime = Literal["auto", "onnx", "torchscript", "torch"]
SUB_BATCH = 64  # texts per forward pass, as `encode` does
PROBES = [
    "The billing service was migrated to the EU region on Friday.",
    "I moved to Lisbon in May.",
    "ok",
    "Priya owns the quarterly report; the legal team reviews it before the Q3 planning "
    "meeting, unless the security audit is still blocked by the Postgres upgrade. " * 12,
]
TOLERANCE = 1e-4
ONNX_OPSET = 17


class Forward(Protocol):
    """Token ids, attention mask and token types (int64, batch x length) to unit vectors."""

    runtime: str

    def __call__(
        self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray, threads: int
    ) -> np.ndarray: ...


class CompiledEncoder:
    """Tokenizer plus compiled forward; `encode` returns unit vectors in input order.

    `tokenizer` is a `tokenizers.Tokenizer` that pads to the longest text and truncates to the
    model's maximum length; `token_types`: whether the model reads the token type ids (zeros are
    passed otherwise); `reference`: the model's own vectors of `PROBES`, which `probe_difference`
    compares against.
    """

    def __init__(
        self, tokenizer: Any, forward: Forward, *, token_types: bool, reference: np.ndarray
    ):
        self.tokenizer = tokenizer
        self.forward = forward
        self.token_types = token_types
        self.reference = reference
        # Calls take turns at the tokenizer (one Rust object); they hold the GIL anyway.
        self._tokenizing = threading.Lock()

    @property
    def runtime(self) -> str:
        """Which compiler runs the forward pass: 'onnx' or 'torchscript'."""
        return self.forward.runtime

    @property
    def dimension(self) -> int:
        return int(self.reference.shape[1])

    def encode(self, texts: Sequence[str], threads: int = 1) -> np.ndarray:
        """Unit vectors of `texts`, computed on `threads` CPU threads."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # little padding
        vectors: list[np.ndarray] = [np.empty(0)] * len(texts)
        for start in range(0, len(order), SUB_BATCH):
            chunk = order[start : start + SUB_BATCH]
            with self._tokenizing:
                encodings = self.tokenizer.encode_batch([texts[i] for i in chunk])
            ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
            mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
            if self.token_types:
                types = np.array([encoding.type_ids for encoding in encodings], dtype=np.int64)
            else:
                types = np.zeros_like(ids)
            output = self.forward(ids, mask, types, threads)
            for row, index in enumerate(chunk):
                vectors[index] = output[row]
        return np.stack(vectors)

    def probe_difference(self) -> float:
        """The largest difference between this encoder's vectors of `PROBES` and the model's."""
        return float(np.abs(self.encode(PROBES) - self.reference).max())


def compile_encoder(model: Any, runtime: Runtime = "auto") -> CompiledEncoder | None:
    """A compiled encoder equivalent to `model.encode(..., normalize_embeddings=True)`, or None
    when `runtime` is 'torch' or the model's pipeline is not one this can reproduce (checked on
    `PROBES`). 'auto' tries ONNX Runtime, then TorchScript."""
    compilers = {"onnx": _onnx_forward, "torchscript": _torchscript_forward}
    wanted = list(compilers) if runtime == "auto" else [runtime] if runtime in compilers else []
    if not wanted:
        return None
    pipeline = _pipeline(model)
    if pipeline is None:
        return None
    transformer, tokenizer = pipeline
    rust_tokenizer = _rust_tokenizer(tokenizer, int(model.max_seq_length))
    token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", [])
    expected = model.encode(
        PROBES, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    for name in wanted:
        try:
            with _quiet_transformers():
                forward = compilers[name](_mean_pooled_unit(transformer), tokenizer)
            encoder = CompiledEncoder(
                rust_tokenizer, forward, token_types=token_types, reference=expected
            )
            difference = encoder.probe_difference()
        except Exception:
            log.warning("could not compile the embedding model with %s", name, exc_info=True)
            continue
        if difference <= TOLERANCE:
            return encoder
        log.warning("the %s embedding model differs by %.2g; not used", name, difference)
    return None


def _pipeline(model: Any) -> tuple[Any, Any] | None:
    """The model's transformer and tokenizer, if its pipeline is one a compiled forward
    reproduces: a transformer, mean pooling, optionally normalisation, and a fast tokenizer."""
    modules = list(model)
    names = [type(module).__name__ for module in modules]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    if getattr(modules[1], "pooling_mode", None) != "mean":
        return None
    transformer = getattr(modules[0], "auto_model", None)
    tokenizer = getattr(model, "tokenizer", None)
    if transformer is None or getattr(tokenizer, "backend_tokenizer", None) is None:
        return None
    return transformer, tokenizer


def _rust_tokenizer(tokenizer: Any, max_length: int) -> Any:
    """A copy of the `tokenizers.Tokenizer` inside a transformers fast tokenizer, set up as
    transformers sets it up for `tokenizer(texts, padding=True, truncation=True,
    max_length=max_length)`: the same token ids, without transformers."""
    from tokenizers import Tokenizer

    rust = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    rust.no_truncation()
    rust.enable_truncation(
        max_length, stride=0, strategy="longest_first", direction=tokenizer.truncation_side
    )
    rust.enable_padding(
        direction=tokenizer.padding_side,
        pad_id=tokenizer.pad_token_id,
        pad_type_id=tokenizer.pad_token_type_id,
        pad_token=tokenizer.pad_token,
    )
    rust.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
    return rust


def _mean_pooled_unit(transformer: Any) -> Any:
    """The transformer, mean pooling and normalisation as one module of (ids, mask, types)."""
    import torch

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

    return MeanPooledUnit(transformer).eval()


def _example(tokenizer: Any) -> tuple[Any, Any, Any]:
    import torch

    example = tokenizer(PROBES[:2], padding=True, return_tensors="pt")
    types = example.get("token_type_ids")
    if types is None:
        types = torch.zeros_like(example["input_ids"])
    return example["input_ids"], example["attention_mask"], types


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Tracing and exporting read every attribute of the model; some transformers properties log
    on access (on stderr, outside the server's log format). Warnings about branches fixed at trace
    time are expected: the probes check the result."""
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers_logging.set_verbosity(verbosity)


class _TorchScriptForward:
    runtime = "torchscript"

    def __init__(self, module: Any):
        self._module = module

    def __call__(
        self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray, threads: int
    ) -> np.ndarray:
        import torch

        torch.set_num_threads(threads)  # per calling thread
        with torch.inference_mode():
            inputs = (torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types))
            result: np.ndarray = self._module(*inputs).numpy()
        return result


def _torchscript_forward(unit: Any, tokenizer: Any) -> Forward:
    import torch

    with torch.inference_mode():
        traced = torch.jit.trace(unit, _example(tokenizer), check_trace=False)
        return _TorchScriptForward(torch.jit.freeze(traced))


class OnnxForward:
    """An exported model and one onnxruntime session per thread count asked for (a session's
    thread count is fixed when it is made). Sessions run concurrently without the GIL."""

    runtime = "onnx"

    def __init__(self, model: bytes):
        self.model = model
        self._sessions: dict[int, Any] = {}
        self._creating = threading.Lock()
        self._inputs = {input_.name for input_ in self._session(1).get_inputs()}

    def _session(self, threads: int) -> Any:
        session = self._sessions.get(threads)
        if session is not None:
            return session
        import onnxruntime

        with self._creating:
            if threads not in self._sessions:
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3  # errors only
                # Idle pool threads sleep instead of spinning on a core other requests need.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._sessions[threads] = onnxruntime.InferenceSession(
                    self.model, options, providers=["CPUExecutionProvider"]
                )
            return self._sessions[threads]

    def __call__(
        self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray, threads: int
    ) -> np.ndarray:
        feeds = {"ids": ids, "mask": mask, "types": types}
        # an input the model never reads (token types, for some models) is not exported
        outputs = self._session(max(1, threads)).run(
            None, {name: value for name, value in feeds.items() if name in self._inputs}
        )
        return np.asarray(outputs[0])


def _onnx_forward(unit: Any, tokenizer: Any) -> Forward:
    import torch

    buffer = io.BytesIO()
    dynamic = {0: "batch", 1: "length"}
    torch.onnx.export(
        unit,
        _example(tokenizer),
        buffer,  # type: ignore[arg-type]  # this exporter writes to a file object too
        input_names=["ids", "mask", "types"],
        output_names=["embedding"],
        dynamic_axes={"ids": dynamic, "mask": dynamic, "types": dynamic, "embedding": {0: "batch"}},
        opset_version=ONNX_OPSET,
        dynamo=False,  # the TorchScript-based exporter: no onnxscript needed
    )
    return OnnxForward(buffer.getvalue())
