"""Simulator settings: the knobs that make it behave like one 4D server or another."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SimulatorConfig:
    """How the simulated 4D server behaves. Defaults: a modern (v20) open server.

    Access modes (protocol doc 4.2, checklist 22/23):
        * ``username`` None: *open* (``<Anyone>``): any request without a valid cookie opens a guest
          session, which takes a licence; a stale cookie silently gets a new session.
        * ``username`` set: *restricted*: data requests need a session opened by a successful
          ``$directory/login`` (or ``$catalog/authentify``); otherwise, or with a stale cookie, 401.
        * ``force_login`` True (with credentials): descriptive requests (``$catalog*``) are served to
          a licence-free guest; the licence is taken at login.

    Attributes:
        username: REST user; None = open access.
        password: its password.
        hashed_password: value accepted in the legacy ``hashed-password-4D`` header (4D digest).
        cookie_name: ``WASID4D`` (legacy sessions) or ``4DSID_<AppName>`` (scalable sessions).
        licences: 4D Client licences available to REST sessions.
        session_idle_seconds: idle timeout of a session; a ``session-4D-length`` header of N minutes
            (minimum 60) multiplies it by N/60, so tests can use short "hours".
        force_login: 20 R5+ force-login mode.
        default_top: page size when neither ``$top`` nor ``$limit`` is given.
        max_page_size: server-side cap on ``$top`` (None: no cap, as documented).
        legacy_quirks: 4D Mobile-era output: quoted ``__TIMESTAMP``, ``__SENT`` after ``__ENTITIES``,
            no ``__DATACLASS``/``__GlobalStamp`` in envelopes.
        logout_endpoint: ``$directory/logout`` (GET or POST) ends the caller's session and frees its
            licence; False: unknown path (404/1800), as on servers whose docs list only ``login``.
        shuffle_unsorted: serve selections without ``$orderby`` in a scrambled (non-key) order.
        change_tracking: the datastore has ``__GlobalStamp`` fields and ``__DeletedRecords``.
        untracked_tables: tables served without ``__GlobalStamp`` (envelope stamp 0, no deletion log).
        hidden_tables: tables not exposed (absent from ``$catalog``, 1800 on access).
        hidden_fields: ``"Table.Field"`` not exposed (absent from the catalog, 1500 when asked).
        privileged_fields: ``"Table.Field"`` the session may not read (silently omitted).
        null_dates_as_null: serve blank dates as ``null`` instead of ``"0!0!0"``.
        strict_dates: date *placeholders* fail with 1279 (the Wakanda/4D Mobile bug) and only
            ``'YYYY-MM-DD'`` literals are accepted.
        relations: expose relation attributes (``__deferred`` stubs) besides the plain FK fields.
        showcase_fields: add Products ``Photo`` (image), ``Specs`` (object), ``Manual`` (blob) and
            ``ProductUUID`` (uuid) so every 4D type encoding can be seen.
        key_brackets: server-generated URIs use ``T[k]`` (v20+) instead of ``T(k)``.
        entityset_timeout: default ``$timeout`` of entity sets, seconds.
        max_entity_sets: sets kept before the least recently used is evicted ("memory pressure").
        app_name: used in ``$info``.
        control_token: when set, ``/_sim/*`` needs header ``X-Sim-Token``.
        time_unit: unit of Time (duration) values on the wire; only ``"ms"`` is implemented.
        clock_offset_days: the server machine's clock runs this many days off real time (``Date``
            header, ``__TIMESTAMP``, ModifiedDate/ModifiedTime of saves); see ``Simulator.set_clock``.
        schema_changes_need_new_session: run-time structure changes (``sim.schema``) are seen only
            by sessions opened afterwards, as 4D documents; False: by every request at once.
        balancer_cookie: name of a sticky-session load balancer's cookie (e.g. ``"SRVID"``) set on
            every response as ``NAME=node1; Path=/``; it is not a 4D session cookie.
    """

    username: str | None = None
    password: str | None = None
    hashed_password: str | None = None
    cookie_name: str = "WASID4D"
    licences: int = 10
    session_idle_seconds: float = 3600
    force_login: bool = False
    default_top: int = 100
    max_page_size: int | None = None
    legacy_quirks: bool = False
    shuffle_unsorted: bool = True
    change_tracking: bool = True
    untracked_tables: frozenset[str] = frozenset()
    hidden_tables: frozenset[str] = frozenset()
    hidden_fields: frozenset[str] = frozenset()
    privileged_fields: frozenset[str] = frozenset()
    null_dates_as_null: bool = False
    strict_dates: bool = False
    relations: bool = True
    showcase_fields: bool = False
    key_brackets: bool = False
    entityset_timeout: float = 7200
    max_entity_sets: int = 100
    app_name: str = "LegacyERP"
    control_token: str | None = None
    time_unit: str = "ms"
    logout_endpoint: bool = True
    clock_offset_days: float = 0
    balancer_cookie: str | None = None
    schema_changes_need_new_session: bool = True

    @property
    def restricted(self) -> bool:
        """True when credentials are required for data requests."""
        return self.username is not None
