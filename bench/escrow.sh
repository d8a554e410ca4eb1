#!/usr/bin/env bash
# Escrow throughput: hold → submit → approve → release cycles driven by N
# concurrent clients (1, 8, 64) against the release build, on SQLite and on
# PostgreSQL, then `amani ledger check`; and pgbench's built-in simple-update
# script on the same PostgreSQL, in the same run, for scale.
#
#   bench/escrow.sh                   # DURATION=10 seconds per run
#   PG_URL=postgres://postgres@127.0.0.1:5432 bench/escrow.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
PORT="${BENCH_PORT:-18090}"
CLIENTS="${CLIENTS:-1 8 64}"
ADMIN_EMAIL=bench-admin@example.com
ADMIN_PASSWORD=bench-admin-password-1

cargo build --release --locked --quiet --bin amani --example escrow_load
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
# BIN=<another amani binary> measures that one (e.g. an older build).
BIN="${BIN:-$TARGET/release/amani}"
LOAD="$TARGET/release/examples/escrow_load"
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

run_engine() { # name database_url
  local name=$1 url=$2
  env -i PATH="$PATH" DATABASE_URL="$url" AMANI_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    "$BIN" admin create --email "$ADMIN_EMAIL" >/dev/null
  (cd "$work" && exec env -i PATH="$PATH" PORT="$PORT" LOG_LEVEL=warn RATE_LIMIT_ENABLED=false \
    DATABASE_URL="$url" DATABASE_MAX_CONNECTIONS=32 DATABASE_ACQUIRE_TIMEOUT_SECONDS=30 "$BIN") >"$work/$name.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/api/v1/readiness" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "== $name"
  for n in $CLIENTS; do
    "$LOAD" "http://127.0.0.1:$PORT" "$ADMIN_EMAIL" "$ADMIN_PASSWORD" "$n" "$DURATION"
  done
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  env -i PATH="$PATH" DATABASE_URL="$url" "$BIN" ledger check | tail -n 1
}

printf '%s, %s cores, %ss per run\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$DURATION"
run_engine sqlite "sqlite://$work/bench.db"

db="amani_bench_$(date +%s)"
psql -q "$PG_URL/postgres" -c "create database $db"
run_engine postgresql "$PG_URL/$db"
psql -q "$PG_URL/postgres" -c "drop database $db with (force)"

echo "== pgbench (built-in simple-update, -N), same server"
pgdb="amani_pgbench_$(date +%s)"
psql -q "$PG_URL/postgres" -c "create database $pgdb"
pgbench -q -i -s 10 "$PG_URL/$pgdb" >/dev/null 2>&1
for n in 8 64; do
  tps=$(pgbench -N -c "$n" -j 2 -T "$DURATION" "$PG_URL/$pgdb" 2>/dev/null | awk '/^tps/ { print $3; exit }')
  # simple-update runs 5 statements a transaction: begin, update, select, insert, end.
  awk -v n="$n" -v tps="$tps" 'BEGIN { printf "clients %3d: pgbench %8.0f tps = %8.0f statements/s\n", n, tps, tps * 5 }'
done
psql -q "$PG_URL/postgres" -c "drop database $pgdb with (force)"
