#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on loopback for tests and checks.
#   scripts/services.sh ensure   start the locally installed servers, with data dirs of their
#                                own, when nothing answers on 5432 / 6379 (installs them if absent)
#   scripts/services.sh stop     stop only the servers that `ensure` started
set -euo pipefail
STATE=${FURUSATO_SERVICES_DIR:-/tmp/furusato-services}
PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

pg_dir() { echo "${FURUSATO_PG_DIR:-/tmp/furusato-pg-$PG_PORT}"; }
pg_up() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT && printf 'PING\r\n' >&3 && head -c5 <&3 | grep -q PONG) 2>/dev/null; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "need root to apt-get install $*" >&2; exit 1; fi
  [ -f "$STATE/.apt-updated" ] || { apt-get update -qq; mkdir -p "$STATE"; touch "$STATE/.apt-updated"; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure() {
  mkdir -p "$STATE"
  if ! pg_up; then
    command -v pg_ctlcluster >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
      || apt_install postgresql
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    # The server runs as the postgres user, so its folder must be one that user can reach
    # (not under a private temporary directory): one per port, under /tmp.
    pgdir=$(pg_dir)
    data="$pgdir/data"
    mkdir -p "$data"; chown -R postgres:postgres "$pgdir" 2>/dev/null || true
    if [ ! -f "$data/PG_VERSION" ]; then
      runuser -u postgres -- "$bindir/initdb" -D "$data" -U postgres --auth=trust >/dev/null
    fi
    runuser -u postgres -- "$bindir/pg_ctl" -D "$data" -l "$pgdir/server.log" -w \
      -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k /tmp" start >/dev/null
    touch "$STATE/pg.started"
    echo "started PostgreSQL on 127.0.0.1:$PG_PORT (data: $data)"
  fi
  if ! redis_up; then
    command -v redis-server >/dev/null || apt_install redis-server
    mkdir -p "$STATE/redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
      --appendonly no --dir "$STATE/redis" --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log"
    for _ in $(seq 300); do redis_up && break; sleep 0.1; done  # up to 30 s on a loaded machine
    touch "$STATE/redis.started"
    echo "started Redis on 127.0.0.1:$REDIS_PORT"
  fi
  pg_up || { echo "PostgreSQL does not answer on 127.0.0.1:$PG_PORT" >&2; exit 1; }
  redis_up || { echo "Redis does not answer on 127.0.0.1:$REDIS_PORT" >&2; exit 1; }
}

stop() {
  if [ -f "$STATE/pg.started" ]; then
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    runuser -u postgres -- "$bindir/pg_ctl" -D "$(pg_dir)/data" -m fast stop >/dev/null || true
    rm -f "$STATE/pg.started"
  fi
  if [ -f "$STATE/redis.started" ]; then
    pid=$(cat "$STATE/redis.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      # SIGTERM only asks: Redis answers until it has exited, a moment later on a loaded
      # machine (a fresh clone's run saw a PING answered after stop). Like pg_ctl's -w above,
      # return once it is gone (at most 30 s).
      for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$STATE/redis.started"
  fi
}

"${1:-ensure}"
