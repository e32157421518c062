#!/usr/bin/env bash
# First start of the erp-db container only (docker-entrypoint-initdb.d): the sync monitor's role.
# The monitor (inside Airflow's api-server, connection erp_postgres_monitor) only reads the
# legacy_sync tables it shows (erp_db.MONITOR_TABLES: sync log, errors, warnings, held deletions,
# cutover reports). This role may connect and look into the legacy_sync schema; SELECT on those
# tables is granted by the sync itself when it creates them (legacy_sync.ledger.grant_monitor_access;
# LEGACY_SYNC_MONITOR_ROLE names this role). It gets
# nothing else: no write, no other table (not the 4D session cookie), no other schema.
# Its sessions are read-only by default too. The same SQL, for an existing ERP database, is in
# docs/deployment.md.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="$ERP_DB_MONITOR_USER" -v password="$ERP_DB_MONITOR_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
create role :"role" login password :'password'
    nosuperuser nocreatedb nocreaterole noinherit;
alter role :"role" set default_transaction_read_only = on;
alter role :"role" set statement_timeout = '15s';
alter role :"role" set idle_in_transaction_session_timeout = '30s';
grant connect on database :"db" to :"role";
grant usage on schema legacy_sync to :"role";
SQL
