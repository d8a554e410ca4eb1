#!/usr/bin/env bash
# Escrow throughput: hold → submit → approve → release cycles driven by N
# concurrent clients (1, 8, 64) against the release build, on SQLite and on
# PostgreSQL, then `amani ledger check`; and pgbench's built-in simple-update
# script on the same PostgreSQL, in the same run, for scale.
#
#   bench/escrow.sh                   # DURATION=10 seconds per run
#   PG_URL=postgres://postgres@127.0.0.1:5432 bench/escrow.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PORT="${BENCH_PORT:-18090}"
CLIENTS="${CLIENTS:-1 8 64}"

# BIN=<another amani binary> measures that one (e.g. an older build).
bench_build --bin amani --example escrow_load
LOAD="$TARGET/release/examples/escrow_load"

run_engine() { # name database_url
  local name=$1 url=$2
  env -i PATH="$PATH" DATABASE_URL="$url" AMANI_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    "$BIN" admin create --email "$ADMIN_EMAIL" >/dev/null
  start_amani "$name" "$PORT" DATABASE_URL="$url" DATABASE_MAX_CONNECTIONS=32 DATABASE_ACQUIRE_TIMEOUT_SECONDS=30
  echo "== $name"
  for n in $CLIENTS; do
    "$LOAD" "http://127.0.0.1:$PORT" "$ADMIN_EMAIL" "$ADMIN_PASSWORD" "$n" "$DURATION"
  done
  stop "$name"
  env -i PATH="$PATH" DATABASE_URL="$url" "$BIN" ledger check | tail -n 1
}

printf '%s, %s cores, %ss per run\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$DURATION"
run_engine sqlite "sqlite://$WORK/bench.db"

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
