"""Open-data HTTP sources: CSV or JSON endpoints, with Socrata ($limit/$offset) or CKAN
(datastore_search limit/offset) paging, timeouts and retries, a response size cap, a deadline
and a redirect policy. Standard library only."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Iterator

from pipelines.ingest.readers import RawBatch, SourceError, decode

USER_AGENT = "kpiwatch (open-data ingest)"
BACKOFF_SECONDS = 0.5  # doubled per retry


def _url(source: dict, environ: dict[str, str]) -> str:
    if "url" in source:
        return source["url"]
    url = environ.get(source["url_env"])
    if not url:
        raise SourceError(f"source {source['id']}: environment variable {source['url_env']} (its URL) is not set")
    return url


def _with_params(url: str, params: dict) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _redact(url: str) -> str:
    """Never show query strings (they may carry an app token) in errors."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(query="…" if parts.query else ""))


# Bounds (docs/sources.md): a response may not exceed `max_response_mb`; one request, headers to
# last byte, may not take longer than `timeout_seconds` (a body dripping one byte at a time
# never trips a socket timeout alone); all pages and retries of one read share `deadline_seconds`.
DEFAULT_MAX_RESPONSE_MB = 100
DEFAULT_DEADLINE_SECONDS = 900
CHUNK = 1 << 16


class _Refused(SourceError):
    """A response kpiwatch will not read (too large, too slow, a forbidden redirect): not retried."""


def _host_port(parts: urllib.parse.SplitResult) -> str:
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


class _RedirectPolicy(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to http(s), never from https down to http, and only to the same
    host and port unless the source lists the target in `allow_redirect_hosts` ("host" or
    "host:port"): a redirect must not turn a public source into a read of an internal page."""

    def __init__(self, sid: str, allowed: list[str]):
        self.sid, self.allowed = sid, {a.lower() for a in allowed}

    def http_error_302(self, req, fp, code, msg, headers):
        # Checked before urllib's own handling, which refuses some schemes with a bare "HTTP 302".
        location = headers.get("location") or headers.get("uri")
        if location:
            self._check(req, fp, location)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return super().redirect_request(req, fp, code, msg, headers, urllib.parse.urlunsplit(self._check(req, fp, newurl)))

    def _check(self, req, fp, newurl: str) -> urllib.parse.SplitResult:
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl))
        why = None
        if new.scheme not in ("http", "https"):
            why = f"to a {new.scheme or 'relative'}: URL"
        elif old.scheme == "https" and new.scheme == "http":
            why = "from https to http"
        elif _host_port(new) != _host_port(old) and not ({_host_port(new), (new.hostname or "").lower()} & self.allowed):
            why = f"to another host ({_host_port(new)}; list it in allow_redirect_hosts to follow it)"
        if why:
            fp.close()
            raise _Refused(f"source {self.sid}: GET {_redact(req.full_url)} redirected {why}: not followed")
        return new


def _read_bounded(resp, url: str, sid: str, max_bytes: int, ends: float) -> bytes:
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _Refused(f"source {sid}: GET {_redact(url)}: response of {int(declared):,} bytes is over the "
                       f"{max_bytes / 1048576:g} MB limit (max_response_mb)")
    parts, size = [], 0
    while True:
        if time.monotonic() > ends:
            raise _Refused(f"source {sid}: GET {_redact(url)}: response not complete within the time limit "
                           f"({size:,} bytes read; timeout_seconds / deadline_seconds)")
        chunk = resp.read1(CHUNK)  # returns what one read gives: a slow body cannot block past the check
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > max_bytes:
            raise _Refused(f"source {sid}: GET {_redact(url)}: response over the {max_bytes / 1048576:g} MB limit "
                           "(max_response_mb); not read further")
        parts.append(chunk)


def fetch(url: str, timeout: float, retries: int, sid: str, *, max_bytes: int = DEFAULT_MAX_RESPONSE_MB << 20,
          deadline: float | None = None, allow_hosts: list[str] | None = None) -> tuple[bytes, str]:
    """GET with retries on timeouts, connection errors, 429 and 5xx; 4xx fail at once. Returns
    the body and the final URL (after redirects). `deadline` is a time.monotonic() value that no
    attempt may pass."""
    deadline = deadline if deadline is not None else time.monotonic() + DEFAULT_DEADLINE_SECONDS
    opener = urllib.request.build_opener(_RedirectPolicy(sid, allow_hosts or []))
    last, attempts = "", 0
    for attempt in range(retries + 1):
        if attempt:
            pause = BACKOFF_SECONDS * 2 ** (attempt - 1)
            if time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)
        attempts += 1
        ends = min(time.monotonic() + timeout, deadline)
        try:
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/json, text/csv"})
            with opener.open(req, timeout=max(0.01, min(timeout, ends - time.monotonic()))) as resp:
                return _read_bounded(resp, url, sid, max_bytes, ends), resp.geturl()
        except _Refused:
            raise
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                break
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last = "timed out" if "timed out" in str(reason) else f"{type(reason).__name__}: {reason}"
    raise SourceError(f"source {sid}: GET {_redact(url)} failed after {attempts} attempt(s): {last}")


def _records(body: bytes, fmt: str, records_path: str | None, sid: str) -> tuple[list[str], list[dict]]:
    if fmt == "csv":
        text, _ = decode(body)
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = [dict(r) for r in reader]
        return list(reader.fieldnames or []), rows
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise SourceError(f"source {sid}: response is not JSON ({exc.msg} at {exc.pos})") from None
    for key in (records_path.split(".") if records_path else []):
        if not isinstance(doc, dict) or key not in doc:
            raise SourceError(f"source {sid}: records_path {records_path!r} not found in the response")
        doc = doc[key]
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise SourceError(f"source {sid}: expected a list of records in the response")
    cols: list[str] = []
    for r in doc:
        cols += [c for c in r if c not in cols]
    return cols, doc


def read_http_batch(source: dict, environ: dict[str, str], seen_sha256: set[str]) -> Iterator[RawBatch]:
    """All pages of the endpoint as one batch, identified by the hash of its content."""
    sid = source["id"]
    base = _url(source, environ)
    paging = source.get("paging") or {"style": "none"}
    style, size = paging["style"], paging.get("page_size", 1000)
    fmt = source.get("format", "json")
    records_path = source.get("records_path")
    if style == "ckan":
        records_path = records_path or "result.records"
    timeout, retries = source.get("timeout_seconds", 30), source.get("retries", 3)
    bounds = {"max_bytes": int(source.get("max_response_mb", DEFAULT_MAX_RESPONSE_MB) * 1048576),
              "deadline": time.monotonic() + source.get("deadline_seconds", DEFAULT_DEADLINE_SECONDS),
              "allow_hosts": source.get("allow_redirect_hosts", [])}
    final_url = None
    columns: list[str] = []
    records: list[dict] = []
    offset, pages = 0, 0
    while True:
        if style == "socrata":
            url = _with_params(base, {"$limit": size, "$offset": offset, "$order": ":id"})
        elif style == "ckan":
            url = _with_params(base, {"resource_id": paging["resource_id"], "limit": size, "offset": offset})
        else:
            url = base
        body, final_url = fetch(url, timeout, retries, sid, **bounds)
        cols, page = _records(body, fmt, records_path, sid)
        columns += [c for c in cols if c not in columns]
        records += page
        pages += 1
        if style == "none" or len(page) < size:
            break
        offset += size
        if pages > 10000:
            raise SourceError(f"source {sid}: more than 10000 pages; is paging configured correctly?")
    canonical = json.dumps([columns, records], sort_keys=True, default=str)
    sha = hashlib.sha256(canonical.encode()).hexdigest()
    if sha in seen_sha256:
        return
    shown = f"GET {_redact(base)} ({style} paging, {pages} page(s))"
    if final_url and _redact(final_url) != _redact(url):  # lineage: where the data was actually read
        shown += f" → {_redact(final_url)}"
    yield RawBatch(sid, None, sha, shown, columns,
                   [{c: r.get(c) for c in columns} for r in records])
