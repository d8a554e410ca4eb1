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
source "$(dirname "$0")/lib.sh"

PORT="${BENCH_PORT:-18090}"
SINK_PORT="${SINK_PORT:-18095}"

bench_build --bin amani --example escrow_load --example webhook_sink
LOAD="$TARGET/release/examples/escrow_load"
start_process sink "$TARGET/release/examples/webhook_sink" "$SINK_PORT"
TICK=$(getconf CLK_TCK)

start() { # url delivery-enabled
  start_amani server "$PORT" DATABASE_URL="$1" DATABASE_MAX_CONNECTIONS=32 DATABASE_ACQUIRE_TIMEOUT_SECONDS=30 \
    WEBHOOK_DELIVERY_ENABLED="$2"
}
cpu_seconds() { awk -v t="$TICK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$pid_server/stat"; }

run_engine() { # name database_url
  local name=$1 url=$2
  env -i PATH="$PATH" DATABASE_URL="$url" AMANI_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    "$BIN" admin create --email "$ADMIN_EMAIL" >/dev/null
  start "$url" false
  "$LOAD" "http://127.0.0.1:$PORT" "$ADMIN_EMAIL" "$ADMIN_PASSWORD" 8 "$DURATION" >/dev/null
  local token events
  token=$(login "$PORT" "$ADMIN_EMAIL" "$ADMIN_PASSWORD")
  curl -fs "http://127.0.0.1:$PORT/api/v1/admin/webhook-endpoints" -H "Authorization: Bearer $token" \
    -H 'content-type: application/json' -d "{\"url\":\"http://127.0.0.1:$SINK_PORT/hook\",\"event_types\":[\"*\"]}" >/dev/null
  events=$(curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^amani_events_written_total/ { s += $2 } END { print s }')
  stop server
  curl -fs -X POST "http://127.0.0.1:$SINK_PORT/reset"
  local started got=0
  started=$(date +%s.%N)
  start "$url" true
  while [ "$got" -lt "$events" ]; do sleep 0.1; got=$(curl -fs "http://127.0.0.1:$SINK_PORT/count"); done
  local seconds cpu
  seconds=$(echo "$(date +%s.%N) - $started" | bc)
  cpu=$(cpu_seconds) # the whole (fresh) process: start-up included, a few ms
  stop server
  printf '%-10s %6d events delivered in %6.2f s: %7.0f deliveries/s, server CPU %.2f ms per delivery\n' \
    "$name" "$events" "$seconds" "$(echo "$events / $seconds" | bc -l)" "$(echo "$cpu * 1000 / $events" | bc -l)"
}

printf '%s, %s cores, escrow load %ss\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$DURATION"
run_engine sqlite "sqlite://$WORK/bench.db"
db="amani_bench_$(date +%s)"
psql -q "$PG_URL/postgres" -c "create database $db"
run_engine postgresql "$PG_URL/$db"
psql -q "$PG_URL/postgres" -c "drop database $db with (force)"
