#!/usr/bin/env bash
# GET /api/v1/auth/me on PostgreSQL, two builds side by side: each on its
# own database of one server, one signed-up client, wrk windows alternated
# ROUNDS times; prints "a|b requests/s cpu_µs_per_request" per window.
#
#   bench/auth_me_ab.sh BEFORE_BINARY AFTER_BINARY    # ROUNDS=3 DURATION=8 CONNS=64
set -euo pipefail
A=$1 B=$2
source "$(dirname "$0")/lib.sh"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8}"
need_wrk
stamp=$(date +%s)
dbs=()
trap 'for db in "${dbs[@]}"; do psql -q "$PG_URL/postgres" -c "drop database if exists $db with (force)" >/dev/null 2>&1 || true; done; bench_cleanup' EXIT
token() { # port
  curl -fsS -o /dev/null "http://127.0.0.1:$1/api/v1/auth/signup" -H 'content-type: application/json' \
    -d '{"email":"me@example.com","password":"bench-password-123","full_name":"Bench User","role":"client"}'
  login "$1" me@example.com bench-password-123
}
for side in a b; do
  db="amani_auth_me_${side}_$stamp"
  psql -q "$PG_URL/postgres" -c "create database $db"
  dbs+=("$db")
done
BIN=$A start_amani a 18111 DATABASE_URL="$PG_URL/amani_auth_me_a_$stamp" RECONCILE_ENABLED=false
BIN=$B start_amani b 18112 DATABASE_URL="$PG_URL/amani_auth_me_b_$stamp" RECONCILE_ENABLED=false
token_a=$(token 18111)
token_b=$(token 18112)
for _ in $(seq 1 "$ROUNDS"); do
  echo "a $(measure "$pid_a" http://127.0.0.1:18111/api/v1/auth/me -H "Authorization: Bearer $token_a")"
  echo "b $(measure "$pid_b" http://127.0.0.1:18112/api/v1/auth/me -H "Authorization: Bearer $token_b")"
done
