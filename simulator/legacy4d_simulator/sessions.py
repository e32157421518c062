"""REST sessions and the 4D Client licence pool (protocol doc 4.1-4.3, checklist 20-23).

Every session holds one licence until it has been idle for its lifetime (or is expired by a
fault); an exhausted pool answers HTTP 402 / errCode 1823. Force-login guests hold no licence.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from legacy4d_simulator import errors


@dataclass
class Session:
    """One REST session."""

    id: str
    idle_seconds: float
    authenticated: bool = False
    user: str | None = None
    licensed: bool = True
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    structure: Any = None
    """The datastore model loaded when the session opened (structure.Structure)."""


class SessionManager:
    """Thread-safe session table with licence accounting."""

    def __init__(self, licences: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.licences = licences
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.created = 0

    def _sweep(self, now: float) -> None:
        stale = [sid for sid, s in self._sessions.items() if now - s.last_used > s.idle_seconds]
        for sid in stale:
            del self._sessions[sid]

    def active(self) -> int:
        """Sessions currently holding a licence."""
        with self._lock:
            self._sweep(self.clock())
            return sum(1 for s in self._sessions.values() if s.licensed)

    def sessions(self) -> list[Session]:
        """Live sessions (for ``$info``)."""
        with self._lock:
            self._sweep(self.clock())
            return list(self._sessions.values())

    def lookup(self, sid: str | None) -> Session | None:
        """The live session for a cookie value, touched; None when unknown or idle too long."""
        if not sid:
            return None
        with self._lock:
            now = self.clock()
            s = self._sessions.get(sid)
            if s is None:
                return None
            if now - s.last_used > s.idle_seconds:
                del self._sessions[sid]
                return None
            s.last_used = now
            return s

    def create(
        self,
        idle_seconds: float,
        *,
        authenticated: bool = False,
        user: str | None = None,
        licensed: bool = True,
        structure: Any = None,
    ) -> Session:
        """Open a session; raises the 402 :class:`RestError` when no licence is left."""
        with self._lock:
            now = self.clock()
            self._sweep(now)
            if licensed and sum(1 for s in self._sessions.values() if s.licensed) >= self.licences:
                raise errors.max_sessions()
            s = Session(
                secrets.token_hex(16).upper(),
                idle_seconds,
                authenticated,
                user,
                licensed,
                now,
                now,
                structure,
            )
            self._sessions[s.id] = s
            self.created += 1
            return s

    def take_licence(self, s: Session) -> None:
        """Give a licence-free (force-login guest) session a licence at login."""
        with self._lock:
            if s.licensed:
                return
            self._sweep(self.clock())
            if sum(1 for x in self._sessions.values() if x.licensed) >= self.licences:
                raise errors.max_sessions()
            s.licensed = True

    def end(self, sid: str | None) -> bool:
        """End one session now (logout), freeing its licence. False when it was not live."""
        if not sid:
            return False
        with self._lock:
            return self._sessions.pop(sid, None) is not None

    def expire_all(self) -> int:
        """Drop every session (server restart / idle expiry fault). Returns how many."""
        with self._lock:
            n = len(self._sessions)
            self._sessions.clear()
            return n
