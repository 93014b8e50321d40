"""kpiwatch's one clock.

A run reads the time once: its `now` is fixed when the run starts (``--now`` /
``KPIWATCH_NOW``, else the time the Dagster run was created) and handed to every stage —
landing times, check and drift timestamps, publication, alert state and outbox, the ledger,
the reports. The reporting date (``as_of``) is ``--as-of`` / ``KPIWATCH_AS_OF``, else the
catalog's ``as_of``, else the date of that same `now`. A command outside a run (``silence``,
``ack``, ``digest``) reads the clock once when it starts.

This module is the only place that reads the wall clock; everything else takes `now` as a
parameter, so tests (and a replay of a past day) can pin it.
"""
from __future__ import annotations

import datetime as dt

ENV_NOW = "KPIWATCH_NOW"


def system_now() -> dt.datetime:
    """The wall clock as naive UTC, to the second."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def as_utc_naive(value: dt.datetime) -> dt.datetime:
    """`value` as naive UTC (an aware value is converted; a naive one is taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def parse_now(text: str) -> dt.datetime:
    """A pinned `now` from its text: an ISO date (midnight UTC) or date and time (naive = UTC,
    an offset is converted). Raises ValueError with a message naming the expected form."""
    raw = (text or "").strip()
    try:
        if len(raw) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(raw), dt.time())
        return as_utc_naive(dt.datetime.fromisoformat(raw.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(f"{raw!r} is not a date or date-time (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM])") from None


def from_timestamp(seconds: float) -> dt.datetime:
    """A POSIX timestamp (e.g. a Dagster run's creation time) as naive UTC, to the second."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).replace(tzinfo=None, microsecond=0)


class FixedClock:
    """A clock that always says the same time: the run's `now`, callable where an alerting
    `Clock` (a function returning naive UTC) is expected."""

    __slots__ = ("now",)

    def __init__(self, now: dt.datetime):
        self.now = as_utc_naive(now)

    def __call__(self) -> dt.datetime:
        return self.now

    def __repr__(self) -> str:
        return f"FixedClock({self.now.isoformat()})"


def command_now(environ: dict[str, str] | None = None) -> dt.datetime:
    """`now` for a command outside a run (silence, ack, digest, report): KPIWATCH_NOW if set,
    else the wall clock. A command calls this once and passes the value on."""
    import os

    raw = (os.environ if environ is None else environ).get(ENV_NOW)
    if raw:
        try:
            return parse_now(raw)
        except ValueError as exc:
            raise ValueError(f"{ENV_NOW}: {exc}") from None
    return system_now()
