#!/usr/bin/env bash
# Resident memory of the service before and after a burst of 128 concurrent
# logins (random emails: one Argon2 each) and after 256 concurrent
# connections, and 10 s later (is it given back?).
#
# Usage: bench/memory.sh [path/to/amani]   (default: target/release/amani)
set -euo pipefail
AMANI="$(realpath "${1:-target/release/amani}")"
PORT="${BENCH_PORT:-18383}"
WORK="$(mktemp -d)"
cd "$WORK"
PORT="$PORT" RATE_LIMIT_ENABLED=false LOG_LEVEL=warn ENVIRONMENT=test "$AMANI" serve > server.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/api/v1/readiness" >/dev/null && break; sleep 0.2; done
rss() { ps -o rss= -p "$PID" | awk '{printf "%.1f MiB", $1/1024}'; }
echo "at rest:                 $(rss)"
seq 1 128 | xargs -P 128 -I{} curl -s -o /dev/null -w "%{http_code}\n" -X POST \
  "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"burst{}@example.com","password":"whatever-1234"}' | sort | uniq -c | sed 's/^/  login answers: /'
echo "after 128 logins:        $(rss)"
sleep 10
echo "10 s later:              $(rss)"
python3 - "$PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
socks = []
for _ in range(256):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
time.sleep(1)
print("  answered: %d of 256 connections" % sum(1 for s in socks if b" 200 " in s.recv(4096)[:20]))
for s in socks:
    s.close()
PY
echo "after 256 connections:   $(rss)"
sleep 10
echo "10 s later:              $(rss)"
