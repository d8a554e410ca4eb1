#!/usr/bin/env bash
# Makes sure what the test suite uses is installed, and the system services
# work: PostgreSQL on 127.0.0.1:5432 (user postgres, no password from
# loopback; AMANI_PG_PORT for another cluster), Redis on 127.0.0.1:6379, the
# monitoring tools some tests run (promtool, prometheus, alertmanager,
# amtool), curl and jq, and the Python tools in a venv this script owns.
# (`cargo test` starts its own PostgreSQL and Redis from these packages'
# binaries; the system services are for running the service by hand.)
# Safe to run again; installs only what is missing, with apt-get on Debian
# or Ubuntu (as root or with sudo); elsewhere it names what to provide.
set -euo pipefail

log() { printf '[dev-services] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

# Installing is supported on Debian and Ubuntu (apt-get); anywhere else the
# script uses what is there and names what is missing.
os_id=$( . /etc/os-release 2>/dev/null && echo "${ID:-} ${ID_LIKE:-}" )
need_apt() {
  case " $os_id " in
    *" debian "*|*" ubuntu "*) command -v apt-get >/dev/null && return 0 ;;
  esac
  log "this script installs packages only on Debian or Ubuntu (this is: ${os_id:-unknown})."
  log "provide this yourself, then run it again: $1"
  exit 1
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL -------------------------------------------------------------
# Checked by using it: connect as `postgres` over TCP with no password,
# create a database and drop it. A distribution's fresh cluster asks for a
# password on 127.0.0.1 (scram-sha-256), so this script allows the
# `postgres` user without one from loopback only, as the tests and the
# README's URLs expect (a development machine's setting, never production's).
PG_PORT="${AMANI_PG_PORT:-5432}"
pg_works() {
  PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c 'create database amani_dev_services_check' -c 'drop database amani_dev_services_check' \
    >/dev/null 2>"${TMPDIR:-/tmp}/amani-dev-services-pg.err" </dev/null
}
# (Already working — on any system — is enough; otherwise Debian's cluster
# tools install, start and configure it.)
pg_setup() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    need_apt "PostgreSQL 13 or newer on 127.0.0.1:$PG_PORT, user postgres with no password"
    log "installing PostgreSQL"
    apt_install postgresql postgresql-client
  fi
  # The Debian cluster serving PG_PORT (or the newest, for the default port).
  cluster=$(pg_lsclusters --no-header 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2; exit }')
  if [ -z "$cluster" ] && [ "$PG_PORT" = 5432 ]; then
    cluster=$(pg_lsclusters --no-header 2>/dev/null | sort -V | awk 'END { if (NR) print $1, $2 }')
  fi
  [ -n "$cluster" ] || { log "no PostgreSQL cluster on port $PG_PORT (pg_lsclusters lists none)"; exit 1; }
  read -r pg_version pg_name <<<"$cluster"
  if ! pg_isready -h 127.0.0.1 -p "$PG_PORT" -q 2>/dev/null; then
    log "starting PostgreSQL $pg_version/$pg_name"
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$pg_name" start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p "$PG_PORT" -q && break; sleep 1; done
  fi
  if ! pg_works; then
    if grep -q "password authentication failed\|no password supplied\|no pg_hba.conf entry" \
        "${TMPDIR:-/tmp}/amani-dev-services-pg.err"; then
      hba="/etc/postgresql/$pg_version/$pg_name/pg_hba.conf"
      log "allowing user postgres from loopback without a password ($hba)"
      rules=$(printf '%s\n%s\n%s\n' "# amani dev-services: the test suite connects as postgres with no password" \
        "host all postgres 127.0.0.1/32 trust" "host all postgres ::1/128 trust")
      as_root sh -c "{ printf '%s\n' \"\$1\"; cat \"\$2\"; } > \"\$2.amani\" && cat \"\$2.amani\" > \"\$2\" && rm \"\$2.amani\"" \
        sh "$rules" "$hba"
      as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$pg_name" reload
      sleep 1
    fi
    pg_works || {
      log "PostgreSQL on 127.0.0.1:$PG_PORT does not let user postgres connect and create a database:"
      cat "${TMPDIR:-/tmp}/amani-dev-services-pg.err" >&2
      exit 1
    }
  fi
}
if pg_works; then
  log "PostgreSQL on 127.0.0.1:$PG_PORT: user postgres connects and creates databases"
else
  pg_setup
  log "PostgreSQL $pg_version/$pg_name on 127.0.0.1:$PG_PORT: user postgres connects and creates databases"
fi

# --- Redis (shared rate limits) -------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  need_apt "redis-server on PATH (Redis 6 or newer)"
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
# curl and jq: the README's walkthrough, which a test runs.
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
# Chromium and its WebDriver: the console's browser test (tests/browser).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  need_apt "curl, jq, promtool, prometheus, alertmanager, amtool, chromium and chromedriver on PATH"
  log "installing ${need[*]}"
  apt_install "${need[@]}"
fi
# --- Python tools in a virtual environment this script owns -----------------------
# (openapi-spec-validator checks the OpenAPI document in CI; schemathesis
# fuzzes the API from it: scripts/api-fuzz.sh; selenium drives Chromium
# through chromedriver for tests/browser/console.py, with the distribution's
# browser and driver: nothing is downloaded.)
TOOLS_VENV="${AMANI_TOOLS_VENV:-/var/tmp/amani-tools-venv}"
# moto_server is a local S3-compatible server for the backup-upload test;
# the tests find it in this venv (AMANI_TOOLS_VENV) or on PATH.
if [ ! -x "$TOOLS_VENV/bin/openapi-spec-validator" ] || [ ! -x "$TOOLS_VENV/bin/schemathesis" ] \
    || [ ! -x "$TOOLS_VENV/bin/moto_server" ] || ! "$TOOLS_VENV/bin/python" -c "import selenium" 2>/dev/null; then
  log "installing openapi-spec-validator, schemathesis, moto and selenium into $TOOLS_VENV"
  if ! python3 -m venv "$TOOLS_VENV" 2>/dev/null; then
    need_apt "python3 with the venv module"
    apt_install python3-venv
    python3 -m venv "$TOOLS_VENV"
  fi
  "$TOOLS_VENV/bin/pip" install -q "openapi-spec-validator==0.9.0" "schemathesis==4.32.5" "hypothesis==6.170.27" \
    "moto[server]==5.2.1" "selenium==4.51.0"
fi
for tool in openapi-spec-validator schemathesis moto_server; do
  "$TOOLS_VENV/bin/$tool" --help >/dev/null 2>&1 || { log "$tool does not run from $TOOLS_VENV"; exit 1; }
done
log "ready"
