-- Tables the sync owns (schemas legacy_staging and legacy_sync). Idempotent: applied by the
-- DAG's first task on every run, so a new deployment needs no separate migration step.
-- dbt never creates or drops anything here; it reads legacy_staging as sources.

create schema if not exists legacy_staging;
create schema if not exists legacy_sync;

-- One row per extract of one table in one run: what landed and whether the key set is complete.
create table if not exists legacy_sync.landing_batch (
    run_id          text        not null,
    table_name      text        not null,
    mode            text        not null check (mode in ('full', 'incremental', 'replay')),
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

-- Keys 4D reports as deleted (__DeletedRecords), or found missing by a full key-set compare.
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
    mode              text        not null check (mode in ('full', 'incremental', 'replay')),
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

-- The 4D session cookie, shared by every task and run so one licence serves them all.
create table if not exists legacy_sync.fourd_session (
    conn_id      text primary key,
    cookie_name  text        not null,
    cookie_value text        not null,
    created_at   timestamptz not null default now(),
    last_used_at timestamptz not null default now()
);

-- Added after the first release: reconciliation results (source vs erp + open rejects).
alter table legacy_sync.sync_log add column if not exists source_count bigint;
alter table legacy_sync.sync_log add column if not exists records_missing bigint not null default 0;
alter table legacy_sync.sync_log add column if not exists reconcile_message text;
