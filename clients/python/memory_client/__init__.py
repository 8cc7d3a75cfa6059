"""Python SDK for memory-server: long-term memory for AI agents over HTTP.

from memory_client import MemoryClient

with MemoryClient() as memory:  # MEMORY_URL and MEMORY_API_KEY from the environment
    memory.remember([{"role": "user", "content": "I prefer short answers."}], thread_id="t1")
    hits = memory.search("how does the user like answers?").results
"""

from ._async_client import AsyncMemoryClient
from ._base import NOT_GIVEN, NotGiven
from ._client import MemoryClient
from ._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    InternalServerError,
    MemoryClientError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PreconditionFailedError,
    PreconditionRequiredError,
    RateLimitError,
    UnprocessableEntityError,
)
from ._models import (
    AgentPublic,
    AgentsPublic,
    ApiKeyCreated,
    ApiKeyPublic,
    ContextItem,
    ContextResponse,
    Health,
    MemoriesPublic,
    MemoryBatchResult,
    MemoryCreate,
    MemoryDeleted,
    MemoryPublic,
    MemoryStatus,
    MemoryWriteResult,
    Message,
    NamespacePublic,
    NamespacesPublic,
    Role,
    SearchHit,
    SearchResponse,
    WhoAmI,
)
from ._version import __version__

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AgentPublic",
    "AgentsPublic",
    "ApiKeyCreated",
    "ApiKeyPublic",
    "AsyncMemoryClient",
    "AuthenticationError",
    "ConflictError",
    "ContextItem",
    "ContextResponse",
    "Health",
    "InternalServerError",
    "MemoriesPublic",
    "MemoryBatchResult",
    "MemoryClient",
    "MemoryClientError",
    "MemoryCreate",
    "MemoryDeleted",
    "MemoryPublic",
    "MemoryStatus",
    "MemoryWriteResult",
    "Message",
    "NamespacePublic",
    "NamespacesPublic",
    "NotFoundError",
    "NotGiven",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "RateLimitError",
    "Role",
    "SearchHit",
    "SearchResponse",
    "UnprocessableEntityError",
    "WhoAmI",
    "__version__",
]
