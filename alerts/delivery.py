"""The delivery outbox: every message is written to ``alerting.outbox`` before it is sent.

Guarantee: each outbox row (one message = one recipient's notifications of one run, or one
digest) reaches its channel exactly once, also when the process dies at any point, provided
that the destination can be searched for it (Slack: ``conversations.history`` of the channel;
locally: the JSONL file). How:

1. `alerts.engine.dispatch` inserts the row (status ``pending``, a deterministic id) in the
   same transaction that records the alert state it announces: a decided notification is
   never lost, and a re-run does not decide it again.
2. `deliver` marks the row ``sending`` (with ``host:pid``) and commits *before* posting, posts
   it with the row id in the message metadata, then marks it ``sent`` with Slack's ``ts``.
3. A row found ``sending`` whose process is gone — or ``pending`` after an ambiguous failure
   (timeout, 5xx) — may or may not have reached Slack. Before posting it again, `deliver`
   looks for its id in the channel; found: it is marked sent (``recovered``) without a second
   post. The same check runs inside the retry handler before retrying a timeout or a 5xx.
4. Only if that check is impossible (e.g. the app lacks the history scope) is the message
   re-posted, flagged ``possible_duplicate`` and reported: a duplicate is preferred to a loss.

Connections to the warehouse are opened per step and never held across an HTTP call.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

from alerts.formatting import rerouted_payload
from alerts.model import Clock, utc_now
from alerts.sinks import Delivered, DeliveryError, Outgoing, Transport
from alerts.store import ensure_schema, json_list, rows

OpenWarehouse = Callable[[], ContextManager[Any]]
# Another host's claim on a row is respected this long before the row is checked and retried.
CLAIM_LEASE = timedelta(minutes=10)


def file_warehouse(path: str | os.PathLike[str]) -> OpenWarehouse:
    """A factory of short-lived DuckDB connections to `path` (for callers without pipelines)."""

    @contextlib.contextmanager
    def open_() -> Iterator[Any]:
        import duckdb

        con = duckdb.connect(str(Path(path)))
        try:
            yield con
        finally:
            con.close()

    return open_


@dataclass(frozen=True)
class DeliveryIssue:
    outbox_id: str
    channel: str
    code: str
    detail: str
    action: str  # rerouted to X | held for the next run | will retry next run | given up


@dataclass
class DeliverySummary:
    run_id: str
    via: str = ""
    attempted: int = 0  # rows taken from the outbox
    sent: int = 0  # rows posted now
    recovered: int = 0  # rows found already delivered: marked sent, not posted again
    rerouted: int = 0  # rows sent to the fallback channel instead (channel errors)
    failed: int = 0  # rows given up (Slack rejects the message itself)
    held: int = 0  # rows kept pending because Slack rejected the token
    pending: int = 0  # rows kept pending after transient errors: retried by the next run
    in_flight: int = 0  # rows another live process is sending
    possible_duplicates: int = 0  # re-posted without being able to check the first attempt
    notifications_sent: int = 0
    auth_error: str | None = None
    unreachable: str | None = None  # Slack refused connections: the rest of the queue was held
    issues: list[DeliveryIssue] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "issues"}
        out["issues"] = [issue.__dict__ for issue in self.issues]
        return out

    def __str__(self) -> str:
        text = (f"{self.sent + self.recovered} message(s) delivered via {self.via} "
                f"({self.recovered} found already delivered), {self.rerouted} rerouted to the fallback, "
                f"{self.failed} failed, {self.held + self.pending} pending")
        if self.auth_error:
            text += f"; Slack rejected the token ({self.auth_error}): messages held for the next run"
        if self.unreachable:
            text += f"; Slack unreachable ({self.unreachable}): messages held for the next run"
        return text


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def claim_is_stale(claimed_by: str | None, attempted_at: datetime | None, now: datetime) -> bool:
    """Whether a ``sending`` row was left behind by a process that is gone."""
    if not claimed_by:
        return True
    host, _, pid = claimed_by.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return int(pid) == os.getpid() or not _pid_alive(int(pid))
    return attempted_at is None or now - attempted_at > CLAIM_LEASE


def _outgoing(row: dict[str, Any]) -> Outgoing:
    return Outgoing(
        outbox_id=row["outbox_id"],
        channel=row["channel"],
        payload=json.loads(row["payload"]),
        notifications=tuple(json_list(row["notifications"])),
        message_type=row["message_type"],
    )


def _log_rows(row: dict[str, Any], run_id: str, sink: str, outcome: str, detail: str, now: datetime) -> list[list[Any]]:
    notes = json_list(row["notifications"])
    if not notes:  # a digest
        return [[run_id, row["outbox_id"], "digest", "digest", row["channel"], sink, outcome, detail,
                 None, now, None, row["outbox_id"], None]]
    return [
        [run_id, note.get("fingerprint"), note.get("rule"), note.get("event"), row["channel"], sink, outcome, detail,
         json.dumps(note, sort_keys=True, default=str), now, note.get("labels_hash"), row["outbox_id"], None]
        for note in notes
    ]


LOG_INSERT = (
    "insert into alerting.alert_log (run_id, fingerprint, rule, event, channel, sink, outcome, detail, payload, "
    "logged_at, labels_hash, outbox_id, silence_id) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class _Outbox:
    """Row updates, each in its own short transaction."""

    def __init__(self, open_warehouse: OpenWarehouse, run_id: str, sink: str, clock: Clock):
        self.open = open_warehouse
        self.run_id = run_id
        self.sink = sink
        self.clock = clock

    def _tx(self, work: Callable[[Any], Any]) -> Any:
        with self.open() as con:
            con.execute("begin")
            try:
                result = work(con)
                con.execute("commit")
                return result
            except Exception:
                con.execute("rollback")
                raise

    def claim(self, row: dict[str, Any]) -> bool:
        def work(con):
            # `returning` (not a row count): DuckDB and Postgres both answer it with the rows changed.
            return len(con.execute(
                "update alerting.outbox set status = 'sending', attempts = attempts + 1, claimed_by = ?, "
                "attempted_at = ? where outbox_id = ? and status = ? and attempts = ? returning outbox_id",
                [_me(), self.clock(), row["outbox_id"], row["status"], row["attempts"]],
            ).fetchall())

        return self._tx(work) == 1

    def sent(self, row: dict[str, Any], result: Delivered, possible_duplicate: bool) -> None:
        now = self.clock()
        if result.recovered:
            detail = f"already delivered (ts={result.ts}); not posted again" if result.ts else "already delivered"
        else:
            detail = f"ts={result.ts}" if result.ts else "delivered"
        if possible_duplicate:
            detail += "; re-posted without being able to check the first attempt: possible duplicate"

        def work(con):
            con.execute(
                "update alerting.outbox set status = 'sent', sent_at = ?, delivered_via = ?, slack_channel = ?, "
                "slack_ts = ?, recovered = ?, possible_duplicate = ?, last_error = null where outbox_id = ?",
                [now, self.sink, result.channel, result.ts, result.recovered, possible_duplicate, row["outbox_id"]],
            )
            con.executemany(LOG_INSERT, _log_rows(row, self.run_id, self.sink, "sent", detail, now))

        self._tx(work)

    def settle(self, row: dict[str, Any], status: str, error: str, outcome: str, detail: str,
               maybe_posted: bool = False) -> None:
        now = self.clock()

        def work(con):
            con.execute(
                "update alerting.outbox set status = ?, last_error = ?, claimed_by = ? where outbox_id = ?",
                [status, error, _me() if maybe_posted else None, row["outbox_id"]],
            )
            con.executemany(LOG_INSERT, _log_rows(row, self.run_id, self.sink, outcome, detail, now))

        self._tx(work)

    def reroute(self, row: dict[str, Any], fallback_channel: str, code: str) -> dict[str, Any]:
        """Mark `row` rerouted and add (or return) its copy for the fallback channel."""
        now = self.clock()
        copy_id = row["outbox_id"] + "-fallback"
        payload = rerouted_payload(json.loads(row["payload"]), fallback_channel, code)
        notes = [{**note, "channel": fallback_channel} for note in json_list(row["notifications"])]
        detail = f"{code}; rerouted to {fallback_channel}"

        def work(con):
            con.execute(
                "update alerting.outbox set status = 'rerouted', last_error = ?, claimed_by = null where outbox_id = ?",
                [code, row["outbox_id"]],
            )
            con.executemany(LOG_INSERT, _log_rows(row, self.run_id, self.sink, "rerouted", detail, now))
            con.execute(
                "insert into alerting.outbox (outbox_id, message_type, run_id, created_at, channel, original_channel, "
                "status, attempts, payload, notifications) values (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?) "
                "on conflict do nothing",
                [copy_id, row["message_type"], self.run_id, now, fallback_channel, row["channel"],
                 json.dumps(payload, sort_keys=True, default=str), json.dumps(notes, sort_keys=True, default=str)],
            )
            return rows(con, "select * from alerting.outbox where outbox_id = ?", [copy_id])[0]

        return self._tx(work)


def deliver(
    open_warehouse: OpenWarehouse,
    transport: Transport,
    *,
    run_id: str,
    fallback_channel: str,
    clock: Clock = utc_now,
    after_send: Callable[[Outgoing, Delivered], None] | None = None,
) -> DeliverySummary:
    """Send every pending outbox row (this run's and any left by earlier runs), oldest first.

    `after_send` is called right after a post returned and before it is recorded — the window
    a crash test aims at."""
    sink = transport.sink
    summary = DeliverySummary(run_id=str(run_id), via=sink.name)
    with open_warehouse() as con:
        ensure_schema(con)
        queue = rows(
            con,
            "select * from alerting.outbox where status in ('pending', 'sending') order by created_at, outbox_id",
        )
    outbox = _Outbox(open_warehouse, str(run_id), sink.name, clock)

    def recovered(row, out, found) -> None:
        """An earlier attempt did reach the channel: record that message, post nothing."""
        outbox.sent(row, found, possible_duplicate=False)
        summary.recovered += 1
        summary.notifications_sent += len(out.notifications)
        if transport.mirror is not None:
            transport.mirror.mirror(out)

    index = 0
    while index < len(queue):
        row = queue[index]
        index += 1
        summary.attempted += 1
        out = _outgoing(row)

        # Whether an earlier attempt may have reached the channel (crashed while sending, or an
        # ambiguous failure): such a row is looked for before it is posted again.
        maybe_posted = row["status"] == "sending" or bool(row["claimed_by"])

        if row["status"] == "sending" and not claim_is_stale(row["claimed_by"], row["attempted_at"], clock()):
            summary.in_flight += 1  # another live process is sending it
            continue

        if summary.auth_error or summary.unreachable:
            # Every further post would fail the same way (and, unreachable, wait out its retries).
            summary.held += 1
            why = ("Slack rejected the bot token" if summary.auth_error else "Slack could not be reached")
            outbox.settle(row, "pending", summary.auth_error or summary.unreachable, "held",
                          f"{summary.auth_error or summary.unreachable}: {why}; held for the next run",
                          maybe_posted=maybe_posted)
            if transport.mirror is not None:
                transport.mirror.mirror(out, "held")
            continue

        # A first attempt may have reached the channel: look before posting again.
        unverified = False
        if maybe_posted:
            try:
                found = sink.find(out)
            except DeliveryError:
                found, unverified = None, True
            maybe_posted = unverified  # looked and not found: it was not posted
            if found is not None:
                recovered(row, out, found)
                continue

        if not outbox.claim(row):
            summary.in_flight += 1  # another process took it between our read and our claim
            continue

        try:
            result = sink.post(out)
        except DeliveryError as err:
            if err.ambiguous:
                try:
                    found = sink.find(out)
                except DeliveryError:
                    found = None
                if found is not None:
                    recovered(row, out, found)
                    continue
            code = err.code or err.kind
            if err.kind == "auth":
                summary.auth_error = code
                summary.held += 1
                outbox.settle(row, "pending", code, "held",
                              f"{code}: Slack rejected the bot token; held for the next run", maybe_posted=maybe_posted)
                summary.issues.append(DeliveryIssue(row["outbox_id"], row["channel"], code, str(err), "held for the next run"))
                if transport.mirror is not None:
                    transport.mirror.mirror(out, "held")
            elif err.kind == "channel" and row["channel"] != fallback_channel:
                copy = outbox.reroute(row, fallback_channel, code)
                summary.rerouted += 1
                summary.issues.append(DeliveryIssue(row["outbox_id"], row["channel"], code, str(err),
                                                    f"rerouted to {fallback_channel}"))
                queue.insert(index, copy)  # deliver the fallback copy now
            elif err.kind == "transient":
                summary.pending += 1
                outbox.settle(row, "pending", code, "failed", f"{err}; will retry next run",
                              maybe_posted=err.ambiguous or maybe_posted)
                summary.issues.append(DeliveryIssue(row["outbox_id"], row["channel"], code, str(err), "will retry next run"))
                if err.unreachable:
                    summary.unreachable = code
            else:  # the message itself is rejected, or the fallback channel is broken too
                summary.failed += 1
                outbox.settle(row, "failed", code, "failed", f"{err}; given up")
                summary.issues.append(DeliveryIssue(row["outbox_id"], row["channel"], code, str(err), "given up"))
            continue

        if after_send is not None:
            after_send(out, result)
        duplicate = unverified or result.unverified_retry
        outbox.sent(row, result, possible_duplicate=duplicate)
        if result.recovered:  # the retry handler found it posted despite a timeout / 5xx
            summary.recovered += 1
        else:
            summary.sent += 1
        summary.possible_duplicates += int(duplicate)
        summary.notifications_sent += len(out.notifications)
        if transport.mirror is not None:
            transport.mirror.mirror(out)
    return summary


def outbox_counts(open_warehouse: OpenWarehouse) -> dict[str, int]:
    with open_warehouse() as con:
        ensure_schema(con)
        return dict(con.execute("select status, count(*) from alerting.outbox group by 1").fetchall())
