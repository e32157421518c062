-- Tables the sync owns (schemas legacy_staging and legacy_sync). Idempotent: applied by the
-- DAG's first task on every run, so a new deployment needs no separate migration step, and an
-- older deployment gains what was added since (the `alter ... if not exists` lines at the end).
-- dbt never creates or drops anything here; it reads legacy_staging as sources.
-- Only plugins/legacy_sync/ledger.py writes the legacy_sync tables.

create schema if not exists legacy_staging;
create schema if not exists legacy_sync;

-- One row per sync run: its change window, taken once for every table of the run.
create table if not exists legacy_sync.sync_run (
    run_id          text        primary key,
    dag_id          text,
    mode            text        not null,
    window_stamp    bigint,     -- 4D's global stamp when the run began: every stamp window ends here
    window_date     date,       -- 4D's today (the server's Date header): no date watermark passes it
    started_at      timestamptz not null default now(),
    summarized_at   timestamptz -- the summary ran; a task cleared afterwards never re-opens the run
);

-- The run dbt works on, with its settings: written under the transform lock before each build
-- and read by the models (so the run id is data, not a dbt var).
create table if not exists legacy_sync.transform_context (
    singleton            boolean     primary key default true check (singleton),
    run_id               text        not null,
    delete_hold_share    numeric     not null,
    delete_hold_min_rows bigint      not null,
    updated_at           timestamptz not null default now()
);

-- One row per extract of one table in one run: what landed and whether the key set is complete.
create table if not exists legacy_sync.landing_batch (
    run_id          text        not null,
    table_name      text        not null,
    mode            text        not null,
    strategy        text        not null,
    complete_key_set boolean    not null default false,
    records_landed  bigint      not null default 0,
    source_count    bigint,
    deleted_keys    bigint      not null default 0,
    watermark_from  text,
    watermark_to    text,
    started_at      timestamptz not null default now(),
    finished_at     timestamptz,
    primary key (run_id, table_name)
);

-- Keys 4D reports as deleted (__DeletedRecords), or found missing when read again by key.
create table if not exists legacy_staging.deleted_records_raw (
    run_id       text        not null,
    table_name   text        not null,
    legacy_id    text        not null,
    stamp        bigint,
    extracted_at timestamptz not null default now()
);
create index if not exists deleted_records_raw_run on legacy_staging.deleted_records_raw (run_id, table_name);

create table if not exists legacy_sync.sync_state (
    table_name      text primary key,
    strategy        text        not null,
    watermark       text,
    last_run_id     text,
    updated_at      timestamptz not null default now()
);

create table if not exists legacy_sync.sync_log (
    id                bigint generated always as identity primary key,
    run_id            text        not null,
    table_name        text        not null,
    mode              text        not null,
    status            text        not null default 'PENDING'
        check (status in ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'PARTIALLY_COMPLETED')),
    records_processed bigint      not null default 0,
    records_created   bigint      not null default 0,
    records_updated   bigint      not null default 0,
    records_unchanged bigint      not null default 0,
    records_deleted   bigint      not null default 0,
    records_failed    bigint      not null default 0,
    watermark_from    text,
    watermark_to      text,
    start_time        timestamptz,
    end_time          timestamptz,
    error_message     text,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    unique (run_id, table_name)
);
create index if not exists sync_log_table_time on legacy_sync.sync_log (table_name, created_at desc);

create table if not exists legacy_sync.sync_error (
    id            bigint generated always as identity primary key,
    sync_log_id   bigint      not null references legacy_sync.sync_log (id) on delete cascade,
    record_id     text        not null,
    error_message text        not null,
    record_data   jsonb,
    created_at    timestamptz not null default now()
);
create index if not exists sync_error_log on legacy_sync.sync_error (sync_log_id);

-- Records that are not in erp (or whose newest version is not) because they were rejected,
-- until a later version loads or 4D deletes them. `retry`: rejected only because of other
-- records (a missing parent, a business key held elsewhere), so every run reads it again by key.
create table if not exists legacy_sync.open_reject (
    table_name    text        not null,
    record_id     text        not null,
    first_run_id  text        not null,
    last_run_id   text        not null,
    error_message text        not null,
    record_data   jsonb,
    retry         boolean     not null,
    since         timestamptz not null default now(),
    primary key (table_name, record_id)
);

-- Per-record warnings: loaded, but worth a look (a legacy order whose total differs from its
-- lines, a ModifiedDate in the future, an unreadable ModifiedTime).
create table if not exists legacy_sync.sync_warning (
    id              bigint generated always as identity primary key,
    sync_log_id     bigint      not null references legacy_sync.sync_log (id) on delete cascade,
    record_id       text        not null,
    warning_message text        not null,
    created_at      timestamptz not null default now()
);
create index if not exists sync_warning_log on legacy_sync.sync_warning (sync_log_id);

-- Deletions the mass-change circuit breaker held: they apply only after a person approves.
create table if not exists legacy_sync.held_delete (
    table_name   text        not null,
    legacy_id    text        not null,
    run_id       text        not null,    -- the run that last held it
    first_run_id text        not null,    -- the run that first held it (since the last decision)
    reason       text        not null,
    status       text        not null default 'HELD' check (status in ('HELD', 'APPLIED', 'DISCARDED')),
    decided_by   text,
    decided_run_id text,
    held_at      timestamptz not null default now(),
    decided_at   timestamptz,
    primary key (table_name, legacy_id)
);
create index if not exists held_delete_status on legacy_sync.held_delete (status, table_name);

-- The 4D session cookie, shared by every task and run so one licence serves them all.
create table if not exists legacy_sync.fourd_session (
    conn_id      text primary key,
    cookie_name  text        not null,
    cookie_value text        not null,
    created_at   timestamptz not null default now(),
    last_used_at timestamptz not null default now()
);

-- Added after the first release.
alter table legacy_sync.sync_log add column if not exists source_count bigint;
alter table legacy_sync.sync_log add column if not exists records_missing bigint not null default 0;
alter table legacy_sync.sync_log add column if not exists reconcile_message text;
alter table legacy_sync.sync_log add column if not exists reconciled boolean;
alter table legacy_sync.sync_log add column if not exists records_open_rejects bigint not null default 0;
alter table legacy_sync.sync_log add column if not exists records_warned bigint not null default 0;
alter table legacy_sync.sync_log add column if not exists records_deletes_held bigint not null default 0;
alter table legacy_sync.landing_batch add column if not exists records_retried bigint not null default 0;
alter table legacy_sync.landing_batch add column if not exists table_count bigint;
alter table legacy_sync.landing_batch add column if not exists hold_deletes boolean not null default false;
alter table legacy_sync.landing_batch add column if not exists hold_reason text;
-- The first release allowed only full / incremental / replay; targeted repairs and approvals came later.
alter table legacy_sync.sync_log drop constraint if exists sync_log_mode_check;
alter table legacy_sync.landing_batch drop constraint if exists landing_batch_mode_check;

-- Cutover confidence (issue 18): written only by plugins/legacy_sync/cutover_ledger.py.

-- 4D's $catalog of each synced table as the last run saw it (what the next run compares with).
-- `pending_*`: a structure a freeze-policy table waits on, until a person accepts it.
create table if not exists legacy_sync.catalog_snapshot (
    table_name         text        primary key,
    exposed            boolean     not null,
    attributes         jsonb       not null,   -- {name: {type, kind, identifying, scope, ...}}
    pending_exposed    boolean,
    pending_attributes jsonb,
    run_id             text        not null,   -- the run that took it
    taken_at           timestamptz not null default now()
);

-- Each structure change of 4D, reported once: severity info / warning / breaking, the table's
-- policy, and what became of it (REPORTED: loaded on; PENDING: a frozen table waits for a person;
-- APPROVED: accepted; REVERTED: 4D went back to the structure the sync knows).
create table if not exists legacy_sync.schema_drift (
    id           bigint generated always as identity primary key,
    run_id       text        not null,
    table_name   text        not null,
    attribute    text,                    -- null for the table itself (exposure)
    change       text        not null,    -- added / removed / retyped / resized / key / exposure ...
    severity     text        not null check (severity in ('info', 'warning', 'breaking')),
    policy       text        not null,
    status       text        not null check (status in ('REPORTED', 'PENDING', 'APPROVED', 'REVERTED')),
    before       jsonb,
    after        jsonb,
    message      text        not null,
    detected_at  timestamptz not null default now(),
    decided_by   text,
    decided_at   timestamptz
);
create index if not exists schema_drift_table on legacy_sync.schema_drift (table_name, id desc);
create index if not exists schema_drift_run on legacy_sync.schema_drift (run_id);

-- Coverage audits: what 4D's REST user can see that the sync does not move (one report each).
create table if not exists legacy_sync.coverage_report (
    id                 bigint generated always as identity primary key,
    source             text        not null,   -- a DAG run id or `cli`
    taken_at           timestamptz not null default now(),
    tables_unsynced    integer     not null,
    fields_unsynced    integer     not null,
    fields_missing     integer     not null,
    tables_without_key integer     not null,
    complete           boolean     not null,   -- nothing of the above: everything 4D shows is synced
    report             jsonb       not null
);

-- Legacy-vs-ERP diffs: one row per diff run, one per table of it, and the keys that differ.
create table if not exists legacy_sync.diff_run (
    diff_id      text        primary key,
    dag_id       text,
    tables       text[]      not null,
    status       text        not null default 'RUNNING'
        check (status in ('RUNNING', 'READY', 'BELOW_THRESHOLD', 'FAILED')),
    readiness    numeric,                 -- overall share of 4D records identical in erp (0..1)
    threshold    numeric     not null,
    message      text,
    started_at   timestamptz not null default now(),
    finished_at  timestamptz
);
create table if not exists legacy_sync.diff_table (
    diff_id           text        not null references legacy_sync.diff_run (diff_id) on delete cascade,
    table_name        text        not null,
    fourd_records     bigint      not null default 0,
    erp_live          bigint      not null default 0,
    identical         bigint      not null default 0,
    different         bigint      not null default 0,
    missing_in_erp    bigint      not null default 0,
    extra_in_erp      bigint      not null default 0,
    rejected          bigint      not null default 0,  -- the mapping rejects 4D's record
    known_rejects     bigint      not null default 0,  -- ... and the sync already lists it as a reject
    readiness         numeric,                         -- identical / (fourd_records - known_rejects)
    differing_columns jsonb       not null default '{}'::jsonb,  -- {column: records}
    keys_kept         bigint      not null default 0,
    error_message     text,
    compared_at       timestamptz,
    primary key (diff_id, table_name)
);
create table if not exists legacy_sync.diff_key (
    diff_id    text   not null references legacy_sync.diff_run (diff_id) on delete cascade,
    table_name text   not null,
    legacy_id  text   not null,
    status     text   not null check (status in ('different', 'missing_in_erp', 'extra_in_erp', 'rejected')),
    columns    text[] not null default '{}',
    reason     text,
    primary key (diff_id, table_name, legacy_id)
);

-- Freshness: one row per episode of a table older than its limit; the alert goes out once, at the
-- start of an episode, and the episode closes when a run syncs the table again.
create table if not exists legacy_sync.freshness_alert (
    id               bigint generated always as identity primary key,
    table_name       text        not null,
    last_success_at  timestamptz,
    limit_minutes    integer     not null,
    detected_at      timestamptz not null default now(),
    recovered_at     timestamptz,
    recovered_run_id text
);
create unique index if not exists freshness_alert_open
    on legacy_sync.freshness_alert (table_name) where recovered_at is null;

-- One digest per sync run: sent, or suppressed as an identical repeat of the last one sent.
create table if not exists legacy_sync.digest_log (
    run_id      text        primary key,
    dag_id      text,
    fingerprint text        not null,
    sent        boolean     not null,
    channels    text,
    subject     text        not null,
    body        text        not null,
    created_at  timestamptz not null default now()
);
create index if not exists digest_log_dag on legacy_sync.digest_log (dag_id, created_at desc);
