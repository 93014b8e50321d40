"""Senders: where messages go — Slack (slack-sdk's WebClient) or, without a token, the
console plus a JSONL file.

A sink posts one outbox row (`Outgoing`) and can *look for* a row it may already have posted
(`find`): the outbox (alerts.delivery) asks before re-posting anything whose first attempt
may have reached its destination, which is what makes delivery exactly-once.

Errors are `DeliveryError`s whose `kind` tells the outbox what to do:
``auth`` (token rejected: hold everything for the next run), ``channel`` (the channel does not
exist or cannot be posted to: send to the fallback route), ``message`` (Slack rejects this
message: give up on it), ``transient`` (retried already; try again next run; `ambiguous` when
the message may have been posted anyway). Their messages never contain the token.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from dataclasses import dataclass, field
from http.client import RemoteDisconnected
from pathlib import Path
from typing import IO, Any, Callable, Mapping
from urllib.error import URLError

from alerts.formatting import console_line, unescape_mrkdwn
from alerts.model import Notification

SLACK_TOKEN_ENV = "SLACK_BOT_TOKEN"
SLACK_BASE_URL_ENV = "KPIWATCH_SLACK_BASE_URL"
SLACK_TIMEOUT_ENV = "KPIWATCH_SLACK_TIMEOUT"
METADATA_EVENT_TYPE = "kpiwatch_message"

# Slack error codes (api.slack.com/methods/chat.postMessage#errors) by what kpiwatch does.
AUTH_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "no_permission", "missing_scope", "not_allowed_token_type", "ekm_access_denied", "team_access_not_granted",
})
CHANNEL_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "user_not_found", "user_not_visible",
    "user_disabled", "cannot_dm_bot", "restricted_action", "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel", "restricted_action_non_threadable_channel",
    "team_not_found",
})
TRANSIENT_ERRORS = frozenset({
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
    "request_timeout", "timeout",
})
RETRYABLE_STATUS = (500, 502, 503, 504)
_TOKEN_PATTERN = re.compile(r"xox[a-z]-[A-Za-z0-9-]+")
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+):[^@\s/]+@")


def redact(text: str, *secrets: str) -> str:
    """`text` without the given secrets, anything shaped like a Slack token, or a password in a
    URL (``postgresql://user:secret@host`` -> ``postgresql://user:***@host``)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "xox?-***")
    return _URL_PASSWORD.sub(r"\1:***@", _TOKEN_PATTERN.sub("xox?-***", text))


class DeliveryError(RuntimeError):
    """A send or lookup failed. ``str(err)`` is safe to log (no token)."""

    def __init__(self, message: str, kind: str, code: str | None = None, ambiguous: bool = False,
                 unreachable: bool = False):
        super().__init__(message)
        self.kind = kind  # auth | channel | message | transient | lookup
        self.code = code
        self.ambiguous = ambiguous  # the message may have been posted despite the error
        self.unreachable = unreachable  # Slack refused the connection (after retries): it is down


SinkError = DeliveryError  # the name earlier versions used


@dataclass(frozen=True)
class Outgoing:
    """One outbox row to post."""

    outbox_id: str
    channel: str
    payload: Mapping[str, Any]  # chat.postMessage arguments: channel, text, blocks
    notifications: tuple[Mapping[str, Any], ...] = ()  # Notification.to_dict() of each
    message_type: str = "alerts"


@dataclass(frozen=True)
class Delivered:
    channel: str  # the conversation id (Slack) or the recipient (local)
    ts: str | None = None
    recovered: bool = False  # found already posted: nothing was sent this time
    unverified_retry: bool = False  # re-sent after an ambiguous failure that could not be checked


# --------------------------------------------------------------------------- local


def _lines_for(out: Outgoing, delivery: str) -> list[dict[str, Any]]:
    base = {"outbox_id": out.outbox_id, "recipient": out.channel, "delivery": delivery, "message_type": out.message_type}
    if not out.notifications:
        return [{**base, "text": out.payload.get("text", "")}]
    return [{**note, **base} for note in out.notifications]


class LocalSink:
    """Console lines plus one JSON object per notification appended to a JSONL file.

    Without a Slack token this *is* the delivery (``delivery: "local"`` in the file, and
    `find` looks for the outbox id there); with Slack configured it mirrors what Slack got
    (``delivery: "mirror"``), or shows what is held back when Slack rejects the token
    (``delivery: "held"``)."""

    name = "local"

    def __init__(self, jsonl_path: str | os.PathLike[str], stream: IO[str] | None = None):
        self.path = Path(jsonl_path)
        self.stream = stream
        self._console = None

    def __repr__(self) -> str:
        return f"LocalSink(path={str(self.path)!r})"

    def _print(self, out: Outgoing, mark: str = "") -> None:
        lines = []
        for note in out.notifications or ():
            tag = note.get("console") or f"{note.get('severity', '')} {note.get('title', '')}"
            lines.append((note.get("severity"), note.get("event"), mark + tag))
        if not out.notifications:
            lines.append((None, "digest", mark + f"digest    -> {out.channel}: {unescape_mrkdwn(out.payload.get('text', ''))}"))
        for severity, event, line in lines:
            if self.stream is not None:
                self.stream.write(line + "\n")
                self.stream.flush()
                continue
            from rich.console import Console
            from rich.text import Text

            if self._console is None:
                self._console = Console(file=sys.stdout, soft_wrap=True)
            style = {"critical": "bold red", "warning": "yellow", "info": "cyan"}.get(severity or "", "")
            if event == "resolved":
                style = "green"
            self._console.print(Text(line, style=style))  # Text, not markup: alerts may contain [brackets]

    def _append(self, out: Outgoing, delivery: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                for line in _lines_for(out, delivery):
                    handle.write(json.dumps(line, sort_keys=True, default=str) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise DeliveryError(f"cannot append to {self.path}: {exc.strerror or exc}", "transient") from None

    def _has(self, outbox_id: str, delivery: str) -> bool:
        if not self.path.exists():
            return False
        needle = f'"outbox_id": "{outbox_id}"'
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if needle in line:
                    try:
                        if json.loads(line).get("delivery") == delivery:
                            return True
                    except ValueError:
                        continue
        return False

    def post(self, out: Outgoing) -> Delivered:
        self._append(out, "local")
        self._print(out)
        return Delivered(channel=out.channel)

    def find(self, out: Outgoing) -> Delivered | None:
        return Delivered(channel=out.channel, recovered=True) if self._has(out.outbox_id, "local") else None

    def mirror(self, out: Outgoing, delivery: str = "mirror") -> None:
        """Best effort: a mirror never fails a delivery. Each row is mirrored once per mode."""
        try:
            if self._has(out.outbox_id, delivery):
                return
            self._append(out, delivery)
            self._print(out, mark="[held for Slack] " if delivery == "held" else "")
        except DeliveryError:
            pass


# --------------------------------------------------------------------------- slack


def _is_timeout(error: BaseException) -> bool:
    if isinstance(error, (TimeoutError, socket.timeout)):
        return True
    return isinstance(error, URLError) and isinstance(getattr(error, "reason", None), (TimeoutError, socket.timeout))


def _connection_refused(error: BaseException) -> bool:
    reason = getattr(error, "reason", None)
    return isinstance(error, ConnectionRefusedError) or isinstance(reason, ConnectionRefusedError)


def _network_error(error: BaseException) -> bool:
    return _is_timeout(error) or isinstance(error, (URLError, ConnectionError, RemoteDisconnected))


def _make_checked_retry_handler(max_retry_count: int, backoff: float, check: Callable[[str, str], "Delivered | None"]):
    """slack-sdk RetryHandler for 5xx answers and timeouts / dropped connections of
    chat.postMessage, with exponential backoff — that first looks for the message: a timeout
    or a 5xx does not prove Slack did not post it, and a blind retry could post it twice."""
    from slack_sdk.http_retry.handler import RetryHandler
    from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

    class CheckedRetryHandler(RetryHandler):
        def __init__(self) -> None:
            super().__init__(max_retry_count=max_retry_count,
                             interval_calculator=BackoffRetryIntervalCalculator(backoff_factor=backoff))
            self.found: dict[str, Delivered] = {}
            self.unverified: set[str] = set()

        def _can_retry(self, *, state, request, response=None, error=None) -> bool:
            if response is not None:
                retryable, ambiguous = response.status_code in RETRYABLE_STATUS, True
            elif error is not None:
                retryable = _network_error(error)
                ambiguous = not _connection_refused(error)  # refused: nothing reached Slack
            else:
                return False
            if not retryable:
                return False
            key, channel = _key_of(request)
            if ambiguous and key and channel:
                try:
                    delivered = check(channel, key)
                except DeliveryError:
                    self.unverified.add(key)  # cannot tell: retry, and say so
                    return True
                if delivered is not None:
                    self.found[key] = delivered
                    return False  # it is there: do not post again
            return True

    return CheckedRetryHandler()


def _key_of(request) -> tuple[str | None, str | None]:
    """(outbox key, channel) from a chat.postMessage request body (JSON)."""
    if not request.url.rstrip("/").endswith("chat.postMessage") or not request.data:
        return None, None
    try:
        body = json.loads(request.data.decode("utf-8") if isinstance(request.data, bytes) else request.data)
    except (ValueError, UnicodeDecodeError):
        return None, None
    payload = ((body.get("metadata") or {}).get("event_payload") or {}) if isinstance(body, dict) else {}
    return payload.get("key"), body.get("channel") if isinstance(body, dict) else None


class SlackSink:
    """chat.postMessage through slack-sdk's WebClient with its retry handlers:

    - HTTP 429: `RateLimitErrorRetryHandler` waits as long as Retry-After says;
    - 5xx, timeouts, dropped connections: retried with exponential backoff, after checking
      (conversations.history, by the outbox key carried in the message metadata) that the
      message did not arrive after all.

    The token stays out of repr, errors and logs."""

    name = "slack"

    def __init__(
        self,
        token: str,
        base_url: str | None = None,
        *,
        timeout: float = 10,
        max_retries: int = 3,
        backoff: float = 0.5,
        history_pages: int = 5,
    ):
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import (
            ConnectionErrorRetryHandler,
            RateLimitErrorRetryHandler,
            ServerErrorRetryHandler,
        )
        from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

        if not token:
            raise ValueError("SlackSink needs a bot token")
        self._token = token
        base_url = base_url or WebClient.BASE_URL
        # WebClient joins method names onto the base URL: without the slash, ".../api" would
        # post to "/chat.postMessage".
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.history_pages = history_pages
        self._checked = _make_checked_retry_handler(max_retries, backoff, self._find_key)
        self.client = WebClient(
            token=token,
            base_url=self.base_url,
            timeout=timeout,
            retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=max_retries), self._checked],
        )
        # Lookups only read: plain retries are safe for them.
        interval = BackoffRetryIntervalCalculator(backoff_factor=backoff)
        self.lookup_client = WebClient(
            token=token,
            base_url=self.base_url,
            timeout=timeout,
            retry_handlers=[
                RateLimitErrorRetryHandler(max_retry_count=max_retries),
                ServerErrorRetryHandler(max_retry_count=max_retries, interval_calculator=interval),
                ConnectionErrorRetryHandler(max_retry_count=max_retries, interval_calculator=interval,
                                            error_types=[URLError, ConnectionError, RemoteDisconnected, TimeoutError]),
            ],
        )
        self._conversations: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"SlackSink(base_url={self.base_url!r})"

    def _safe(self, text: str) -> str:
        return redact(text, self._token)

    # ---------------------------------------------------------------- posting

    def post(self, out: Outgoing) -> Delivered:
        from slack_sdk.errors import SlackApiError

        key = out.outbox_id
        payload = {
            **out.payload,
            "channel": out.channel,
            "unfurl_links": False,
            "unfurl_media": False,
            # The idempotency key travels with the message, so it can be found again.
            "metadata": {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": key}},
        }
        self._checked.found.pop(key, None)
        self._checked.unverified.discard(key)
        try:
            response = self.client.chat_postMessage(**payload)
        except SlackApiError as exc:
            found = self._checked.found.pop(key, None)
            if found is not None:
                return found
            raise self._api_error(exc) from None
        except Exception as exc:  # timeout, connection refused/reset, invalid URL, ...
            found = self._checked.found.pop(key, None)
            if found is not None:
                return found
            kind = "transient" if _network_error(exc) else "message"
            raise DeliveryError(
                self._safe(f"slack request failed: {type(exc).__name__}: {exc}"), kind,
                code="timeout" if _is_timeout(exc) else type(exc).__name__, ambiguous=not _connection_refused(exc),
                unreachable=_connection_refused(exc),
            ) from None
        return Delivered(
            channel=str(response.get("channel") or out.channel),
            ts=response.get("ts"),
            unverified_retry=key in self._checked.unverified,
        )

    def _api_error(self, exc) -> DeliveryError:
        status = getattr(exc.response, "status_code", None)
        data = getattr(exc.response, "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        message = self._safe(f"slack API error: {code or 'unknown'} (HTTP {status})")
        if code in AUTH_ERRORS:
            return DeliveryError(message, "auth", code)
        if code in CHANNEL_ERRORS:
            return DeliveryError(message, "channel", code)
        if status == 429 or code in TRANSIENT_ERRORS:
            return DeliveryError(message, "transient", code or "ratelimited", ambiguous=status != 429)
        if status is not None and status >= 500:
            return DeliveryError(message, "transient", code or f"http_{status}", ambiguous=True)
        return DeliveryError(message, "message", code)

    # ---------------------------------------------------------------- finding

    def find(self, out: Outgoing) -> Delivered | None:
        """The message with this outbox key, if it is in the channel's recent history."""
        return self._find_key(out.channel, out.outbox_id)

    def _find_key(self, channel: str, key: str) -> Delivered | None:
        from slack_sdk.errors import SlackApiError

        try:
            conversation = self._conversation_id(channel)
            if conversation is None:
                return None  # a channel name nobody has: nothing was ever posted there
            cursor = None
            for _ in range(self.history_pages):
                response = self.lookup_client.conversations_history(
                    channel=conversation, limit=200, include_all_metadata=True, cursor=cursor
                )
                for message in response.get("messages") or []:
                    metadata = message.get("metadata") or {}
                    if (metadata.get("event_type") == METADATA_EVENT_TYPE
                            and (metadata.get("event_payload") or {}).get("key") == key):
                        return Delivered(channel=conversation, ts=message.get("ts"), recovered=True)
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
            return None
        except SlackApiError as exc:
            error = self._api_error(exc)
            raise DeliveryError(f"cannot check whether it was delivered: {error}", "lookup", error.code) from None
        except Exception as exc:
            raise DeliveryError(
                self._safe(f"cannot check whether it was delivered: {type(exc).__name__}: {exc}"), "lookup"
            ) from None

    def _conversation_id(self, channel: str) -> str | None:
        """Slack's conversation id for a channel id, a user id (their DM with the bot) or a
        #name (needs channels:read; ids need no lookup)."""
        if channel in self._conversations:
            return self._conversations[channel]
        if re.fullmatch(r"[UW][A-Z0-9]+", channel):
            found = self.lookup_client.conversations_open(users=channel)["channel"]["id"]
        elif re.fullmatch(r"[CGD][A-Z0-9]+", channel):
            found = channel
        else:
            name = channel.lstrip("#")
            found, cursor = None, None
            for _ in range(20):
                response = self.lookup_client.conversations_list(
                    types="public_channel,private_channel", limit=1000, exclude_archived=True, cursor=cursor
                )
                for item in response.get("channels") or []:
                    if item.get("name") == name:
                        found = item.get("id")
                        break
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if found or not cursor:
                    break
        if found:
            self._conversations[channel] = found
        return found


# --------------------------------------------------------------------------- configuration


@dataclass
class Transport:
    """The delivering sink, and the local mirror when the delivery is Slack."""

    sink: Any  # SlackSink | LocalSink
    mirror: LocalSink | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.sink.name


def transport_from_env(
    jsonl_path: str | os.PathLike[str],
    stream: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Transport:
    """Slack when ``SLACK_BOT_TOKEN`` is set (base URL ``KPIWATCH_SLACK_BASE_URL``, timeout
    ``KPIWATCH_SLACK_TIMEOUT`` seconds), mirrored to console + JSONL; else console + JSONL."""
    environ = os.environ if environ is None else environ
    token = (environ.get(SLACK_TOKEN_ENV) or "").strip()
    local = LocalSink(jsonl_path, stream)
    if not token:
        return Transport(local)
    base_url = (environ.get(SLACK_BASE_URL_ENV) or "").strip() or None
    try:
        timeout = float(environ.get(SLACK_TIMEOUT_ENV) or 10)
    except ValueError:
        timeout = 10
    return Transport(SlackSink(token, base_url=base_url, timeout=timeout), mirror=local)


def notification_record(notification: Notification) -> dict[str, Any]:
    """What the outbox keeps about a notification (and the JSONL file shows)."""
    return {**notification.to_dict(), "console": console_line(notification)}
