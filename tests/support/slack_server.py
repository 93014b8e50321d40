"""A real local HTTP server speaking the subset of the Slack Web API kpiwatch uses.

    with FakeSlack(tokens={"xoxb-test"}, unknown_channels={"#nowhere"}) as slack:
        client = WebClient(token="xoxb-test", base_url=slack.base_url)
        client.chat_postMessage(channel="#kpi", text="hi")
        assert slack.messages[0]["channel"] == "#kpi"

Endpoints: ``POST /api/chat.postMessage`` (JSON or form-encoded body; ``blocks`` given as a
JSON string in a form body is parsed), ``POST /api/auth.test``. Auth: ``Authorization: Bearer
<token>`` (or a ``token`` body field) must be one of `tokens`, else ``invalid_auth``
(``not_authed`` when absent). ``rate_limit_next(n, retry_after=1)`` answers the next n
chat.postMessage calls with HTTP 429 and ``Retry-After``. Every request is recorded in
`requests` (method, path, headers, parsed body, time).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    at: float = field(default_factory=time.monotonic)


class FakeSlack:
    def __init__(self, tokens: set[str] | frozenset[str] = frozenset({"xoxb-test-token"}),
                 unknown_channels: set[str] | frozenset[str] = frozenset()):
        self.tokens = set(tokens)
        self.unknown_channels = set(unknown_channels)
        self.requests: list[RecordedRequest] = []
        self.messages: list[dict[str, Any]] = []  # accepted chat.postMessage bodies
        self._lock = threading.Lock()
        self._rate_limited = 0
        self._retry_after = 1
        self._ts = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    def rate_limit_next(self, count: int = 1, retry_after: int = 1) -> None:
        with self._lock:
            self._rate_limited = count
            self._retry_after = retry_after

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> "FakeSlack":
        handler = type("Handler", (_Handler,), {"slack": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeSlack":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def calls(self, method: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == f"/api/{method}"]

    # ------------------------------------------------------------------ behaviour
    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], dict]:
        body = _parse_body(headers.get("content-type", ""), raw)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body, raw))
        if method != "POST" or not path.startswith("/api/"):
            return 404, {}, {"ok": False, "error": "unknown_method"}
        api_method = path[len("/api/"):]

        auth = headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else body.get("token")
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if token not in self.tokens:
            return 200, {}, {"ok": False, "error": "invalid_auth"}

        if api_method == "auth.test":
            return 200, {}, {"ok": True, "url": "https://kpiwatch.slack.test/", "team": "kpiwatch",
                             "user": "kpiwatch-bot", "team_id": "T0KPIWATCH", "user_id": "U0KPIBOT",
                             "bot_id": "B0KPIBOT"}
        if api_method == "chat.postMessage":
            with self._lock:
                if self._rate_limited > 0:
                    self._rate_limited -= 1
                    return 429, {"Retry-After": str(self._retry_after)}, {"ok": False, "error": "ratelimited"}
            channel = body.get("channel")
            if not channel:
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            if channel in self.unknown_channels:
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            if not body.get("text") and not body.get("blocks"):
                return 200, {}, {"ok": False, "error": "no_text"}
            with self._lock:
                self._ts += 1
                ts = f"1700000000.{self._ts:06d}"
                self.messages.append({**body, "ts": ts})
            return 200, {}, {"ok": True, "channel": channel, "ts": ts,
                             "message": {"type": "message", "text": body.get("text"), "ts": ts}}
        return 200, {}, {"ok": False, "error": "unknown_method"}


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    text = raw.decode("utf-8")
    if content_type.startswith("application/json"):
        parsed = json.loads(text)
        return parsed if isinstance(parsed, dict) else {"_json": parsed}
    body: dict[str, Any] = dict(parse_qsl(text, keep_blank_values=True))
    for key in ("blocks", "attachments", "metadata"):
        if isinstance(body.get(key), str):
            try:
                body[key] = json.loads(body[key])
            except ValueError:
                pass
    return body


class _Handler(BaseHTTPRequestHandler):
    slack: FakeSlack
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        path = self.path.split("?", 1)[0]
        status, extra_headers, payload = self.slack._handle(self.command, path, headers, raw)
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in extra_headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_POST = _serve
    do_GET = _serve

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass
