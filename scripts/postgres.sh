#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL cluster on 127.0.0.1 for the tests, installing
# Debian's postgresql first when it is missing. Prints `export ...` lines to eval:
#   eval "$(scripts/postgres.sh start)"   sets NEWSWATCH_TEST_POSTGRES_URL and friends
#   scripts/postgres.sh stop
set -euo pipefail
PORT=${NEWSWATCH_TEST_PG_PORT:-54329}
DATA=${NEWSWATCH_TEST_PG_DATA:-/tmp/newswatch-pg-$PORT}
DB=newswatch_test
USER_NAME=newswatch
# A random password per cluster, kept beside it: nothing secret lives in the repository.
PWFILE="$DATA.password"

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
BIN=$(find_bin)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  echo "postgres: installing Debian's postgresql" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
  BIN=$(find_bin)
fi

# PostgreSQL refuses to run as root; as root, run it as the postgres user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-start}" in
  start)
    if [ ! -f "$PWFILE" ]; then
      (umask 077; python3 -c "import secrets; print(secrets.token_urlsafe(18))" > "$PWFILE")
    fi
    PASSWORD=$(cat "$PWFILE")
    if [ ! -f "$DATA/PG_VERSION" ]; then
      mkdir -p "$DATA"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
      pwfile=$(mktemp); echo "$PASSWORD" > "$pwfile"; chmod 644 "$pwfile"
      as_pg "$BIN/initdb" -D "$DATA" -U postgres -A scram-sha-256 --pwfile="$pwfile" >&2
      rm -f "$pwfile"
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
      as_pg "$BIN/pg_ctl" -D "$DATA" -w -l "$DATA/server.log" \
        -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        start >&2
    fi
    export PGPASSWORD=$PASSWORD
    psql_admin() { psql -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
    if [ -z "$(psql_admin -c "select 1 from pg_roles where rolname='$USER_NAME'")" ]; then
      psql_admin -c "create role $USER_NAME login password '$PASSWORD'" >&2
    fi
    if [ -z "$(psql_admin -c "select 1 from pg_database where datname='$DB'")" ]; then
      psql_admin -c "create database $DB owner $USER_NAME" >&2
    fi
    echo "export NEWSWATCH_TEST_POSTGRES_URL=postgresql+psycopg://$USER_NAME:$PASSWORD@127.0.0.1:$PORT/$DB"
    echo "export NEWSWATCH_TEST_PG_BIN=$BIN"
    echo "export NEWSWATCH_TEST_PG_DATA=$DATA"
    echo "export NEWSWATCH_TEST_PG_PORT=$PORT"
    ;;
  stop)
    as_pg "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2 || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
