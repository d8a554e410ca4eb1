#!/usr/bin/env bash
# Time to back up and to restore a database holding TRANSFERS ledger
# transfers (default 100,000), on SQLite and on PostgreSQL. The rows are
# generated in SQL (balanced: the gateway account pays one user one minor
# unit per transfer), so `ledger check`, `backup verify` and the restore's
# own checks run on valid books.
#
#   bench/backup.sh                   # TRANSFERS=100000
set -euo pipefail
cd "$(dirname "$0")/.."

TRANSFERS="${TRANSFERS:-100000}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
cargo build --release --locked --quiet --bin amani
BIN="$PWD/${CARGO_TARGET_DIR:-target}/release/amani"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

seed_sql() {
  cat <<SQL
insert into users (id, email, password_hash, full_name, role, created_at, updated_at)
  values ('u1', 'bench@example.com', 'x', 'Bench', 'client', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
insert into ledger_accounts (id, kind, owner_id, currency, balance, created_at) values
  ('external_gateway::NGN', 'external_gateway', '', 'NGN', -$TRANSFERS, '2026-01-01T00:00:00.000000Z'),
  ('user_available:u1:NGN', 'user_available', 'u1', 'NGN', $TRANSFERS, '2026-01-01T00:00:00.000000Z');
insert into ledger_transfers (id, kind, debit_account_id, credit_account_id, amount, currency, created_at)
  with recursive n(i) as (select 1 union all select i + 1 from n where i < $TRANSFERS)
  select 't' || i, 'deposit', 'external_gateway::NGN', 'user_available:u1:NGN', 1, 'NGN', '2026-01-01T00:00:00.000000Z' from n;
SQL
}

measure() { # name url
  local name=$1 url=$2
  env -i PATH="$PATH" DATABASE_URL="$url" "$BIN" migrate >/dev/null 2>&1
  local started ended size
  started=$(date +%s.%N)
  env -i PATH="$PATH" DATABASE_URL="$url" "$BIN" backup --out "$work/$name" > "$work/$name.out" 2>/dev/null
  ended=$(date +%s.%N)
  local file
  file=$(ls "$work/$name"/amani-* | grep -v manifest)
  size=$(stat -c %s "$file")
  local restore_started restore_ended
  restore_started=$(date +%s.%N)
  env -i PATH="$PATH" DATABASE_URL="$url" "$BIN" restore "$file" --yes > "$work/$name.restore" 2>/dev/null
  restore_ended=$(date +%s.%N)
  awk -v n="$name" -v t="$TRANSFERS" -v b="$started" -v e="$ended" -v rb="$restore_started" -v re="$restore_ended" -v s="$size" \
    'BEGIN { printf "%-10s %7d transfers: backup %.2f s (%.1f MiB), restore %.2f s\n", n, t, e - b, s / 1048576, re - rb }'
}

printf '%s, %s cores\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)"
env -i PATH="$PATH" DATABASE_URL="sqlite://$work/bench.db" "$BIN" migrate >/dev/null 2>&1
seed_sql | sqlite3 "$work/bench.db"
measure sqlite "sqlite://$work/bench.db"

db="amani_backup_bench_$(date +%s)"
psql -q "$PG_URL/postgres" -c "create database $db"
env -i PATH="$PATH" DATABASE_URL="$PG_URL/$db" "$BIN" migrate >/dev/null 2>&1
seed_sql | psql -q "$PG_URL/$db"
measure postgresql "$PG_URL/$db"
for old in $(psql -tA "$PG_URL/postgres" -c "select datname from pg_database where datname like '${db}%'"); do
  psql -q "$PG_URL/postgres" -c "drop database \"$old\" with (force)"
done
