#!/usr/bin/env bash
# Two (or more) builds side by side on compare.sh's HTTP measures: /ping
# and /metrics (OpenMetrics) with everything on (JSON logs, OTLP traces at
# ratio 1.0 to a local sink), and GET /auth/me on PostgreSQL. Each round
# measures every build in turn (wrk windows of DURATION seconds, CONNS
# connections); the table is the median of ROUNDS rounds, CPU per request
# being the server process's own.
#
#   bench/http_ab.sh /tmp/amani-before /tmp/amani-after
#
# Build each binary from its commit with the same options (e.g. `git
# worktree add /tmp/before <commit>`, `cargo build --release`, copy the
# binary out). ROUNDS=3, DURATION=10, CONNS=64 by default.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS="${ROUNDS:-3}"
need_wrk
bench_build --example webhook_sink
start_process sink "$TARGET/release/examples/webhook_sink" 18199
full_env=(LOG_LEVEL=info TRACING_ENABLED=true TRACING_SAMPLE_RATIO=1.0 OTLP_PROTOCOL=http/protobuf
  OTLP_ENDPOINT=http://127.0.0.1:18199 RECONCILE_ENABLED=false)
stamp=$(date +%s)
dbs=()
trap 'for db in "${dbs[@]}"; do psql -q "$PG_URL/postgres" -c "drop database if exists $db with (force)" >/dev/null 2>&1 || true; done; bench_cleanup' EXIT

declare -A rps=() cpu=()
record() { # key "rps cpu"
  rps[$1]+="${2% *}"$'\n'; cpu[$1]+="${2#* }"$'\n'
}
n=0
for build in "$@"; do
  n=$((n + 1))
  BIN=$build start_amani "full$n" $((18110 + n)) "${full_env[@]}"
  db="amani_http_ab_${n}_$stamp"
  psql -q "$PG_URL/postgres" -c "create database $db"
  dbs+=("$db")
  BIN=$build start_amani "pg$n" $((18120 + n)) DATABASE_URL="$PG_URL/$db" RECONCILE_ENABLED=false
  curl -fsS -o /dev/null "http://127.0.0.1:$((18120 + n))/api/v1/auth/signup" -H 'content-type: application/json' \
    -d '{"email":"me@example.com","password":"bench-password-123","full_name":"Bench User","role":"client"}'
  eval "token$n=\$(login $((18120 + n)) me@example.com bench-password-123)"
done

printf '%s, %s cores, wrk -t1 -c%s -d%ss, median of %s alternated rounds\n' \
  "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$CONNS" "$DURATION" "$ROUNDS"
for _ in $(seq 1 "$ROUNDS"); do
  n=0
  for _ in "$@"; do
    n=$((n + 1))
    eval "full=\$pid_full$n pg=\$pid_pg$n token=\$token$n"
    record "ping$n" "$(measure "$full" "http://127.0.0.1:$((18110 + n))/api/v1/ping")"
    record "metrics$n" "$(measure "$full" "http://127.0.0.1:$((18110 + n))/metrics" \
      -H 'Accept: application/openmetrics-text; version=1.0.0')"
    record "me$n" "$(measure "$pg" "http://127.0.0.1:$((18120 + n))/api/v1/auth/me" -H "Authorization: Bearer $token")"
  done
done

med() { echo -n "$1" | median; }
echo
printf '| %-24s | %-22s | %10s | %16s |\n' build measure "req/s" "CPU per request"
echo '|---|---|---:|---:|'
n=0
for build in "$@"; do
  n=$((n + 1))
  for key in ping metrics me; do
    printf '| %-24s | %-22s | %10s | %13s µs |\n' "$(basename "$build")" "$key" \
      "$(med "${rps[$key$n]}")" "$(med "${cpu[$key$n]}")"
  done
  echo "$(basename "$build"): /auth/me ÷ /ping = $(awk -v a="$(med "${cpu[me$n]}")" -v b="$(med "${cpu[ping$n]}")" 'BEGIN { printf "%.2f", a / b }')"
done
