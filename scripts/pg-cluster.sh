#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks (issue 14): Debian's postgresql
# binaries, a temp data dir, its own port and a socket dir of its own, trust auth on loopback.
#
#   scripts/pg-cluster.sh start DIR [PORT]   initdb + start; prints the connection URL
#   scripts/pg-cluster.sh stop DIR           fast stop, then deletes DIR
#   scripts/pg-cluster.sh restart DIR        stop + start on the same data (tests: a DB restart)
#   scripts/pg-cluster.sh down DIR           fast stop, keeping DIR (tests: an outage they watch)
#   scripts/pg-cluster.sh up DIR             start again on DIR's data after `down`
#
# initdb refuses to run as root, so as root the cluster belongs to the postgres user (runuser).
# fsync stays on: the relay's promise is "on disk before ACCEPTED", and the benchmark must pay
# for it as production would.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
port=${3:-55432}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|restart|down|up DIR [PORT]" >&2; exit 2; }

bindir=""
for v in 17 16 15; do
  if [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ]; then bindir="/usr/lib/postgresql/$v/bin"; break; fi
done
[ -n "$bindir" ] || { echo "pg-cluster: PostgreSQL server binaries not found (apt-get install -y postgresql)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bindir/initdb" -A trust -U postgres -D "$dir/data" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
      echo "$port" >"$dir/port"
    fi
    port=$(cat "$dir/port")
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c shared_buffers=64MB -c max_connections=300 -c fsync=on" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true; fi
    rm -rf "$dir"
    ;;
  restart|down|up)
    [ -f "$dir/port" ] || { echo "pg-cluster: $dir holds no cluster of this script (start it first)" >&2; exit 1; }
    if [ "$cmd" != up ]; then as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; fi
    if [ "$cmd" != down ]; then
      port=$(cat "$dir/port")
      as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c shared_buffers=64MB -c max_connections=300 -c fsync=on" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    fi
    ;;
  *) echo "usage: $0 start|stop|restart|down|up DIR [PORT]" >&2; exit 2 ;;
esac
