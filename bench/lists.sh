#!/usr/bin/env bash
# GET /api/v1/projects as data grows: a client with 100 projects beside one
# with 10,000, page 1, page 500 (offset 9,980) and the same depth by cursor
# (`after`). With BEFORE=<binary>, that binary runs side by side on a copy of
# the same data (rounds alternate, so machine noise hits both alike).
# Reports the median req/s of ROUNDS fixed windows and the server's CPU time
# per request (utime+stime from /proc over the window).
#
#   bench/lists.sh                              # this checkout's release build
#   BEFORE=/tmp/amani-before bench/lists.sh     # and an older binary beside it
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8}"
CONNS="${CONNS:-8}"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet --bin amani
  BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/amani"
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() { # name port binary
  (cd "$work/$1" && exec env -i PATH="$PATH" PORT="$2" LOG_LEVEL=warn RATE_LIMIT_ENABLED=false \
    RECONCILE_ENABLED=false "$3") >"$work/$1.log" 2>&1 &
  pids+=($!)
  eval "pid_$1=$!"
  for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$2/api/v1/readiness" >/dev/null 2>&1 && return; sleep 0.1; done
  cat "$work/$1.log"; exit 1
}
api() { # port method path token [body]
  curl -fsS -X "$2" -H 'content-type: application/json' ${4:+-H "Authorization: Bearer $4"} \
    ${5:+-d "$5"} "http://127.0.0.1:$1$3"
}
signup() { # port email role -> token
  api "$1" POST /api/v1/auth/signup "" "{\"email\":\"$2\",\"password\":\"bench-password-123\",\"full_name\":\"Bench User\",\"role\":\"$3\"}" >/dev/null
  api "$1" POST /api/v1/auth/login "" "{\"email\":\"$2\",\"password\":\"bench-password-123\"}" | jq -r .access_token
}

# --- data: seeded once through the API, then copied for the other binary ----
# With BEFORE, the older binary seeds (its schema), and the newer one
# migrates a copy forward at start, as an upgrade would.
seeder="$BIN"; [ -n "${BEFORE:-}" ] && seeder="$BEFORE"
mkdir -p "$work/seed"
start seed 18301 "$seeder"
small=$(signup 18301 small@example.com client)
large=$(signup 18301 large@example.com client)
signup 18301 seller@example.com freelancer >/dev/null
seed() { # token count
  seq 1 "$2" | xargs -P 4 -I{} curl -fsS -o /dev/null -X POST -H 'content-type: application/json' \
    -H "Authorization: Bearer $1" "http://127.0.0.1:18301/api/v1/projects" \
    -d '{"title":"Project {}","seller_email":"seller@example.com","currency":"NGN","milestones":[{"title":"one","amount":1000},{"title":"two","amount":2000}]}'
}
started=$(date +%s)
seed "$small" 100
seed "$large" 10000
echo "seeded 10,100 projects (2 milestones each) in $(( $(date +%s) - started )) s"
kill "$pid_seed"; wait "$pid_seed" 2>/dev/null || true
servers=(after)
cp -r "$work/seed" "$work/after"
start after 18301 "$BIN"
if [ -n "${BEFORE:-}" ]; then
  cp -r "$work/seed" "$work/before"
  start before 18302 "$BEFORE"
  servers=(before after)
fi
port_of() { [ "$1" = before ] && echo 18302 || echo 18301; }
cursor=$(api 18301 GET "/api/v1/projects?page=499&page_size=20" "$large" | jq -r .next_cursor)

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
measure() { # server path token -> "req/s cpu_us_per_request"
  local port pid t0 t1 out reqs
  port=$(port_of "$1"); eval "pid=\$pid_$1"
  t0=$(ticks "$pid")
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Authorization: Bearer $3" "http://127.0.0.1:$port$2")
  t1=$(ticks "$pid")
  reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
  echo "$out" | awk -v reqs="$reqs" -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
    '/^Requests\/sec/ { printf "%s %.0f\n", $2, ticks / hz * 1e6 / reqs }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

printf '%s, %s cores, wrk -t1 -c%s -d%ss, median of %s alternated rounds\n' \
  "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$CONNS" "$DURATION" "$ROUNDS"
printf '| %-8s | %-40s | %10s | %14s |\n' binary request req/s "CPU/request"
printf '|---|---|---:|---:|\n'
cases=("100 projects, page 1|/api/v1/projects?page_size=20|small"
       "10,000 projects, page 1|/api/v1/projects?page_size=20|large"
       "10,000 projects, page 500|/api/v1/projects?page=500&page_size=20|large"
       "10,000 projects, after the 9,980th|/api/v1/projects?page_size=20&after=$cursor|large")
for case in "${cases[@]}"; do
  IFS='|' read -r label path who <<<"$case"
  token=$small; [ "$who" = large ] && token=$large
  declare -A results=()
  for _ in $(seq 1 "$ROUNDS"); do
    for server in "${servers[@]}"; do
      results[$server]+="$(measure "$server" "$path" "$token")"$'\n'
    done
  done
  for server in "${servers[@]}"; do
    rps=$(echo -n "${results[$server]}" | awk '{ print $1 }' | median)
    cpu=$(echo -n "${results[$server]}" | awk '{ print $2 }' | median)
    printf '| %-8s | %-40s | %10s | %11s µs |\n' "$server" "$label" "$rps" "$cpu"
  done
  unset results
done
