"""A real local HTTP server speaking the subset of the Slack Web API kpiwatch uses.

    with FakeSlack(tokens={"xoxb-test"}, unknown_channels={"#nowhere"}) as slack:
        client = WebClient(token="xoxb-test", base_url=slack.base_url)
        client.chat_postMessage(channel="#kpi", text="hi")
        assert slack.messages[0]["channel"] == "#kpi"

Endpoints (POST or GET; JSON, form-encoded or query-string arguments):

- ``chat.postMessage`` — stores the message (with ``metadata``) in its conversation and answers
  with the conversation id and a ``ts``. ``#name`` and ``name`` are public channels (id
  ``C`` + a stable hash); a user id ``U...`` posts to the bot's DM with that user (``D...``);
  channel ids ``C/G/D...`` are used as given. A channel in `unknown_channels` ->
  ``channel_not_found``.
- ``conversations.history`` — newest first, ``limit``/``cursor`` pagination; ``metadata`` only
  with ``include_all_metadata``. ``history_error`` makes it answer with that error instead.
- ``conversations.open`` (``users``) -> the DM id; ``conversations.list`` -> every public
  channel posted to or named in `channels`; ``auth.test``.

Auth: ``Authorization: Bearer <token>`` (or a ``token`` argument) must be one of `tokens`, else
``invalid_auth`` (``not_authed`` when absent).

Faults for chat.postMessage, each for the next n calls: ``rate_limit_next(n, retry_after)``
(HTTP 429 + Retry-After), ``fail_next(n, status)`` (HTTP 5xx, nothing stored),
``slow_next(n, seconds, deliver)`` (answer only after `seconds`; with ``deliver=True`` the
message is stored first — Slack accepted it but the client gave up waiting).

Every request is recorded in `requests` (method, path, headers, parsed arguments, time).
"""

from __future__ import annotations

import hashlib
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


def conversation_id(channel: str) -> str:
    """The id the fake gives a channel: names -> C + hash; U... -> D...; ids as they are."""
    if channel[:1] in ("C", "G", "D") and channel[1:].isalnum() and channel.isupper():
        return channel
    if channel[:1] in ("U", "W") and channel[1:].isalnum() and channel.isupper():
        return "D" + channel[1:]
    name = channel.lstrip("#")
    return "C" + hashlib.sha1(name.encode()).hexdigest()[:9].upper()


class FakeSlack:
    def __init__(self, tokens: set[str] | frozenset[str] = frozenset({"xoxb-test-token"}),
                 unknown_channels: set[str] | frozenset[str] = frozenset(),
                 channels: set[str] | frozenset[str] = frozenset()):
        self.tokens = set(tokens)
        self.unknown_channels = set(unknown_channels)
        self.channels = {c.lstrip("#") for c in channels}
        self.history_error: str | None = None
        self.requests: list[RecordedRequest] = []
        self.messages: list[dict[str, Any]] = []  # accepted chat.postMessage bodies (+ ts, conversation)
        self._lock = threading.Lock()
        self._faults: list[dict[str, Any]] = []  # queued faults for chat.postMessage, in order
        self._ts = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    def rate_limit_next(self, count: int = 1, retry_after: int = 1) -> None:
        with self._lock:
            self._faults += [{"kind": "429", "retry_after": retry_after} for _ in range(count)]

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        with self._lock:
            self._faults += [{"kind": "status", "status": status} for _ in range(count)]

    def slow_next(self, count: int = 1, seconds: float = 2.0, deliver: bool = True) -> None:
        with self._lock:
            self._faults += [{"kind": "slow", "seconds": seconds, "deliver": deliver} for _ in range(count)]

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

    # ------------------------------------------------------------------ inspection
    def calls(self, method: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == f"/api/{method}"]

    def keys(self) -> list[str | None]:
        """The kpiwatch outbox key of every stored message, in posting order."""
        with self._lock:
            return [((m.get("metadata") or {}).get("event_payload") or {}).get("key") for m in self.messages]

    def in_channel(self, channel: str) -> list[dict[str, Any]]:
        conv = conversation_id(channel)
        with self._lock:
            return [m for m in self.messages if m["conversation"] == conv]

    # ------------------------------------------------------------------ behaviour
    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes, query: str):
        body = _parse_body(headers.get("content-type", ""), raw)
        for key, value in parse_qsl(query, keep_blank_values=True):
            body.setdefault(key, value)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body, raw))
        if not path.startswith("/api/"):
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
            return self._post_message(body)
        if api_method == "conversations.history":
            return self._history(body)
        if api_method == "conversations.open":
            users = str(body.get("users") or "")
            if not users:
                return 200, {}, {"ok": False, "error": "users_list_not_supplied"}
            return 200, {}, {"ok": True, "channel": {"id": conversation_id(users.split(",")[0])}}
        if api_method == "conversations.list":
            with self._lock:
                names = sorted(self.channels)
            return 200, {}, {"ok": True, "channels": [{"id": conversation_id(n), "name": n} for n in names],
                             "response_metadata": {"next_cursor": ""}}
        return 200, {}, {"ok": False, "error": "unknown_method"}

    def _post_message(self, body: dict[str, Any]):
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault and fault["kind"] == "429":
            return 429, {"Retry-After": str(fault["retry_after"])}, {"ok": False, "error": "ratelimited"}
        if fault and fault["kind"] == "status":
            return fault["status"], {}, {"ok": False, "error": "internal_error"}
        if fault and fault["kind"] == "slow" and not fault["deliver"]:
            time.sleep(fault["seconds"])
            return 500, {}, {"ok": False, "error": "request_timeout"}
        channel = body.get("channel")
        if not channel or channel in self.unknown_channels:
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        if not body.get("text") and not body.get("blocks"):
            return 200, {}, {"ok": False, "error": "no_text"}
        conv = conversation_id(str(channel))
        with self._lock:
            self._ts += 1
            ts = f"{int(time.time())}.{self._ts:06d}"
            self.messages.append({**body, "ts": ts, "conversation": conv})
            if conv.startswith("C") and not str(channel).startswith("C"):
                self.channels.add(str(channel).lstrip("#"))
        if fault and fault["kind"] == "slow":
            time.sleep(fault["seconds"])  # stored, but the answer comes too late
        return 200, {}, {"ok": True, "channel": conv, "ts": ts,
                         "message": {"type": "message", "text": body.get("text"), "ts": ts}}

    def _history(self, body: dict[str, Any]):
        if self.history_error:
            return 200, {}, {"ok": False, "error": self.history_error}
        conv = str(body.get("channel") or "")
        with_metadata = str(body.get("include_all_metadata", "")).lower() in ("1", "true")
        limit = int(body.get("limit") or 100)
        start = int(body.get("cursor") or 0)
        with self._lock:
            found = [m for m in reversed(self.messages) if m["conversation"] == conv]
        page = found[start:start + limit]
        out = []
        for m in page:
            item = {"type": "message", "text": m.get("text"), "ts": m["ts"]}
            if with_metadata and m.get("metadata"):
                item["metadata"] = m["metadata"]
            out.append(item)
        more = start + limit < len(found)
        return 200, {}, {"ok": True, "messages": out, "has_more": more,
                         "response_metadata": {"next_cursor": str(start + limit) if more else ""}}


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
        path, _, query = self.path.partition("?")
        status, extra_headers, payload = self.slack._handle(self.command, path, headers, raw, query)
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra_headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test)

    do_POST = _serve
    do_GET = _serve

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass
