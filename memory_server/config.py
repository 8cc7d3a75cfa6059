"""Settings: every knob of the server, read from `MEMORY_*` variables and validated once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .safe_json import READABLE_DEPTH, MetadataLimits

BUNDLED_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Server configuration. Build one per process (or per test) and pass it in; never a global."""

    model_config = SettingsConfigDict(env_prefix="MEMORY_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=Path("./var"), description="Where SQLite, Chroma and admin.key live."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is a SQLite file in the data dir. "
        "postgresql+psycopg://user@host:5432/db works the same.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    admin_key: str | None = Field(
        default=None,
        description="Admin API key; when unset, one is generated into <data_dir>/admin.key (0600).",
    )

    vector_store: Literal["chroma-embedded", "chroma-server"] = "chroma-embedded"
    chroma_host: str = "127.0.0.1"
    chroma_port: int = Field(default=8000, ge=1, le=65535)
    chroma_collection: str = "memories"
    vector_cache_vectors: int = Field(
        default=250_000,
        ge=0,
        description="How many vectors (of the namespaces searched) an embedded index keeps "
        "copied in memory for exact search; 0 turns the copies off.",
    )

    embedding_model: str = Field(
        default=BUNDLED_EMBEDDING_MODEL,
        description="'all-MiniLM-L6-v2' (bundled), a local sentence-transformers model directory, "
        "or 'litellm/<model>' for a litellm embedding model.",
    )
    embedding_api_base: str | None = None
    embedding_runtime: Literal["auto", "onnx", "torchscript", "torch"] = Field(
        default="auto",
        description="What runs a local model's forward pass: 'auto' (ONNX Runtime, else "
        "TorchScript, each used only if it reproduces the model's vectors), 'onnx', "
        "'torchscript', or 'torch' (sentence-transformers' encode).",
    )

    max_content_chars: int = Field(default=32_000, ge=1)
    max_batch_size: int = Field(default=1000, ge=1)
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body, in bytes, except an import; larger ones get 413 "
        "before they are read (from Content-Length) or as soon as they pass it.",
    )
    max_import_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Largest body of POST /v1/import (a JSONL export), in bytes.",
    )
    max_metadata_bytes: int = Field(
        default=64 * 1024,
        ge=2,
        description="Largest metadata object of one memory, in bytes of compact JSON.",
    )
    max_metadata_depth: int = Field(
        default=32,
        ge=1,
        le=READABLE_DEPTH,
        description="Deepest nesting of objects and arrays in metadata.",
    )
    idempotency_claim_seconds: float = Field(
        default=30,
        gt=0,
        description="How long a request holds its Idempotency-Key before a retry may take it "
        "over (PostgreSQL; on SQLite, keys left by a crash are freed at the next start).",
    )
    default_token_model: str = Field(
        default="gpt-4o-mini", description="Model whose tokenizer fills token_count on write."
    )
    expiry_purge_seconds: int = Field(
        default=300, ge=1, description="How often expired memories are purged."
    )
    reconcile_on_startup: bool = True
    reconcile_interval_minutes: float = Field(
        default=0,
        ge=0,
        description="How often the vector index is compared with SQL and repaired while serving "
        "(one process at a time); 0 disables the schedule.",
    )
    sql_statistics_minutes: float = Field(
        default=60,
        ge=0,
        description="How often SQLite's query-planner statistics are checked and taken again if "
        "the memory table's size has moved (also at startup); 0 disables. PostgreSQL keeps its "
        "own.",
    )
    rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        description="Requests per minute per API key (token bucket, per process); 0 disables. "
        "The admin key is not limited.",
    )
    read_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="How many search and context calls do their CPU work (SQL, ranking, "
        "packing) at once; the rest wait their turn with their query already being embedded. "
        "Default: the number of CPUs.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="Log lines as JSON objects or plain text; auto: text on a terminal, else JSON.",
    )
    metrics_enabled: bool = Field(
        default=True, description="Serve Prometheus metrics at /metrics (unauthenticated)."
    )
    shutdown_timeout_seconds: int = Field(
        default=30,
        ge=1,
        description="On SIGTERM, how long in-flight requests may take to finish before their "
        "connections are dropped.",
    )

    summary_model: str | None = Field(
        default=None,
        description="litellm model that condenses old memories into summaries; unset: extractive "
        "summaries picked by the embedding model.",
    )
    summary_api_base: str | None = None
    summary_api_key: str | None = None
    summary_min_age_hours: float = Field(
        default=72, ge=0, description="Only memories older than this are condensed."
    )
    summary_min_group_size: int = Field(
        default=4, ge=2, description="Fewest memories one summary condenses."
    )
    summary_max_source_tokens: int = Field(
        default=3000, ge=50, description="Most source tokens one summary condenses."
    )
    summary_target_tokens: int = Field(
        default=300, ge=20, description="Length a summary aims at (and must stay under)."
    )
    summary_timeout_seconds: float = Field(
        default=60, gt=0, description="How long one summary model call may take."
    )
    summary_interval_minutes: float = Field(
        default=0, ge=0, description="How often the summarizer runs on its own; 0 disables it."
    )
    summary_lease_seconds: int = Field(
        default=60,
        ge=3,
        description="Lease that lets one process at a time summarize; renewed while it runs, so "
        "a crashed process blocks others this long at most.",
    )
    summary_kinds: list[str] = Field(
        default=["message", "note"], min_length=1, description="Kinds of memory condensed."
    )

    event_stream_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often an open event stream polls the database for new events.",
    )
    event_stream_heartbeat_seconds: float = Field(
        default=15.0,
        gt=0,
        description="A quiet event stream sends a heartbeat comment this often.",
    )

    @field_validator("admin_key")
    @classmethod
    def _admin_key_strong_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("MEMORY_ADMIN_KEY must be at least 16 characters")
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("MEMORY_DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL")
        return value

    @model_validator(mode="after")
    def _embedding_model_exists(self) -> Settings:
        model = self.embedding_model
        is_path = model != BUNDLED_EMBEDDING_MODEL and not model.startswith("litellm/")
        if is_path and not Path(model).is_dir():
            raise ValueError(
                f"MEMORY_EMBEDDING_MODEL {model!r} is neither the bundled "
                f"{BUNDLED_EMBEDDING_MODEL!r}, a model directory, nor 'litellm/<model>'"
            )
        return self

    @property
    def metadata_limits(self) -> MetadataLimits:
        return MetadataLimits(self.max_metadata_depth, self.max_metadata_bytes)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'memory.db').resolve()}"

    @property
    def resolved_read_concurrency(self) -> int:
        return self.read_concurrency or os.cpu_count() or 1

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def admin_key_path(self) -> Path:
        return self.data_dir / "admin.key"
