#!/bin/bash
# Initialises the data directory on first start (user, password and database from the
# environment, password auth from the network), then runs the server in the foreground.
set -euo pipefail
: "${POSTGRES_USER:=flotilla}" "${POSTGRES_PASSWORD:=flotilla}" "${POSTGRES_DB:=flotilla}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  initdb --username=postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  # Single-user mode runs one statement per line, before anyone can connect.
  postgres --single -D "$PGDATA" postgres >/dev/null <<SQL
CREATE ROLE "$POSTGRES_USER" LOGIN SUPERUSER PASSWORD '$POSTGRES_PASSWORD';
CREATE DATABASE "$POSTGRES_DB" OWNER "$POSTGRES_USER";
SQL
fi
exec postgres -D "$PGDATA"
