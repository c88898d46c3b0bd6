#!/usr/bin/env bash
# cluster.sh: a throwaway PostgreSQL 15 cluster with the realtime extension.
#
#   scripts/cluster.sh start DIR PORT [--pgtap] [--no-preload]
#   scripts/cluster.sh stop DIR
#
# start: initdb into DIR/data (once), write DIR/data/realtime.conf (preload, logical WAL,
# 127.0.0.1:PORT, unix socket in DIR), start the server (log: DIR/log/postgres.log) and
# CREATE EXTENSION realtime (and pgtap with --pgtap) in database postgres. Prints one line on
# stdout, the TCP conninfo, e.g. "host=127.0.0.1 port=5439 user=postgres dbname=postgres";
# progress goes to stderr. The decoder worker writes its ring to DIR/realtime.ring
# (realtime.ring_path): give that path to realtime-fanout --ring-path. --no-preload leaves realtime out of shared_preload_libraries and
# does not create it (to test that it refuses to load). If anything fails after the server
# started, it is stopped again.
# stop: fast shutdown (immediate if that fails); DIR itself is left for the caller to remove.
#
# Runs as root: the server runs as the postgres user, so DIR must be reachable by postgres
# (not under /root: use mktemp -d under /tmp). Authentication is trust, for the unix socket
# and 127.0.0.1 only: any local user can connect as postgres. Never use it for real data.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/common.sh
source "$here/common.sh"

usage() {
	echo "usage: $0 start DIR PORT [--pgtap] [--no-preload] | stop DIR" >&2
	exit 2
}

# Run a command as the postgres OS user (PostgreSQL refuses to run as root).
as_postgres() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# Absolute DIR, restricted to characters that need no quoting in postgresql.conf.
resolve_dir() {
	local dir
	dir=$(realpath -m -- "$1")
	[[ "$dir" =~ ^[A-Za-z0-9_./+-]+$ ]] || die "DIR must be a plain path (letters, digits, _ . / + -): $dir"
	# A unix socket path is limited to 107 bytes: DIR/.s.PGSQL.NNNNN must fit.
	((${#dir} <= 90)) || die "DIR is too long for a unix socket path (max 90 characters): $dir"
	printf '%s\n' "$dir"
}

# The settings this script owns, rewritten at each start (so PORT may change).
write_conf() {
	local dir=$1 port=$2 preload=$3 bindir=$4
	{
		echo "# Written by scripts/cluster.sh at each start; edit postgresql.conf instead."
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		if ((preload)); then
			echo "shared_preload_libraries = 'realtime'"
		else
			echo "shared_preload_libraries = ''"
		fi
		echo "wal_level = logical"
		echo "max_replication_slots = 20"
		echo "max_wal_senders = 20"
		echo "max_prepared_transactions = 10"
		# Debian's 15.19+ accepts only listed output plugins (a list: quoted in this file).
		# (grep without -q reads all: with pipefail, an early exit SIGPIPEs postgres and fails)
		if as_postgres "$bindir/postgres" --describe-config 2>/dev/null |
			grep '^output_plugin_libraries[[:space:]]' >/dev/null; then
			echo "output_plugin_libraries = 'pgoutput, test_decoding, realtime'"
		fi
		if ((preload)); then
			echo "realtime.database = 'postgres'"
			# Outside the data directory, where a sidecar (root in the tests) opens it read-write.
			echo "realtime.ring_path = '$dir/realtime.ring'"
		fi
		echo "max_connections = 200"
		echo "logging_collector = off"
		echo "log_line_prefix = '%m [%p] %q%u@%d '"
		echo "log_min_messages = warning"
	} >"$dir/data/realtime.conf"
	chown postgres:postgres "$dir/data/realtime.conf"
}

cmd_start() {
	[[ $# -ge 2 ]] || usage
	local dir port pgtap=0 preload=1 bindir psql
	dir=$(resolve_dir "$1")
	port=$2
	shift 2
	if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
		die "bad PORT: $port"
	fi
	while [[ $# -gt 0 ]]; do
		case $1 in
			--pgtap) pgtap=1 ;;
			--no-preload) preload=0 ;;
			*) usage ;;
		esac
		shift
	done
	bindir=$(pg_bindir)

	mkdir -p "$dir"
	if [[ $(id -u) -eq 0 ]]; then
		chown postgres:postgres "$dir"
	fi
	chmod 700 "$dir"
	as_postgres test -w "$dir" -a -x "$dir" ||
		die "postgres cannot write $dir (is a parent directory private, like /root?); use mktemp -d under /tmp"
	as_postgres mkdir -p "$dir/log"

	if [[ ! -f "$dir/data/PG_VERSION" ]]; then
		say "initdb $dir/data"
		as_postgres "$bindir/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 \
			--auth-local=trust --auth-host=trust >"$dir/log/initdb.log" 2>&1 ||
			{
				cat "$dir/log/initdb.log" >&2
				die "initdb failed"
			}
		echo "include 'realtime.conf'" >>"$dir/data/postgresql.conf"
	fi
	write_conf "$dir" "$port" "$preload" "$bindir"

	# Stop the server again if anything below fails, so no postmaster is left behind.
	started_dir=
	trap 'if [[ -n "$started_dir" ]]; then cmd_stop "$started_dir" || true; fi' EXIT
	say "starting PostgreSQL on 127.0.0.1:$port (log: $dir/log/postgres.log)"
	if ! as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log/postgres.log" -w -t 60 start >/dev/null; then
		tail -n 30 "$dir/log/postgres.log" >&2 || true
		die "PostgreSQL did not start"
	fi
	started_dir=$dir

	psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres)
	if ((preload)); then
		"${psql[@]}" -c 'CREATE EXTENSION IF NOT EXISTS realtime' >&2 ||
			die "CREATE EXTENSION realtime failed (is it installed? run make install)"
	fi
	if ((pgtap)); then
		"${psql[@]}" -c 'CREATE EXTENSION IF NOT EXISTS pgtap' >&2 ||
			die "CREATE EXTENSION pgtap failed (install postgresql-15-pgtap)"
	fi
	started_dir=
	trap - EXIT
	printf 'host=127.0.0.1 port=%s user=postgres dbname=postgres\n' "$port"
}

cmd_stop() {
	[[ $# -eq 1 ]] || usage
	local dir bindir
	dir=$(resolve_dir "$1")
	bindir=$(pg_bindir)
	[[ -f "$dir/data/postmaster.pid" ]] || return 0
	say "stopping PostgreSQL in $dir"
	as_postgres "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null ||
		as_postgres "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null
}

[[ $# -ge 1 ]] || usage
case $1 in
	start)
		shift
		cmd_start "$@"
		;;
	stop)
		shift
		cmd_stop "$@"
		;;
	*) usage ;;
esac
