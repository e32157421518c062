"""An Airflow notifier that keeps what it is given, for tests:
``LEGACY_SYNC_NOTIFIERS=tests.capture_notifier:CapturingNotifier``."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk import BaseNotifier

from legacy_sync.notify import MESSAGE_KEY, Message


class CapturingNotifier(BaseNotifier):
    """Every message handed to any instance, in order (class-wide: instances are built per message)."""

    received: ClassVar[list[Message]] = []

    def notify(self, context: Any) -> None:
        CapturingNotifier.received.append(context[MESSAGE_KEY])

    @classmethod
    def take(cls, kind: str | None = None) -> list[Message]:
        """The messages received so far (of ``kind``), forgetting them all."""
        found = [m for m in cls.received if kind is None or m.kind == kind]
        cls.received.clear()
        return found
