"""A real HTTP server on loopback that speaks the OpenAI API, for what cannot exist here (a remote
model). Embeddings are deterministic bag-of-words hashes, so equal texts get equal vectors and
texts sharing words are close."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIMENSION = 64


def bag_of_words_vector(text: str) -> list[float]:
    vector = [0.0] * DIMENSION
    for word in text.lower().split():
        digest = hashlib.sha256(word.strip(".,!?").encode()).digest()
        vector[digest[0] % DIMENSION] += 1.0
    return vector


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.url = ""

    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.requests.append((path, body))
        if path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": bag_of_words_vector(text)}
                for i, text in enumerate(inputs)
            ]
            tokens = sum(len(str(t).split()) for t in inputs)
            usage = {"prompt_tokens": tokens, "total_tokens": tokens}
            return 200, {"object": "list", "data": data, "model": body["model"], "usage": usage}
        return 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}


@contextmanager
def fake_openai_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            status, payload = fake.handle(self.path, json.loads(self.rfile.read(length) or b"{}"))
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
