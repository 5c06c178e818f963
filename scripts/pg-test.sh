#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite, on 127.0.0.1 with trust auth.
#
#   scripts/pg-test.sh start    start it (initdb on first use), drop test databases a killed
#                               run left behind, print its URL on stdout
#   scripts/pg-test.sh stop     stop it (fast shutdown); no-op when not running
#   scripts/pg-test.sh status   exit 0 and print the URL when running, else exit 1
#   scripts/pg-test.sh url      print the URL
#
# Data lives in <repo>/.pgtest (override: JUNCTION_PG_DIR). Port: JUNCTION_PG_PORT
# (default 55432). Uses Debian's server binaries (/usr/lib/postgresql/*/bin) and installs
# the postgresql package when they are missing and we are root. As root the server runs
# as the `postgres` user (initdb refuses root); otherwise as the current user.
# Everything but the URL goes to stderr.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${JUNCTION_PG_PORT:-55432}
IS_ROOT=$([[ $(id -u) == 0 ]] && echo 1 || echo 0)

log() { echo "pg-test: $*" >&2; }
die() { log "$*"; exit 1; }

# Run a command as the server's user (postgres when we are root), from a neutral cwd.
as_pg() {
  if [[ $IS_ROOT == 1 ]]; then
    (cd / && if command -v runuser >/dev/null; then runuser -u postgres -- "$@"
              else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi)
  else
    "$@"
  fi
}

pick_dir() {
  if [[ -n ${JUNCTION_PG_DIR:-} ]]; then
    PGDIR=$JUNCTION_PG_DIR
  else
    PGDIR="$REPO/.pgtest"
    # The postgres user must be able to reach the directory (a repo under /root is not).
    if [[ $IS_ROOT == 1 ]] && id postgres >/dev/null 2>&1 && ! as_pg test -x "$REPO"; then
      PGDIR="/tmp/junction-pgtest-$PORT"
    fi
  fi
  DATA="$PGDIR/data"
}

find_bin() {
  local d
  for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    [[ -x $d/initdb && -x $d/pg_ctl ]] && { PGBIN=$d; return 0; }
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    PGBIN=$(dirname "$(command -v initdb)"); return 0
  fi
  return 1
}

ensure_bin() {
  find_bin && return 0
  [[ $IS_ROOT == 1 ]] || die "PostgreSQL server binaries not found; install the postgresql package"
  log "installing postgresql (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends postgresql >&2 \
    || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends postgresql >&2; }
  find_bin || die "PostgreSQL server binaries still not found after apt-get install"
}

running_port() {  # prints the port of a running server on $DATA, or fails
  [[ -f $DATA/postmaster.pid ]] || return 1
  find_bin || return 1
  as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1 || return 1
  sed -n 4p "$DATA/postmaster.pid"
}

url() { echo "postgres://postgres@127.0.0.1:$1/postgres"; }

# Drops the test databases (jt_*) nobody is connected to: what a killed run left behind
# (each test drops its own database when it ends). A database a running suite uses is
# never touched: `drop database` without `force` refuses one with sessions.
sweep() {
  command -v psql >/dev/null || return 0
  local names name dropped=0
  names=$(psql -X -q -At "$(url "$1")" -c "select datname from pg_database where datname like 'jt\_%'
    and datname not in (select datname from pg_stat_activity where datname is not null)" 2>/dev/null) || return 0
  for name in $names; do
    psql -X -q "$(url "$1")" -c "drop database if exists \"$name\"" >/dev/null 2>&1 && dropped=$((dropped + 1))
  done
  [[ $dropped == 0 ]] || log "dropped $dropped test databases left by an earlier run"
}

start() {
  local port
  if port=$(running_port); then sweep "$port"; url "$port"; return 0; fi
  ensure_bin
  local version
  version=$("$PGBIN/pg_ctl" --version | sed -nE 's/^pg_ctl \(PostgreSQL\) ([0-9]+).*/\1/p')

  if [[ $IS_ROOT == 1 ]]; then
    id postgres >/dev/null 2>&1 || die "no postgres user (install the postgresql package)"
    install -d -m 700 -o postgres -g postgres "$PGDIR"
    chown -R postgres:postgres "$PGDIR"
  else
    install -d -m 700 "$PGDIR"
  fi

  # Throwaway cluster: re-create it when it is incomplete or from another major version.
  if [[ ! -f $DATA/PG_VERSION || $(cat "$DATA/PG_VERSION" 2>/dev/null) != "$version" ]]; then
    rm -rf "$DATA"
    log "initdb $DATA (PostgreSQL $version)"
    as_pg "$PGBIN/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --no-locale >"$PGDIR/initdb.log" 2>&1 \
      || { cat "$PGDIR/initdb.log" >&2; die "initdb failed"; }
    cat >>"$DATA/postgresql.conf" <<'CONF'
# junction test cluster: loopback only, no unix socket, durability off for speed
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  fi

  log "starting on 127.0.0.1:$PORT"
  if ! as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$PGDIR/server.log" -w -t 60 -o "-p $PORT" start >/dev/null 2>&1; then
    tail -n 20 "$PGDIR/server.log" >&2 || true
    die "server did not start (is port $PORT in use? set JUNCTION_PG_PORT)"
  fi
  local ready=0
  for _ in $(seq 100); do
    if command -v pg_isready >/dev/null; then
      pg_isready -q -h 127.0.0.1 -p "$PORT" -U postgres && { ready=1; break; }
    else
      (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { ready=1; break; }
    fi
    sleep 0.1
  done
  [[ $ready == 1 ]] || die "server not accepting connections on 127.0.0.1:$PORT"
  sweep "$PORT"
  url "$PORT"
}

stop() {
  running_port >/dev/null || { log "not running"; return 0; }
  as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  log "stopped"
}

pick_dir
case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) if port=$(running_port); then url "$port"; else exit 1; fi ;;
  url) url "$PORT" ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
