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
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8}"
CONNS="${CONNS:-8}"
[ -n "${BIN:-}" ] || build=yes
source "$(dirname "$0")/lib.sh"
need_wrk
[ -z "${build:-}" ] || bench_build --bin amani

start() { # name port binary
  BIN=$3 start_amani "$1" "$2" RECONCILE_ENABLED=false
}
api() { # port method path token [body]
  curl -fsS -X "$2" -H 'content-type: application/json' ${4:+-H "Authorization: Bearer $4"} \
    ${5:+-d "$5"} "http://127.0.0.1:$1$3"
}
signup() { # port email role -> token
  api "$1" POST /api/v1/auth/signup "" "{\"email\":\"$2\",\"password\":\"bench-password-123\",\"full_name\":\"Bench User\",\"role\":\"$3\"}" >/dev/null
  login "$1" "$2" bench-password-123
}

# --- data: seeded once through the API, then copied for the other binary ----
# With BEFORE, the older binary seeds (its schema), and the newer one
# migrates a copy forward at start, as an upgrade would.
seeder="$BIN"; [ -n "${BEFORE:-}" ] && seeder="$BEFORE"
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
stop seed
servers=(after)
cp -r "$WORK/seed" "$WORK/after"
start after 18301 "$BIN"
if [ -n "${BEFORE:-}" ]; then
  cp -r "$WORK/seed" "$WORK/before"
  start before 18302 "$BEFORE"
  servers=(before after)
fi
port_of() { [ "$1" = before ] && echo 18302 || echo 18301; }
cursor=$(api 18301 GET "/api/v1/projects?page=499&page_size=20" "$large" | jq -r .next_cursor)

measure_on() { # server path token -> "req/s cpu_us_per_request"
  local pid; eval "pid=\$pid_$1"
  measure "$pid" "http://127.0.0.1:$(port_of "$1")$2" -H "Authorization: Bearer $3"
}

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
      results[$server]+="$(measure_on "$server" "$path" "$token")"$'\n'
    done
  done
  for server in "${servers[@]}"; do
    rps=$(echo -n "${results[$server]}" | awk '{ print $1 }' | median)
    cpu=$(echo -n "${results[$server]}" | awk '{ print $2 }' | median)
    printf '| %-8s | %-40s | %10s | %11s µs |\n' "$server" "$label" "$rps" "$cpu"
  done
  unset results
done
