#!/usr/bin/env bash
# A local Chorus cluster on loopback, from installed packages: N instances on PostgreSQL and
# Redis behind nginx. For development and for the end-to-end tests.
#
#   examples/deploy/cluster.sh start [N]   # default 3; prints the nginx URL
#   examples/deploy/cluster.sh stop
#   examples/deploy/cluster.sh status
#
# Needs: nginx (apt-get install nginx-light), PostgreSQL and Redis on 127.0.0.1 (started here
# when installed but stopped), and the release binary (built here when missing).
# Environment: CLUSTER_DIR (state, default /tmp/chorus-cluster), CLUSTER_PORT (nginx, 8080),
# CLUSTER_BASE_PORT (instances, 3001…), DATABASE_URL (default postgres://postgres@127.0.0.1:5432/chorus_cluster),
# REDIS_URL (default redis://127.0.0.1:6379).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${CLUSTER_DIR:-/tmp/chorus-cluster}
PORT=${CLUSTER_PORT:-8080}
BASE=${CLUSTER_BASE_PORT:-3001}
DB=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/chorus_cluster}
REDIS=${REDIS_URL:-redis://127.0.0.1:6379}
BIN=${CHORUS_BIN:-target/release/chorus}

log() { echo "[cluster] $*" >&2; }

ensure_services() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  fi
  if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    log "starting Redis"; redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  fi
  local dbname=${DB##*/}; dbname=${dbname%%\?*}
  psql "${DB%/*}/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname='$dbname'" | grep -q 1 \
    || psql "${DB%/*}/postgres" -qc "CREATE DATABASE \"$dbname\""
}

start() {
  local n=${1:-3}
  command -v nginx >/dev/null || { log "nginx is not installed (apt-get install nginx-light)"; exit 1; }
  [ -x "$BIN" ] || { log "building $BIN"; cargo build --release --bin chorus; }
  ensure_services
  stop >/dev/null 2>&1 || true
  mkdir -p "$DIR/tmp" "$DIR/data"
  local secret; secret=$(cat "$DIR/secret" 2>/dev/null || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tee "$DIR/secret")
  local servers=""
  for i in $(seq 1 "$n"); do
    local p=$((BASE + i - 1))
    CHORUS_LISTEN=127.0.0.1:$p CHORUS_DATA_DIR="$DIR/data" DATABASE_URL="$DB" REDIS_URL="$REDIS" \
      CHORUS_JWT_SECRET="$secret" CHORUS_NODE_ID="$i" CHORUS_TRUSTED_PROXIES='["127.0.0.1"]' \
      CHORUS_PUBLIC_URL="http://127.0.0.1:$PORT" CHORUS_REDIS_NAMESPACE=chorus_cluster \
      nohup "$BIN" serve >"$DIR/instance$i.log" 2>&1 &
    echo $! >"$DIR/instance$i.pid"
    servers+="        server 127.0.0.1:$p max_fails=2 fail_timeout=5s;\n"
  done
  python3 - "$DIR" "$PORT" "$servers" <<'PY'
import re, sys
d, port, servers = sys.argv[1], sys.argv[2], sys.argv[3].replace("\\n", "\n")
s = open("examples/deploy/nginx.conf").read()
s = re.sub(r"# UPSTREAM SERVERS\n.*?# END UPSTREAM SERVERS\n", servers, s, flags=re.S)
s = s.replace("__PREFIX__", d).replace("__LISTEN__", "127.0.0.1:" + port)
open(d + "/nginx.conf", "w").write(s)
PY
  for i in $(seq 1 "$n"); do
    local p=$((BASE + i - 1))
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$p/ready" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$p/ready" >/dev/null || { log "instance $i did not start; see $DIR/instance$i.log"; exit 1; }
  done
  nginx -p "$DIR" -c "$DIR/nginx.conf"
  log "$n instances behind nginx at http://127.0.0.1:$PORT (logs in $DIR)"
  echo "http://127.0.0.1:$PORT"
}

stop() {
  [ -f "$DIR/nginx.pid" ] && nginx -p "$DIR" -c "$DIR/nginx.conf" -s quit 2>/dev/null || true
  for f in "$DIR"/instance*.pid; do
    [ -f "$f" ] || continue
    kill -TERM "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  log "stopped"
}

status() {
  for f in "$DIR"/instance*.pid; do
    [ -f "$f" ] || continue
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then echo "$(basename "$f" .pid): running (pid $pid)"; else echo "$(basename "$f" .pid): dead"; fi
  done
  [ -f "$DIR/nginx.pid" ] && echo "nginx: running (pid $(cat "$DIR/nginx.pid"))" || echo "nginx: stopped"
}

case "${1:-}" in
  start) start "${2:-3}" ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start [N] | stop | status" >&2; exit 2 ;;
esac
