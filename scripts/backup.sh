#!/usr/bin/env bash
# Back up CTC Track's PostgreSQL database: scripts/backup.sh [DIR]
#
# Writes three files into DIR (or $BACKUP_DIR: one of the two is required, so
# that patient data never lands in a checkout by default), named
# ctctrack-<database>-<UTC time>:
#   .dump      pg_dump's custom format (compressed; read by pg_restore)
#   .manifest  every table's row count, counted in the very snapshot dumped
#   .sha256    the SHA-256 of both, for `sha256sum --check`
# and prints the dump's path. Nothing is left behind when it fails.
#
# The database is BACKUP_DATABASE_URL, else DATABASE_URL
# (postgres://user:password@host:port/name). Point it at PostgreSQL itself (the
# primary or a streaming replica), not at pgbouncer in transaction mode: the
# shared snapshot below needs one session. Then check the backup with
# scripts/restore-check.sh. docs/deployment.md has the schedule and retention.
set -euo pipefail
umask 077 # the dump holds patient data: readable by this user only

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/backup-common.sh
. "$here/backup-common.sh"

url=${BACKUP_DATABASE_URL:-${DATABASE_URL:-}}
case $url in
postgres://* | postgresql://*) ;;
*) fail "set DATABASE_URL (or BACKUP_DATABASE_URL) to the database's postgres:// URL" ;;
esac
dir=${1:-${BACKUP_DIR:-}}
[ -n "$dir" ] || fail "usage: $(basename "$0") DIR (or set BACKUP_DIR): where the backup goes"
mkdir -p "$dir"
psql=$(pg_tool psql)
pg_dump=$(pg_tool pg_dump)

database=${url%%\?*}
database=${database##*/}
name="ctctrack-${database}-$(date -u +%Y%m%dT%H%M%SZ)"
dump="$dir/$name.dump"
manifest="$dir/$name.manifest"
[ ! -e "$dump" ] || fail "$dump already exists"
partial=("$dump.partial" "$manifest.partial")
trap 'rm -f "${partial[@]}"' EXIT

# The counts and the dump must describe the same moment, though the app keeps
# writing (every page read adds an access-log event): one session opens a
# repeatable-read transaction, exports its snapshot and counts in it, and
# pg_dump dumps that same snapshot while the session stays open.
coproc SESSION { "$psql" -X -q -t -A -w -v ON_ERROR_STOP=1 --dbname="$url" 2>&1; }
# Bash forgets a coprocess's variables once it ends: keep them.
to_session=${SESSION[1]} from_session=${SESSION[0]} session_pid=$SESSION_PID
echo "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot();" >&"$to_session"
read -r -t 60 snapshot <&"$from_session" || fail "could not connect to the database"
[[ $snapshot =~ ^[0-9A-Fa-f-]+$ ]] || fail "could not start a snapshot: $snapshot"

{
  echo "# CTC Track backup manifest: the row count of every table when $name.dump was taken."
  echo "# scripts/restore-check.sh restores the dump and compares these with the copy."
  echo "# database: $database"
  echo "# taken: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$manifest.partial"
echo "$COUNT_ROWS_SQL SELECT 'end-of-counts';" >&"$to_session"
counts=()
while read -r -t 600 line <&"$from_session"; do
  [ "$line" = "end-of-counts" ] && break
  [[ $line =~ ^[^[:space:]]+\ [0-9]+$ ]] || fail "could not count rows: $line"
  counts+=("$line")
done
[ "${line:-}" = "end-of-counts" ] || fail "could not count rows"
[ "${#counts[@]}" -gt 0 ] || fail "the database has no tables: is DATABASE_URL the right one?"
printf '%s\n' "${counts[@]}" | LC_ALL=C sort >>"$manifest.partial"

"$pg_dump" --no-password --format=custom --snapshot="$snapshot" --file="$dump.partial" --dbname="$url" ||
  fail "pg_dump failed"

echo "COMMIT;" >&"$to_session"
exec {to_session}>&-
wait "$session_pid" || fail "the snapshot's session ended with an error"

mv "$dump.partial" "$dump"
mv "$manifest.partial" "$manifest"
(cd "$dir" && sha256sum "$name.dump" "$name.manifest" >"$name.sha256.partial" &&
  mv "$name.sha256.partial" "$name.sha256")
echo "$dump"
