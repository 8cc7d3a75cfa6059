"""The compiled ONNX encoder kept on disk, so that a restart loads it without torch.

Exporting the model to ONNX needs torch, transformers and sentence-transformers (7 s of imports
on 2 cores) and the export itself (3 s): most of a server's start. The first start keeps what it
exported in one file under the data dir: the ONNX model, the tokenizer it runs with (as
`tokenizers` JSON) and the model's own vectors of the probe texts. Later starts load that file with
onnxruntime and tokenizers alone (about 2 s, with the sessions and the probe check).

The file is named by a hash of the model's files, of the versions of what exported it and of the
probes, so a changed model or upgraded library makes a new one (and the old one is removed). It is
written to a temporary file, synced and renamed, so a crash leaves the previous file or none. A
file is used only if its checksum matches and it reproduces the model's probe vectors; otherwise
it is removed and the model is exported again.

Layout: `MAGIC`, the SHA-256 of the rest, then the rest: the header's length (8 bytes, little
endian), the JSON header, the ONNX model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .compiled_encoder import ONNX_OPSET, PROBES, TOLERANCE, CompiledEncoder, OnnxForward

log = logging.getLogger(__name__)

FORMAT = 1
MAGIC = b"memory-server onnx encoder\n"
SUFFIX = ".onnx-encoder"
# what the file's contents depend on besides the model
VERSIONED = ("onnxruntime", "tokenizers", "torch", "transformers", "sentence-transformers")
_LENGTH = struct.Struct("<Q")
_DIGEST_SIZE = hashlib.sha256().digest_size
_STALE_TEMPORARY_SECONDS = 3600  # a temporary file this old is left by a crashed writer


class CorruptCache(ValueError):
    """The file is not a complete cache file written by this code."""


class EncoderCache:
    """The cached ONNX encoder of the model in `model_path`, in the directory `directory`."""

    def __init__(self, directory: Path, model_path: Path):
        self.directory = directory
        self.model_path = model_path
        self._key: str | None = None

    @property
    def key(self) -> str:
        """SHA-256 of the model's files (names and contents) and of what the export depends on."""
        if self._key is None:
            self._key = cache_key(self.model_path)
        return self._key

    @property
    def path(self) -> Path:
        return self.directory / f"{self.key[:32]}{SUFFIX}"

    def load(self) -> CompiledEncoder | None:
        """The cached encoder, checked against the model's probe vectors; None when there is
        none or it does not pass (a failing file is removed)."""
        if not self.model_path.is_dir():
            return None
        path = self.path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read the embedding model cache %s: %s", path, exc)
            return None
        try:
            encoder = unpack(data, self.key)
            difference = encoder.probe_difference()
        except Exception as exc:
            log.warning("embedding model cache %s is unusable (%s); exporting again", path, exc)
            self._remove(path)
            return None
        if difference > TOLERANCE:
            log.warning(
                "embedding model cache %s differs from the model by %.2g; exporting again",
                path,
                difference,
            )
            self._remove(path)
            return None
        return encoder

    def store(self, encoder: CompiledEncoder) -> Path | None:
        """Keep `encoder` for the next process if it runs on ONNX Runtime; returns the file, or
        None when there is nothing to keep or it cannot be written (the server runs without)."""
        if not isinstance(encoder.forward, OnnxForward) or not self.model_path.is_dir():
            return None
        try:
            path = self.path
            write_atomically(path, pack(encoder, self.key))
        except OSError as exc:
            log.warning("cannot keep the embedding model in %s: %s", self.directory, exc)
            return None
        self._prune(keep=path)
        return path

    def _prune(self, keep: Path) -> None:
        """Remove the files of other keys, and temporary files a crashed writer left."""
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):  # another process removed it, or will
                other = path.name.endswith(SUFFIX) and path != keep
                stale = path.name.endswith(".tmp") and (
                    time.time() - path.stat().st_mtime > _STALE_TEMPORARY_SECONDS
                )
                if other or stale:
                    path.unlink()

    @staticmethod
    def _remove(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()


def cache_key(model_path: Path) -> str:
    """SHA-256 of every file under `model_path` (hidden ones aside: no lock or cache files), of
    the versions in `VERSIONED`, the ONNX opset, the probes and the file format."""
    digest = hashlib.sha256()
    settings = {
        "format": FORMAT,
        "opset": ONNX_OPSET,
        "probes": PROBES,
        "versions": {name: _version(name) for name in VERSIONED},
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for path in sorted(model_path.rglob("*")):
        relative = path.relative_to(model_path)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        with path.open("rb") as file:
            contents = hashlib.file_digest(file, "sha256").digest()
        digest.update(relative.as_posix().encode() + b"\0" + contents)
    return digest.hexdigest()


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


def pack(encoder: CompiledEncoder, key: str) -> bytes:
    """The file's bytes for `encoder` (which runs on ONNX Runtime)."""
    forward = encoder.forward
    assert isinstance(forward, OnnxForward)
    header = json.dumps(
        {
            "format": FORMAT,
            "key": key,
            "tokenizer": encoder.tokenizer.to_str(),
            "split_special_tokens": bool(encoder.tokenizer.encode_special_tokens),
            "token_types": encoder.token_types,
            "reference": encoder.reference.astype(np.float32).tolist(),
        }
    ).encode()
    body = _LENGTH.pack(len(header)) + header + forward.model
    return MAGIC + hashlib.sha256(body).digest() + body


def unpack(data: bytes, key: str) -> CompiledEncoder:
    """The encoder in a file's bytes; raises `CorruptCache` unless they are whole and for `key`."""
    start = len(MAGIC) + _DIGEST_SIZE
    if not data.startswith(MAGIC) or len(data) < start + _LENGTH.size:
        raise CorruptCache("not a cache file, or cut short")
    body = memoryview(data)[start:]
    if hashlib.sha256(body).digest() != data[len(MAGIC) : start]:
        raise CorruptCache("checksum mismatch")
    (length,) = _LENGTH.unpack_from(body)
    header: dict[str, Any] = json.loads(bytes(body[_LENGTH.size : _LENGTH.size + length]))
    if header.get("format") != FORMAT or header.get("key") != key:
        raise CorruptCache("written for another model or format")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(header["tokenizer"])
    tokenizer.encode_special_tokens = bool(header["split_special_tokens"])
    return CompiledEncoder(
        tokenizer,
        OnnxForward(bytes(body[_LENGTH.size + length :])),
        token_types=bool(header["token_types"]),
        reference=np.asarray(header["reference"], dtype=np.float32),
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that `path` never holds part of it: to a temporary file in the
    same directory, synced, then renamed over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    try:  # the rename itself survives a power cut once the directory is synced
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)
