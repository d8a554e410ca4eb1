#!/usr/bin/env bash
# The cost of the instrumentation: the same release binary with metrics on
# and off (METRICS_ENABLED), side by side, on GET /api/v1/ping and on an
# authenticated read (GET /api/v1/auth/me) when the accounts API exists.
# Rounds alternate on/off so machine noise hits both alike. Then the time to
# render /metrics with 10,000 series.
#
#   bench/metrics_overhead.sh            # ROUNDS=3 DURATION=8s CONNS=64
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8s}"
CONNS="${CONNS:-64}"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --locked --quiet --bin amani --example metrics_render
BIN="$PWD/${CARGO_TARGET_DIR:-target}/release/amani"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() { # name port metrics_enabled
  mkdir -p "$work/$1"
  (cd "$work/$1" && exec env -i PATH="$PATH" PORT="$2" LOG_LEVEL=warn METRICS_ENABLED="$3" "$BIN") >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$2/api/v1/readiness" >/dev/null 2>&1 && return; sleep 0.1; done
  cat "$work/$1.log"; exit 1
}
start on 18181 true
start off 18182 false

# A user and a token for the authenticated read, if the accounts API exists.
token=""
for port in 18181 18182; do
  body='{"email":"bench@example.com","password":"bench-password-123","full_name":"Bench","role":"client"}'
  if curl -fs -o /dev/null -X POST -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$port/api/v1/auth/signup"; then
    token=$(curl -fs -X POST -H 'content-type: application/json' \
      -d '{"email":"bench@example.com","password":"bench-password-123"}' \
      "http://127.0.0.1:$port/api/v1/auth/login" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    eval "token_$port=\$token"
  fi
done

rps() { # port path [token]
  local auth=()
  [ -n "${3:-}" ] && auth=(-H "Authorization: Bearer $3")
  wrk -t2 -c"$CONNS" -d"$DURATION" "${auth[@]}" "http://127.0.0.1:$1$2" | awk '/^Requests\/sec/ { print $2 }'
}

printf '%s, %s cores, wrk -t2 -c%s -d%s, %s rounds alternating\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$CONNS" "$DURATION" "$ROUNDS"
paths=(/api/v1/ping)
[ -n "$token" ] && paths+=(/api/v1/auth/me)
for path in "${paths[@]}"; do
  on_total=0; off_total=0
  for round in $(seq 1 "$ROUNDS"); do
    on_token=""; off_token=""
    if [ "$path" = /api/v1/auth/me ]; then on_token=$token_18181; off_token=$token_18182; fi
    on=$(rps 18181 "$path" "$on_token"); off=$(rps 18182 "$path" "$off_token")
    printf '  %-18s round %s: metrics on %10s req/s, off %10s req/s\n' "$path" "$round" "$on" "$off"
    on_total=$(awk -v a="$on_total" -v b="$on" 'BEGIN { print a + b }')
    off_total=$(awk -v a="$off_total" -v b="$off" 'BEGIN { print a + b }')
  done
  awk -v on="$on_total" -v off="$off_total" -v p="$path" \
    'BEGIN { printf "%-20s on/off throughput ratio %.3f (%.1f%% fewer requests/s with metrics)\n", p, on / off, (1 - on / off) * 100 }'
done

echo "render:"
"${CARGO_TARGET_DIR:-target}/release/examples/metrics_render" 10000
