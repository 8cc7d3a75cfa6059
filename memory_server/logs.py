"""Logging: one JSON object per line (or plain text), each carrying the request id when it is
written while a request is handled.

The HTTP middleware puts the request id in `REQUEST_ID`, a context variable; sync route handlers
run in worker threads with a copy of the request's context, so anything they log carries it too.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

REQUEST_ID: ContextVar[str | None] = ContextVar("memory_request_id", default=None)

ACCESS_LOGGER = "memory_server.access"

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message", "taskName"}
)

_JSON_VALUES = (str, int, float, bool, list, dict, type(None))

# litellm gives its loggers a handler of their own; in JSON mode their lines go through ours.
_LIBRARY_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
# Libraries that log every request at INFO ("Terminating session: None" for each stateless MCP
# message): the access log already has a line per request, so they speak from WARNING unless
# the server logs at DEBUG.
_PER_REQUEST_LOGGERS = ("mcp.server.streamable_http",)


def _request_id(record: logging.LogRecord) -> str | None:
    explicit = getattr(record, "request_id", None)
    return explicit if explicit is not None else REQUEST_ID.get()


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id"?, ...extra fields, "exception"?}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = _request_id(record)
        if request_id is not None:
            entry["request_id"] = request_id
        for name, value in vars(record).items():
            if name in _STANDARD or name in entry or name.startswith(("_", "litellm")):
                continue
            if isinstance(value, _JSON_VALUES):  # fields given with `extra=`
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time level logger: message [request id]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = _request_id(record)
        if request_id is None:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{request_id}]{newline}{rest}"


def configure_logging(level: str, fmt: Literal["auto", "json", "text"]) -> None:
    """One handler on the root logger, to stderr; `auto` is JSON unless stderr is a terminal."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.NOTSET if root.level <= logging.DEBUG else "WARNING"
        )
    logging.captureWarnings(True)  # Python warnings become log lines, not raw stderr text
    adopt_library_loggers()


def adopt_library_loggers() -> None:
    """Send litellm's log lines through the root handler instead of litellm's own (once loaded)."""
    if "litellm._logging" not in sys.modules:
        return
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for existing in list(logger.handlers):
            logger.removeHandler(existing)
        logger.propagate = True
