# Shared by the bench scripts: `source "$(dirname "$0")/lib.sh"` after
# `set -euo pipefail`. It moves to the repository's root, sets TARGET (the
# cargo target directory, absolute) and WORK (a scratch directory removed on
# exit, with every process started through it), and defines:
#
#   bench_build ARGS…              cargo build --release --locked --quiet ARGS…
#   need_wrk                       installs wrk (Debian's package) if missing
#   start_amani NAME PORT [VAR=VALUE…]
#                                  runs $BIN (default: this checkout's release
#                                  build) in $WORK/NAME with only PATH, PORT,
#                                  LOG_LEVEL=warn, RATE_LIMIT_ENABLED=false and
#                                  the given variables; waits for readiness;
#                                  sets pid_NAME
#   start_process NAME CMD…        runs CMD in the background; sets pid_NAME
#   stop NAME                      stops what start_* started under NAME
#   login PORT EMAIL PASSWORD      prints an access token
#   measure PID URL [WRK ARGS…]    one wrk window of DURATION seconds (CONNS
#                                  connections, 1 thread) against URL: prints
#                                  "requests/s cpu_µs_per_request", the CPU
#                                  being PID's utime+stime over the window
#   median                         the median of the numbers on stdin
#
# and PG_URL (a PostgreSQL server, no database), ADMIN_EMAIL and
# ADMIN_PASSWORD (the admin the scripts create with `amani admin create`).

cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
BIN="${BIN:-$TARGET/release/amani}"
DURATION="${DURATION:-10}"
CONNS="${CONNS:-64}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
ADMIN_EMAIL=bench-admin@example.com
ADMIN_PASSWORD=bench-admin-password-1
WORK=$(mktemp -d)
BENCH_PIDS=()
bench_cleanup() {
  for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap bench_cleanup EXIT

bench_build() { cargo build --release --locked --quiet "$@"; }

need_wrk() {
  command -v wrk >/dev/null && return
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; fi
}

start_process() { # name command…
  local name=$1; shift
  "$@" >"$WORK/$name.log" 2>&1 &
  BENCH_PIDS+=($!)
  eval "pid_$name=$!"
}

start_amani() { # name port [VAR=VALUE…]
  local name=$1 port=$2; shift 2
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && exec env -i PATH="$PATH" PORT="$port" LOG_LEVEL=warn RATE_LIMIT_ENABLED=false \
    "$@" "$BIN") >"$WORK/$name.log" 2>&1 &
  BENCH_PIDS+=($!)
  eval "pid_$name=$!"
  for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$port/api/v1/readiness" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "$name did not become ready:" >&2; tail -n 20 "$WORK/$name.log" >&2; exit 1
}

stop() { # name
  local pid; eval "pid=\${pid_$1:-}"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  eval "pid_$1="
}

login() { # port email password
  curl -fsS "http://127.0.0.1:$1/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$2\",\"password\":\"$3\"}" | jq -r .access_token
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

measure() { # pid url [wrk args…]
  local pid=$1 url=$2 t0 t1 out reqs; shift 2
  t0=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" "$url")
  t1=$(cpu_ticks "$pid")
  reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
  echo "$out" | awk -v reqs="$reqs" -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
    '/^Requests\/sec/ { printf "%s %.1f\n", $2, ticks / hz * 1e6 / reqs }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
