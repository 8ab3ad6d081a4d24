#!/usr/bin/env bash
# Prove that a backup restores: scripts/restore-check.sh [--after HASH] [--anchor HASH] FILE.dump
#
# FILE.dump, FILE.manifest and FILE.sha256 as scripts/backup.sh wrote them.
# 1. the checksums still match (nothing changed or was cut off since the backup);
# 2. pg_restore restores the dump into a new scratch database, stopping at the first error;
# 3. `manage.py migrate --check` against the copy: every migration of this code is applied;
# 4. `manage.py verify_audit` against the copy: the access log's hash chain is intact
#    (--after and --anchor are passed on to it: see docs/audit.md);
# 5. every table holds as many rows as the manifest recorded at backup time.
# The scratch database is dropped afterwards, whatever happened. Exit status 0
# when every check passes; otherwise 1 and a line saying which check failed and why.
#
# The scratch database, <name>_restore_check_<pid>, is created on the server of
# RESTORE_CHECK_DATABASE_URL, else DATABASE_URL (its user needs CREATEDB):
# preferably a server other than production's. The checks run this checkout's
# manage.py with PYTHON (default: .venv/bin/python, else python3) and the
# environment's settings (SECRET_KEY and the rest), DATABASE_URL aside.
set -euo pipefail
umask 077

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=scripts/backup-common.sh
. "$here/backup-common.sh"

audit_args=()
while [ $# -gt 0 ]; do
  case $1 in
  --after | --anchor)
    [ $# -ge 2 ] || fail "$1 needs a hash"
    audit_args+=("$1" "$2")
    shift 2
    ;;
  -h | --help)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  -*) fail "unknown option $1 (see --help)" ;;
  *) break ;;
  esac
done
[ $# -eq 1 ] || fail "usage: $(basename "$0") [--after HASH] [--anchor HASH] FILE.dump"

dump=$1
base=${dump%.dump}
manifest=$base.manifest
sums=$base.sha256
for file in "$dump" "$manifest" "$sums"; do
  [ -f "$file" ] || fail "$file not found (backup.sh writes .dump, .manifest and .sha256 together)"
done
if [ -n "${PYTHON:-}" ]; then
  python=$PYTHON
elif [ -x "$root/.venv/bin/python" ]; then
  python=$root/.venv/bin/python
else
  python=python3
fi
psql=$(pg_tool psql)
pg_restore=$(pg_tool pg_restore)

# 1. Checksums.
if ! sums_output=$(cd "$(dirname "$sums")" && sha256sum --check --strict "$(basename "$sums")" 2>&1); then
  fail "checksum: the backup's files changed since it was taken (damaged or cut off): $(echo "$sums_output" | grep -v ': OK$' | tr '\n' ' ')"
fi

# 2. Restore into a scratch database.
server=${RESTORE_CHECK_DATABASE_URL:-${DATABASE_URL:-}}
case $server in
postgres://* | postgresql://*) ;;
*) fail "set DATABASE_URL (or RESTORE_CHECK_DATABASE_URL) to a postgres:// URL of the server to restore on" ;;
esac
server_database=${server%%\?*}
server_database=${server_database##*/}
scratch=$(printf '%s' "${server_database:-ctctrack}" | tr -c 'A-Za-z0-9_' '_')
scratch="${scratch:0:40}_restore_check_$$"
scratch_url=$(url_with_database "$server" "$scratch")

admin() { "$psql" -X -q -t -A -w -v ON_ERROR_STOP=1 --dbname="$server" -c "$1"; }
admin "CREATE DATABASE \"$scratch\" TEMPLATE template0 ENCODING 'UTF8'" ||
  fail "could not create the scratch database $scratch"
drop_scratch() {
  admin "DROP DATABASE IF EXISTS \"$scratch\"" ||
    echo "$(basename "$0"): could not drop the scratch database $scratch: drop it by hand" >&2
}
trap drop_scratch EXIT

if ! restore_output=$("$pg_restore" --no-password --exit-on-error --no-owner --no-privileges \
  --dbname="$scratch_url" "$dump" 2>&1); then
  fail "pg_restore could not restore $dump: $restore_output"
fi

# 3 and 4. The app's own checks, against the copy only.
in_copy() {
  env -u DATABASE_REPLICA_URL DATABASE_URL="$scratch_url" "$python" "$root/manage.py" "$@" 2>&1
}
if ! output=$(in_copy migrate --check --no-input); then
  fail "migrations: the copy lacks migrations this code has (a backup older than the code, or a damaged django_migrations table): $output"
fi
if ! audit_output=$(in_copy verify_audit "${audit_args[@]}"); then
  fail "access log: $audit_output"
fi

# 5. Row counts, table by table.
restored=$("$psql" -X -q -t -A -w -v ON_ERROR_STOP=1 --dbname="$scratch_url" -c "$COUNT_ROWS_SQL" |
  LC_ALL=C sort) || fail "could not count the copy's rows"
differences=$(
  awk 'NR == FNR { if ($0 !~ /^#/ && NF == 2) recorded[$1] = $2; next }
       { restored[$1] = $2 }
       END {
         for (t in recorded)
           if (!(t in restored)) print t ": " recorded[t] " rows at backup, table missing from the copy"
           else if (recorded[t] != restored[t]) print t ": " recorded[t] " rows at backup, " restored[t] " in the copy"
         for (t in restored)
           if (!(t in recorded)) print t ": not in the manifest, " restored[t] " rows in the copy"
       }' "$manifest" - <<<"$restored" | LC_ALL=C sort
)
[ -z "$differences" ] || fail "row counts differ from the manifest: $(echo "$differences" | paste -sd ';' -)"
grep -qv '^#' "$manifest" || fail "the manifest lists no tables"

tables=$(grep -cv '^#' "$manifest")
echo "$(basename "$0"): OK: $(basename "$dump") restores; migrations complete; $audit_output; row counts of all $tables tables match the manifest"
