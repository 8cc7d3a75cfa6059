"""A real HTTP server on loopback that speaks the OpenAI API, for what cannot exist here (a remote
model). Embeddings are deterministic bag-of-words hashes, so equal texts get equal vectors and
texts sharing words are close. Chat completions follow a script of behaviours (a good answer, an
empty one, an error status with headers, a slow answer), one per request; after the script, good.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIMENSION = 64


def bag_of_words_vector(text: str) -> list[float]:
    vector = [0.0] * DIMENSION
    for word in text.lower().split():
        digest = hashlib.sha256(word.strip(".,!?").encode()).digest()
        vector[digest[0] % DIMENSION] += 1.0
    return vector


@dataclass
class Reply:
    """One scripted chat reply: `content` (None: a short digest of the prompt) or an error."""

    status: int = 200
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    finish_reason: str = "stop"


GOOD = Reply()
EMPTY = Reply(content="")


def rate_limited(retry_after: float = 1) -> Reply:
    return Reply(status=429, headers={"Retry-After": str(retry_after)})


SERVER_ERROR = Reply(status=500)


def slow(seconds: float) -> Reply:
    return Reply(delay=seconds)


def digest(prompt: str) -> str:
    """The fake model's summary: the first few words of each of the first three lines."""
    lines = [line for line in prompt.splitlines() if line.strip()][:3]
    return "\n".join("- " + " ".join(line.split()[:8]) for line in lines)


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.chat_script: list[Reply] = []
        self.url = ""
        self._lock = threading.Lock()

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [body for path, body in self.requests if path.endswith("/chat/completions")]

    def handle(self, path: str, body: dict[str, Any]) -> tuple[Reply, dict[str, Any]]:
        with self._lock:
            self.requests.append((path, body))
        if path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": bag_of_words_vector(text)}
                for i, text in enumerate(inputs)
            ]
            tokens = sum(len(str(t).split()) for t in inputs)
            usage = {"prompt_tokens": tokens, "total_tokens": tokens}
            payload = {"object": "list", "data": data, "model": body["model"], "usage": usage}
            return Reply(), payload
        if path.endswith("/chat/completions"):
            with self._lock:
                reply = self.chat_script.pop(0) if self.chat_script else GOOD
            return reply, self._chat(reply, body)
        error = {"message": f"no route {path}", "type": "invalid_request_error"}
        return Reply(status=404), {"error": error}

    def _chat(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        if reply.status != 200:
            return {"error": {"message": f"scripted {reply.status}", "type": "server_error"}}
        prompt = str(body["messages"][-1]["content"])
        content = digest(prompt) if reply.content is None else reply.content
        prompt_tokens = sum(len(str(m["content"]).split()) for m in body["messages"])
        completion_tokens = len(content.split())
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


@contextmanager
def fake_openai_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            reply, payload = fake.handle(self.path, json.loads(self.rfile.read(length) or b"{}"))
            if reply.delay:
                time.sleep(reply.delay)
            raw = json.dumps(payload).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
