#!/usr/bin/env bash
# One side-by-side comparison (issue 17), every run alternated with the
# others so the machine's noise hits all alike, printed as one table:
#
# - CPU per request, against a bare axum handler (bench/bare_axum.rs) in the
#   same runs: Amani's /api/v1/ping and /metrics with everything on (JSON
#   logs at info, metrics with exemplars, OTLP traces at ratio 1.0 to a
#   local sink), /api/v1/ping with the defaults (no trace export), GET
#   /api/v1/auth/me on PostgreSQL;
# - the escrow cycle (hold → submit → approve → release, examples/
#   escrow_load, 8 clients) on SQLite and PostgreSQL: cycles/s, transfers/s,
#   statements per cycle; pgbench's simple-update on the same server;
# - GET /api/v1/projects (page of 20) for a client with 100 projects and
#   one with LIST_PROJECTS (10,000), page 1 and by cursor at the end.
#
#   bench/compare.sh          # ROUNDS=3 DURATION=10 CONNS=64 LIST_PROJECTS=10000
#
# `amani ledger check` must be balanced after every escrow run (the script
# stops otherwise).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS="${ROUNDS:-3}"
LIST_PROJECTS="${LIST_PROJECTS:-10000}"
need_wrk
bench_build --bin amani --example bare_axum --example escrow_load --example webhook_sink
EX="$TARGET/release/examples"
stamp=$(date +%s)
pg_dbs=()
drop_pg() { for db in "${pg_dbs[@]}"; do psql -q "$PG_URL/postgres" -c "drop database if exists $db with (force)" >/dev/null 2>&1 || true; done; }
trap 'drop_pg; bench_cleanup' EXIT
new_pg() { # name -> url
  local db="amani_compare_${1}_$stamp"
  psql -q "$PG_URL/postgres" -c "create database $db" >/dev/null
  pg_dbs+=("$db")
  echo "$PG_URL/$db"
}
user() { # port email role -> token
  curl -fsS -o /dev/null "http://127.0.0.1:$1/api/v1/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$2\",\"password\":\"bench-password-123\",\"full_name\":\"Bench User\",\"role\":\"$3\"}"
  login "$1" "$2" bench-password-123
}

# --- servers ----------------------------------------------------------------
start_process sink "$EX/webhook_sink" 18199
start_process bare "$EX/bare_axum" 18100
full_env=(LOG_LEVEL=info TRACING_ENABLED=true TRACING_SAMPLE_RATIO=1.0 OTLP_PROTOCOL=http/protobuf
  OTLP_ENDPOINT=http://127.0.0.1:18199 RECONCILE_ENABLED=false)
start_amani full 18101 "${full_env[@]}"
# The defaults (JSON logs at info, metrics; no traces exported), so the
# table shows what the OTLP export itself costs.
start_amani plain 18105 LOG_LEVEL=info RECONCILE_ENABLED=false
pg_url=$(new_pg api)
start_amani pg 18102 DATABASE_URL="$pg_url" RECONCILE_ENABLED=false
for _ in $(seq 1 50); do curl -fs http://127.0.0.1:18100/api/v1/ping >/dev/null && break; sleep 0.1; done
me_token=$(user 18102 me@example.com client)

printf '%s, %s cores, wrk -t1 -c%s -d%ss, median of %s alternated rounds\n' \
  "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$CONNS" "$DURATION" "$ROUNDS"

declare -A rps=() cpu=()
record() { # key "rps cpu"
  rps[$1]+="${2% *}"$'\n'; cpu[$1]+="${2#* }"$'\n'
}
for _ in $(seq 1 "$ROUNDS"); do
  record bare "$(measure "$pid_bare" http://127.0.0.1:18100/api/v1/ping)"
  record ping "$(measure "$pid_full" http://127.0.0.1:18101/api/v1/ping)"
  record plain "$(measure "$pid_plain" http://127.0.0.1:18105/api/v1/ping)"
  record metrics "$(measure "$pid_full" http://127.0.0.1:18101/metrics \
    -H 'Accept: application/openmetrics-text; version=1.0.0')"
  record me "$(measure "$pid_pg" http://127.0.0.1:18102/api/v1/auth/me -H "Authorization: Bearer $me_token")"
done
spans=$(curl -fs http://127.0.0.1:18199/count)
stop full; stop plain; stop pg; stop bare
med() { echo -n "$1" | median; }
bare_cpu=$(med "${cpu[bare]}")

# --- escrow cycle, both engines, and pgbench ---------------------------------
cycle() { # name url -> "cycles/s transfers/s statements/cycle transaction_ms"
  env -i PATH="$PATH" DATABASE_URL="$2" AMANI_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    "$BIN" admin create --email "$ADMIN_EMAIL" >/dev/null 2>&1
  start_amani "$1" 18103 DATABASE_URL="$2" DATABASE_MAX_CONNECTIONS=32 DATABASE_ACQUIRE_TIMEOUT_SECONDS=30
  local out
  out=$("$EX/escrow_load" http://127.0.0.1:18103 "$ADMIN_EMAIL" "$ADMIN_PASSWORD" 8 "$DURATION")
  stop "$1"
  if ! env -i PATH="$PATH" DATABASE_URL="$2" "$BIN" ledger check >"$WORK/$1.check" 2>&1; then
    echo "ledger check failed after $1:" >&2; cat "$WORK/$1.check" >&2; exit 1
  fi
  echo "$out" | awk '{ for (i = 1; i <= NF; i++) { if ($i == "cycles/s") c = $(i-1); if ($i == "transfers/s") t = $(i-1);
      if ($i == "statements/s") s = $(i+1); if ($i == "held") h = $(i+1) } }
    END { printf "%s %s %.1f %s\n", c, t, s / c, h }'
}
declare -A cyc=()
pgbench_db=$(new_pg pgbench)
pgbench -q -i -s 10 "$pgbench_db" >/dev/null 2>&1
for r in $(seq 1 "$ROUNDS"); do
  cyc[sqlite]+="$(cycle "sqlite$r" "sqlite://$WORK/cycle$r.db")"$'\n'
  cyc[postgres]+="$(cycle "postgres$r" "$(new_pg "cycle$r")")"$'\n'
  tps=$(pgbench -N -c 8 -j 2 -T "$DURATION" "$pgbench_db" 2>/dev/null | awk '/^tps/ { print $3; exit }')
  cyc[pgbench]+="$tps"$'\n'
done
col() { echo -n "$1" | awk -v c="$2" '{ print $c }' | median; }

# --- lists as data grow -------------------------------------------------------
start_amani lists 18104 RECONCILE_ENABLED=false WEBHOOK_DELIVERY_ENABLED=false SCHEDULER_ENABLED=false
small=$(user 18104 small@example.com client)
large=$(user 18104 large@example.com client)
user 18104 seller@example.com freelancer >/dev/null
seed() { # token count
  seq 1 "$2" | xargs -P 4 -I{} curl -fsS -o /dev/null -X POST -H 'content-type: application/json' \
    -H "Authorization: Bearer $1" http://127.0.0.1:18104/api/v1/projects \
    -d '{"title":"Project {}","seller_email":"seller@example.com","currency":"NGN","milestones":[{"title":"one","amount":1000},{"title":"two","amount":2000}]}'
}
seed "$small" 100
seed "$large" "$LIST_PROJECTS"
last_page=$(( LIST_PROJECTS / 20 - 1 ))
cursor=$(curl -fsS -H "Authorization: Bearer $large" \
  "http://127.0.0.1:18104/api/v1/projects?page=$last_page&page_size=20" | jq -r .next_cursor)
declare -A lists=()
for _ in $(seq 1 "$ROUNDS"); do
  lists[small]+="$(measure "$pid_lists" 'http://127.0.0.1:18104/api/v1/projects?page_size=20' -H "Authorization: Bearer $small")"$'\n'
  lists[large]+="$(measure "$pid_lists" 'http://127.0.0.1:18104/api/v1/projects?page_size=20' -H "Authorization: Bearer $large")"$'\n'
  lists[deep]+="$(measure "$pid_lists" "http://127.0.0.1:18104/api/v1/projects?page_size=20&after=$cursor" -H "Authorization: Bearer $large")"$'\n'
done
stop lists

# --- one table ------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
line() { printf '| %-58s | %12s | %16s | %-34s |\n' "$@"; }
echo
line measure "req/s" "CPU per request" "ratio"
echo '|---|---:|---:|---|'
line 'bare axum `/api/v1/ping`' "$(med "${rps[bare]}")" "$bare_cpu µs" "1.00 (the floor)"
line 'Amani `/api/v1/ping`, everything on' "$(med "${rps[ping]}")" "$(med "${cpu[ping]}") µs" \
  "$(ratio "$(med "${cpu[ping]}")" "$bare_cpu") × bare"
line 'Amani `/api/v1/ping`, defaults (no trace export)' "$(med "${rps[plain]}")" "$(med "${cpu[plain]}") µs" \
  "$(ratio "$(med "${cpu[plain]}")" "$bare_cpu") × bare"
line 'Amani `/metrics` (OpenMetrics), everything on' "$(med "${rps[metrics]}")" "$(med "${cpu[metrics]}") µs" \
  "$(ratio "$(med "${cpu[metrics]}")" "$bare_cpu") × bare"
line 'Amani `GET /auth/me`, PostgreSQL' "$(med "${rps[me]}")" "$(med "${cpu[me]}") µs" \
  "$(ratio "$(med "${cpu[me]}")" "$(med "${cpu[ping]}")") × Amani's /ping"
line 'projects, page 1, 100 projects' "$(col "${lists[small]}" 1)" "$(col "${lists[small]}" 2) µs" "1.00"
line "projects, page 1, $LIST_PROJECTS projects" "$(col "${lists[large]}" 1)" "$(col "${lists[large]}" 2) µs" \
  "$(ratio "$(col "${lists[large]}" 2)" "$(col "${lists[small]}" 2)") × 100 projects"
line "projects, by cursor at the end, $LIST_PROJECTS projects" "$(col "${lists[deep]}" 1)" "$(col "${lists[deep]}" 2) µs" \
  "$(ratio "$(col "${lists[deep]}" 2)" "$(col "${lists[small]}" 2)") × 100 projects"
echo
row() { printf '| %-10s | %10s | %12s | %18s | %22s | %-40s |\n' "$@"; }
row engine "cycles/s" "transfers/s" "statements / cycle" "transaction held (ms)" "vs pgbench"
echo '|---|---:|---:|---:|---:|---|'
pgtps=$(echo -n "${cyc[pgbench]}" | median)
for engine in sqlite postgres; do
  c=$(col "${cyc[$engine]}" 1); t=$(col "${cyc[$engine]}" 2); s=$(col "${cyc[$engine]}" 3); h=$(col "${cyc[$engine]}" 4)
  vs="—"
  [ "$engine" = postgres ] && vs="$(ratio "$(awk -v c="$c" -v s="$s" 'BEGIN { print c * s }')" "$(awk -v t="$pgtps" 'BEGIN { print t * 5 }')") of pgbench's statements/s"
  row "$engine" "$c" "$t" "$s" "$h" "$vs"
done
row pgbench "$pgtps tps" "" 5 "" "simple-update (-N), 8 clients"
echo
echo "OTLP exports received by the sink during the HTTP runs: $spans; ledger check balanced after every escrow run."
