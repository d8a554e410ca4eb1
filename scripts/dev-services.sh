#!/usr/bin/env bash
# Makes sure the services the test suite talks to are installed and running
# on this machine: PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres),
# Redis on 127.0.0.1:6379, and the monitoring tools some tests run (promtool, prometheus, alertmanager,
# amtool). Safe to run again; installs only what is missing (needs root for
# that, as on CI).
set -euo pipefail

log() { printf '[dev-services] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL -------------------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  log "installing PostgreSQL"
  apt_install postgresql postgresql-client
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { log "PostgreSQL is not answering on 127.0.0.1:5432"; exit 1; }

# --- Redis (shared rate limits) -------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing Redis"
  apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { log "Redis is not answering on 127.0.0.1:6379"; exit 1; }

# --- Monitoring tools ---------------------------------------------------------
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt_install "${need[@]}"
fi
# --- An S3-compatible server for the backup-upload test (moto, PyPI) --------------
if ! command -v moto_server >/dev/null 2>&1; then
  log "installing moto (local S3-compatible server)"
  python3 -m pip install -q "moto[server]"
fi
command -v moto_server >/dev/null 2>&1 || { log "moto_server is not on PATH after installing it"; exit 1; }
# --- Python tools in a virtual environment this script owns -----------------------
# (openapi-spec-validator checks the OpenAPI document in CI; schemathesis
# fuzzes the API from it: scripts/api-fuzz.sh.)
TOOLS_VENV="${AMANI_TOOLS_VENV:-/var/tmp/amani-tools-venv}"
if [ ! -x "$TOOLS_VENV/bin/openapi-spec-validator" ] || [ ! -x "$TOOLS_VENV/bin/schemathesis" ]; then
  log "installing openapi-spec-validator and schemathesis into $TOOLS_VENV"
  if ! python3 -m venv "$TOOLS_VENV" 2>/dev/null; then
    apt_install python3-venv
    python3 -m venv "$TOOLS_VENV"
  fi
  "$TOOLS_VENV/bin/pip" install -q "openapi-spec-validator==0.9.0" "schemathesis==4.32.5"
fi
for tool in openapi-spec-validator schemathesis; do
  "$TOOLS_VENV/bin/$tool" --help >/dev/null 2>&1 || { log "$tool does not run from $TOOLS_VENV"; exit 1; }
done
log "ready"
