#!/usr/bin/env bash
# Thin wrapper for cron: a verified backup of DATABASE_URL into BACKUP_DIR,
# pruning backups older than BACKUP_RETENTION_DAYS (never the newest).
# Settings come from the environment or from ENV_FILE (default ./.env).
# Exit code 0 and one "backup ok: …" line on success; non-zero otherwise.
#
# Cron, nightly at 02:15, mailing failures:
#   15 2 * * * cd /srv/amani && scripts/backup_database.sh >> /var/log/amani-backup.log 2>&1 || echo "amani backup failed" | mail -s "amani backup failed" ops@example.com
set -euo pipefail
cd "$(dirname "$0")/.."
AMANI="${AMANI:-amani}"
command -v "$AMANI" >/dev/null 2>&1 || AMANI="${CARGO_TARGET_DIR:-target}/release/amani"
# amani reads .env itself (without overriding the environment).
exec "$AMANI" backup "$@"
