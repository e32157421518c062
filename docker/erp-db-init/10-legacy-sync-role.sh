#!/usr/bin/env bash
# First start of the erp-db container only (docker-entrypoint-initdb.d): the sync's own,
# least-privilege role. It owns the five schemas the sync writes and nothing else: no superuser,
# no rights on other schemas. CREATE on the database is granted only because the sync and dbt run
# `create schema if not exists`, which PostgreSQL checks before it sees the schema exists.
# The same SQL, for an existing ERP database, is in docs/deployment.md.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="$ERP_DB_USER" -v password="$ERP_DB_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
create role :"role" login password :'password'
    nosuperuser nocreatedb nocreaterole noinherit;
grant connect, temporary, create on database :"db" to :"role";
create schema legacy_staging authorization :"role";
create schema legacy_transform authorization :"role";
create schema erp authorization :"role";
create schema legacy_sync authorization :"role";
create schema legacy_diff authorization :"role";
SQL
