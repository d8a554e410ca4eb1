#!/usr/bin/env bash
# Thin wrapper: restore a backup file over DATABASE_URL (or --target URL).
# Asks you to type the database name back unless --yes is given; refuses
# without --yes when not on a terminal. Checks the restored copy (migrations,
# ledger, row counts) before it replaces anything.
#
#   scripts/restore_database.sh backups/amani-20261128T021500Z.pgdump
#   scripts/restore_database.sh FILE --yes --target postgres://…/amani
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BACKUP_FILE [--yes] [--target DATABASE_URL]" >&2; exit 2; }
AMANI="${AMANI:-amani}"
command -v "$AMANI" >/dev/null 2>&1 || AMANI="${CARGO_TARGET_DIR:-target}/release/amani"
exec "$AMANI" restore "$@"
