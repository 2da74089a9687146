#!/usr/bin/env bash
# A PostgreSQL server on 127.0.0.1, for the MLflow tracking server of the cluster tests
# (the set-up the README recommends for teams).
#
#   tests/cluster/postgres.sh start   install Debian's PostgreSQL if needed, start a server
#                                     in $SNAKEFLOW_PG_DIR, print its URI (database mlflow)
#   tests/cluster/postgres.sh stop    stop that server
#
# Needs root on Debian (apt-get). The server runs as the postgres user from its own data
# directory, not the system cluster, on port $SNAKEFLOW_PG_PORT.
set -euo pipefail

DIR=${SNAKEFLOW_PG_DIR:-/tmp/snakeflow-pg}
PORT=${SNAKEFLOW_PG_PORT:-55432}

bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

install_packages() {
  [ -n "$(bindir)" ] && [ -x "$(bindir)/initdb" ] && return 0
  echo "postgres.sh: installing postgresql" >&2
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d  # no daemon started by the package
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' RETURN
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

as_postgres() {
  su -s /bin/sh postgres -c "$*" </dev/null
}

start() {
  install_packages
  local bin
  bin=$(bindir)
  mkdir -p "$DIR"
  chown postgres:postgres "$DIR"
  if [ ! -s "$DIR/data/PG_VERSION" ]; then
    as_postgres "$bin/initdb -D $DIR/data -A trust -U postgres" >/dev/null
  fi
  if ! as_postgres "$bin/pg_ctl -D $DIR/data status" >/dev/null 2>&1; then
    as_postgres "$bin/pg_ctl -D $DIR/data -l $DIR/server.log -w \
      -o '-p $PORT -k $DIR -c listen_addresses=127.0.0.1' start" >/dev/null
  fi
  as_postgres "$bin/psql -h 127.0.0.1 -p $PORT -U postgres -tc \
    \"SELECT 1 FROM pg_database WHERE datname = 'mlflow'\"" | grep -q 1 \
    || as_postgres "$bin/createdb -h 127.0.0.1 -p $PORT -U postgres mlflow"
  echo "postgresql://postgres@127.0.0.1:$PORT/mlflow"
}

stop() {
  local bin
  bin=$(bindir)
  [ -n "$bin" ] && [ -s "$DIR/data/PG_VERSION" ] || return 0
  as_postgres "$bin/pg_ctl -D $DIR/data -m fast stop" >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
