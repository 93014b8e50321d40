"""What the asset, the sensor, the schedule and the CLI share: settings -> rules, warehouse
connections, the transport (Slack or console + JSONL), message links."""
from __future__ import annotations

import datetime as dt
from typing import IO

from pipelines.config import Settings


def load_rules_for(settings: Settings):
    from alerts.rules import load_rules

    return load_rules(settings.rules_file) if settings.rules_file else load_rules()


def open_warehouse(settings: Settings):
    """Short-lived connections through pipelines.warehouse (a held lock -> WarehouseBusy)."""
    from pipelines.warehouse import connect

    return lambda: connect(settings.warehouse)


def transport_for(settings: Settings, stream: IO[str] | None = None):
    from alerts.sinks import transport_from_env

    return transport_from_env(settings.alerts_path, stream=stream)


def links():
    from alerts.formatting import LinkConfig

    return LinkConfig.from_env()


def send_digests(settings: Settings, *, run_id: str, as_of: dt.date | None = None, clock=None,
                 stream: IO[str] | None = None, dry_run: bool = False):
    """Build this week's digests and deliver those not sent yet. Returns (digests, queued, delivery)."""
    from alerts.delivery import deliver
    from alerts.digest import build_digests, queue_digests

    from pipelines.clock import FixedClock, system_now

    clock = clock or FixedClock(settings.now or system_now())  # read once for the whole command
    rules = load_rules_for(settings)
    opener = open_warehouse(settings)
    now = clock()
    with opener() as con:
        digests = build_digests(con, rules, now=now, as_of=as_of)
        if dry_run:
            return digests, [], None
        queued = queue_digests(con, digests, run_id=run_id, now=now, links=links())
    delivery = deliver(opener, transport_for(settings, stream), run_id=run_id,
                       fallback_channel=rules.fallback_channel, clock=clock)
    return digests, queued, delivery
