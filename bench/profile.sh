#!/usr/bin/env bash
# Where a request's CPU goes: samples Amani (everything on, as in
# bench/compare.sh) with `perf` while wrk drives one path, and draws the
# flame graph (inferno, `cargo install inferno`) as an SVG.
#
#   bench/profile.sh [PATH] [OUT.svg]    # /api/v1/ping → bench/ping-flamegraph.svg
#   bench/profile.sh escrow OUT.svg      # escrow cycles on SQLite, 8 clients
#
# `escrow` samples the server as bench/escrow.sh runs it (SQLite, logs at
# warn, tracing off) while examples/escrow_load drives hold → submit →
# approve → release cycles, and prints the top of `perf report` too.
#
# The release build is made with line tables (CARGO_PROFILE_RELEASE_DEBUG=
# line-tables-only) so that perf can unwind its stacks (DWARF); the code is
# the same as the plain release build's. Needs perf (Debian: linux-perf) and
# the inferno tools on PATH or in $INFERNO (default /var/tmp/inferno/bin).
set -euo pipefail
ROUTE="${1:-/api/v1/ping}"
OUT="${2:-bench/ping-flamegraph.svg}"
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
source "$(dirname "$0")/lib.sh"
INFERNO="${INFERNO:-/var/tmp/inferno/bin}"
PATH="$INFERNO:$PATH"
command -v inferno-flamegraph >/dev/null || cargo install inferno --locked --root "$(dirname "$INFERNO")"
command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
need_wrk
bench_build --bin amani --example webhook_sink --example escrow_load
if [ "$ROUTE" = escrow ]; then
  env -i PATH="$PATH" DATABASE_URL="sqlite://$WORK/bench.db" AMANI_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    "$BIN" admin create --email "$ADMIN_EMAIL" >/dev/null
  start_amani full 18101 DATABASE_URL="sqlite://$WORK/bench.db" DATABASE_MAX_CONNECTIONS=32 \
    DATABASE_ACQUIRE_TIMEOUT_SECONDS=30
  # The load tool sets its clients up first (users, KYC, projects): sample
  # once the cycles run.
  "$TARGET/release/examples/escrow_load" http://127.0.0.1:18101 "$ADMIN_EMAIL" "$ADMIN_PASSWORD" 8 \
    $((DURATION + 8)) > "$WORK/load.out" &
  load=$!
  sleep 8
  perf record -q -a -F 499 --call-graph dwarf,16384 -o "$WORK/perf.data" -- sleep "$DURATION"
  wait "$load"
  cat "$WORK/load.out"
else
  start_process sink "$TARGET/release/examples/webhook_sink" 18199
  start_amani full 18101 LOG_LEVEL=info TRACING_ENABLED=true TRACING_SAMPLE_RATIO=1.0 \
    OTLP_PROTOCOL=http/protobuf OTLP_ENDPOINT=http://127.0.0.1:18199 RECONCILE_ENABLED=false
  # Warm up, then sample for the length of one wrk window.
  wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:18101$ROUTE" >/dev/null
  perf record -q -a -F 499 --call-graph dwarf,16384 -o "$WORK/perf.data" -- sleep "$DURATION" &
  recorder=$!
  wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:18101$ROUTE" | grep -E 'Requests/sec'
  wait "$recorder"
fi
# Sampled system-wide and filtered to the server: on this VM, `perf record
# -p PID` kept only a few hundred of the expected thousands of samples.
perf script -i "$WORK/perf.data" --pid "$pid_full" 2>/dev/null | inferno-collapse-perf > "$WORK/folded"
# Rust's frame names carry every generic argument (a middleware stack's
# types run to kilobytes): drop the arguments (`Layered<…>` → `Layered`)
# and merge the stacks that then read the same, so the graph stays small.
python3 - "$WORK/folded" > "$WORK/short" <<'PY'
import collections, re, sys
generic = re.compile(r"(\w)<[^<>]*>")
stacks = collections.Counter()
for line in open(sys.argv[1]):
    stack, count = line.rsplit(" ", 1)
    frames = []
    for frame in stack.split(";"):
        while True:
            shorter = generic.sub(r"\1", frame)
            if shorter == frame:
                break
            frame = shorter
        frames.append(frame)
    stacks[";".join(frames)] += int(count)
for stack, count in stacks.items():
    print(stack, count)
PY
if [ "$ROUTE" = escrow ]; then title="Amani escrow cycles, SQLite, 8 clients"; else title="Amani $ROUTE, everything on"; fi
inferno-flamegraph --minwidth 0.5 --title "$title ($(date -u +%Y-%m-%d))" < "$WORK/short" > "$OUT"
# The frames found in the most samples (a sample counts once per frame).
python3 - "$WORK/short" <<'PY'
import collections, sys
total, share = 0, collections.Counter()
for line in open(sys.argv[1]):
    stack, count = line.rsplit(" ", 1)
    total += int(count)
    for frame in set(stack.split(";")):
        share[frame] += int(count)
print("frames in the largest share of the samples (weighted by their period):")
for frame, count in share.most_common(40):
    print(f"{100 * count / total:6.1f}%  {frame[:150]}")
PY
echo "wrote $OUT ($(wc -l < "$WORK/short") stacks; the folded stacks are not kept: tens of MB)"
