"""Senders: where notifications go (console, a JSONL file, Slack).

A sink's ``send(notification)`` returns a `SendResult` or raises `SinkError` (whose message
never contains a secret). ``delivery`` says whether a success counts as the notification
having been delivered: when Slack is configured, the console and JSONL sinks are mirrors
(``delivery=False``), so a Slack failure keeps the alert pending for the next run even though
the console printed it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from alerts.formatting import console_line, slack_message
from alerts.model import Notification

SLACK_TOKEN_ENV = "SLACK_BOT_TOKEN"
SLACK_BASE_URL_ENV = "KPIWATCH_SLACK_BASE_URL"


class SinkError(RuntimeError):
    """A send failed. The message is safe to log (no token)."""


@dataclass(frozen=True)
class SendResult:
    channel: str
    detail: str = ""


@runtime_checkable
class Sink(Protocol):
    name: str
    delivery: bool

    def send(self, notification: Notification) -> SendResult: ...


class ConsoleSink:
    """One line per notification: rich-styled on stdout, or plain text to `stream` if given."""

    name = "console"

    def __init__(self, stream: IO[str] | None = None, *, delivery: bool = True):
        self.stream = stream
        self.delivery = delivery
        self._console = None

    def __repr__(self) -> str:
        return f"ConsoleSink(delivery={self.delivery})"

    def send(self, notification: Notification) -> SendResult:
        line = console_line(notification)
        if self.stream is not None:
            self.stream.write(line + "\n")
            self.stream.flush()
        else:
            from rich.console import Console
            from rich.text import Text

            if self._console is None:
                self._console = Console(file=sys.stdout, soft_wrap=True)
            style = {"critical": "bold red", "warning": "yellow", "info": "cyan"}.get(notification.alert.severity, "")
            if notification.event == "resolved":
                style = "green"
            # Text (not markup): alert text may contain [brackets].
            self._console.print(Text(line, style=style))
        return SendResult(channel=notification.channel, detail="printed")


class JsonlSink:
    """Appends one JSON object per notification to `path` (parent directories created)."""

    name = "jsonl"

    def __init__(self, path: str | os.PathLike[str], *, delivery: bool = True):
        self.path = Path(path)
        self.delivery = delivery

    def __repr__(self) -> str:
        return f"JsonlSink(path={str(self.path)!r}, delivery={self.delivery})"

    def send(self, notification: Notification) -> SendResult:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(notification.to_dict(), sort_keys=True, default=str) + "\n")
        except OSError as exc:
            raise SinkError(f"cannot append to {self.path}: {exc.strerror or exc}") from None
        return SendResult(channel=notification.channel, detail=str(self.path))


class SlackSink:
    """chat.postMessage through slack_sdk's WebClient, retrying 429 (Retry-After) and
    connection errors. The token is kept out of repr, errors and logs."""

    name = "slack"
    delivery = True

    def __init__(self, token: str, base_url: str | None = None, *, max_retries: int = 2, timeout: int = 30):
        from slack_sdk import WebClient
        from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

        if not token:
            raise ValueError("SlackSink needs a bot token")
        self._token = token
        base_url = base_url or WebClient.BASE_URL
        # WebClient joins method names onto the base URL: without the slash, ".../api" would
        # post to "/chat.postMessage".
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.client = WebClient(
            token=token,
            base_url=self.base_url,
            timeout=timeout,
            retry_handlers=[
                RateLimitErrorRetryHandler(max_retry_count=max_retries),
                ConnectionErrorRetryHandler(max_retry_count=max_retries),
            ],
        )

    def __repr__(self) -> str:
        return f"SlackSink(base_url={self.base_url!r})"

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "xoxb-***") if self._token else text

    def send(self, notification: Notification) -> SendResult:
        from slack_sdk.errors import SlackApiError

        payload = slack_message(notification)
        try:
            response = self.client.chat_postMessage(**payload)
        except SlackApiError as exc:
            status = getattr(exc.response, "status_code", None)
            data = getattr(exc.response, "data", None)
            error = data.get("error") if isinstance(data, dict) else None
            raise SinkError(self._redact(f"slack API error: {error or 'unknown'} (HTTP {status})")) from None
        except Exception as exc:  # connection refused/reset, timeout, invalid URL, ...
            raise SinkError(self._redact(f"slack request failed: {type(exc).__name__}: {exc}")) from None
        return SendResult(
            channel=str(response.get("channel") or payload["channel"]),
            detail=f"ts={response.get('ts')}",
        )


def sinks_from_env(jsonl_path: str | os.PathLike[str], stream: IO[str] | None = None) -> list[Sink]:
    """Console + JSONL; plus Slack when ``SLACK_BOT_TOKEN`` is set (base URL from
    ``KPIWATCH_SLACK_BASE_URL``, default Slack's). With Slack, console and JSONL are mirrors."""
    token = os.environ.get(SLACK_TOKEN_ENV, "").strip()
    if not token:
        return [ConsoleSink(stream), JsonlSink(jsonl_path)]
    base_url = os.environ.get(SLACK_BASE_URL_ENV, "").strip() or None
    return [
        ConsoleSink(stream, delivery=False),
        JsonlSink(jsonl_path, delivery=False),
        SlackSink(token, base_url=base_url),
    ]
