"""Chat messages as memories: what `remember()` stores for each message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._models import MemoryCreate, Message

MessageLike = Message | Mapping[str, Any]


def _message_text(content: Any) -> str | None:
    """The text of a chat message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return str(content)


_MESSAGE_PASSTHROUGH = ("tags", "importance", "created_at", "expires_at")


def message_memory(
    message: MessageLike,
    *,
    thread_id: str | None,
    user_id: str | None,
    namespace_id: str | None,
) -> MemoryCreate | None:
    """A message as a `kind="message"` memory, or None when it has no text to store."""
    msg = message if isinstance(message, Message) else Message.model_validate(dict(message))
    text = _message_text(msg.content)
    if text is None or not text.strip():
        return None
    extra = dict(msg.model_extra or {})
    given_metadata = extra.pop("metadata", None)
    metadata: dict[str, Any] = dict(given_metadata) if isinstance(given_metadata, Mapping) else {}
    fields = {name: extra.pop(name) for name in _MESSAGE_PASSTHROUGH if name in extra}
    metadata.update(extra)  # name, tool_call_id, tool_calls, ...: kept, not lost
    return MemoryCreate(
        content=text,
        kind="message",
        role=msg.role,
        thread_id=thread_id,
        user_id=user_id,
        namespace_id=namespace_id,
        metadata=metadata or None,
        **fields,
    )
