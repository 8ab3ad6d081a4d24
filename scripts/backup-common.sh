# Shared by scripts/backup.sh and scripts/restore-check.sh (sourced, not run).

# The PostgreSQL client binary NAME: from PG_BINDIR when set, else from PATH,
# else from Debian's versioned directories (the newest version installed), so
# no version is written down here. pg_dump must be at least as new as the
# server it dumps, and pg_restore at least as new as the pg_dump that wrote.
pg_tool() {
  local name=$1 dir
  if [ -n "${PG_BINDIR:-}" ]; then
    [ -x "$PG_BINDIR/$name" ] || fail "PG_BINDIR=$PG_BINDIR has no $name"
    echo "$PG_BINDIR/$name"
    return
  fi
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    return
  fi
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/$name" ]; then
    echo "$dir/$name"
    return
  fi
  fail "$name not found: install PostgreSQL's client programs (Debian: apt-get install postgresql-client) or set PG_BINDIR"
}

# One line per table of the database, "schema.table row_count", sorted: what
# the manifest records at backup time and what the restored copy must match.
# (query_to_xml runs each table's count(*) inside this one statement, so the
# counts come from the statement's snapshot.)
COUNT_ROWS_SQL="
SELECT format('%I.%I', table_schema, table_name) || ' ' ||
       (xpath('/row/n/text()', query_to_xml(
           format('SELECT count(*) AS n FROM %I.%I', table_schema, table_name),
           false, true, '')))[1]::text
FROM information_schema.tables
WHERE table_type = 'BASE TABLE'
  AND table_schema NOT IN ('pg_catalog', 'information_schema');"

# A PostgreSQL URL with its database name replaced (user, password, host,
# port and ?options kept).
url_with_database() {
  local url=$1 name=$2 query="" rest authority
  case $url in *\?*) query="?${url#*\?}" url=${url%%\?*} ;; esac
  rest=${url#*://}
  authority=${rest%%/*}
  printf '%s://%s/%s%s\n' "${url%%://*}" "$authority" "$name" "$query"
}

fail() {
  echo "$(basename "$0"): FAILED: $*" >&2
  exit 1
}
