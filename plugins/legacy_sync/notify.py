"""Where the sync's digests and alerts go: the Airflow notifiers the deployment configures.

``LEGACY_SYNC_NOTIFIERS`` lists the channels, comma-separated (none: messages are only logged):

- ``smtp``: Airflow's ``SmtpNotifier`` (``apache-airflow-providers-smtp``) to
  ``LEGACY_SYNC_NOTIFY_EMAIL`` (comma-separated addresses), through the SMTP connection
  ``LEGACY_SYNC_SMTP_CONN_ID`` (default: Airflow's ``[email] email_conn_id``, ``smtp_default``),
  from ``LEGACY_SYNC_NOTIFY_FROM`` (default: the connection's);
- ``slack``: a Slack incoming webhook (``{"text": ...}``), URL in the Airflow connection
  ``legacy_sync_slack`` (its host, the full ``https://hooks.slack.com/services/...`` URL);
- ``webhook``: any JSON endpoint (the message's subject, text and data), URL in the connection
  ``legacy_sync_webhook`` (its host; its password, if set, is sent as a bearer token);
- ``package.module:ClassName``: any other ``BaseNotifier`` subclass, built without arguments (it
  finds the message in its context under ``legacy_sync_message``).

Secrets (webhook URLs, SMTP passwords) live only in Airflow connections. Each message builds its
notifiers afresh: Airflow renders a notifier's templated fields in place, once.
"""

from __future__ import annotations

import html
import importlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import BaseNotifier

from legacy_sync.contracts import MONITOR_URL_PREFIX

log = logging.getLogger(__name__)

NOTIFIERS_ENV = "LEGACY_SYNC_NOTIFIERS"
MESSAGE_KEY = "legacy_sync_message"
SLACK_CONN_ID = "legacy_sync_slack"
WEBHOOK_CONN_ID = "legacy_sync_webhook"


@dataclass(frozen=True)
class Section:
    title: str
    lines: list[str]


@dataclass(frozen=True)
class Message:
    """One digest or alert: a subject, sections of lines, a link, and its data for machines."""

    kind: str
    subject: str
    sections: list[Section]
    link: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def section(self, title: str) -> Section | None:
        return next((s for s in self.sections if s.title == title), None)

    @property
    def text(self) -> str:
        parts = [self.subject]
        for s in self.sections:
            parts.append(f"\n{s.title}\n" + "\n".join(f"- {line}" for line in s.lines or ["none"]))
        if self.link:
            parts.append(f"\nMonitor: {self.link}")
        return "\n".join(parts)

    @property
    def html(self) -> str:
        out = [f"<h2>{html.escape(self.subject)}</h2>"]
        for s in self.sections:
            out.append(f"<h3>{html.escape(s.title)}</h3><ul>")
            out += [f"<li>{html.escape(line)}</li>" for line in s.lines or ["none"]]
            out.append("</ul>")
        if self.link:
            out.append(f'<p><a href="{html.escape(self.link)}">Open the sync monitor</a></p>')
        return "".join(out)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "sections": {s.title: s.lines for s in self.sections},
            "link": self.link,
            "data": self.data,
        }


class WebhookNotifier(BaseNotifier):
    """POST a message to a webhook: Slack's incoming-webhook shape or plain JSON."""

    def __init__(self, conn_id: str = WEBHOOK_CONN_ID, style: str = "json", timeout: float = 15.0) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.style = style
        self.timeout = timeout

    def notify(self, context: Any) -> None:
        import httpx
        from airflow.sdk import BaseHook

        message: Message = context[MESSAGE_KEY]
        conn = BaseHook.get_connection(self.conn_id)
        url = str(conn.host or "")
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"connection {self.conn_id}: its host must be the webhook's full URL")
        headers = (
            {"Authorization": f"Bearer {conn.password}"} if conn.password and self.style != "slack" else {}
        )
        body = {"text": message.text} if self.style == "slack" else message.as_dict()
        httpx.post(url, json=body, headers=headers, timeout=self.timeout).raise_for_status()


def _smtp() -> BaseNotifier:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    to = [a.strip() for a in os.environ.get("LEGACY_SYNC_NOTIFY_EMAIL", "").split(",") if a.strip()]
    if not to:
        raise ValueError("LEGACY_SYNC_NOTIFIERS has smtp but LEGACY_SYNC_NOTIFY_EMAIL names no address")
    return SmtpNotifier(
        to=to,
        from_email=os.environ.get("LEGACY_SYNC_NOTIFY_FROM") or None,
        smtp_conn_id=os.environ.get("LEGACY_SYNC_SMTP_CONN_ID") or None,
        # Rendered by Airflow from the context: the message's own text is never a template.
        subject="{{ " + MESSAGE_KEY + ".subject }}",
        html_content="{{ " + MESSAGE_KEY + ".html }}",
    )


def configured_notifiers(spec: str | None = None) -> list[tuple[str, BaseNotifier]]:
    """(channel, notifier) for each channel of ``spec`` (default ``LEGACY_SYNC_NOTIFIERS``)."""
    spec = os.environ.get(NOTIFIERS_ENV, "") if spec is None else spec
    found: list[tuple[str, BaseNotifier]] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item == "smtp":
            found.append((item, _smtp()))
        elif item == "slack":
            found.append((item, WebhookNotifier(SLACK_CONN_ID, style="slack")))
        elif item == "webhook":
            found.append((item, WebhookNotifier(WEBHOOK_CONN_ID)))
        elif ":" in item:
            module, _, name = item.partition(":")
            cls = getattr(importlib.import_module(module), name)
            if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
                raise TypeError(f"{NOTIFIERS_ENV}: {item} is not an Airflow BaseNotifier class")
            found.append((item, cls()))
        else:
            raise ValueError(
                f"{NOTIFIERS_ENV}: unknown channel {item!r} (smtp, slack, webhook or module:Class)"
            )
    return found


def send(message: Message, context: Mapping[str, Any] | None = None) -> list[str]:
    """Log ``message`` and hand it to every configured notifier; returns the channels that took
    it. A channel that fails is logged and does not stop the others."""
    log.log(logging.INFO if message.kind == "digest" else logging.WARNING, "%s", message.text)
    delivered = []
    for channel, notifier in configured_notifiers():
        try:
            notifier({**dict(context or {}), MESSAGE_KEY: message})
        except Exception:
            log.exception("could not send the %s through %s", message.kind, channel)
            continue
        delivered.append(channel)
    return delivered


def monitor_url(path: str = "/") -> str | None:
    """The sync monitor's URL for ``path`` (``LEGACY_SYNC_MONITOR_URL``, else Airflow's
    ``[api] base_url`` + ``/legacy-sync``); None when neither is known."""
    base = os.environ.get("LEGACY_SYNC_MONITOR_URL", "").strip()
    if not base:
        airflow = os.environ.get("AIRFLOW__API__BASE_URL", "").strip()
        if not airflow:
            try:
                from airflow.configuration import conf

                airflow = str(conf.get("api", "base_url", fallback="") or "")
            except Exception:  # no Airflow configuration here (a plain CLI)
                airflow = ""
        if not airflow:
            return None
        base = airflow.rstrip("/") + MONITOR_URL_PREFIX
    return base.rstrip("/") + path
