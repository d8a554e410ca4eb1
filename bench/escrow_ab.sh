#!/usr/bin/env bash
# Two (or more) builds side by side on the escrow cycle (hold → submit →
# approve → release, examples/escrow_load, 8 clients), alternated ROUNDS
# times, a fresh database a run, `amani ledger check` after every run.
#
#   bench/escrow_ab.sh /tmp/amani-before /tmp/amani-after      # SQLite
#   ENGINE=postgres bench/escrow_ab.sh /tmp/amani-before /tmp/amani-after
#
# Build each binary from its commit with the same options (e.g. `git
# worktree add /tmp/before <commit>`, `cargo build --release`, copy the
# binary out). ROUNDS=3, DURATION=10, CLIENTS=8 by default.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-8}"
ENGINE="${ENGINE:-sqlite}"
PORT="${BENCH_PORT:-18090}"
bench_build --example escrow_load
LOAD="$TARGET/release/examples/escrow_load"

printf '%s, %s cores, %s, %s clients, %ss a run\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$ENGINE" "$CLIENTS" "$DURATION"
for r in $(seq 1 "$ROUNDS"); do
  for BIN in "$@"; do
    if [ "$ENGINE" = postgres ]; then
      db="amani_ab_$(date +%s%N)"
      psql -q "$PG_URL/postgres" -c "create database $db"
      url="$PG_URL/$db"
    else
      url="sqlite://$WORK/ab-$r-$(basename "$BIN").db"
    fi
    env -i PATH="$PATH" DATABASE_URL="$url" AMANI_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
      "$BIN" admin create --email "$ADMIN_EMAIL" >/dev/null 2>&1
    start_amani ab "$PORT" DATABASE_URL="$url" DATABASE_MAX_CONNECTIONS=32 DATABASE_ACQUIRE_TIMEOUT_SECONDS=30
    out=$("$LOAD" "http://127.0.0.1:$PORT" "$ADMIN_EMAIL" "$ADMIN_PASSWORD" "$CLIENTS" "$DURATION")
    stop ab
    if ! env -i PATH="$PATH" DATABASE_URL="$url" "$BIN" ledger check >"$WORK/check" 2>&1; then
      echo "ledger check failed after $(basename "$BIN") round $r:" >&2; cat "$WORK/check" >&2; exit 1
    fi
    check=$(tail -n 1 "$WORK/check")
    echo "$(basename "$BIN") round $r: $out | $check"
    if [ "$ENGINE" = postgres ]; then psql -q "$PG_URL/postgres" -c "drop database $db with (force)"; fi
  done
done
