"""Pure formatters: message -> Slack Block Kit payload, plain-text fallback, console lines.

Deterministic (no clock, no environment, no randomness): the same message and link settings
always give the same payload, which the golden files in tests/unit/golden/ pin down.

One layout serves a single alert and a grouped message (everything one recipient hears in a
run): a header, then per notification a section (headline, text, fields) and a context line
(severity, what changed, rule, fingerprint, links). Digests have their own layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote

from alerts.model import Digest, Message, Notification

SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":large_blue_circle:",
}
EVENT_EMOJI = {"resolved": ":white_check_mark:", "repeat": ":repeat:", "escalated": ":rotating_light:"}
STATUS_EMOJI = {
    "green": ":large_green_circle:",
    "amber": ":large_orange_circle:",
    "red": ":red_circle:",
    "grey": ":white_circle:",
}
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
EVENT_RANK = {"escalated": 0, "firing": 1, "repeat": 2, "resolved": 3}

# Block Kit limits (api.slack.com/reference/block-kit/blocks).
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
FIELDS_PER_SECTION = 10
CONTEXT_TEXT_MAX = 3000
MAX_BLOCKS = 50
# A grouped message details this many notifications and lists the rest in one line each,
# staying under Slack's 50 blocks (each detailed notification takes at most 4 blocks).
MAX_DETAILED = 10
FALLBACK_TEXT_MAX = 3000

ENV_BASE_URL = "KPIWATCH_BASE_URL"
ENV_REPORT_URL = "KPIWATCH_REPORT_URL"
DEFAULT_BASE_URL = "http://127.0.0.1:3000"


@dataclass(frozen=True)
class LinkConfig:
    """Where links in messages point: the Dagster UI and the published report."""

    dagster_url: str | None = DEFAULT_BASE_URL
    report_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "LinkConfig":
        environ = os.environ if environ is None else environ
        base = (environ.get(ENV_BASE_URL) or "").strip() or DEFAULT_BASE_URL
        report = (environ.get(ENV_REPORT_URL) or "").strip() or None
        return cls(dagster_url=base, report_url=report)

    def dagster(self, path: str | None) -> str | None:
        if not path or not self.dagster_url:
            return None
        return self.dagster_url.rstrip("/") + "/" + quote(path, safe="/?=&-_.~")

    def report(self, anchor: str | None) -> str | None:
        if not self.report_url:
            return None
        base = self.report_url.split("#", 1)[0]
        return f"{base}#{quote(anchor, safe='-_.~')}" if anchor else base


def _truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis, never inside an escaped entity
    (``&amp;`` cut to ``&am`` would show a stray ``&`` and break Slack's parsing)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&", max(0, len(cut) - 4))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def escape_mrkdwn(text: str) -> str:
    """Slack's required escaping for user text inside mrkdwn and the top-level `text`
    (``&``, ``<``, ``>``): the one escaping function for everything kpiwatch sends to Slack."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape_mrkdwn(text: str) -> str:
    """The reverse of `escape_mrkdwn`, for showing a Slack `text` on a console."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_text(message: Message) -> str:
    """The top-level `text` of a Slack message: the plain fallback, escaped like the blocks
    (Slack parses it as mrkdwn: a KPI name or a column header holding ``<!channel>`` must not
    notify anyone), then cut to Slack's limit without splitting an entity."""
    return _truncate(escape_mrkdwn(fallback_text(message)), FALLBACK_TEXT_MAX)


def _link(url: str | None, label: str) -> str | None:
    if not url:
        return None
    safe = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{safe}|{label}>"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def headline(notification: Notification) -> str:
    title = notification.alert.title
    return {
        "resolved": f"Resolved: {title}",
        "repeat": f"Still firing: {title}",
        "escalated": f"Escalated: {title}",
    }.get(notification.event, title)


def _emoji(notification: Notification) -> str:
    return EVENT_EMOJI.get(notification.event) or SEVERITY_EMOJI.get(notification.alert.severity, "")


def _tag(notification: Notification) -> str:
    return {"resolved": "RESOLVED", "repeat": "REMINDER", "escalated": "ESCALATED"}.get(
        notification.event, notification.alert.severity.upper()
    )


def change_text(notification: Notification) -> str:
    """What changed since recipients were last told."""
    event = notification.event
    since = f" since {notification.since:%Y-%m-%d}" if notification.since else ""
    if event == "resolved":
        return "resolved"
    if event == "repeat":
        return f"reminder: firing{since}, not acknowledged"
    if event == "escalated":
        return f"escalated: firing{since}, not acknowledged"
    previous = notification.previous_labels
    if not previous:
        return "new"
    current = notification.alert.labels
    for key in ("status", "state"):
        if key in current and previous.get(key) != current.get(key):
            return f"{previous.get(key)} → {current.get(key)}"
    return "changed"


def _order(notifications) -> list[Notification]:
    return sorted(
        notifications,
        key=lambda n: (EVENT_RANK.get(n.event, 9) == 3, SEVERITY_RANK.get(n.alert.severity, 9),
                       EVENT_RANK.get(n.event, 9), n.alert.title, n.alert.fingerprint),
    )


def notification_text(notification: Notification) -> str:
    """One line of plain text about a notification."""
    alert = notification.alert
    text = f"[{_tag(notification)}] {headline(notification)}: {alert.text}"
    if notification.note:
        text += f" {notification.note}"
    return _one_line(text)


def fallback_text(message: Message) -> str:
    """Plain text Slack shows in notifications and previews (and screen readers use)."""
    if message.digest is not None:
        return _digest_text(message.digest)
    notes = _order(message.notifications)
    if len(notes) == 1:
        return _truncate(notification_text(notes[0]), FALLBACK_TEXT_MAX)
    summary = _count_text(notes)
    titles = "; ".join(f"[{_tag(n)}] {_one_line(headline(n))}" for n in notes)
    return _truncate(f"kpiwatch: {len(notes)} alerts ({summary}) — {titles}", FALLBACK_TEXT_MAX)


def console_line(notification: Notification) -> str:
    alert = notification.alert
    tag = {"resolved": "resolved", "repeat": "reminder", "escalated": "escalated"}.get(notification.event, alert.severity)
    return f"{tag:<9} " + _one_line(f"{alert.rule} -> {notification.channel}: {headline(notification)} | {alert.text}")


def _count_text(notes: list[Notification]) -> str:
    counts: dict[str, int] = {}
    for n in notes:
        key = "resolved" if n.event == "resolved" else n.alert.severity
        counts[key] = counts.get(key, 0) + 1
    order = ["critical", "warning", "info", "resolved"]
    return ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))


def _fields_blocks(fields: Mapping[str, str]) -> list[list[dict[str, Any]]]:
    items = [
        {"type": "mrkdwn", "text": _truncate(f"*{escape_mrkdwn(label)}*\n{escape_mrkdwn(str(value))}", FIELD_TEXT_MAX)}
        for label, value in fields.items()
    ]
    return [items[start : start + FIELDS_PER_SECTION] for start in range(0, len(items), FIELDS_PER_SECTION)]


def _notification_blocks(notification: Notification, links: LinkConfig, with_headline: bool) -> list[dict[str, Any]]:
    alert = notification.alert
    text = escape_mrkdwn(alert.text)
    if notification.note:
        text += "\n" + escape_mrkdwn(notification.note)
    if with_headline:
        text = f"*{_emoji(notification)} {escape_mrkdwn(_one_line(headline(notification)))}*\n" + text
    section: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(text, SECTION_TEXT_MAX)}}
    field_groups = _fields_blocks(alert.fields)
    blocks = []
    if field_groups:
        section["fields"] = field_groups[0]
    blocks.append(section)
    for group in field_groups[1:]:
        blocks.append({"type": "section", "fields": group})

    parts = [
        f"*{notification.event if notification.event != 'firing' else alert.severity}*",
        escape_mrkdwn(change_text(notification)),
        f"rule `{escape_mrkdwn(alert.rule)}`",
    ]
    if alert.as_of is not None:
        parts.append(f"as of {alert.as_of.isoformat()}")
    parts.append(f"fingerprint `{alert.fingerprint}`")
    for link in (_link(links.dagster(alert.dagster_path), "Dagster"), _link(links.report(alert.report_anchor), "Report")):
        if link:
            parts.append(link)
    context = " · ".join(parts)
    if notification.ack_hint and notification.event != "resolved":
        context += f"\nAcknowledge: `kpiwatch ack {alert.fingerprint} --by NAME --note TEXT`"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _truncate(context, CONTEXT_TEXT_MAX)}]})
    return blocks


def alert_blocks(message: Message, links: LinkConfig) -> list[dict[str, Any]]:
    notes = _order(message.notifications)
    if len(notes) == 1:
        note = notes[0]
        header = f"{_emoji(note)} {headline(note)}"
    else:
        header = f":bell: {len(notes)} kpiwatch alerts: {_count_text(notes)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _truncate(_one_line(header), HEADER_MAX), "emoji": True}}
    ]
    detailed, rest = notes[:MAX_DETAILED], notes[MAX_DETAILED:]
    for index, note in enumerate(detailed):
        if index:
            blocks.append({"type": "divider"})
        blocks.extend(_notification_blocks(note, links, with_headline=len(notes) > 1))
    if rest:
        lines = [f"• {_emoji(n)} {escape_mrkdwn(_one_line(headline(n)))} · `{n.alert.fingerprint}`" for n in rest]
        blocks.append({"type": "divider"})
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(f"*And {len(rest)} more:*\n" + "\n".join(lines), SECTION_TEXT_MAX)}}
        )
    return blocks[:MAX_BLOCKS]


# --------------------------------------------------------------------------- digests


def _digest_text(digest: Digest) -> str:
    counts = ", ".join(f"{digest.status_counts.get(s, 0)} {s}" for s in ("green", "amber", "red", "grey"))
    return _truncate(
        _one_line(
            f"Weekly KPI digest for {digest.name} ({digest.week}): {len(digest.kpis)} KPIs — {counts}; "
            f"{len(digest.changes)} change(s); {len(digest.upcoming)} upcoming milestone(s)."
        ),
        FALLBACK_TEXT_MAX,
    )


def digest_blocks(digest: Digest, links: LinkConfig) -> list[dict[str, Any]]:
    counts = " · ".join(
        f"{STATUS_EMOJI[s]} {digest.status_counts.get(s, 0)} {s}" for s in ("green", "amber", "red", "grey")
    )
    trust = ", ".join(f"{n} {t.replace('_', ' ')}" for t, n in sorted(digest.trust_counts.items()) if n)
    who = "your KPIs" if digest.audience == "owner" else "the department's KPIs"
    intro = f"*{escape_mrkdwn(digest.department)}* · {digest.week} · as of {digest.as_of.isoformat()}\n"
    intro += f"{len(digest.kpis)} of {who}: {counts}"
    if trust:
        intro += f"\nData trust: {escape_mrkdwn(trust)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": _truncate(_one_line(f":bar_chart: Weekly KPI digest: {digest.name}"), HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(intro, SECTION_TEXT_MAX)}},
    ]
    lines = []
    for kpi in digest.kpis:
        line = f"• {STATUS_EMOJI.get(kpi.status, '')} *{escape_mrkdwn(kpi.name)}*: {escape_mrkdwn(kpi.actual)}"
        line += f" against {escape_mrkdwn(kpi.expected)} expected"
        if kpi.data_trust != "trusted":
            line += f" · data {escape_mrkdwn(kpi.data_trust.replace('_', ' '))}"
        if digest.audience == "department" and kpi.owner:
            line += f" · {escape_mrkdwn(kpi.owner)}"
        lines.append(line)
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _truncate("*KPIs*\n" + "\n".join(lines), SECTION_TEXT_MAX)}})
    changes = [f"• {escape_mrkdwn(c)}" for c in digest.changes] or ["No status changes."]
    activity = ", ".join(f"{n} {event}" for event, n in sorted(digest.alert_activity.items()) if n)
    if activity:
        changes.append(f"Alerts this week: {activity}.")
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _truncate("*Changes*\n" + "\n".join(changes), SECTION_TEXT_MAX)}})
    upcoming = [
        f"• *{escape_mrkdwn(m.title)}*: due {m.due_date.isoformat()} (in {m.days_to_due} days) · {m.state.replace('_', ' ')}"
        for m in digest.upcoming
    ] or ["None due soon."]
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _truncate("*Upcoming milestones*\n" + "\n".join(upcoming), SECTION_TEXT_MAX)}})
    if digest.overdue_sources:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Overdue data*\n" + "\n".join(
            f"• {escape_mrkdwn(s)}" for s in digest.overdue_sources)}})
    footer = [p for p in (_link(links.report(None), "Report"), _link(links.dagster("assets/fct_kpi_progress"), "Dagster")) if p]
    footer.insert(0, f"kpiwatch weekly digest · {digest.audience}")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(footer)}]})
    return blocks


# --------------------------------------------------------------------------- payloads


def format_message(message: Message, links: LinkConfig | None = None) -> dict[str, Any]:
    """Keyword arguments for ``WebClient.chat_postMessage``: channel, text (fallback), blocks."""
    links = links or LinkConfig()
    blocks = digest_blocks(message.digest, links) if message.digest is not None else alert_blocks(message, links)
    return {"channel": message.channel, "text": slack_text(message), "blocks": blocks}


def slack_message(notification: Notification, links: LinkConfig | None = None) -> dict[str, Any]:
    """The payload of a message carrying just this notification."""
    return format_message(Message(notification.channel, (notification,)), links)


def rerouted_payload(payload: Mapping[str, Any], fallback_channel: str, error: str) -> dict[str, Any]:
    """`payload` re-addressed to the fallback channel, saying where it could not be delivered."""
    original = payload.get("channel", "")
    note = f":warning: Could not be delivered to `{escape_mrkdwn(str(original))}` ({escape_mrkdwn(error)}); posted here instead."
    blocks = list(payload.get("blocks") or [])
    insert_at = 1 if blocks and blocks[0].get("type") == "header" else 0
    blocks.insert(insert_at, {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return {
        **payload,
        "channel": fallback_channel,
        # payload["text"] is escaped already; what is added here is escaped now.
        "text": _truncate(f"[undeliverable to {escape_mrkdwn(str(original))}: {escape_mrkdwn(error)}] "
                          f"{payload.get('text', '')}", FALLBACK_TEXT_MAX),
        "blocks": blocks[:MAX_BLOCKS],
    }
