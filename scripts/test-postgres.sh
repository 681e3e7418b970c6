# shellcheck shell=bash
# A PostgreSQL 15 of the test run's own (Debian's postgresql-15), on a temporary cluster that listens
# on a Unix socket in its own temp dir only (no TCP port). Sourced by test/run and by the benchmarks:
#   start_test_postgres   # sets GILD_TEST_POSTGRES_URL (the server's admin URL) and GILD_TEST_POSTGRES_DIR
#   pause_test_postgres / resume_test_postgres   # stop the server, start it again (fault tests)
#   stop_test_postgres    # stops the server and removes the cluster
# As root, the cluster belongs to the `postgres` user (initdb refuses to run as root).

GILD_PG_BIN=/usr/lib/postgresql/15/bin

_pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start_test_postgres() {
  if [ ! -x "$GILD_PG_BIN/initdb" ]; then
    echo "postgresql-15 is not installed (apt-get install postgresql-15)" >&2
    return 1
  fi
  GILD_TEST_POSTGRES_DIR=$(mktemp -d /tmp/gild-postgres.XXXXXX)
  export GILD_TEST_POSTGRES_DIR
  if [ "$(id -u)" = 0 ]; then chown postgres: "$GILD_TEST_POSTGRES_DIR"; fi
  chmod 700 "$GILD_TEST_POSTGRES_DIR"
  _pg_as_owner "$GILD_PG_BIN/initdb" -D "$GILD_TEST_POSTGRES_DIR/data" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C >"$GILD_TEST_POSTGRES_DIR/initdb.log" 2>&1 || {
    cat "$GILD_TEST_POSTGRES_DIR/initdb.log" >&2
    return 1
  }
  # The socket's directory is the cluster's temp dir; the owner (postgres) is the only one who may
  # connect as a user of the OS, root connects through the socket as the database user postgres.
  chmod 711 "$GILD_TEST_POSTGRES_DIR"
  resume_test_postgres || return 1
  GILD_TEST_POSTGRES_URL="postgres://postgres@localhost/postgres?host=$GILD_TEST_POSTGRES_DIR"
  export GILD_TEST_POSTGRES_URL
}

# Start the server of the cluster in $GILD_TEST_POSTGRES_DIR (again, after pause_test_postgres).
resume_test_postgres() {
  _pg_as_owner "$GILD_PG_BIN/pg_ctl" -D "$GILD_TEST_POSTGRES_DIR/data" -l "$GILD_TEST_POSTGRES_DIR/server.log" \
    -o "-c listen_addresses='' -c unix_socket_directories='$GILD_TEST_POSTGRES_DIR' -c max_connections=200" \
    -w -t 60 start >/dev/null || {
    cat "$GILD_TEST_POSTGRES_DIR/server.log" >&2
    return 1
  }
}

# Stop the server (fast: open connections are ended), keeping the cluster.
pause_test_postgres() {
  _pg_as_owner "$GILD_PG_BIN/pg_ctl" -D "$GILD_TEST_POSTGRES_DIR/data" -m fast -w -t 60 stop >/dev/null
}

stop_test_postgres() {
  [ -n "${GILD_TEST_POSTGRES_DIR:-}" ] || return 0
  if [ -f "$GILD_TEST_POSTGRES_DIR/data/postmaster.pid" ]; then
    _pg_as_owner "$GILD_PG_BIN/pg_ctl" -D "$GILD_TEST_POSTGRES_DIR/data" -m fast -w -t 60 stop >/dev/null || true
  fi
  rm -rf "$GILD_TEST_POSTGRES_DIR"
  unset GILD_TEST_POSTGRES_DIR GILD_TEST_POSTGRES_URL
}
