"""A local HTTP server for open-data source tests: each route is a function of the request
handler that writes the whole response (body, redirect, endless or dripping body)."""
from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Callable

Route = Callable[[http.server.BaseHTTPRequestHandler], None]


def send(handler, body: bytes, status: int = 200, content_type: str = "application/json") -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def json_route(doc) -> Route:
    return lambda h: send(h, json.dumps(doc).encode())


def redirect_route(location: str, status: int = 302) -> Route:
    def route(h):
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return route


def endless_route(chunk: bytes = b"[" + b'{"a": 1},' * 4096) -> Route:
    """A body without a length that never ends (until the client hangs up)."""
    def route(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        try:
            while True:
                h.wfile.write(chunk)
        except OSError:
            pass
    return route


def drip_route(every: float = 1.0) -> Route:
    """One byte every `every` seconds: each read succeeds well within a socket timeout."""
    def route(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        try:
            for _ in range(100000):
                h.wfile.write(b" ")
                h.wfile.flush()
                time.sleep(every)
        except OSError:
            pass
    return route


class HttpServer:
    """`with HttpServer({"/path": route}) as srv:` — srv.url("/path"); srv.hits counts requests."""

    def __init__(self, routes: dict[str, Route]):
        self.routes, self.hits = routes, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                outer.hits.append(self.path)
                route = outer.routes.get(path)
                if route is None:
                    send(self, b"not found", 404, "text/plain")
                else:
                    route(self)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> "HttpServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
