"""Pure formatters: notification -> Slack Block Kit payload, plain-text fallback, console line.

Deterministic (no clock, no randomness): the same notification always gives the same payload,
which the golden files in tests/unit/golden/ pin down.
"""

from __future__ import annotations

from typing import Any

from alerts.model import Notification

SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":large_blue_circle:",
}
RESOLVED_EMOJI = ":white_check_mark:"

# Block Kit limits (api.slack.com/reference/block-kit/blocks).
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
FIELDS_PER_SECTION = 10


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape_mrkdwn(text: str) -> str:
    """Slack's required escaping for user text inside mrkdwn (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def headline(notification: Notification) -> str:
    alert = notification.alert
    if notification.event == "resolved":
        return f"Resolved: {alert.title}"
    return alert.title


def fallback_text(notification: Notification) -> str:
    """Plain text used by Slack for notifications/previews, and by non-Slack sinks."""
    alert = notification.alert
    tag = "RESOLVED" if notification.event == "resolved" else alert.severity.upper()
    return _one_line(f"[{tag}] {alert.title}: {alert.text}")


def console_line(notification: Notification) -> str:
    alert = notification.alert
    tag = "resolved" if notification.event == "resolved" else alert.severity
    return f"{tag:<8} " + _one_line(f"{alert.rule} -> {alert.channel}: {alert.title} | {alert.text}")


def slack_blocks(notification: Notification) -> list[dict[str, Any]]:
    alert = notification.alert
    emoji = RESOLVED_EMOJI if notification.event == "resolved" else SEVERITY_EMOJI.get(alert.severity, "")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _truncate(_one_line(f"{emoji} {headline(notification)}"), HEADER_MAX),
                "emoji": True,
            },
        }
    ]
    fields = [
        {"type": "mrkdwn", "text": _truncate(f"*{escape_mrkdwn(label)}*\n{escape_mrkdwn(str(value))}", FIELD_TEXT_MAX)}
        for label, value in alert.fields.items()
    ]
    section: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _truncate(escape_mrkdwn(alert.text), SECTION_TEXT_MAX)},
    }
    if fields:
        section["fields"] = fields[:FIELDS_PER_SECTION]
    blocks.append(section)
    for start in range(FIELDS_PER_SECTION, len(fields), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[start : start + FIELDS_PER_SECTION]})
    context = [
        f"*{notification.event}*" if notification.event == "resolved" else f"*{alert.severity}*",
        f"rule `{escape_mrkdwn(alert.rule)}`",
    ]
    if alert.as_of is not None:
        context.append(f"as of {alert.as_of.isoformat()}")
    context.append(f"fingerprint `{alert.fingerprint}`")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    return blocks


def slack_message(notification: Notification) -> dict[str, Any]:
    """Keyword arguments for ``WebClient.chat_postMessage``: channel, text (fallback), blocks."""
    return {
        "channel": notification.alert.channel,
        "text": fallback_text(notification),
        "blocks": slack_blocks(notification),
    }
