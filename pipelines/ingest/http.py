"""Open-data HTTP sources: CSV or JSON endpoints, with Socrata ($limit/$offset) or CKAN
(datastore_search limit/offset) paging, timeouts and retries. Standard library only."""
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


def fetch(url: str, timeout: float, retries: int, sid: str) -> bytes:
    """GET with retries on timeouts, connection errors, 429 and 5xx; 4xx fail at once."""
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        try:
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/json, text/csv"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                break
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last = "timed out" if "timed out" in str(reason) else f"{type(reason).__name__}: {reason}"
    raise SourceError(f"source {sid}: GET {_redact(url)} failed after {retries + 1} attempt(s): {last}")


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
        cols, page = _records(fetch(url, timeout, retries, sid), fmt, records_path, sid)
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
    yield RawBatch(sid, None, sha, f"GET {_redact(base)} ({style} paging, {pages} page(s))", columns,
                   [{c: r.get(c) for c in columns} for r in records])
