#!/usr/bin/env bash
# Load benchmark of the release build: GET /api/v1/ping and GET
# /api/v1/health at 64 and 256 connections, with wrk (Debian's package,
# installed if missing). Prints requests/s, p50/p99 latency and the server's
# peak RSS (VmHWM) after each run.
#
#   bench/run.sh                 # SQLite in a temporary folder
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/amani_bench bench/run.sh
#   DURATION=30s bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
PORT="${BENCH_PORT:-18080}"
THREADS="${WRK_THREADS:-2}"

if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --locked --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/amani"

workdir=$(mktemp -d)
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$workdir"' EXIT
(
  cd "$workdir"
  exec env -i PATH="$PATH" PORT="$PORT" LOG_LEVEL=warn \
    ${DATABASE_URL:+DATABASE_URL="$DATABASE_URL"} ${BENCH_ENV:-} "$OLDPWD/$BIN"
) >"$workdir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/api/v1/readiness" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$PORT/api/v1/readiness" >/dev/null || { cat "$workdir/server.log"; exit 1; }

peak_rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status"; }

printf '%s, %s, %s cores, wrk -t%s -d%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(uname -m)" "$(nproc)" "$THREADS" "$DURATION"
printf '%-20s %6s %12s %10s %10s %14s\n' endpoint conns 'requests/s' 'p50' 'p99' 'peak RSS MiB'
for path in /api/v1/ping /api/v1/health; do
  for conns in 64 256; do
    out=$(wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency "http://127.0.0.1:$PORT$path")
    rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
    p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ { print }' <<<"$out")
    printf '%-20s %6s %12s %10s %10s %14s %s\n' "$path" "$conns" "$rps" "$p50" "$p99" "$(peak_rss_mib)" "$errors"
  done
done
