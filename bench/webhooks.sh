#!/usr/bin/env bash
# Webhook delivery throughput, on SQLite and on PostgreSQL: events delivered
# per second to a local receiver (examples/webhook_sink), and the service's
# CPU per delivery.
#
# 1. The release build runs escrow cycles (examples/escrow_load, 8 clients,
#    DURATION s) with delivery off: their events wait in the log.
# 2. Restarted with delivery on and one endpoint for every type, it is timed
#    from start until the receiver has every event (fan-out, claims, signing,
#    HTTP, recording each attempt).
#
#   bench/webhooks.sh                 # DURATION=10
#   BIN=<another amani binary> bench/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
PORT="${BENCH_PORT:-18090}"
SINK_PORT="${SINK_PORT:-18095}"
ADMIN_EMAIL=bench-admin@example.com
ADMIN_PASSWORD=bench-admin-password-1

cargo build --release --locked --quiet --bin amani --example escrow_load --example webhook_sink
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
BIN="${BIN:-$TARGET/release/amani}"
LOAD="$TARGET/release/examples/escrow_load"
work=$(mktemp -d)
server="" sink=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  [ -n "$sink" ] && kill "$sink" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$TARGET/release/examples/webhook_sink" "$SINK_PORT" &
sink=$!
TICK=$(getconf CLK_TCK)

start() { # url delivery-enabled
  (cd "$work" && exec env -i PATH="$PATH" PORT="$PORT" LOG_LEVEL=warn RATE_LIMIT_ENABLED=false \
    DATABASE_URL="$1" DATABASE_MAX_CONNECTIONS=32 DATABASE_ACQUIRE_TIMEOUT_SECONDS=30 \
    WEBHOOK_DELIVERY_ENABLED="$2" "$BIN") >>"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/api/v1/readiness" >/dev/null 2>&1 && break; sleep 0.1; done
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }
cpu_seconds() { awk -v t="$TICK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$server/stat"; }

run_engine() { # name database_url
  local name=$1 url=$2
  env -i PATH="$PATH" DATABASE_URL="$url" AMANI_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    "$BIN" admin create --email "$ADMIN_EMAIL" >/dev/null
  start "$url" false
  "$LOAD" "http://127.0.0.1:$PORT" "$ADMIN_EMAIL" "$ADMIN_PASSWORD" 8 "$DURATION" >/dev/null
  local token events
  token=$(curl -fs "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -fs "http://127.0.0.1:$PORT/api/v1/admin/webhook-endpoints" -H "Authorization: Bearer $token" \
    -H 'content-type: application/json' -d "{\"url\":\"http://127.0.0.1:$SINK_PORT/hook\",\"event_types\":[\"*\"]}" >/dev/null
  events=$(curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^amani_events_written_total/ { s += $2 } END { print s }')
  stop
  curl -fs -X POST "http://127.0.0.1:$SINK_PORT/reset"
  local started got=0
  started=$(date +%s.%N)
  start "$url" true
  while [ "$got" -lt "$events" ]; do sleep 0.1; got=$(curl -fs "http://127.0.0.1:$SINK_PORT/count"); done
  local seconds cpu
  seconds=$(echo "$(date +%s.%N) - $started" | bc)
  cpu=$(cpu_seconds) # the whole (fresh) process: start-up included, a few ms
  stop
  printf '%-10s %6d events delivered in %6.2f s: %7.0f deliveries/s, server CPU %.2f ms per delivery\n' \
    "$name" "$events" "$seconds" "$(echo "$events / $seconds" | bc -l)" "$(echo "$cpu * 1000 / $events" | bc -l)"
}

printf '%s, %s cores, escrow load %ss\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$DURATION"
run_engine sqlite "sqlite://$work/bench.db"
db="amani_bench_$(date +%s)"
psql -q "$PG_URL/postgres" -c "create database $db"
run_engine postgresql "$PG_URL/$db"
psql -q "$PG_URL/postgres" -c "drop database $db with (force)"
